"""Issue 21, item 5 (work amplification): a model may ask only so much work per frame.

Each network argument within its bound is not enough: together, width 32, blocks 4, low_res
2048 and semantic 32 made one 1080p frame take 45 s instead of 0.9 s. The registry counts a
model's multiply-adds per 1920×1080 frame (networks/work.py) and the loader refuses a model
over `max_work` (the loader, the store and render all; tests/test_robust_models.py sends the
`every bound at once` model of tests/hostile.py through each, and a server).
"""

from __future__ import annotations

import pytest

import hostile
from shotstyle.server.engine.modelfile import model_from_bytes
from shotstyle.server.engine.networks import (ARCHITECTURES, REGISTRY, WORK_FRAME, frame_work, max_work,
                                              work_problem)
from shotstyle.server.engine.networks.work import hrnet_per_pixel
from shotstyle.server.errors import ModelFileError


def test_a_model_at_every_bound_is_refused_naming_its_arguments_and_the_limit():
    data = hostile.HOSTILE_MODELS["every bound at once"][0]()
    with pytest.raises(ModelFileError) as refused:
        model_from_bytes(data, name="upload.safetensors")
    message = str(refused.value)
    assert message.startswith("upload.safetensors: network 'hrnet-fast' with width 32, blocks 4, low_res 2048, "
                              "semantic 32 asks "), message
    assert f"over the limit of {max_work() / 1e9:.0f} G" in message
    assert "smaller width, blocks, low_res or semantic" in message


@pytest.mark.parametrize("name", ARCHITECTURES)
def test_every_network_the_trainer_makes_is_within_the_limit(name):
    assert work_problem(name, {}) is None
    for resolution in (64, 512):   # what the trainer builds, look-trained and target-trained
        for targeted in (False, True):
            assert work_problem(name, REGISTRY[name].build.training_arguments(resolution, targeted)) is None


def test_hrnet_fast_at_any_one_bound_stays_within_the_limit():
    # (hrnet works at full resolution: its width alone at 32 asks 4x its default, beyond the limit)
    for key, bound in REGISTRY["hrnet-fast"].bounds.items():
        if bound.kind is int:
            assert work_problem("hrnet-fast", {key: int(bound.high)}) is None, key


def test_the_count_is_the_networks_own():
    # hrnet's 3x3 stem alone: 3 inputs x 9 taps x width outputs per pixel, a lower bound of the count
    assert hrnet_per_pixel(8, 1, 3) > 3 * 9 * 8
    assert hrnet_per_pixel(16, 2, 3) > 4 * hrnet_per_pixel(8, 1, 3)
    height, width = WORK_FRAME
    assert frame_work("hrnet", {}, height, width) == hrnet_per_pixel(16, 2, 3) * height * width
    # hrnet-fast works on the copy whose long side is low_res: a larger frame costs it nothing more
    assert frame_work("hrnet-fast", {}, 2 * height, 2 * width) == frame_work("hrnet-fast", {}, height, width)
    assert frame_work("grade", {"grade_size": 129}, height, width) == 0.0
