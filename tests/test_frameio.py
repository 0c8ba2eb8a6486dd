"""Frame I/O: round trips keep pixels, windows, formats and metadata; unsupported layouts are refused.

The EXRs are made at test time (tests/testfiles.py: every layout the frame I/O must handle);
the OpenEXR sample images in ../shared/data go through the same checks as extra real material.
"""

from __future__ import annotations

import os

import numpy as np
import OpenImageIO as oiio
import pytest

import testfiles
from tolerances import rounding_tolerance
from shotstyle.media import memoryfiles, metadata, reading, writing
from shotstyle.media.frame import Frame
from shotstyle.media.reading import decode_image_bytes, probe, read_frame, read_sequence, sequence_paths
from shotstyle.media.writing import encode_exr_bytes, write_frame
from shotstyle.server.errors import FrameIOError, FrameWriteError, MissingFramesError

SAMPLE_EXRS = [
    "Beachball/singlepart.0001.exr",
    "DisplayWindow/t01.exr",
    "DisplayWindow/t08.exr",
    "LuminanceChroma/Garden.exr",
    "MultiResolution/ColorCodedLevels.exr",
    "TestImages/AllHalfValues.exr",
    "TestImages/BrightRingsNanInf.exr",
    "TestImages/GrayRampsHorizontal.exr",
    "TestImages/SquaresSwirls.exr",
    "TestImages/WideFloatRange.exr",
    "TestImages/stripes.exr",
]
# Compressions that lose bits on float (pxr24) or on any data (b44, dwa): the round trip then uses zip.
LOSSY = {"pxr24", "b44", "b44a", "dwaa", "dwab"}
# Written on every write where the frame has none (by OpenImageIO; by us).
ADDED_ON_WRITE = {"DateTime", metadata.COLOURSPACE_ATTRIBUTE}


