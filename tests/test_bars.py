"""Letterbox and pillarbox bars are not learnt from: training sees the picture inside them, and a
night sky black to one edge, or a nearly black frame, is still picture."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from shotstyle.server.engine.bars import picture_box
from shotstyle.server.engine.colourmath import linear_to_acescct
from shotstyle.server.engine.training import TrainConfig, train


def working(linear: np.ndarray) -> np.ndarray:
    return linear_to_acescct(torch.from_numpy(linear.astype(np.float32))).numpy()


def box_of(image: np.ndarray, least_picture: int = 1) -> tuple[slice, slice]:
    return picture_box(torch.from_numpy(image).permute(2, 0, 1)[None], least_picture)


def picture(height: int, width: int, seed: int = 0) -> np.ndarray:
    """A working-space picture: a bright sky over a darker, coloured ground, with grain."""
    rng = np.random.default_rng(seed)
    image = np.empty((height, width, 3), np.float32)
    image[: height // 2] = (0.55, 0.62, 0.80)
    image[height // 2:] = (0.20, 0.12, 0.05)
    return working(np.clip(image + rng.normal(0, 0.01, image.shape), 0, None))


def boxed(image: np.ndarray, top: int, bottom: int, left: int = 0, right: int = 0, seed: int = 1) -> np.ndarray:
    """`image` inside bars of those sizes: black with a compressed file's grain (scene-linear
    -0.002 .. 0.004)."""
    height, width = image.shape[:2]
    out = working(np.random.default_rng(seed).uniform(-0.002, 0.004, (height + top + bottom, width + left + right, 3)))
    out[top:top + height, left:left + width] = image
    return out


def on_black() -> np.ndarray:
    """A lit round object on a black background: it fades into the black line by line."""
    y, x = np.mgrid[0:120, 0:160]
    glow = np.clip(1.2 - np.hypot((y - 60) / 45, (x - 80) / 45), 0, 1)[..., None] * np.array([0.9, 0.5, 0.2])
    return working(glow + np.random.default_rng(3).uniform(-0.002, 0.004, glow.shape))


@pytest.mark.parametrize("top, bottom, left, right", [(20, 20, 0, 0), (19, 21, 0, 0), (0, 0, 30, 30), (10, 12, 16, 16)])
def test_the_picture_inside_bars_is_found(top, bottom, left, right):
    image = picture(100, 160)
    rows, columns = box_of(boxed(image, top, bottom, left, right))
    assert (rows.start, rows.stop, columns.start, columns.stop) == (top, top + 100, left, left + 160)


def test_burnt_in_subtitles_in_a_bar_leave_it_a_bar():
    image = boxed(picture(100, 160), 24, 24)
    image[130:138, 50:62] = 0.6                     # a line of subtitle text in the lower bar
    assert box_of(image)[0] == slice(24, 124)


@pytest.mark.parametrize("make", [
    lambda: picture(100, 160),                                           # no bars
    lambda: boxed(picture(100, 160), 20, 0),                             # black to the top edge only: a night sky
    lambda: boxed(picture(10, 160), 60, 60),                             # what is left is no picture
    lambda: working(np.zeros((80, 120, 3))),                             # all black
    lambda: boxed(picture(100, 160), 1, 1),                              # a line each side: not bars
    lambda: boxed(picture(100, 160), 14, 24),                            # unequal margins
    lambda: on_black(),                                                  # an object shot on black
])
def test_what_is_not_a_pair_of_bars_stays_picture(make):
    image = make()
    assert box_of(image) == (slice(0, image.shape[0]), slice(0, image.shape[1]))


def test_bars_that_leave_too_few_lines_are_picture():
    image = boxed(picture(12, 160), 5, 5)
    assert box_of(image) == (slice(5, 17), slice(0, 160))
    assert box_of(image, least_picture=16) == (slice(0, 22), slice(0, 160))


def test_training_learns_the_grade_and_targets_of_the_picture():
    """Bars moved every tonal rank of the plate and the style (the letterboxed pair 1's picture
    differed by ΔE 7 from the same plate's without bars); with the grade and the targets made
    from the pictures, the grade is the picture's, and the bars' target is their grade."""
    plate, style = picture(96, 128), picture(96, 128, seed=2)[:, :, ::-1].copy()
    config = TrainConfig(arch="grade", resolution=200)   # none of them downscaled
    bare = train([plate], style, config)
    barred = train([boxed(plate, 16, 16)], boxed(style, 0, 0, 20, 20), config)
    # Equal pictures give equal grades; views and copies of them may sum in another order on another
    # CPU, which the fit's iterations can grow, so the bound is a thousandth of an ACEScct code value
    # (about 0.1 ΔE): the bars themselves moved the lattice by 0.34.
    assert float((bare.network.grade.lut - barred.network.grade.lut).abs().max()) < 1e-3
    assert barred.metadata["keyframe_sha256"] != bare.metadata["keyframe_sha256"]   # it records what it was given


def test_the_network_learns_the_whole_keyframe_with_its_bars_at_their_grade(monkeypatch):
    import shotstyle.server.engine.training as training
    seen = {}
    real = training.build_loss

    def spy(*args, **kwargs):
        seen.update(plates=args[2], graded=kwargs["graded"], targets=kwargs["targets"])
        return real(*args, **kwargs)

    monkeypatch.setattr(training, "build_loss", spy)
    plate = boxed(picture(96, 128), 16, 16)
    train([plate], picture(96, 128, seed=2), TrainConfig(steps=1, resolution=160))
    target, graded = seen["targets"][0], seen["graded"][0]
    assert seen["plates"][0].shape[-2:] == (128, 128)
    assert torch.equal(target[..., :16, :], graded[..., :16, :]) and torch.equal(target[..., -16:, :], graded[..., -16:, :])
    assert not torch.equal(target[..., 16:-16, :], graded[..., 16:-16, :])
