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
    """The picture's edge line next to a bar is left out too: downscaled, it blends the two."""
    image = picture(100, 160)
    rows, columns = box_of(boxed(image, top, bottom, left, right))
    rows_edge, columns_edge = int(top > 0), int(left > 0)
    assert (rows.start, rows.stop, columns.start, columns.stop) == \
        (top + rows_edge, top + 100 - rows_edge, left + columns_edge, left + 160 - columns_edge)


def test_burnt_in_subtitles_in_a_bar_leave_it_a_bar():
    image = boxed(picture(100, 160), 24, 24)
    image[130:138, 50:62] = 0.6                     # a line of subtitle text in the lower bar
    assert box_of(image)[0] == slice(25, 123)


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
    assert box_of(image) == (slice(6, 16), slice(0, 160))
    assert box_of(image, least_picture=16) == (slice(0, 22), slice(0, 160))
    # The least picture is what is left without the edge lines as well.
    assert box_of(image, least_picture=10) == (slice(6, 16), slice(0, 160))
    assert box_of(image, least_picture=11) == (slice(0, 22), slice(0, 160))


def test_training_learns_the_grade_and_targets_of_the_picture():
    """Bars moved every tonal rank of the plate and the style (the letterboxed pair 1's picture
    differed by ΔE 7 from the same plate's without bars); with the grade and the targets made
    from the pictures, the grade is the picture's, and the bars' target is their grade."""
    plate, style = picture(96, 128), picture(96, 128, seed=2)[:, :, ::-1].copy()
    config = TrainConfig(arch="grade", resolution=200)   # none of them downscaled
    bare = train([plate[1:-1]], style[:, 1:-1], config)   # the box leaves out the edge lines next to bars
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


def framed(image: np.ndarray, top: int, bottom: int, left: int, right: int, colour: float, seed: int = 4) -> np.ndarray:
    """`image` in a border of one scene-linear grey `colour`, with 8-bit compression noise (±1%)."""
    height, width = image.shape[:2]
    noise = np.random.default_rng(seed).uniform(0.99, 1.01, (height + top + bottom, width + left + right, 3))
    out = working(colour * noise)
    out[top:top + height, left:left + width] = image
    return out


@pytest.mark.parametrize("colour", [1.0, 0.8, 0.2, 0.05])   # white, cream-light, mid grey, dark grey
def test_a_still_in_a_border_of_any_colour_is_the_picture_inside(colour):
    rows, columns = box_of(framed(picture(100, 160), 12, 12, 15, 15, colour))
    assert (rows.start, rows.stop, columns.start, columns.stop) == (13, 111, 16, 174)


def test_a_letterboxed_still_on_a_white_page_is_the_picture_inside_both():
    rows, columns = box_of(framed(boxed(picture(80, 160), 14, 14), 10, 10, 12, 12, 1.0))
    assert (rows.start, rows.stop, columns.start, columns.stop) == (10 + 14 + 1, 10 + 14 + 79, 13, 171)


@pytest.mark.parametrize("make", [
    lambda: framed(picture(100, 160), 12, 0, 0, 0, 1.0),                  # white to the top edge only: a burnt-out sky
    lambda: np.concatenate([framed(picture(100, 160), 12, 0, 0, 0, 1.0)[:-12],
                            framed(picture(100, 160), 0, 12, 0, 0, 0.2)[12:]]),   # white above, grey below
    lambda: framed(picture(60, 40), 30, 30, 60, 60, 0.9),                # a product shot on a white seamless
])
def test_borders_of_two_colours_or_at_one_edge_are_picture(make):
    image = make()
    assert box_of(image) == (slice(0, image.shape[0]), slice(0, image.shape[1]))


def test_a_white_border_around_the_style_leaves_its_grade_as_it_was():
    """A 6% white border around the shared pairs' styles moved their grades by ΔE 21-35: it gave
    the style greys it does not have."""
    plate, style = picture(96, 128), picture(96, 128, seed=2)[:, :, ::-1].copy()
    config = TrainConfig(arch="grade", resolution=200)   # none of them downscaled
    bare = train([plate], style[1:-1, 1:-1], config)
    framed_style = train([plate], framed(style, 10, 10, 12, 12, 1.0), config)
    # See the bars' training test for where the bound comes from.
    assert float((bare.network.grade.lut - framed_style.network.grade.lut).abs().max()) < 1e-3
