"""An EXR's chromaticities are honoured on the way in and written truthfully on the way out.

A float EXR whose header names its primaries (`chromaticities`) is read as scene-linear RGB on
those primaries: Rec.709 as the config's "Linear Rec.709 (sRGB)", AP1 as ACEScg, primaries the
config has no space for (CIE XYZ, white E) through their own matrix. A `--colourspace` against
the header is followed and said once; chromaticities that describe no colour space are refused
naming the file. Outputs carry the colour tags of the space their pixels are in, never the
input's. Fixtures are small float EXRs written here with OpenImageIO (the shared data's
`WideColorGamut.exr` and `Chromaticities/XYZ.exr` are of these two kinds).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from shotstyle.cli.main import main
from shotstyle.media.metadata import COLOURSPACE_ATTRIBUTE
from shotstyle.media.reading import read_frame
from shotstyle.plugin.exitcodes import ExitCode
from shotstyle.server.engine import colour
from testfiles import render_still, write_image
from tolerances import EPS32, LOG_DECODE_GAIN

REC709 = (0.64, 0.33, 0.30, 0.60, 0.15, 0.06, 0.3127, 0.3290)
AP1 = (0.713, 0.293, 0.165, 0.830, 0.128, 0.044, 0.32168, 0.33767)
XYZ_E = (1.0, 0.0, 0.0, 1.0, 0.0, 0.0, 1 / 3, 1 / 3)   # CIE XYZ with the equal-energy white
# An EXR header holds chromaticities as float32: each xy value (≤ 1) is written within EPS32 / 2 of
# the one given; 8 EPS32 leaves room for one more rounding on the way (a float32 matrix product).
HEADER_XY = 8 * EPS32
SIZE = (40, 24)
GRADE_SLOPE = 0.9   # the `grade_model` fixture's largest slope in ACEScct (conftest.py)


def exr(path: Path, rgb: np.ndarray, chromaticities: tuple | None = None, **attributes) -> str:
    tags = {name: ("string", value) for name, value in attributes.items()}
    if chromaticities is not None:
        tags["chromaticities"] = ("float[8]", chromaticities)
    height, width = rgb.shape[:2]
    return write_image(path, rgb, ("R", "G", "B"), "float", display=(0, 0, width, height), attributes=tags)


def scene_rgb(seed: int = 0) -> np.ndarray:
    """Scene-linear colours, every channel 0.01 to 4."""
    return np.random.default_rng(seed).uniform(0.01, 4.0, (SIZE[1], SIZE[0], 3)).astype(np.float32)


def test_the_chromaticities_matrix_is_the_configs_own_rec709_to_acescg():
    """The matrix made from xy values (Bradford white adaptation) is the one OCIO's ACES config holds."""
    ocio_matrix = colour.apply(np.eye(3, dtype=np.float32)[:, None, :], "lin_rec709", "ACEScg")[:, 0, :].T
    # OCIO applies its double matrix in float32: each result within a few float32 roundings of 1.
    np.testing.assert_allclose(colour.chromaticities_matrix(REC709, AP1), ocio_matrix, rtol=0, atol=4 * EPS32)


def test_a_header_names_the_space_its_rgb_is_read_in(tmp_path):
    rgb = scene_rgb()
    assert read_frame(exr(tmp_path / "none.exr", rgb)).colourspace == "ACEScg"
    for primaries, expected in ((REC709, "Linear Rec.709 (sRGB)"), (AP1, "ACEScg")):
        frame = read_frame(exr(tmp_path / f"{expected[:6]}.exr", rgb, primaries))
        assert colour.canonical(frame.colourspace) == expected
    xyz = colour.canonical(read_frame(exr(tmp_path / "xyz.exr", rgb, XYZ_E)).colourspace)
    assert colour.interop_tags(xyz) == {"chromaticities": pytest.approx(XYZ_E, abs=HEADER_XY)}
    # What shotstyle recorded in the file wins: its own outputs say the space they are in.
    assert read_frame(exr(tmp_path / "ours.exr", rgb, REC709, **{COLOURSPACE_ATTRIBUTE: "ACEScct"})).colourspace \
        == "ACEScct"


