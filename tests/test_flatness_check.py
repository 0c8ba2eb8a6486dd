"""bench/flatness.py: a pure colour map passes the flat-area check, a shape placed in a flat area
fails it — the grade's own steep sky included, which the check's earlier quadratic reference failed."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch

from conftest import REPO
from shotstyle.server.engine.training import TrainConfig, to_training_tensor, train

# The bench's modules import each other as top-level modules; its folder is on the path only while they load
# (it also holds an io.py, which must not shadow anything imported later).
sys.path.insert(0, str(REPO / "bench"))
try:
    import flatness
    import quality
    import regrades
finally:
    sys.path.remove(str(REPO / "bench"))


def sky_over_ground(seed: int = 0) -> np.ndarray:
    """A display sRGB plate: a soft sky gradient (flat within 1 ΔE in every window) over textured ground."""
    rng = np.random.default_rng(seed)
    height, width = 144, 256
    rows = np.linspace(0, 1, height)[:, None, None]
    image = np.broadcast_to(np.array([0.70, 0.72, 0.86]) * (1 - 0.12 * rows) + np.array([0.10, 0.04, -0.06]) * rows,
                            (height, width, 3)).copy()
    image[96:] = np.array([0.35, 0.30, 0.22]) + rng.normal(0, 0.05, (height - 96, width, 1))
    image += rng.normal(0, 0.002, image.shape)
    return np.clip(image, 0, 1).astype(np.float32)


@pytest.mark.parametrize("grade", sorted(regrades.GRADES))
def test_global_grades_pass_and_injected_shapes_fail(grade):
    plate = sky_over_ground()
    assert flatness.flat_mask(plate).mean() > 0.3
    graded = regrades.regrade(grade, plate)
    assert flatness.flat_ratio(graded, plate) <= flatness.LIMIT
    for control in ("control: blob", "control: vignette"):
        assert flatness.flat_ratio(flatness.CONTROLS[control](graded, plate), plate) > flatness.LIMIT


def test_the_closed_form_grades_steep_sky_passes(shared_data):
    """Pair 1's grade turns a lavender sky into a steep red one: a colour map, so it must pass (the
    quadratic reference scored it 1.74); a blob placed in that sky must still fail."""
    content = quality.resized(quality.load_working(str(shared_data / "pairs" / "in1.png")), 256)
    style = quality.resized(quality.load_working(str(shared_data / "pairs" / "tar1.png")), 256)
    model = train([content], style, TrainConfig(arch="grade", resolution=256, device="cpu"))
    with torch.no_grad():
        graded = model.network.grade(to_training_tensor(content, 256, torch.device("cpu")))
    plate, output = quality.display(content), quality.display(graded[0].permute(1, 2, 0).numpy())
    assert flatness.flat_ratio(output, plate) <= flatness.LIMIT
    assert flatness.flat_ratio(flatness.blob(output, plate), plate) > flatness.LIMIT
