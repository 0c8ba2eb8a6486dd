"""An image's embedded ICC profile says what its RGB is, and shotstyle reads it so.

A phone's photograph is Display P3 with a profile saying so; taken as sRGB, its colours are read
less saturated than the artist sees them, and a style frame's look comes out muted (a sunset
reference moved a grade by ΔE 6 on average). Matrix/TRC profiles on the primaries and transfer
functions of the OCIO config's spaces are identified, from any maker's numbers (Apple's, Little
CMS's, the sRGB IEC61966-2.1 profile of the shared clip's JPEGs); any other profile, or damaged
bytes, is named and read as before, and `train` says so. Outputs keep the profile only while
their pixels are in its space. Profiles are built here (tests/iccprofiles.py).
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest

from shotstyle.cli.main import main
from shotstyle.media.iccprofile import ICC_ATTRIBUTE, identify
from shotstyle.media.metadata import COLOURSPACE_ATTRIBUTE
from shotstyle.media.reading import read_frame
from shotstyle.plugin.exitcodes import ExitCode
from shotstyle.server.engine import colour
from shotstyle.server.engine.modelheader import read_metadata
from shotstyle.server.engine.pipeline import working_rgb
from shotstyle.server.errors import ColourError
from iccprofiles import (ADOBE_RGB, APPLE_P3_CHAD, APPLE_P3_COLORANTS, P3_D65, PROPHOTO, REC709, assemble, matrix_profile,
                         profile_of)
from testfiles import render_still, write_image
from tolerances import EPS32, rounding_tolerance

SRGB_TABLE = tuple(np.where(np.linspace(0, 1, 1024) <= 0.04045, np.linspace(0, 1, 1024) / 12.92,
                            ((np.linspace(0, 1, 1024) + 0.055) / 1.055) ** 2.4))


@pytest.mark.parametrize("profile, expected", [
    (profile_of(P3_D65, "srgb", "Display P3"), "srgb_p3d65_scene"),
    (profile_of(P3_D65, "srgb", "Display P3", version=2), "srgb_p3d65_scene"),
    (profile_of(REC709, SRGB_TABLE, "sRGB IEC61966-2.1", version=2), "srgb_rec709_scene"),
    (profile_of(ADOBE_RGB, 563 / 256, "Adobe RGB (1998)", version=2), "g22_adobergb_scene"),
    (profile_of(ADOBE_RGB, 563 / 256, "Adobe RGB (1998)"), "g22_adobergb_scene"),
    (profile_of(REC709, (), "Linear sRGB"), "lin_rec709_scene"),
    (profile_of(REC709, (0, (2.4,)), "Rec.709 gamma 2.4"), "g24_rec709_scene"),
], ids=["p3-v4", "p3-v2", "srgb-table-v2", "adobe-v2", "adobe-v4", "linear-709", "gamma-2.4"])
def test_matrix_profiles_on_known_primaries_and_curves_are_identified(profile, expected):
    assert identify(profile).interop_id == expected


def test_apples_display_p3_profile_is_display_p3():
    profile = identify(matrix_profile(APPLE_P3_COLORANTS, (3, (2.39999, 0.94786, 0.05214, 0.07739, 0.04045)),
                                      "Display P3", chad=APPLE_P3_CHAD))
    assert (profile.name, profile.interop_id) == ("Display P3", "srgb_p3d65_scene")


def test_other_makers_srgb_profiles_are_srgb():
    image_cms = pytest.importorskip("PIL.ImageCms")
    little_cms = image_cms.ImageCmsProfile(image_cms.createProfile("sRGB")).tobytes()
    assert identify(little_cms).interop_id == "srgb_rec709_scene"


def test_a_camera_jpegs_srgb_profile_is_srgb(shared_data):
    """The walk clip's JPEGs carry the sRGB IEC61966-2.1 profile (version 2, a 1024-entry curve)."""
    frame = read_frame(str(shared_data / "clip" / "walk.0001.jpg"))
    profile = identify(np.asarray(frame.attributes[ICC_ATTRIBUTE], np.uint8).tobytes())
    assert (profile.name, profile.interop_id, frame.colourspace) == ("sRGB IEC61966-2.1", "srgb_rec709_scene", "sRGB")