@pytest.mark.parametrize("primaries, reference", [(REC709, "lin_rec709"), (XYZ_E, None)])
def test_a_frame_on_other_primaries_renders_as_the_same_pixels_converted_to_acescg_first(
        grade_model, tmp_path, capsys, primaries, reference):
    matrix = colour.chromaticities_matrix(primaries, AP1)
    # Colours inside both gamuts: their ACEScg values are 0.01 or more, so the grade's results stay
    # above ACEScct's linear toe (0.0078), where its errors are relative (see below).
    rgb = (scene_rgb().astype(np.float64) @ np.linalg.inv(matrix).T).astype(np.float32)
    # The oracle's conversion: the config's own (Rec.709), or the matrix the test above checks (XYZ).
    if reference is not None:
        acescg = colour.convert(rgb, reference, "ACEScg")
    else:
        acescg = (rgb.astype(np.float64) @ matrix.T).astype(np.float32)
    plate = exr(tmp_path / "plate.exr", rgb, primaries)
    converted = exr(tmp_path / "converted.exr", acescg)
    assert render_still(grade_model, plate, tmp_path / "a.exr", "--out-colourspace", "ACEScg") == ExitCode.OK
    assert render_still(grade_model, converted, tmp_path / "b.exr") == ExitCode.OK
    got, expected = read_frame(str(tmp_path / "a.exr")), read_frame(str(tmp_path / "b.exr"))
    assert np.abs(expected.pixels - acescg).max() > 0.1   # the grade did something
    # The paths differ only before the working space: the plate's RGB -> ACEScct in one OCIO pass
    # (one float32 matrix), against that matrix applied first (OCIO's float32, or float64 for XYZ)
    # and its result stored as float32. Each linear value y = Σ m·x is a sum of 3 products: each path
    # is within 3·EPS32·Σ|m·x| of the exact sum (tolerances.py), the store within EPS32/2·|y|, so
    # the inputs differ by `spread` relative (1 for Rec.709 -> AP1, whose entries are all positive;
    # XYZ -> AP1 has negative ones, so there it is larger where the terms cancel). ACEScct's encode
    # turns relative δ into δ/(ln 2·17.52) absolute, the grade (channels rotated) multiplies it by at
    # most GRADE_SLOPE, the decode by LOG_DECODE_GAIN relative. Both paths then round the same ops on
    # those inputs (encode ~4 ops on code values below 1.5, the trilinear lookup 7 lerps of 2
    # roundings on values below 1, the decode ~4): 22 roundings of code values below 1.5, times
    # LOG_DECODE_GAIN relative in linear.
    terms = np.abs(rgb.astype(np.float64)) @ np.abs(matrix.T)
    spread = ((6 * EPS32 * terms + EPS32 / 2 * np.abs(acescg)) / np.abs(acescg)).max(axis=-1, keepdims=True)
    tolerance = spread * GRADE_SLOPE * LOG_DECODE_GAIN / (np.log(2) * 17.52) + 22 * 1.5 * EPS32 * LOG_DECODE_GAIN
    assert (np.abs(got.pixels - expected.pixels) <= tolerance * np.abs(expected.pixels)).all()
    # Written truthfully: ACEScg's tags, not the plate's primaries.
    assert got.attributes[COLOURSPACE_ATTRIBUTE] == "ACEScg"
    assert got.attributes["colorInteropID"] == "lin_ap1_scene"
    np.testing.assert_allclose(got.attributes["chromaticities"], AP1, atol=HEADER_XY)


