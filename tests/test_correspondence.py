"""The grade fitted from the plate↔style correspondence moves colours to the right places:
greys take the style's grey balance (not its most common hue), a pale sky does not take the
style's meadow colour, style colours nothing corresponds to are not painted anywhere, hues
move where the style has no counterpart (summer → autumn), tones keep their order, and equal
plate colours get equal output colours, and a black-and-white style leaves no colour."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from shotstyle.server.engine.colourmath import display_to_working, lab_to_working, working_to_lab
from shotstyle.server.engine.correspondence import CHROMA_KNEE, capped, fit_correspondence
from shotstyle.server.engine.grade import LatticeGrade


def painted(height: int, width: int, regions: list[tuple[slice, slice, tuple[float, float, float]]],
            seed: int = 0) -> torch.Tensor:
    """A working-space image of flat sRGB regions (later ones on top) with a little grain."""
    image = np.zeros((height, width, 3))
    for rows, cols, colour in regions:
        image[rows, cols] = colour
    image += np.random.default_rng(seed).normal(0, 0.008, image.shape)
    return display_to_working(torch.tensor(np.clip(image, 0, 1), dtype=torch.float32).permute(2, 0, 1)[None])


ALL = slice(None)
# A walk-like plate: pale warm sky, an orange-brown mountain, dark desaturated bushes, a
# greenish verge and a neutral grey road.
PLATE = painted(96, 128, [(slice(0, 40), ALL, (0.86, 0.80, 0.76)), (slice(28, 56), slice(20, 110), (0.66, 0.46, 0.31)),
                          (slice(56, 76), ALL, (0.20, 0.24, 0.18)), (slice(76, 81), ALL, (0.25, 0.29, 0.19)),
                          (slice(81, 96), ALL, (0.25, 0.25, 0.255))])
# A meadow style: grey clouds, blue-grey hills, a dark olive-yellow meadow (the commonest colour
# at the road's lightness), a grey yurt and a small red barn.
STYLE = painted(90, 128, [(slice(0, 38), ALL, (0.64, 0.65, 0.67)), (slice(38, 52), ALL, (0.36, 0.41, 0.46)),
                          (slice(52, 90), ALL, (0.33, 0.30, 0.08)), (slice(58, 74), slice(50, 72), (0.74, 0.73, 0.71)),
                          (slice(60, 70), slice(100, 110), (0.70, 0.10, 0.08))], seed=1)


@pytest.fixture(scope="module")
def graded_plate() -> torch.Tensor:
    grade = LatticeGrade()
    grade.set(fit_correspondence([PLATE], STYLE).lattice(grade.size))
    with torch.no_grad():
        return working_to_lab(grade(PLATE))[0]


def region(lab: torch.Tensor, rows: slice, cols: slice = ALL) -> tuple[float, float, float]:
    values = lab[:, rows, cols].reshape(3, -1).mean(1)
    return float(values[0]), float(values[1]), float(values[2])


def hue(a: float, b: float) -> float:
    return math.degrees(math.atan2(b, a)) % 360


def test_a_grey_road_takes_the_styles_grey_balance_not_its_commonest_hue(graded_plate):
    _, a, b = region(graded_plate, slice(84, 96))
    assert abs(a) <= 4 and abs(b) <= 4


def test_the_verge_keeps_a_green_to_yellow_hue(graded_plate):
    _, a, b = region(graded_plate, slice(77, 80))
    assert 60 <= hue(a, b) <= 180 and math.hypot(a, b) > 2


def test_a_pale_sky_does_not_take_the_meadow_colour(graded_plate):
    _, a, b = region(graded_plate, slice(2, 20))
    assert math.hypot(a, b) < 8


def test_a_style_colour_nothing_corresponds_to_is_painted_nowhere(graded_plate):
    chroma = graded_plate[1:].norm(dim=0)
    reddish = (graded_plate[1] > 25) & (chroma > 30)
    assert float(reddish.float().mean()) == 0.0


def test_hues_move_where_the_style_has_no_counterpart():
    summer = painted(64, 96, [(slice(0, 24), ALL, (0.45, 0.62, 0.85)), (slice(24, 64), ALL, (0.20, 0.42, 0.14))])
    autumn = painted(64, 96, [(slice(0, 24), ALL, (0.45, 0.62, 0.85)), (slice(24, 64), ALL, (0.72, 0.38, 0.10))])
    grade = LatticeGrade()
    grade.set(fit_correspondence([summer], autumn).lattice(grade.size))
    with torch.no_grad():
        trees = region(working_to_lab(grade(summer))[0], slice(30, 64))
        sky = region(working_to_lab(grade(summer))[0], slice(0, 20))
    assert hue(trees[1], trees[2]) < 90          # green (≈130°) → orange
    assert 240 < hue(sky[1], sky[2]) < 300       # the sky had a counterpart and stays blue


def test_a_black_and_white_style_leaves_no_colour():
    """Saturated plate colours nothing in a black-and-white style corresponds to would keep half of
    their chroma by the plan's "stay"; a monochrome style's colour range (capped) takes it away."""
    plate = painted(64, 96, [(slice(0, 24), ALL, (0.30, 0.55, 0.95)), (slice(24, 44), ALL, (0.95, 0.75, 0.10)),
                             (slice(44, 64), ALL, (0.15, 0.50, 0.12)), (slice(50, 60), slice(40, 60), (0.85, 0.1, 0.1))])
    grey = working_to_lab(STYLE)[:, :1].expand(1, 3, -1, -1) * torch.tensor([1.0, 0.0, 0.0]).view(1, 3, 1, 1)
    black_and_white = lab_to_working(grey)
    correspondence = fit_correspondence([plate], black_and_white)
    grade = LatticeGrade()
    grade.set(correspondence.lattice(grade.size))
    with torch.no_grad():
        lab = working_to_lab(grade(plate))[0]
    assert float(working_to_lab(plate)[0, 1:].norm(dim=0).mean()) > 40
    assert float(lab[1:].norm(dim=0).max()) < 1.5
    # A style with colour says less of what the look does to colours it lacks: nothing is bent.
    assert correspondence.monochrome == 1.0 and fit_correspondence([plate], STYLE).monochrome == 0.0


def test_the_styles_colour_range_leaves_colours_within_it_alone():
    ab = torch.tensor([[3.0, -4.0], [20.0, 10.0], [0.0, 0.0]])
    assert torch.equal(capped(ab, 40.0), ab)                       # within CHROMA_KNEE[0] of the range
    bent = capped(torch.tensor([[300.0, 400.0]]), 40.0)
    assert CHROMA_KNEE[0] * 40 < float(bent.norm()) <= CHROMA_KNEE[1] * 40
    assert torch.allclose(bent / bent.norm(), torch.tensor([[0.6, 0.8]]))   # the hue is kept


def test_tones_keep_their_order_and_equal_colours_stay_equal():
    grade = LatticeGrade()
    grade.set(fit_correspondence([PLATE], STYLE).lattice(grade.size))
    ramp = display_to_working(torch.linspace(0, 1, 256).view(1, 1, 1, -1).expand(1, 3, 1, -1).contiguous())
    srgb = torch.rand(1, 3, 1, 2000, generator=torch.Generator().manual_seed(0))
    colours = display_to_working(srgb)                  # any displayable colour, not only the plate's
    with torch.no_grad():
        grey = working_to_lab(grade(ramp))[0, 0, 0]
        lab_in, lab_out = working_to_lab(colours)[0, 0, 0], working_to_lab(grade(colours))[0, 0, 0]
        twice = grade(torch.cat([colours, colours.flip(-1)], dim=-1))
    assert float(torch.diff(grey).min()) > -0.05
    # Any two colours more than 3 L* apart keep their lightness order.
    order = torch.sign(lab_in[:, None] - lab_in[None]) * torch.sign(lab_out[:, None] - lab_out[None])
    apart = (lab_in[:, None] - lab_in[None]).abs() > 3
    assert float((order[apart] < 0).float().mean()) < 0.002
    assert torch.equal(twice[..., :2000], twice[..., 2000:].flip(-1))


def test_the_fit_is_deterministic_and_float32():
    first, second = (fit_correspondence([PLATE], STYLE, seed=3).lattice(17) for _ in range(2))
    assert first.dtype == torch.float32 and torch.equal(first, second)