LUT_PROFILE = assemble({b"desc": b"desc" + bytes(4) + struct.pack(">I", 4) + b"LUT\0" + bytes(78),
                        b"A2B0": b"mAB " + bytes(28)})


def test_matrix_profiles_no_config_space_names_decode_by_their_own_curves_and_others_say_why():
    prophoto = identify(profile_of(PROPHOTO, 1.8, "ProPhoto RGB"))
    assert prophoto.interop_id is None and prophoto.decodes() and "0.7347, 0.2653" in prophoto.why
    np.testing.assert_allclose(prophoto.primaries, PROPHOTO, rtol=0, atol=2e-4)   # s15.16 colorants, D50 white
    codes = np.linspace(0, 1, 11, dtype=np.float32)[None, :, None].repeat(3, axis=2)
    # The profile's u8.8 gamma: 1.8 is stored as 461/256. The same float64 power of the same inputs,
    # then one rounding to float32: at most EPS32/2 relative (EPS32, to hold in the check's own arithmetic).
    np.testing.assert_allclose(prophoto.to_linear(codes)[0, :, 0], codes[0, :, 0].astype(np.float64) ** (461 / 256),
                               rtol=EPS32)
    gamma = identify(profile_of(REC709, 2.6, "Rec.709 gamma 2.6"))
    assert gamma.decodes() and "no known transfer function" in gamma.why
    lut = identify(LUT_PROFILE)
    assert (lut.name, lut.interop_id, lut.decodes()) == ("LUT", None, False) and "lookup-table" in lut.why
    cmyk = identify(assemble({}, space=b"CMYK"))
    assert not cmyk.decodes() and "CMYK" in cmyk.why