def bits(pixels: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(pixels, dtype=np.float32).view(np.uint32)


def same_attributes(a: Frame, b: Frame, ignore=()) -> None:
    left = {k: v for k, v in a.attributes.items() if k not in ignore}
    right = {k: v for k, v in b.attributes.items() if k not in ignore and (k in left or k not in ADDED_ON_WRITE)}
    assert left == right
    for name in left:
        assert a.attribute_types[name] == b.attribute_types[name], name


def check_round_trip(path: str, tmp_path) -> None:
    """Read, write back (lossy compressions as zip), read again: everything but the compression equal."""
    original = read_frame(path)
    lossy = original.attributes["compression"] in LOSSY
    copy_path = tmp_path / "copy.exr"
    write_frame(str(copy_path), original, compression="zip" if lossy else None)
    copy = read_frame(str(copy_path))
    assert np.array_equal(bits(copy.pixels), bits(original.pixels))
    assert copy.channels == original.channels
    assert copy.channel_formats == original.channel_formats
    assert copy.data_window == original.data_window
    assert copy.display_window == original.display_window
    assert copy.attributes["compression"] == ("zip" if lossy else original.attributes["compression"])
    same_attributes(original, copy, ignore={"compression"})
    assert probe(str(copy_path))["tiled"] == probe(path)["tiled"]  # tiled as it was, or scanlines


@pytest.mark.parametrize("name", testfiles.READABLE_EXRS)
def test_exr_round_trip_keeps_everything(made_exrs, tmp_path, name):
    check_round_trip(made_exrs[name], tmp_path)


@pytest.mark.parametrize("name", SAMPLE_EXRS)
def test_sample_exr_round_trip_keeps_everything(shared_data, tmp_path, name):
    check_round_trip(str(shared_data / "exr" / name), tmp_path)


def as_half(values: np.ndarray) -> np.ndarray:
    return values.astype(np.float16).astype(np.float32)


def test_windows_pixels_and_formats_are_read_as_written(made_exrs):
    crop = read_frame(made_exrs["crop"])
    assert crop.data_window == testfiles.CROP_WINDOW and crop.display_window == testfiles.DISPLAY
    assert np.array_equal(crop.pixels, as_half(testfiles._ramp(*testfiles.CROP_WINDOW[2:], 3)))
    overscan = read_frame(made_exrs["overscan"])
    assert overscan.data_window == testfiles.OVERSCAN_WINDOW and overscan.display_window == testfiles.DISPLAY
    aovs = read_frame(made_exrs["aovs"])
    assert aovs.data_window == testfiles.AOV_WINDOW
    assert sorted(aovs.channels) == sorted(testfiles.AOV_CHANNELS)
    written = testfiles.aov_pixels(*testfiles.AOV_WINDOW[2:])
    for written_index, (name, kind) in enumerate(zip(testfiles.AOV_CHANNELS, testfiles.AOV_FORMATS)):
        index = aovs.channels.index(name)
        assert aovs.channel_formats[index] == kind, name
        expected = written[..., written_index]
        assert np.array_equal(aovs.pixels[..., index], as_half(expected) if kind == "half" else expected), name
    assert aovs.attributes["multiView"] == testfiles.AOV_ATTRIBUTES["multiView"]
    assert aovs.attributes["PixelAspectRatio"] == testfiles.AOV_ATTRIBUTES["PixelAspectRatio"]
    assert aovs.colourspace == "ACEScg"
    assert aovs.rgb_indices() == (0, 1, 2) and aovs.alpha_index() == 3


def test_every_metadata_type_survives(made_exrs, tmp_path):
    path = tmp_path / "copy.exr"
    write_frame(str(path), read_frame(made_exrs["metadata"]))
    back = read_frame(str(path))
    for name, (kind, value) in testfiles.METADATA.items():
        name = {"owner": "Copyright"}.get(name, name)  # OpenImageIO's name for the EXR owner attribute
        assert back.attributes[name] == pytest.approx(value), name


def test_channels_are_found_by_name_in_any_order(made_exrs):
    lowercase = read_frame(made_exrs["lowercase"])
    np.testing.assert_allclose(lowercase.rgb()[0, 0], [0.1, 0.5, 0.9], atol=1e-3)
    layer = read_frame(made_exrs["layer_only"])
    with pytest.raises(FrameIOError, match=r"layer_only\.exr: no R, G, B channels.*beauty\.R.*shuffle"):
        layer.rgb()


def test_windows_and_metadata_of_the_samples(shared_data):
    t08 = read_frame(str(shared_data / "exr/DisplayWindow/t08.exr"))
    assert t08.data_window == (30, 40, 400, 300)
    assert t08.display_window == (0, 0, 501, 401)
    beach = read_frame(str(shared_data / "exr/Beachball/singlepart.0001.exr"))
    assert beach.pixels.shape == (876, 911, 20)
    assert beach.channels[:5] == ["R", "G", "B", "A", "Z"]
    assert beach.attributes["multiView"] == ("right", "left")
    assert beach.attributes["PixelAspectRatio"] == 1.0
    assert beach.colourspace == "ACEScg"
    assert beach.rgb_indices() == (0, 1, 2) and beach.alpha_index() == 3


@pytest.mark.parametrize("compression", ["zip", "piz", "dwaa", "none"])
def test_compression_is_selectable(made_exrs, tmp_path, compression):
    frame = read_frame(made_exrs["crop"])
    path = tmp_path / f"{compression}.exr"
    write_frame(str(path), frame, compression=compression)
    assert read_frame(str(path)).attributes["compression"] == compression


def test_unknown_compression_is_refused_by_name(made_exrs, tmp_path):
    frame = read_frame(made_exrs["crop"])
    with pytest.raises(FrameIOError, match="'zap'.*zip"):
        write_frame(str(tmp_path / "x.exr"), frame, compression="zap")


def test_with_rgb_keeps_other_channels_bit_exact_and_adds_our_attributes(made_exrs, tmp_path):
    original = read_frame(made_exrs["aovs"])
    graded = original.with_rgb(original.rgb() * 0.5 + 0.25)
    path = tmp_path / "graded.exr"
    write_frame(str(path), graded, attributes={"shotstyle/model": "abc123", "shotstyle/mix": 0.75})
    back = read_frame(str(path))
    assert np.array_equal(bits(back.pixels[:, :, 3:]), bits(original.pixels[:, :, 3:]))
    expected_rgb = (original.rgb() * 0.5 + 0.25).astype(np.float16).astype(np.float32)
    assert np.array_equal(back.rgb(), expected_rgb)
    assert back.attributes["shotstyle/model"] == "abc123"
    assert back.attributes["shotstyle/mix"] == pytest.approx(0.75)
    same_attributes(original, back, ignore={"shotstyle/model", "shotstyle/mix"})


def test_half_and_float_per_channel(made_exrs, tmp_path):
    original = read_frame(made_exrs["crop"])
    green = original.channels.index("G")
    formats = list(original.channel_formats)
    formats[green] = "float"
    precise = original.pixels.copy()
    precise[:, :, green] += np.float32(1e-4)  # not representable in half near 1: only survives as float
    mixed = Frame(precise, original.channels, formats, original.data_window, original.display_window,
                  original.attributes, attribute_types=original.attribute_types)
    path = tmp_path / "mixed.exr"
    write_frame(str(path), mixed)
    native = oiio.ImageInput.open(str(path))
    assert [str(f) for f in native.spec().channelformats] == ["half", "float", "half"]
    native.close()
    back = read_frame(str(path))
    assert back.channel_formats == formats
    others = [i for i in range(len(formats)) if i != green]
    assert np.array_equal(bits(back.pixels[:, :, others]), bits(original.pixels[:, :, others]))
    assert np.array_equal(bits(back.pixels[:, :, green]), bits(precise[:, :, green]))
    made = read_frame(made_exrs["mixed_types"])  # a file written with mixed types reads as such
    assert made.channel_formats == ["half", "float", "half", "half", "float", "uint"]
    assert np.all(made.pixels[..., 1] != as_half(made.pixels[..., 1]))


def test_uint_id_channels_keep_their_integer_values(tmp_path):
    pixels = np.zeros((2, 3, 4), np.float32)
    pixels[:, :, :3] = 0.25
    pixels[:, :, 3] = [[0, 1, 7], [65536, 1234567, 2**24]]
    frame = Frame(pixels, ["R", "G", "B", "id"], ["half", "half", "half", "uint"], (0, 0, 3, 2), (0, 0, 3, 2), {})
    path = str(tmp_path / "ids.exr")
    write_frame(path, frame)
    native = oiio.ImageInput.open(path)
    assert native.read_image(0, 0, 3, 4, "uint")[:, :, 0].tolist() == [[0, 1, 7], [65536, 1234567, 2**24]]
    native.close()
    back = read_frame(path)
    assert back.channel_formats == frame.channel_formats
    assert np.array_equal(back.pixels, pixels)


def test_tiled_mipmapped_reads_level_zero(made_exrs):
    frame = read_frame(made_exrs["tiled"])
    width, height = testfiles.MIP_SIZE
    assert frame.pixels.shape == (height, width, 4)
    assert np.array_equal(frame.pixels.reshape(-1, 4), np.tile(testfiles.mip_level_colour(0), (width * height, 1))
                          .astype(np.float16).astype(np.float32))
    header = probe(made_exrs["tiled"])
    assert header["tiled"] == (testfiles.TILE, testfiles.TILE) and header["miplevels"] == testfiles.MIP_LEVELS


def test_tiled_mipmapped_sample(shared_data):
    path = str(shared_data / "exr/MultiResolution/ColorCodedLevels.exr")
    assert read_frame(path).pixels.shape == (512, 512, 4)
    header = probe(path)
    assert header["tiled"] == (64, 64) and header["miplevels"] == 10


def test_luminance_only_is_read_as_luminance_and_refused_for_rgb(made_exrs):
    # OpenImageIO 3.x does not convert Y/RY/BY to RGB: it reads the luminance only.
    frame = read_frame(made_exrs["luminance"])
    assert frame.channels == ["Y"] and probe(made_exrs["luminance"])["tiled"] == (testfiles.TILE, testfiles.TILE)
    with pytest.raises(FrameIOError, match=r"luminance\.exr: luminance-only.*convert the file to RGB"):
        frame.rgb()


@pytest.mark.parametrize("name, channels", [("grey.png", 1), ("grey_alpha.png", 2), ("grey.tif", 1), ("grey.jpg", 1)])
def test_a_grey_image_is_read_as_equal_rgb(tmp_path, name, channels):
    """A black-and-white photograph is a style frame like any other: R = G = B, as hosts read it."""
    path = str(tmp_path / name)
    values = np.random.default_rng(0).integers(0, 256, (6, 5, channels)).astype(np.uint8)
    spec = oiio.ImageSpec(5, 6, channels, "uint8")
    if channels == 2:   # associated alpha, as OpenImageIO writes and reads a PNG's: grey ≤ alpha
        values[..., 0] = np.minimum(values[..., 0], values[..., 1])
        spec.channelnames, spec.alpha_channel = ("Y", "A"), 1
    out = oiio.ImageOutput.create(path)
    out.open(path, spec)
    out.write_image(values)
    out.close()
    frame = read_frame(path)
    assert frame.channels == ["R", "G", "B"] + (["A"] if channels == 2 else [])
    assert frame.channel_formats == ["uint8"] * len(frame.channels)
    grey = frame.pixels[..., 0]
    assert np.array_equal(frame.rgb(), np.stack([grey] * 3, axis=-1))
    if name != "grey.jpg":   # lossy
        assert np.allclose(grey, values[..., 0] / 255, atol=1.01 / 255)
    if channels == 2:
        # A uint8 k read as float32 is within two roundings (a reciprocal and a product, if the reader
        # computes it so) of the float64 k/255, at most 1; no relative part.
        assert np.allclose(frame.pixels[..., 3], values[..., 1] / 255, rtol=0, atol=rounding_tolerance(1.0, 2))


def test_subsampled_luminance_chroma_is_refused_naming_the_file(made_exrs):
    path = made_exrs["luminance_chroma"]
    for read in (read_frame, probe):
        with pytest.raises(FrameIOError, match=rf"^{path}: cannot read this image: .*Subsampled channels"):
            read(path)


def test_luminance_chroma_sample(shared_data):
    frame = read_frame(str(shared_data / "exr/LuminanceChroma/Garden.exr"))
    assert frame.channels == ["Y"]
    assert 0 < float(frame.pixels.mean()) < 10
    with pytest.raises(FrameIOError, match="Garden.exr: luminance-only"):
        frame.rgb()


def test_nonfinite_rgb_values_are_counted(made_exrs):
    frame = read_frame(made_exrs["nan_inf"])
    assert frame.nonfinite == len(testfiles.NONFINITE_PIXELS)  # the NaN in alpha is not counted
    assert np.isnan(frame.pixels[0, 0, 3])
    for x, y, channel, value in testfiles.NONFINITE_PIXELS:
        assert np.array_equal(frame.pixels[y, x, channel], value, equal_nan=True)
    assert read_frame(made_exrs["all_half"]).nonfinite == testfiles.ALL_HALF_NONFINITE
    assert read_frame(made_exrs["crop"]).nonfinite == 0


def test_nonfinite_rgb_values_in_the_sample_are_counted(shared_data):
    assert read_frame(str(shared_data / "exr/TestImages/BrightRingsNanInf.exr")).nonfinite == 18


def test_every_half_value_and_a_wide_float_range_read_exactly(made_exrs):
    every = read_frame(made_exrs["all_half"])
    assert np.array_equal(bits(every.pixels), bits(testfiles.all_half_values()))
    wide = read_frame(made_exrs["wide_range"])
    assert wide.channel_formats == ["float"] * 3
    assert np.array_equal(bits(wide.pixels), bits(testfiles.wide_float_values()))


def test_png_and_jpeg_style_images(style_image, plate_clip):
    png = read_frame(style_image)
    jpeg = read_frame(testfiles.paths_of(plate_clip, [1])[0])
    for image in (png, jpeg):
        assert image.colourspace == "sRGB"
        assert set(image.channel_formats) == {"uint8"}
        assert image.rgb().dtype == np.float32
        assert 0.0 <= image.rgb().min() and image.rgb().max() <= 1.0 and image.rgb().std() > 0.05
    assert jpeg.pixels.shape == (testfiles.PLATE_SIZE[1], testfiles.PLATE_SIZE[0], 3)


@pytest.mark.parametrize("ext", ["tif", "dpx", "png"])
def test_16_bit_formats_round_trip(plate_clip, tmp_path, ext):
    source = read_frame(testfiles.paths_of(plate_clip, [1])[0])
    frame = Frame(source.pixels, source.channels, ["uint16"] * 3, source.data_window, source.display_window, {},
                  colourspace="sRGB")
    path = tmp_path / f"walk.{ext}"
    write_frame(str(path), frame)
    back = read_frame(str(path))
    assert back.channel_formats == ["uint16"] * 3 and back.colourspace == "sRGB"
    assert np.abs(back.pixels - source.pixels).max() < 1 / 65535


def test_exr_bytes_round_trip(made_exrs):
    original = read_frame(made_exrs["overscan"])
    data = encode_exr_bytes(original, compression="piz")
    assert data[:4] == b"\x76\x2f\x31\x01"
    back = decode_image_bytes(data, "exr")
    assert np.array_equal(bits(back.pixels), bits(original.pixels))
    assert back.data_window == original.data_window and back.display_window == original.display_window
    assert back.source is None


def test_decode_rejects_garbage_without_temp_path():
    with pytest.raises(FrameIOError, match=r"^received exr image \(12 bytes\)"):
        decode_image_bytes(b"not an image", "exr")


def test_wrong_paths_name_the_file(tmp_path):
    with pytest.raises(FrameIOError, match=r"nope\.exr: no such file"):
        read_frame(str(tmp_path / "nope.exr"))
    (tmp_path / "empty.exr").write_bytes(b"")
    with pytest.raises(FrameIOError, match=r"empty\.exr: empty file"):
        read_frame(str(tmp_path / "empty.exr"))
    with pytest.raises(FrameIOError, match="is a folder"):
        read_frame(str(tmp_path))
    (tmp_path / "text.exr").write_text("hello")
    with pytest.raises(FrameIOError, match=r"text\.exr: cannot read"):
        read_frame(str(tmp_path / "text.exr"))


def test_unsupported_layouts(made_exrs):
    depth_only = Frame(np.ones((4, 4, 1), np.float32), ["Z"], ["float"], (0, 0, 4, 4), (0, 0, 4, 4), {},
                       source="depth.exr")
    with pytest.raises(FrameIOError, match="depth.exr: no R, G, B channels.*Z"):
        depth_only.rgb()
    for name, message in (("multipart", "multi-part file.*split the parts"), ("deep", "deep image data.*flatten")):
        for read in (read_frame, probe):
            with pytest.raises(FrameIOError, match=rf"^{made_exrs[name]}: {message}"):
                read(made_exrs[name])


def test_atomic_write_leaves_no_final_file_on_failure(made_exrs, tmp_path, monkeypatch):
    frame = read_frame(made_exrs["crop"])
    target = tmp_path / "out.exr"

    def killed(*args, **kwargs):
        raise KeyboardInterrupt  # as if the process were stopped while the pixels are written

    monkeypatch.setattr(writing.np, "ascontiguousarray", killed)
    with pytest.raises(KeyboardInterrupt):
        write_frame(str(target), frame)
    monkeypatch.undo()
    assert os.listdir(tmp_path) == []

    write_frame(str(target), frame)
    before = target.read_bytes()

    def no_rename(*args):
        raise OSError("disk full")

    monkeypatch.setattr(writing.os, "replace", no_rename)
    with pytest.raises(FrameWriteError, match="disk full"):
        write_frame(str(target), frame.with_rgb(frame.rgb() + 1))
    assert os.listdir(tmp_path) == ["out.exr"] and target.read_bytes() == before


def test_write_into_missing_folder_names_it(made_exrs, tmp_path):
    frame = read_frame(made_exrs["crop"])
    with pytest.raises(FrameIOError, match="does not exist"):
        write_frame(str(tmp_path / "nope" / "out.exr"), frame)


def test_sequence(exr_sequence):
    folder = os.path.dirname(exr_sequence)
    frames = list(read_sequence(exr_sequence))
    assert [number for number, _ in frames] == list(testfiles.SEQUENCE_FRAMES)
    assert [f.data_window for _, f in frames] == [testfiles.SEQUENCE_WINDOWS[n] for n in testfiles.SEQUENCE_FRAMES]
    assert all(f.channels[:5] == ["R", "G", "B", "A", "Z"] and len(f.channels) == 7 for _, f in frames)
    for spelling in ("shot.%04d.exr", "shot.$F4.exr", "shot.@@@@.exr"):
        assert sequence_paths(os.path.join(folder, spelling), "1-3x2") == [
            (1, os.path.join(folder, "shot.0001.exr")), (3, os.path.join(folder, "shot.0003.exr"))]


def test_beachball_sequence(shared_data):
    frames = list(read_sequence(str(shared_data / "exr/Beachball/singlepart.####.exr")))
    assert [number for number, _ in frames] == [1, 2, 3]
    assert [f.data_window[:2] for _, f in frames] == [(654, 245), (759, 367), (864, 481)]


def test_missing_and_empty_sequences_are_reported(exr_sequence, tmp_path):
    pattern = exr_sequence
    with pytest.raises(MissingFramesError) as error:
        sequence_paths(pattern, "1-5,9")
    assert error.value.missing == [4, 5, 9]
    assert "3 of 6 frames missing: 4-5,9 (frames on disk: 1-3)" in str(error.value)
    with pytest.raises(FrameIOError, match="no frames of this sequence"):
        sequence_paths(str(tmp_path / "shot.####.exr"))


def test_write_sequence_and_read_it_back(exr_sequence, tmp_path):
    pattern = str(tmp_path / "out.%04d.exr")
    for number, frame in read_sequence(exr_sequence, [1, 3]):
        write_frame(frame_path := pattern % (1000 + number), frame)
        assert os.path.exists(frame_path)
    assert [n for n, _ in sequence_paths(str(tmp_path / "out.$F4.exr"))] == [1001, 1003]


def test_frames_claiming_too_much_memory_are_refused_before_reading(made_exrs, monkeypatch):
    monkeypatch.setattr(reading, "MAX_FRAME_BYTES", 1 << 16)
    with pytest.raises(FrameIOError, match=r"crop\.exr: header claims 100×60 pixels × 3 channels"):
        read_frame(made_exrs["crop"])


def test_colourspace_is_recorded_and_read_back(plate_clip, tmp_path):
    style = read_frame(testfiles.paths_of(plate_clip, [1])[0])
    path = str(tmp_path / "style.exr")
    write_frame(path, style)
    back = read_frame(path)
    assert back.channel_formats == ["half"] * 3 and back.colourspace == "sRGB"
    assert np.array_equal(np.round(back.pixels * 255), np.round(style.pixels * 255))
    assert read_frame(path, colourspace="ACEScg").colourspace == "ACEScg"
    assert probe(path)["colourspace"] == "sRGB"


def test_attributes_without_types_as_they_arrive_over_the_wire(tmp_path):
    frame = Frame(np.zeros((2, 2, 3), np.float32), ["R", "G", "B"], ["half"] * 3, (0, 0, 2, 2), (0, 0, 2, 2),
                  {"PixelAspectRatio": 2.0, "screenWindowCenter": [0.5, -0.5], "multiView": ["left", "right"],
                   "framesPerSecond": [24000, 1001], "shotstyle/model": "abc", "compression": "piz"})
    path = str(tmp_path / "wire.exr")
    write_frame(path, frame)
    back = read_frame(path)
    assert back.attributes["PixelAspectRatio"] == 2.0
    assert back.attribute_types["screenWindowCenter"] == "float2"
    assert back.attributes["screenWindowCenter"] == (0.5, -0.5)
    assert back.attributes["multiView"] == ("left", "right")
    assert back.attributes["framesPerSecond"] == (24000, 1001)
    assert back.attributes["compression"] == "piz" and back.attributes["shotstyle/model"] == "abc"


def test_exr_bytes_are_encoded_and_decoded_in_memory(monkeypatch):
    """No temporary file on disk: the bytes live in a memfd (OpenImageIO's Python API has no IOProxy)."""
    if not hasattr(os, "memfd_create"):
        pytest.skip("memfd needs Linux; elsewhere a temporary file is used")
    import tempfile
    rgb = np.random.default_rng(1).uniform(-1, 4, (16, 24, 4)).astype(np.float16).astype(np.float32)
    frame = Frame(rgb, ["R", "G", "B", "A"], ["half"] * 4, (2, 3, 24, 16), (0, 0, 30, 20), {"studio/shot": "sh010"})
    decode_image_bytes(encode_exr_bytes(frame))  # the process's memory folder exists from here on
    made = []
    real_memfd = os.memfd_create
    monkeypatch.setattr(os, "memfd_create", lambda *a: made.append(a) or real_memfd(*a))
    for name in ("mkstemp", "mkdtemp", "TemporaryDirectory", "NamedTemporaryFile"):
        monkeypatch.setattr(tempfile, name, lambda *a, **k: pytest.fail("a temporary file was made"))
    back = decode_image_bytes(encode_exr_bytes(frame))
    assert len(made) == 2
    assert np.array_equal(bits(back.pixels), bits(frame.pixels)) and back.attributes["studio/shot"] == "sh010"
    assert back.data_window == frame.data_window and back.display_window == frame.display_window


def test_one_default_colourspace_rule_for_files_probes_and_raw_buffers(tmp_path):
    from shotstyle.media.payloads import frame_from_raw
    from shotstyle.plugin.codec import encode_raw
    rgb = np.random.default_rng(2).uniform(0, 1, (8, 12, 3)).astype(np.float32)
    window = (0, 0, 12, 8)
    for formats, ext, expected in ((["float"] * 3, "tif", "ACEScg"), (["half"] * 3, "exr", "ACEScg"),
                                   (["uint8"] * 3, "png", "sRGB"), (["uint16"] * 3, "tif", "sRGB")):
        path = str(tmp_path / f"{formats[0]}.{ext}")
        write_frame(path, Frame(rgb, ["R", "G", "B"], formats, window, window, {}))
        assert read_frame(path).colourspace == probe(path)["colourspace"] == expected, (formats, ext)
        header = {"width": 12, "height": 8, "channels": ["R", "G", "B"], "formats": formats, "dtype": "float32",
                  "data_window": list(window), "display_window": list(window)}
        assert frame_from_raw(encode_raw(rgb, header)).colourspace == expected, formats
    recorded = str(tmp_path / "recorded.exr")
    write_frame(recorded, Frame(rgb, ["R", "G", "B"], ["half"] * 3, window, window, {}, colourspace="sRGB"))
    assert read_frame(recorded).colourspace == probe(recorded)["colourspace"] == "sRGB"


def test_raw_payloads_become_frames_directly(monkeypatch):
    """Raw buffers (the farm's and local clients' fast path) never go through a file or the decoder process."""
    from shotstyle.media.payloads import IsolatedDecoder, frame_to_raw
    rgb = np.random.default_rng(3).uniform(0, 1, (8, 12, 3)).astype(np.float16).astype(np.float32)
    frame = Frame(rgb, ["R", "G", "B"], ["half"] * 3, (0, 0, 12, 8), (0, 0, 12, 8), {}, colourspace="ACEScg")
    decoder = IsolatedDecoder()
    monkeypatch.setattr(decoder, "decode", lambda *a: pytest.fail("a raw payload went to the decoder process"))
    back = decoder.frame(frame_to_raw(frame, "float16"), "sRGB")
    assert np.array_equal(bits(back.pixels), bits(frame.pixels)) and back.colourspace == "sRGB"


def test_names_left_by_a_killed_decoder_are_removed_by_the_next_process():
    import subprocess
    import sys
    folder = memoryfiles.memory_folder()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True).stdout.strip()
    left = os.path.join(folder, f"shotstyle-{dead}-{'0' * 32}.exr")
    mine = os.path.join(folder, f"shotstyle-{os.getpid()}-{'1' * 32}.exr")
    for path in (left, mine):
        os.symlink("/proc/self/fd/1000000", path)
    try:
        memoryfiles.memory_folder.cache_clear()
        assert memoryfiles.memory_folder() == folder
        assert not os.path.lexists(left) and os.path.lexists(mine)
    finally:
        for path in (left, mine):
            if os.path.lexists(path):
                os.unlink(path)


