"""The OpenColorIO stage: to_working/from_working round trips, highlights, non-finite values."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import testfiles
from shotstyle import examples
from shotstyle.media.reading import read_frame
from shotstyle.server.engine import colour, colourtensors
from shotstyle.server.engine.colour import NEGATIVE_LIMIT, from_working, to_working
from shotstyle.server.errors import ColourError

# float32 quantises the ACEScct toe (offset 0.0729) to ~7e-10 in linear: tiny values are held
# to this absolute tolerance instead of the 1e-3 relative one (see colour.py's docstring).
TINY = 1e-6


def as_rgb(pixels: np.ndarray) -> np.ndarray:
    return np.repeat(pixels, 3, axis=2) if pixels.shape[2] == 1 else pixels[:, :, :3]


def check_round_trip(rgb: np.ndarray) -> None:
    """ACEScg -> working -> ACEScg within 1e-3 relative for every finite value above the negative limit."""
    working, replaced = to_working(rgb, "ACEScg")
    assert np.isfinite(working).all()
    back = from_working(working, "ACEScg")
    checked = np.isfinite(rgb) & (rgb >= NEGATIVE_LIMIT)
    assert checked.mean() > 0.95
    np.testing.assert_allclose(back[checked], rgb[checked], rtol=1e-3, atol=TINY)
    assert replaced == int(np.count_nonzero(~np.isfinite(rgb)))


@pytest.mark.parametrize("name", ["wide_range", "all_half"])
def test_round_trip_within_1e3_relative(made_exrs, name):
    check_round_trip(read_frame(made_exrs[name]).pixels)


@pytest.mark.parametrize("name", ["WideFloatRange", "AllHalfValues"])
def test_sample_round_trip_within_1e3_relative(shared_data, name):
    check_round_trip(as_rgb(read_frame(str(shared_data / f"exr/TestImages/{name}.exr")).pixels))


def test_highlights_and_negatives_survive():
    linear = np.array([[[-2.0, -1e-3, 0.0], [0.18, 1.0, 16.0], [1000.0, 65504.0, 1e30]]], np.float32)
    linear = np.repeat(linear[:, :, :, None], 3, axis=3).reshape(3, 3, 3)
    working, _ = to_working(linear, "ACEScg")
    assert 0.4 < working[1, 0, 0] < 0.42  # mid grey 0.18 sits at ACEScct 0.4136
    assert np.all(np.diff(working[:, :, 0].ravel()) > 0)  # monotonic: nothing clipped flat
    np.testing.assert_allclose(from_working(working, "ACEScg"), linear, rtol=1e-4, atol=TINY)


def test_nonfinite_are_replaced_by_the_rule_and_counted(made_exrs):
    frame = read_frame(made_exrs["nan_inf"])
    working, replaced = to_working(frame.rgb(), "ACEScg")
    assert replaced == frame.nonfinite == len(testfiles.NONFINITE_PIXELS)
    assert np.isfinite(working).all()
    nan_inf = np.array([[[np.nan, np.inf, -np.inf]]], np.float32)
    working, replaced = to_working(nan_inf, "ACEScct")
    assert replaced == 3
    np.testing.assert_allclose(working[0, 0], [0.0, 65504.0, -65504.0])
    assert "NaN -> 0" in colour.NONFINITE_RULE


def test_from_working_never_returns_nonfinite():
    garbage = np.array([[[np.nan, 50.0, -np.inf]]], np.float32)
    assert np.isfinite(from_working(garbage, "ACEScg")).all()


def test_srgb_style_image_round_trip(style_image):
    image = read_frame(style_image)
    assert image.colourspace == "sRGB"
    working, replaced = to_working(image.rgb(), image.colourspace)
    assert replaced == 0 and 0.0 < working.mean() < 0.7
    np.testing.assert_allclose(from_working(working, "sRGB"), image.rgb(), atol=2e-4)


def test_aliases_and_unknown_spaces():
    pixel = np.full((1, 1, 3), 0.18, np.float32)
    np.testing.assert_allclose(to_working(pixel, "lin_ap1")[0], to_working(pixel, "ACEScg")[0])
    assert "ACEScct" in colour.available_colourspaces()
    with pytest.raises(ColourError, match="'Kodak 5219'.*ACEScg"):
        to_working(pixel, "Kodak 5219")
    with pytest.raises(ColourError, match=r"H×W×3"):
        to_working(np.zeros((4, 4), np.float32), "ACEScg")


def test_bad_config_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setenv("SHOTSTYLE_OCIO", str(tmp_path / "missing.ocio"))
    with pytest.raises(ColourError, match="missing.ocio.*cannot be loaded"):
        to_working(np.zeros((1, 1, 3), np.float32), "ACEScg")


# --- the same transforms on tensors (the frame pipeline's colour stage on a GPU) -----------------

# The spaces frames and style images come in: their chains must run as torch ops on the device.
DEVICE_SPACES = ("ACEScg", "sRGB", "lin_rec709", "ACES2065-1", "Gamma 2.2 Encoded Rec.709", "Linear P3-D65")


def ocio_cpu(rgb: np.ndarray, source: str, destination: str) -> np.ndarray:
    return colour.apply(rgb.reshape(-1, 1, 3), source, destination).reshape(rgb.shape)


def frame_colours() -> np.ndarray:
    """N×3 colours as frames hold them, in ACEScg: every finite half value as a grey, and real
    footage (the example plate) exposed from 2^-12 to 2^14 in 2-stop steps."""
    greys = testfiles.all_half_values()[:, :, 0].reshape(-1, 1)
    greys = np.repeat(greys[np.isfinite(greys)][:, None], 3, axis=1)
    footage = ocio_cpu(read_frame(examples.PLATE.replace("####", "0001")).rgb()[::4, ::4].reshape(-1, 3),
                       "sRGB", "ACEScg")
    exposed = np.concatenate([footage * np.float32(2.0 ** stops) for stops in range(-12, 15, 2)])
    return np.ascontiguousarray(np.concatenate([greys, exposed]), dtype=np.float32)


@pytest.mark.parametrize("space", DEVICE_SPACES)
def test_torch_transforms_match_ocio_within_1e3(space):
    """Both directions, in torch float32, against OCIO's CPU processor: within 1e-3 relative to
    max(1, |value|) on what frames hold, from deep shadows to highlights far above 1."""
    into = colourtensors.tensor_transform(space, "ACEScct")
    out_of = colourtensors.tensor_transform("ACEScct", space)
    assert into.in_torch and out_of.in_torch, (into.why, out_of.why)
    in_space = ocio_cpu(frame_colours(), "ACEScg", space)
    working = ocio_cpu(in_space, space, "ACEScct")
    back = ocio_cpu(working, "ACEScct", space)
    for transform, values, expected in ((into, in_space, working), (out_of, working, back)):
        got = transform(torch.from_numpy(values)).numpy()
        error = np.abs(got - expected) / np.maximum(1.0, np.abs(expected))
        assert np.isfinite(expected).all() and error.max() < 1e-3, (transform.why, error.max())


def test_a_chain_without_torch_ops_runs_through_ocio_and_says_why():
    """PQ decodes with a half-domain 1D LUT: no torch version, so OCIO's CPU processor runs it
    (the result is OCIO's exactly) and the transform says why."""
    transform = colourtensors.tensor_transform("Rec.2100-PQ - Display", "ACEScct")
    assert not transform.in_torch and "Lut1DTransform" in transform.why
    values = np.random.default_rng(3).random((64, 3), dtype=np.float32)
    np.testing.assert_array_equal(transform(torch.from_numpy(values)).numpy(),
                                  ocio_cpu(values, "Rec.2100-PQ - Display", "ACEScct"))


def test_tensor_stage_applies_the_nonfinite_rules_like_the_array_stage():
    rgb = np.array([[[np.nan, np.inf, -np.inf], [0.18, -1e38, 1e30], [-0.01, 2.0, 65504.0]]], np.float32)
    for in_torch in (True, False):
        working = colourtensors.to_working_tensor(torch.from_numpy(rgb), "ACEScg", in_torch).numpy()
        np.testing.assert_allclose(working, to_working(rgb, "ACEScg")[0], rtol=1e-5, atol=1e-6)
        garbage = np.array([[[np.nan, 50.0, -np.inf]]], np.float32)
        back = colourtensors.from_working_tensor(torch.from_numpy(garbage), "ACEScg", in_torch).numpy()
        np.testing.assert_array_equal(back, from_working(garbage, "ACEScg"))
    assert np.isnan(rgb[0, 0, 0])  # the input is left as it was


@pytest.mark.parametrize("planar", [False, True])
def test_ocio_takes_a_frame_in_lines_and_strips_bit_for_bit(monkeypatch, planar):
    """OCIO handed a frame as short lines, in strips across threads, in place or into another array,
    gives exactly what one call on the whole frame gives (each pixel is transformed on its own)."""
    rng = np.random.default_rng(5)
    rgb = (rng.lognormal(-1.0, 2.0, (37, 1001, 3)) * rng.choice([-0.05, 1.0], (37, 1001, 3))).astype(np.float32)
    processor = colour.cpu_processor(colour.config_uri(), "ACEScg", "sRGB - Texture")
    expected = rgb.copy()
    processor.applyRGB(expected)
    assert np.abs(expected - rgb).max() > 0.1
    monkeypatch.setattr(colour, "LINE_PIXELS", 64)
    monkeypatch.setattr(colour, "STRIP_PIXELS", 64 * 5)        # 116 strips, the last one short
    monkeypatch.setattr(colour, "STRIP_MIN_PIXELS", 1000)
    pixels = np.ascontiguousarray(rgb.transpose(2, 0, 1)) if planar else rgb.copy()
    out = np.empty_like(pixels)
    colour.run_processor(processor, pixels, planar, out=out)
    colour.run_processor(processor, pixels, planar)
    for got in (out, pixels):
        np.testing.assert_array_equal(got.transpose(1, 2, 0) if planar else got, expected)
    with pytest.raises(ColourError, match=r"C-ordered float32 RGB, got float32 \(37, 1001, 3\)"):
        colour.run_processor(processor, np.asfortranarray(rgb))
