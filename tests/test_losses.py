"""The loss registry, VGG-19 weight lookup, the look loss's terms and the torch colour maths."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from shotstyle.server.engine.colour import to_working
from shotstyle.server.engine.losses import build_loss, locate_vgg_weights, resolve_loss_name
from shotstyle.server.engine.colourmath import (display_to_working, working_to_display,
                                                       working_to_lab)
from shotstyle.server.engine.correspondence import fit_correspondence
from shotstyle.server.engine.losses.vgg import FETCH_COMMAND, load_vgg_features
from shotstyle.server.errors import WeightsUnavailableError


def scene(height: int = 64, width: int = 96, warm: bool = True) -> torch.Tensor:
    """A small photo-like test image in working space: sky gradient, ground, two buildings."""
    rng = np.random.default_rng(1)
    y = np.linspace(0, 1, height)[:, None, None]
    sky = np.array([0.95, 0.7, 0.4]) if warm else np.array([0.25, 0.35, 0.6])
    ground = np.array([0.35, 0.25, 0.1]) if warm else np.array([0.05, 0.15, 0.1])
    image = np.where(y < 0.6, sky * (1 - 0.5 * y), ground) * np.ones((1, width, 1))
    image[20:50, 10:25] = [0.2, 0.2, 0.25]
    image[30:55, 60:80] = [0.6, 0.55, 0.5]
    image = np.clip(image + rng.normal(0, 0.01, image.shape), 0, 1)
    return display_to_working(torch.tensor(image, dtype=torch.float32).permute(2, 0, 1)[None])


@pytest.fixture
def empty_hub(tmp_path, monkeypatch):
    """No VGG weights anywhere: empty env var, an empty torch hub folder."""
    previous = torch.hub.get_dir()
    torch.hub.set_dir(str(tmp_path / "hub"))
    monkeypatch.setenv("SHOTSTYLE_VGG_WEIGHTS", "")
    yield tmp_path / "hub"
    torch.hub.set_dir(previous)


def test_colour_maths_matches_the_colour_stage_for_srgb():
    rgb = np.random.default_rng(0).uniform(0, 1, (8, 8, 3)).astype(np.float32)
    ocio_working, _ = to_working(rgb, "sRGB")
    ours = display_to_working(torch.from_numpy(rgb).permute(2, 0, 1)[None])[0].permute(1, 2, 0).numpy()
    assert np.abs(ours - ocio_working).max() < 2e-3
    back = working_to_display(torch.from_numpy(ocio_working).permute(2, 0, 1)[None])[0].permute(1, 2, 0).numpy()
    dark = rgb < 0.85  # below the highlight roll-off the display conversion is exact
    assert np.abs(back - rgb)[dark].max() < 2e-3


def test_lab_of_white_and_black():
    white = display_to_working(torch.ones(1, 3, 1, 1))
    lab = working_to_lab(white)[0, :, 0, 0]
    assert lab[0] == pytest.approx(100.0, abs=0.2) and lab[1:].abs().max() < 0.5
    black = working_to_lab(display_to_working(torch.zeros(1, 3, 1, 1)))[0, :, 0, 0]
    assert black[0] == pytest.approx(0.0, abs=0.5)


def test_no_weights_gives_a_message_that_says_how_to_fetch_them(empty_hub):
    path, description = locate_vgg_weights()
    assert path is None and "SHOTSTYLE_VGG_WEIGHTS" in description
    with pytest.raises(WeightsUnavailableError) as raised:
        load_vgg_features(None)
    message = str(raised.value)
    assert FETCH_COMMAND in message and "vgg19-dcbb9e9d.pth" in message and "--loss look" in message
    name, note = resolve_loss_name("auto")   # the default needs no download: its features install with it
    assert name == "target" and "installed with shotstyle" in note


def test_explicit_weights_path_is_found_and_a_missing_one_is_named(empty_hub, tmp_path):
    weights = tmp_path / "vgg.pth"
    weights.write_bytes(b"not really weights")
    assert locate_vgg_weights(str(weights))[0] == str(weights)
    missing = str(tmp_path / "nope.pth")
    path, description = locate_vgg_weights(missing)
    assert path is None and missing in description
    with pytest.raises(WeightsUnavailableError, match="not a usable VGG-19 weights file"):
        load_vgg_features(str(weights))
    cached = empty_hub / "checkpoints" / "vgg19-dcbb9e9d.pth"
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"x")
    assert locate_vgg_weights() == (str(cached), f"VGG-19 weights at {cached} (torch hub cache)")


def test_random_vgg_warns_and_is_recorded(capsys):
    with pytest.warns(UserWarning, match="randomly initialised VGG-19"):
        loss = build_loss("vgg", scene(warm=False), [scene()], vgg_weights="random")
    assert "WARNING" in capsys.readouterr().err
    assert loss.metadata["vgg_source"] == "random" and loss.metadata["loss"] == "vgg"
    plate = scene()
    terms = loss(plate, 0, 0)
    assert float(terms["content"]) == pytest.approx(0.0, abs=1e-9)
    assert float(terms["style"]) > 0
    assert float(terms["total"]) == pytest.approx(float(terms["content"] + terms["style"]))


def test_the_target_content_term_is_vgg_where_its_weights_are_found(empty_hub, tmp_path, capsys):
    """No VGG-19 weights: EfficientNet-Lite0's features. Weights found (a file in the hub cache,
    here random ones saved the way torchvision's are): VGG-19's, recorded in the metadata, and
    the term measures structure: zero for the plate itself, above zero once its edges blur."""
    plate = scene()
    blurred = torch.nn.functional.avg_pool2d(plate, 5, stride=1, padding=2, count_include_pad=False)
    without = build_loss("target", scene(warm=False), [plate], targets=[plate])
    assert without.metadata["content_features"].startswith("efficientnet-lite0")
    assert without.metadata["vgg_source"] is None
    with pytest.warns(UserWarning):
        features, _ = load_vgg_features("random")
    capsys.readouterr()
    cached = empty_hub / "checkpoints" / "vgg19-dcbb9e9d.pth"
    cached.parent.mkdir(parents=True)
    torch.save({f"features.{key}": value for key, value in features.state_dict().items()}, cached)
    loss = build_loss("target", scene(warm=False), [plate], targets=[plate])
    assert loss.metadata["content_features"] == "VGG-19 relu2_1, relu3_1"
    assert loss.metadata["vgg_source"] == str(cached)
    assert float(loss(plate, plate, plate)["content"]) == pytest.approx(0.0, abs=1e-6)
    assert float(loss(blurred, plate, plate)["content"]) > 1e-4


def test_look_loss_terms_measure_what_they_claim():
    plate, style = scene(), scene(warm=False)
    loss = build_loss("look", style, [plate])  # fits its own correspondence and grades with it
    graded = fit_correspondence([plate], style).grade_image(plate)
    at_plate = {name: float(v) for name, v in loss(plate, 0, 0, graded=plate).items()}
    assert at_plate["content"] == pytest.approx(0.0, abs=1e-6)
    assert at_plate["smooth"] == pytest.approx(0.0, abs=1e-6) and at_plate["local"] == 0.0
    # The correspondence's own grade moves the colours where it sends them: a better match,
    # and no local change from the grade.
    at_graded = {name: float(v) for name, v in loss(graded, 0, 0).items()}
    assert at_graded["style"] < 0.85 * at_plate["style"] and at_graded["local"] < 1e-4
    # Noise in the colour change is what the smoothness term is for; a blur loses structure.
    noisy = graded + 0.05 * torch.randn(plate.shape, generator=torch.Generator().manual_seed(0))
    assert float(loss(noisy, 0, 0)["smooth"]) > 5 * at_graded["smooth"]
    blurred = torch.nn.functional.avg_pool2d(graded, 5, stride=1, padding=2, count_include_pad=False)
    assert float(loss(blurred, 0, 0)["content"]) > 4 * at_graded["content"]
    # The style's sky colour painted on the plate's ground: a colour the correspondence does not
    # send there costs style, though the style has it.
    repainted = graded.clone()
    repainted[:, :, 45:, :] = style[:, :, 5:6, 40:41]
    assert float(loss(repainted, 0, 0)["style"]) > 1.2 * at_graded["style"]


def test_look_loss_is_repeatable_per_step_and_differs_between_steps():
    plate, style = scene(), scene(warm=False)
    first, second = build_loss("look", style, [plate], seed=3), build_loss("look", style, [plate], seed=3)
    assert float(first(plate, 0, 5)["style"]) == float(second(plate, 0, 5)["style"])
    assert float(first(plate, 0, 5)["style"]) != float(first(plate, 0, 6)["style"])


def test_strength_scales_the_style_weight_and_raw_weights_override():
    plate, style = scene(), scene(warm=False)
    weak = build_loss("look", style, [plate], strength=0.0)
    strong = build_loss("look", style, [plate], strength=1.0)
    assert strong.weights["style"] == pytest.approx(100 * weak.weights["style"])
    raw = build_loss("look", style, [plate], strength=1.0, content_weight=2.0, style_weight=0.5)
    assert raw.weights["content"] == 2.0 and raw.weights["style"] == 0.5
    with pytest.raises(ValueError, match="unknown loss 'gram'"):
        build_loss("gram", style, [plate])