@pytest.mark.parametrize("channels", [["R", "G", "B"], ["R", "G", "B", "A"]])
def test_a_webp_still_reads_as_written(tmp_path, channels):
    """A web page's reference still: OpenImageIO's WebP reader, sent to a second image and back by the
    multi-part check, reported a decode error for a good file, which read as damaged."""
    image = pytest.importorskip("PIL.Image")   # a lossless WebP writer (OpenImageIO's writes lossy ones)
    codes = np.random.default_rng(3).integers(1, 256, (12, 20, len(channels))).astype(np.uint8)
    path = str(tmp_path / "still.webp")
    image.fromarray(codes).save(path, lossless=True, exact=True)
    frame = read_frame(path)
    assert frame.channels == channels
    values = codes / 255.0
    # An 8-bit code read as float32 is within two roundings (a reciprocal and a product) of k/255, at
    # most 1. Read associated (premultiplied), as a PNG's alpha is; libwebp premultiplies in 8 bits, so
    # each such value is also within half a code value of the exact product.
    tolerance = rounding_tolerance(1.0, 2)
    if len(channels) == 4:
        values[..., :3] *= values[..., 3:]
        tolerance += 0.5 / 255
    np.testing.assert_allclose(frame.pixels, values, rtol=0, atol=tolerance)


def test_a_file_type_without_a_reader_here_says_to_save_it_as_one_with(tmp_path):
    """A phone's HEIC or a camera's raw file: this OpenImageIO has no reader for them."""
    for name in ("IMG_0001.HEIC", "shot.cr2"):
        (tmp_path / name).write_bytes(b"\0\0\0\x18ftypheic" + bytes(64))
        with pytest.raises(FrameIOError, match=rf"{name}: OpenImageIO here has no reader for "
                                               rf"\.{name.rsplit('.', 1)[1].lower()} files; save the image as EXR, "
                                               "TIFF, PNG or JPEG first"):
            read_frame(str(tmp_path / name))
    (tmp_path / "bad.png").write_bytes(b"not a png at all")
    with pytest.raises(FrameIOError, match=r"bad.png: cannot read this image"):
        read_frame(str(tmp_path / "bad.png"))
