"""Issue 21, item 4: no model that loads can make non-finite or absurd frames, and the LUT report
never prints `nan … 100%`.

The hostile grade lattices themselves (3e38, -2) are in tests/hostile.py, which the loader's
refusal tests (tests/test_robust_models.py) and bench/robustness.py send.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import hostile
from shotstyle.server.engine.lut import REPORT_KEYS, describe_report, effect_report
from shotstyle.server.engine.modelfile import GRADE_RANGE, model_from_bytes
from shotstyle.server.errors import ModelFileError


@pytest.mark.parametrize("value", [3e38, -3e38, GRADE_RANGE[1] + 0.01, GRADE_RANGE[0] - 0.01])
def test_a_grade_lattice_outside_its_range_is_refused_naming_it(value):
    def change(tensors):
        lut = tensors["grade.lut"].clone()
        lut.view(-1)[7] = value   # one node is enough
        return {**tensors, "grade.lut": lut}
    with pytest.raises(ModelFileError) as refused:
        model_from_bytes(hostile.with_tensors(change), name="forged.safetensors")
    assert "forged.safetensors" in str(refused.value) and "grade lattice" in str(refused.value)
    assert f"{value:.3g}" in str(refused.value)


def test_a_lattice_at_the_ends_of_its_range_loads():
    def change(tensors):
        lut = tensors["grade.lut"].clone()
        lut.view(-1)[0], lut.view(-1)[1] = GRADE_RANGE
        return {**tensors, "grade.lut": lut}
    model = model_from_bytes(hostile.with_tensors(change))
    assert float(model.network.grade.lut.min()) == GRADE_RANGE[0]


@pytest.mark.parametrize("report", [
    {"lut_vs_full_mean": float("nan"), "lut_vs_full_p95": float("nan"), "full_vs_plate_mean": float("nan"),
     "full_vs_plate_p95": float("nan"), "reproduced": 1.0},          # what a 3e38 lattice made it say
    dict.fromkeys(REPORT_KEYS),
    {"reproduced": "all of it"},
])
def test_a_report_that_is_not_finite_numbers_says_it_cannot_be_measured(report):
    text = describe_report(report, "the training keyframes")
    assert "not measurable" in text and "nan" not in text.lower() and "%" not in text


def test_the_report_measures_finite_pixels_only():
    rng = np.random.default_rng(0)
    plate = torch.from_numpy(rng.uniform(0.2, 0.6, (1, 3, 8, 8)).astype(np.float32))
    full, graded = plate + 0.1, plate + 0.05
    poisoned = full.clone()
    poisoned[0, :, 0, :] = float("nan")                           # one row of the full model is NaN
    partly = effect_report([plate], [poisoned], [graded])
    assert all(math.isfinite(v) for v in partly.values()), partly
    assert partly == effect_report([plate[:, :, 1:]], [full[:, :, 1:]], [graded[:, :, 1:]])   # the same pixels
    nothing = effect_report([plate], [full * float("nan")], [graded])
    assert nothing == dict.fromkeys(REPORT_KEYS)
    assert "not measurable" in describe_report(nothing, "x")