def test_outputs_in_the_inputs_space_carry_its_primaries_and_never_a_stale_tag(grade_model, tmp_path, capsys):
    rgb = scene_rgb(1)
    # A header with a colorInteropID that its chromaticities contradict: the chromaticities decide,
    # and the output's header names only what is true of its pixels.
    plate = exr(tmp_path / "xyz.exr", rgb, XYZ_E, colorInteropID="lin_ap1_scene")
    assert render_still(grade_model, plate, tmp_path / "out.exr") == ExitCode.OK
    out = read_frame(str(tmp_path / "out.exr"))
    np.testing.assert_allclose(out.attributes["chromaticities"], XYZ_E, atol=HEADER_XY)
    assert "colorInteropID" not in out.attributes
    assert colour.canonical(out.colourspace) == colour.canonical(read_frame(plate).colourspace)
    plate = exr(tmp_path / "709.exr", rgb, REC709)
    assert render_still(grade_model, plate, tmp_path / "709out.exr") == ExitCode.OK
    out = read_frame(str(tmp_path / "709out.exr"))
    assert out.attributes[COLOURSPACE_ATTRIBUTE] == "Linear Rec.709 (sRGB)"
    assert out.attributes["colorInteropID"] == "lin_rec709_scene"
    np.testing.assert_allclose(out.attributes["chromaticities"], REC709, atol=HEADER_XY)


def test_a_colourspace_against_the_header_is_followed_and_said_once(grade_model, tmp_path, capsys):
    rgb = scene_rgb(2)
    folder = tmp_path / "plates"
    folder.mkdir()
    for frame in (1, 2, 3):
        exr(folder / f"p.{frame:04d}.exr", rgb, REC709)
    code = main(["render", "--model", grade_model, "--in", str(folder / "p.####.exr"), "--out",
                 str(tmp_path / "o.####.exr"), "--frames", "1-3", "--in-process", "--threads", "1",
                 "--colourspace", "ACEScg"])
    assert code == ExitCode.OK
    said = [line for line in capsys.readouterr().err.splitlines() if "chromaticities" in line]
    assert len(said) == 1 and "warning" in said[0] and "p.0001.exr" in said[0] and "ACEScg" in said[0], said
    # Followed: the same pixels as a file without chromaticities, read as ACEScg by default.
    assert render_still(grade_model, exr(tmp_path / "plain.exr", rgb), tmp_path / "plain_out.exr") == ExitCode.OK
    assert np.array_equal(read_frame(str(tmp_path / "o.0001.exr")).pixels,
                          read_frame(str(tmp_path / "plain_out.exr")).pixels)


def test_chromaticities_that_describe_no_colour_space_are_refused_naming_the_file(grade_model, tmp_path, capsys):
    plate = exr(tmp_path / "flat.exr", scene_rgb(), (0.3, 0.3, 0.3, 0.3, 0.3, 0.3, 0.3127, 0.329))
    code = main(["render", "--model", grade_model, "--in", plate, "--out", str(tmp_path / "o.exr"), "--in-process"])
    err = capsys.readouterr().err
    assert code == ExitCode.USAGE and "flat.exr" in err and "chromaticities" in err and "--colourspace" in err, err
    assert not (tmp_path / "o.exr").exists()
    assert main(["info", plate]) == ExitCode.MISSING_INPUT
    assert "flat.exr" in capsys.readouterr().err
    # Told what the RGB is, the render goes on.
    assert main(["render", "--model", grade_model, "--in", plate, "--out", str(tmp_path / "o.exr"), "--in-process",
                 "--colourspace", "ACEScg"]) == ExitCode.OK


def test_info_shows_the_chromaticities_and_the_space_they_give(tmp_path, capsys):
    plate = exr(tmp_path / "wide.exr", scene_rgb(), REC709)
    assert main(["info", plate]) == ExitCode.OK
    line = capsys.readouterr().out
    assert "Linear Rec.709 (sRGB)" in line and "R 0.64,0.33" in line and "W 0.3127,0.329" in line, line
