"""The per-pixel keyframe target (server/engine/target.py) and what a network trained on it
carries: where a look goes, which a global grade cannot say."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from shotstyle.server.engine.colour import to_working
from shotstyle.server.engine.colourmath import working_to_lab
from shotstyle.server.engine.mattes import Matte, check_mattes, label_mattes
from shotstyle.server.engine.target import Lightness, colour_posterior, make_target
from shotstyle.server.engine.training import TrainConfig, train
from shotstyle.server.errors import TrainingInputError

SIZE = (48, 64)   # height, width


def _scene() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A plate whose left and right halves have the same mean grey, striped across on the left
    and along on the right (what a surface is, not its colour), and a style whose left half is
    red and right half blue; the left/right mattes of both."""
    rng = np.random.default_rng(0)
    rows, columns = np.mgrid[0:SIZE[0], 0:SIZE[1]]
    stripes = np.where(columns < SIZE[1] // 2, np.sin(rows * 1.6), np.sin(columns * 1.6))
    grey = (0.45 + 0.08 * stripes + 0.01 * rng.standard_normal(SIZE)).astype(np.float32)[..., None]
    plate = np.repeat(grey, 3, axis=2)
    style = np.zeros((*SIZE, 3), np.float32)
    style[:, : SIZE[1] // 2] = (0.7, 0.15, 0.1)
    style[:, SIZE[1] // 2:] = (0.1, 0.2, 0.7)
    style += 0.03 * rng.standard_normal(style.shape).astype(np.float32)
    left = np.zeros(SIZE, np.float32)
    left[:, : SIZE[1] // 2] = 1
    return to_working(np.clip(plate, 0, 1), "sRGB")[0], to_working(np.clip(style, 0, 1), "sRGB")[0], left, 1 - left


def _tensor(image: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(image).permute(2, 0, 1)[None].contiguous()


def _mean_lab(image: torch.Tensor, mask: np.ndarray) -> np.ndarray:
    lab = working_to_lab(image)[0].permute(1, 2, 0).numpy()
    inner = mask.astype(bool).copy()
    inner[:, SIZE[1] // 2 - 4: SIZE[1] // 2 + 4] = False   # away from the seam the mattes draw
    return lab[inner].mean(0)


def test_mattes_send_one_plate_colour_to_two_style_colours():
    plate, style, left, right = _scene()
    target = make_target(_tensor(plate), _tensor(plate), _tensor(style),
                         plate_mattes=torch.from_numpy(np.stack([left, right]))[None],
                         style_mattes=torch.from_numpy(np.stack([left, right]))[None])
    on_left, on_right = _mean_lab(target, left), _mean_lab(target, right)
    assert on_left[1] > 25 and on_left[2] > 20 and on_right[2] < -25   # red left, blue right
    assert np.linalg.norm(on_left - on_right) > 40


def test_the_target_keeps_a_flat_plate_flat():
    flat = np.full((*SIZE, 3), 0.5, np.float32)
    plate = to_working(flat, "sRGB")[0]
    _, style, left, right = _scene()
    target = make_target(_tensor(plate), _tensor(plate), _tensor(style))
    lab = working_to_lab(target)[0].reshape(3, -1)
    assert float((lab - lab.mean(1, keepdim=True)).norm(dim=0).max()) < 1.0   # no blob, no vignette


def test_a_trained_network_carries_the_mattes_where_its_grade_cannot():
    plate, style, left, right = _scene()
    model = train([plate], style, TrainConfig(steps=60, resolution=64, lr=5e-3),
                  mattes=[Matte("left", [left], left), Matte("right", [right], right)])
    assert model.metadata["target"]["mattes"] == ["left", "right"]
    network = model.network.eval()
    with torch.no_grad():
        out, graded = network(_tensor(plate)), network.grade(_tensor(plate))
    # The grade maps the one grey to one colour everywhere; the network tells the halves apart.
    assert np.linalg.norm(_mean_lab(graded, left) - _mean_lab(graded, right)) < 3
    on_left, on_right = _mean_lab(out, left), _mean_lab(out, right)
    assert on_left[2] - on_right[2] > 40      # warm (b* up) on the left, blue (b* down) on the right


def test_the_grade_architecture_fits_without_training_and_renders_its_lut():
    plate, style, _, _ = _scene()
    model = train([plate], style, TrainConfig(arch="grade", steps=1, resolution=64))
    assert model.metadata["steps_trained"] == 0 and model.network.bound == 0
    with torch.no_grad():
        assert torch.equal(model.network(_tensor(plate)), model.network.grade(_tensor(plate)))


def test_mattes_that_do_not_fit_their_images_are_named():
    plate, style, left, _ = _scene()
    with pytest.raises(TrainingInputError, match="matte 'sky': its style matte is 32×24"):
        check_mattes([Matte("sky", [left], left[::2, ::2])], [plate], style)
    with pytest.raises(TrainingInputError, match="given twice"):
        check_mattes([Matte("a", [left], left), Matte("a", [left], left)], [plate], style)
    with pytest.raises(TrainingInputError, match="style matte is empty"):
        check_mattes([Matte("a", [left], np.zeros_like(left))], [plate], style)


def test_label_images_become_one_matte_per_shared_colour():
    labels = np.zeros((*SIZE, 3), np.uint8)
    labels[:, : SIZE[1] // 2] = (255, 0, 0)
    labels[:, SIZE[1] // 2:] = (0, 0, 255)
    other = labels.copy()
    other[:4, :4] = (0, 255, 0)    # under 3 %: no matte
    mattes = label_mattes([labels], other)
    assert [m.name for m in mattes] == ["0000ff", "ff0000"]
    assert mattes[1].plate[0][:, : SIZE[1] // 2].all() and not mattes[1].plate[0][:, SIZE[1] // 2:].any()



def _photo(name: str) -> np.ndarray:
    """A shipped photograph (examples/walk) in the working space, 128 px wide."""
    import cv2
    from pathlib import Path
    from shotstyle.server.engine.pipeline import load_working
    image = load_working(str(Path(__file__).resolve().parent.parent / "examples" / "walk" / name))
    height, width = image.shape[:2]
    return cv2.resize(image, (128, round(128 * height / width)), interpolation=cv2.INTER_AREA)


def _chroma(image: torch.Tensor) -> float:
    return float(working_to_lab(image)[0, 1:].norm(dim=0).mean())


def test_a_grey_region_takes_colour_only_from_a_true_counterpart():
    """The photo in grey, styled by itself in colour: every region has its counterpart, so the
    greys take their colours back (an overcast sky given the style's sky). Styled by colour
    noise, nothing corresponds and the greys stay grey (a road given no meadow's hue)."""
    photo = _photo("seed_in47.jpg")
    lab = working_to_lab(_tensor(photo))
    grey = _tensor(photo) * 0 + _tensor(photo).mean(1, keepdim=True)
    assert _chroma(grey) < 1.0
    coloured = make_target(grey, grey, _tensor(photo))
    assert _chroma(coloured) > 0.6 * float(lab[0, 1:].norm(dim=0).mean())
    rng = np.random.default_rng(1)
    noise = np.repeat(np.repeat(rng.uniform(0.05, 0.8, (8, 12, 3)), 12, 0), 12, 1).astype(np.float32)
    assert _chroma(make_target(grey, grey, _tensor(to_working(noise, "sRGB")[0]))) < 3.0


def test_a_regions_colours_never_cross_into_the_opposite_hue():
    """A warm plate (a* 25 and 35 in stripes) sent to a paler style of wider spread (a* -4 and 20):
    a region's colour spread may narrow, never widen, so no stripe crosses the neutral axis into
    teal (widened 2x around the style's mean 8, the a* 25 stripes would land at -2)."""
    from shotstyle.server.engine.colourmath import lab_to_working
    rows = torch.arange(SIZE[0], dtype=torch.float32)[:, None].expand(*SIZE)
    plate_lab = torch.stack([torch.full(SIZE, 50.0), 30 + 5 * torch.sign(torch.sin(rows * 0.8)), torch.full(SIZE, 30.0)])
    style_lab = torch.stack([torch.full(SIZE, 50.0), 8 + 12 * torch.sign(torch.sin(rows * 0.8)), torch.full(SIZE, 10.0)])
    plate, style = lab_to_working(plate_lab[None]), lab_to_working(style_lab[None])
    whole = torch.ones(1, 1, *SIZE)
    target = make_target(plate, plate, style, plate_mattes=whole, style_mattes=whole)
    a = working_to_lab(target)[0, 1]
    assert float(a.mean()) == pytest.approx(8, abs=2)       # the style's colour mean is reached
    assert float(a.min()) > 0                               # and no stripe turned teal


def test_regions_nothing_in_the_style_resembles_keep_the_grade():
    """A photo styled by colour noise: hardly any region finds a counterpart, so the target stays
    near the graded plate (here the plate itself), not the photo repainted in the noise's colours
    (15 ΔE on average without the rule)."""
    photo = _tensor(_photo("walk.0001.jpg"))
    rng = np.random.default_rng(2)
    noise = np.repeat(np.repeat(rng.uniform(0.05, 0.8, (8, 12, 3)), 12, 0), 12, 1).astype(np.float32)
    target = make_target(photo, photo, _tensor(to_working(noise, "sRGB")[0]))
    moved = (working_to_lab(target) - working_to_lab(photo)).norm(dim=1)
    assert float(moved.mean()) < 5.0


def test_training_works_after_the_features_were_first_built_in_inference_mode():
    """A server stylizes (inference mode) before it trains: the cached feature network it built
    then must still serve training's content term (once failed: "Inference tensors cannot be saved
    for backward")."""
    from shotstyle.server.engine import semantic
    semantic._network.cache_clear()
    plate, style, _, _ = _scene()
    with torch.inference_mode():
        semantic.features(_tensor(plate))
    train([plate], style, TrainConfig(steps=2, resolution=32))


def test_a_regions_membership_follows_the_plates_colour_edge_not_its_feature_cell():
    """A coarse feature cell puts the left region 8 px past the plate's edge between a blue sky
    and an orange wall: the colour models pull those pixels back to the wall's region (a church
    dome's region no longer spreads a plume into the sky). Where two regions share a colour (a
    lake under the sky), the colour says nothing and the memberships stay where they were."""
    height, width = 16, 64
    edge, cell_edge = 32, 40
    columns = torch.arange(width)[None, None, None].expand(1, 1, height, width)
    sky, wall = torch.tensor([70.0, -5.0, -30.0]), torch.tensor([60.0, 30.0, 50.0])
    lab = torch.where(columns < edge, sky[None, :, None, None], wall[None, :, None, None])
    lab = lab + 0.5 * torch.randn(lab.shape, generator=torch.Generator().manual_seed(0))
    left = (columns < cell_edge).float()
    posterior = colour_posterior(torch.cat([left, 1 - left], dim=1), lab, reach=16)
    assert float(posterior[0, 1, :, edge:].min()) > 0.99          # the wall is the wall's
    assert float(posterior[0, 0, :, :edge].min()) > 0.99          # the sky stays the sky's
    same = torch.full_like(lab, 0) + sky[None, :, None, None]
    posterior = colour_posterior(torch.cat([left, 1 - left], dim=1), same, reach=16)
    assert float(posterior[0, 0, :, :cell_edge - 16].min()) > 0.99   # beyond reach of the other region
    assert float(posterior[0, 1, :, cell_edge + 16:].min()) > 0.99
    assert float(posterior[0, 0, :, cell_edge - 4:cell_edge].max()) < 0.99  # only a blend near the cell edge


def test_lightness_moves_by_the_artists_strength():
    assert Lightness.at(0.5) == Lightness()
    assert Lightness.at(0.0) == Lightness(0.0, 0.0)
    assert Lightness.at(1.0) == Lightness(1.0, 2 * Lightness().region)


def test_the_frames_lightness_map_makes_its_share_of_the_move():
    """The style is the photo itself 20 L* darker: every region's counterpart is itself, so the
    frame's lightness map alone (no region share) moves the target all the way at frame share 1,
    half way at 0.5, and not at all at 0."""
    from shotstyle.server.engine.colourmath import lab_to_working
    photo = _tensor(_photo("walk.0001.jpg"))
    lab = working_to_lab(photo)
    darker = lab_to_working(torch.cat([lab[:, :1] - 20, lab[:, 1:]], dim=1))
    moved = {share: float((working_to_lab(make_target(photo, photo, darker, Lightness(share, 0.0)))[:, 0]
                           - lab[:, 0]).mean())
             for share in (0.0, 0.5, 1.0)}
    assert moved[1.0] == pytest.approx(-20, abs=3)
    assert moved[0.5] == pytest.approx(moved[1.0] / 2, abs=1.5)
    assert abs(moved[0.0]) < 1.0