def test_damaged_profile_bytes_are_never_identified_and_never_raise():
    good = profile_of(P3_D65, "srgb", "Display P3")
    damaged = [good[:length] for length in range(0, len(good), 7)]
    damaged += [good[:at] + b"\xff\xff\xff\xff" + good[at + 4:] for at in range(128, len(good) - 4, 4)]
    damaged += [b"\0" * 200, b"acsp" * 100]
    results = [identify(data) for data in damaged]
    assert all(result.interop_id in (None, "srgb_p3d65_scene") for result in results)
    assert not any(result.interop_id for result in results[:len(good) // 7])   # every truncation
    assert identify(good[:200]).why.startswith("damaged")


def write_tagged(path: Path, pixels: np.ndarray, profile: bytes | None, formats: str = "uint8",
                 channels: list[str] | None = None, **attributes: tuple[str, object]) -> str:
    if profile is not None:
        attributes[ICC_ATTRIBUTE] = (f"uint8[{len(profile)}]", np.frombuffer(profile, np.uint8))
    return write_image(path, pixels, channels or ["R", "G", "B"], formats, attributes=attributes,
                       display=(0, 0, pixels.shape[1], pixels.shape[0]), compression="none")


# Pure red, green and blue, and a grey, as 8-bit code values.
SWATCHES = np.array([[[1, 0, 0], [0, 1, 0], [0, 0, 1], [128 / 255, 128 / 255, 128 / 255]]], np.float32)


@pytest.mark.parametrize("suffix", ["png", "jpg", "tif"])
def test_a_display_p3_image_is_read_as_display_p3(tmp_path, suffix):
    path = write_tagged(tmp_path / f"p3.{suffix}", np.repeat(np.repeat(SWATCHES, 16, 0), 16, 1),
                        profile_of(P3_D65, "srgb", "Display P3"))
    frame = read_frame(path)
    assert frame.colourspace == "srgb_p3d65_scene"
    codes = frame.pixels[8::16, 8::16, :3]   # each swatch's middle (a JPEG's own decoded code values)
    linear = colour.convert(codes, frame.colourspace, "ACEScg")[0]
    as_srgb = colour.convert(codes, "sRGB", "ACEScg")[0]
    # The same code values as AP1 light through P3's primaries' own matrix (a path independent of OCIO's
    # config), after OCIO's same decoding curve. OCIO applies its matrix in float32: 9 elements rounded,
    # 3 products and 2 sums, 6 roundings of terms summing to at most the rows' absolute sums (1 here)
    # times the values (at most 1); its config's matrix is ours to a quarter of EPS32: one step more.
    to_ap1 = colour.chromaticities_matrix(P3_D65, colour.INTEROP_PRIMARIES["ap1"])
    expected = to_ap1 @ colour.convert(codes, frame.colourspace, "Linear P3-D65")[0].T
    np.testing.assert_allclose(linear, expected.T, rtol=0, atol=rounding_tolerance(np.abs(to_ap1).sum(1).max(), 7))
    assert np.abs(linear[:3] - as_srgb[:3]).max() > 0.05     # a primary is another colour in P3 than in sRGB ...
    if np.ptp(codes[0, 3]) == 0:   # ... a neutral grey the same (a JPEG may decode it a code value off neutral):
        # the same sRGB curve, then two white-keeping matrices whose rows sum to 1, each 6 roundings of the grey
        # (as above), and the curve's own float32 result, maybe computed another way in each: 14 steps.
        np.testing.assert_allclose(linear[3], as_srgb[3], rtol=0, atol=rounding_tolerance(float(linear[3].max()), 14))
    assert working_rgb(frame).shape == (16, 64, 3)


def test_what_decides_first_the_given_space_then_the_recorded_then_chromaticities_then_the_profile(tmp_path):
    p3 = profile_of(P3_D65, "srgb", "Display P3")
    plain = np.full((4, 4, 3), 0.5, np.float32)
    assert read_frame(write_tagged(tmp_path / "a.png", plain, p3), "sRGB").colourspace == "sRGB"
    recorded = write_tagged(tmp_path / "b.png", plain, p3, **{COLOURSPACE_ATTRIBUTE: ("string", "ACEScct")})
    assert read_frame(recorded).colourspace == "ACEScct"
    assert read_frame(write_tagged(tmp_path / "c.png", plain, None)).colourspace == "sRGB"
    # Float data is linear light: a profile says only its primaries (Photoshop tags a 32-bit file with the
    # document's profile, sRGB curve and all).
    for name, curve in (("linear", ()), ("srgb", "srgb")):
        profile = profile_of(REC709, curve, "sRGB")
        frame = read_frame(write_tagged(tmp_path / f"{name}.tif", plain, profile, "float"))
        assert colour.canonical(frame.colourspace) == "Linear Rec.709 (sRGB)" and np.allclose(frame.pixels, 0.5)
    assert read_frame(write_tagged(tmp_path / "light.hdr", plain, None, "float")).colourspace == "lin_rec709_scene"
    assert read_frame(write_tagged(tmp_path / "plain.tif", plain, None, "float")).colourspace == "ACEScg"
    exr = write_tagged(tmp_path / "e.exr", plain, p3, "half", chromaticities=("float[8]", ADOBE_RGB))
    assert colour.canonical(read_frame(exr).colourspace) == "Linear AdobeRGB"
    assert read_frame(write_tagged(tmp_path / "f.png", plain, LUT_PROFILE)).colourspace == "sRGB"
    prophoto = profile_of(PROPHOTO, 1.8, "ProPhoto")
    given = read_frame(write_tagged(tmp_path / "g.png", plain, prophoto), "sRGB")   # a given space: as stored
    assert given.colourspace == "sRGB" and np.allclose(given.pixels, 128 / 255)


@pytest.mark.parametrize("alpha", [None, 0.5])
def test_a_prophoto_image_is_decoded_by_its_profile_to_linear_light_on_its_primaries(tmp_path, alpha):
    """Lightroom's 16-bit TIFF export: ProPhoto RGB (ROMM primaries, D50 white, gamma 1.8)."""
    codes = np.random.default_rng(4).integers(0, 65536, (6, 8, 3)) / 65535.0
    channels = ["R", "G", "B"] + ([] if alpha is None else ["A"])
    # OpenImageIO takes associated colour to write and stores it straight (TIFF's unassociated alpha);
    # reading associates it again.
    stored = codes if alpha is None else np.concatenate([codes * alpha, np.full((6, 8, 1), alpha)], axis=2)
    frame = read_frame(write_tagged(tmp_path / "lightroom.tif", stored.astype(np.float32),
                                    profile_of(PROPHOTO, 1.8, "ProPhoto RGB"), "uint16", channels=channels))
    primaries = colour.space_chromaticities(frame.colourspace)
    np.testing.assert_allclose(primaries, PROPHOTO, rtol=0, atol=2e-4)
    linear = codes ** (461 / 256) * (1 if alpha is None else alpha)
    # A 16-bit code read as float32 is within two roundings (EPS32 relative) of k/65535; the gamma
    # multiplies a relative error by 461/256, and the decoded value's rounding to float32 adds EPS32/2.
    # With alpha, the writer's rounding of the straight colour to 16 bits (half a code) through the
    # curve's slope (at most 1.8) too.
    np.testing.assert_allclose(frame.pixels[..., :3], linear, rtol=(461 / 256 + 0.5) * EPS32,
                               atol=0 if alpha is None else 1.8 / 65535)
    acescg = colour.convert(frame.pixels[..., :3], frame.colourspace, "ACEScg")
    to_ap1 = colour.chromaticities_matrix(primaries, colour.INTEROP_PRIMARIES["ap1"])
    expected = frame.pixels[..., :3] @ to_ap1.T
    # OCIO applies our matrix in float32: 6 roundings (as for P3 above) of terms up to its rows' absolute
    # sums (1.34) times the values (at most 1).
    np.testing.assert_allclose(acescg, expected, rtol=0, atol=rounding_tolerance(np.abs(to_ap1).sum(1).max(), 6))


def test_an_id_the_config_has_no_space_for_is_refused_saying_what_to_do():
    with pytest.raises(ColourError, match=r"no colour space for 'srgb_rec2020_scene'.*ICC profile.*--colourspace"):
        colour.canonical("srgb_rec2020_scene")


def test_outputs_keep_the_profile_only_while_their_pixels_are_in_its_space(grade_model, tmp_path):
    pixels = np.random.default_rng(0).uniform(0, 1, (16, 16, 3)).astype(np.float32)
    plate = write_tagged(tmp_path / "p3.png", pixels, profile_of(P3_D65, "srgb", "Display P3"))
    for name, extra in (("same.png", ()), ("same.jpg", ()), ("linear.exr", ()), ("srgb.png", ("--out-colourspace", "sRGB"))):
        assert render_still(grade_model, plate, tmp_path / name, *extra) == ExitCode.OK
    for name in ("same.png", "same.jpg"):   # a JPEG keeps no attribute of ours: the profile alone says P3
        out = read_frame(str(tmp_path / name))
        assert ICC_ATTRIBUTE in out.attributes and colour.canonical(out.colourspace) == "sRGB Encoded P3-D65"
    for name, space in (("linear.exr", "ACEScg"), ("srgb.png", "sRGB Encoded Rec.709 (sRGB)")):
        out = read_frame(str(tmp_path / name))
        assert ICC_ATTRIBUTE not in out.attributes and colour.canonical(out.colourspace) == space
    # The same light either way: the P3 output and the sRGB one differ as code values, not as colours.
    same = colour.convert(read_frame(str(tmp_path / "same.png")).pixels, "sRGB Encoded P3-D65", "ACEScg")
    srgb = colour.convert(read_frame(str(tmp_path / "srgb.png")).pixels, "sRGB", "ACEScg")
    in_gamut = (read_frame(str(tmp_path / "srgb.png")).pixels.min(axis=2) > 2 / 255) & \
        (read_frame(str(tmp_path / "srgb.png")).pixels.max(axis=2) < 253 / 255)
    assert in_gamut.sum() > 20
    np.testing.assert_allclose(same[in_gamut], srgb[in_gamut], rtol=0, atol=0.02)   # two 8-bit roundings


def test_info_names_the_profile_and_train_says_when_it_cannot_be_read(tmp_path, capsys):
    pixels = np.random.default_rng(1).uniform(0, 1, (24, 24, 3)).astype(np.float32)
    p3 = write_tagged(tmp_path / "p3.png", pixels, profile_of(P3_D65, "srgb", "Display P3"))
    prophoto = write_tagged(tmp_path / "pro.png", pixels, profile_of(PROPHOTO, 1.8, "ProPhoto RGB"))
    lut = write_tagged(tmp_path / "lut.png", pixels, LUT_PROFILE)
    assert main(["info", p3, prophoto, lut]) == ExitCode.OK
    printed = capsys.readouterr().out
    assert f"{p3}: 24x24, R G B (uint8), no compression, sRGB Encoded P3-D65 (its ICC profile 'Display P3')" in printed
    assert f"{prophoto}: 24x24, R G B (uint8), no compression, linear, chromaticities 0.73" in printed
    assert "(its ICC profile 'ProPhoto RGB': decoded by its own curves to linear light on its primaries)" in printed
    assert f"{lut}: 24x24, R G B (uint8), no compression, sRGB (its ICC profile 'LUT' is not one shotstyle can " \
           "read: a lookup-table profile" in printed
    model = str(tmp_path / "m.safetensors")
    for style in (prophoto, lut):
        assert main(["train", "--in-process", "--arch", "grade", "--content", p3, "--style", style, "-o", model]) == 0
    said = capsys.readouterr().err
    assert f"{lut}: its ICC profile 'LUT' is not one shotstyle can read (a lookup-table profile" in said
    assert "read as sRGB" in said and f"{p3}:" not in said and f"{prophoto}:" not in said
    # A camera's Adobe RGB JPEG without a profile: its EXIF says only that it is not sRGB.
    camera = write_tagged(tmp_path / "_MG_0001.jpg", pixels, None, **{"Exif:ColorSpace": ("int", 0xFFFF)})
    assert main(["train", "--in-process", "--arch", "grade", "--content", p3, "--style", camera, "-o", model]) == 0
    assert f"{camera}: its EXIF says its colours are uncalibrated and it embeds no ICC profile" \
        in capsys.readouterr().err


def test_matte_and_label_images_are_data_whatever_profile_they_carry(tmp_path, capsys):
    """Photoshop embeds its working space's profile in what it saves, label images too: decoded by a
    ProPhoto profile's curves, the style's label colours would no longer be the plate's."""
    shape = (24, 32)
    upper = (np.arange(shape[0]) < shape[0] // 2)[:, None, None] * np.ones((*shape, 1))
    labels = (upper * np.array([0.5, 0.5, 0.0]) + (1 - upper) * np.array([0.0, 0.25, 0.75])).astype(np.float32)
    plate_labels = write_tagged(tmp_path / "plate_labels.png", labels, None)
    style_labels = write_tagged(tmp_path / "style_labels.png", labels, profile_of(PROPHOTO, 1.8, "ProPhoto RGB"))
    rng = np.random.default_rng(5)
    plate = write_tagged(tmp_path / "plate.png", rng.uniform(0, 1, (*shape, 3)).astype(np.float32), None)
    style = write_tagged(tmp_path / "style.png", rng.uniform(0, 1, (*shape, 3)).astype(np.float32), None)
    model = str(tmp_path / "m.safetensors")
    assert main(["train", "--in-process", "--content", plate, "--style", style, "-o", model, "--steps", "2",
                 "--resolution", "64", "--labels", f"{plate_labels}:{style_labels}"]) == 0, capsys.readouterr().err
    assert len(read_metadata(model)["target"]["mattes"]) == 2   # both colours found in both label images


def test_render_warns_once_where_a_plates_colour_space_is_in_doubt(grade_model, tmp_path, capsys):
    """A film scan's DPX (printing density) or a plate with a profile shotstyle cannot read is read as
    sRGB unless --colourspace says otherwise: render says so, naming the file, once."""
    pixels = np.full((8, 8, 3), 0.5, np.float32)
    scan = write_image(tmp_path / "scan.dpx", pixels, ["R", "G", "B"], "uint16", display=(0, 0, 8, 8),
                       attributes={"dpx:Transfer": ("string", "Printing density"), "oiio:BitsPerSample": ("int", 10)},
                       compression="none")
    lut = write_tagged(tmp_path / "lut.png", pixels, LUT_PROFILE)
    assert render_still(grade_model, scan, tmp_path / "scan_out.exr") == ExitCode.OK
    said = capsys.readouterr().err
    assert said.count("warning:") == 1 and f"warning: {scan}: its header says its values are logarithmic " \
        "(dpx:Transfer Printing density); they are read as sRGB" in said
    assert render_still(grade_model, lut, tmp_path / "lut_out.exr") == ExitCode.OK
    assert f"warning: {lut}: its ICC profile 'LUT' is not one shotstyle can read" in capsys.readouterr().err
    assert render_still(grade_model, scan, tmp_path / "given.exr", "--colourspace", "sRGB") == ExitCode.OK
    assert "warning:" not in capsys.readouterr().err
