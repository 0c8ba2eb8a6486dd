"""Frame I/O on the real EXRs and images: round trips keep pixels, windows, formats and metadata."""

from __future__ import annotations

import os

import numpy as np
import OpenImageIO as oiio
import pytest

from shotstyle.server import frameio
from shotstyle.server.errors import FrameIOError, MissingFramesError
from shotstyle.server.frameio import (
    Frame, decode_image_bytes, encode_exr_bytes, probe, read_frame, read_sequence,
    sequence_paths, write_frame,
)

GOOD_EXRS = [
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
# Written on every write (by OpenImageIO; by us), so present on the copy only.
ADDED_ON_WRITE = {"DateTime", frameio.COLOURSPACE_ATTRIBUTE}


def bits(pixels: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(pixels, dtype=np.float32).view(np.uint32)


def same_attributes(a: Frame, b: Frame, ignore=()) -> None:
    left = {k: v for k, v in a.attributes.items() if k not in ignore}
    right = {k: v for k, v in b.attributes.items() if k not in ignore and k not in ADDED_ON_WRITE}
    assert left == right
    for name in left:
        assert a.attribute_types[name] == b.attribute_types[name], name


@pytest.mark.parametrize("name", GOOD_EXRS)
def test_exr_round_trip_keeps_everything(shared_data, tmp_path, name):
    original = read_frame(str(shared_data / "exr" / name))
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
    assert probe(str(copy_path))["tiled"] is None  # always written as scanlines


def test_windows_and_metadata_of_overscan_and_beachball(shared_data):
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
def test_compression_is_selectable(shared_data, tmp_path, compression):
    frame = read_frame(str(shared_data / "exr/TestImages/stripes.exr"))
    path = tmp_path / f"{compression}.exr"
    write_frame(str(path), frame, compression=compression)
    assert read_frame(str(path)).attributes["compression"] == compression


def test_unknown_compression_is_refused_by_name(shared_data, tmp_path):
    frame = read_frame(str(shared_data / "exr/TestImages/stripes.exr"))
    with pytest.raises(FrameIOError, match="'zap'.*zip"):
        write_frame(str(tmp_path / "x.exr"), frame, compression="zap")


def test_with_rgb_keeps_other_channels_bit_exact_and_adds_our_attributes(shared_data, tmp_path):
    original = read_frame(str(shared_data / "exr/Beachball/singlepart.0002.exr"))
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


def test_half_and_float_per_channel(shared_data, tmp_path):
    original = read_frame(str(shared_data / "exr/TestImages/stripes.exr"))
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
    assert [str(f) for f in native.spec().channelformats][green - 1:green + 2] == ["half", "float", "half"]
    native.close()
    back = read_frame(str(path))
    assert back.channel_formats == formats
    others = [i for i in range(len(formats)) if i != green]
    assert np.array_equal(bits(back.pixels[:, :, others]), bits(original.pixels[:, :, others]))
    assert np.array_equal(bits(back.pixels[:, :, green]), bits(precise[:, :, green]))


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


def test_tiled_mipmapped_reads_level_zero(shared_data):
    path = str(shared_data / "exr/MultiResolution/ColorCodedLevels.exr")
    frame = read_frame(path)
    assert frame.pixels.shape == (512, 512, 4)
    header = probe(path)
    assert header["tiled"] == (64, 64) and header["miplevels"] == 10


def test_luminance_chroma_is_read_as_luminance_and_refused_for_rgb(shared_data):
    # OpenImageIO 3.x does not convert Y/RY/BY to RGB: it reads the luminance only.
    frame = read_frame(str(shared_data / "exr/LuminanceChroma/Garden.exr"))
    assert frame.channels == ["Y"]
    assert 0 < float(frame.pixels.mean()) < 10
    with pytest.raises(FrameIOError, match="Garden.exr: luminance-only"):
        frame.rgb()


def test_nonfinite_rgb_values_are_counted(shared_data):
    assert read_frame(str(shared_data / "exr/TestImages/BrightRingsNanInf.exr")).nonfinite == 18
    assert read_frame(str(shared_data / "exr/TestImages/stripes.exr")).nonfinite == 0


def test_png_and_jpeg_style_images(shared_data):
    png = read_frame(str(shared_data / "pairs/in1.png"))
    jpeg = read_frame(str(shared_data / "clip/walk.0001.jpg"))
    for image in (png, jpeg):
        assert image.colourspace == "sRGB"
        assert set(image.channel_formats) == {"uint8"}
        assert image.rgb().dtype == np.float32
        assert 0.0 <= image.rgb().min() and image.rgb().max() <= 1.0 and image.rgb().std() > 0.05
    assert jpeg.pixels.shape == (281, 500, 3)


@pytest.mark.parametrize("ext", ["tif", "dpx", "png"])
def test_16_bit_formats_round_trip(shared_data, tmp_path, ext):
    source = read_frame(str(shared_data / "clip/walk.0001.jpg"))
    frame = Frame(source.pixels, source.channels, ["uint16"] * 3, source.data_window, source.display_window, {},
                  colourspace="sRGB")
    path = tmp_path / f"walk.{ext}"
    write_frame(str(path), frame)
    back = read_frame(str(path))
    assert back.channel_formats == ["uint16"] * 3 and back.colourspace == "sRGB"
    assert np.abs(back.pixels - source.pixels).max() < 1 / 65535


def test_exr_bytes_round_trip(shared_data):
    original = read_frame(str(shared_data / "exr/DisplayWindow/t08.exr"))
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


def test_unsupported_layouts(tmp_path):
    depth_only = Frame(np.ones((4, 4, 1), np.float32), ["Z"], ["float"], (0, 0, 4, 4), (0, 0, 4, 4), {},
                       source="depth.exr")
    with pytest.raises(FrameIOError, match="depth.exr: no R, G, B channels.*Z"):
        depth_only.rgb()
    path = str(tmp_path / "parts.exr")
    rgb, z = oiio.ImageSpec(4, 4, 3, "half"), oiio.ImageSpec(4, 4, 1, "float")
    z.channelnames = ("Z",)
    out = oiio.ImageOutput.create(path)
    assert out.open(path, (rgb, z))
    out.write_image(np.zeros((4, 4, 3), np.float32))
    out.open(path, z, "AppendSubimage")
    out.write_image(np.zeros((4, 4, 1), np.float32))
    out.close()
    with pytest.raises(FrameIOError, match="parts.exr: multi-part"):
        read_frame(path)


def test_atomic_write_leaves_no_final_file_on_failure(shared_data, tmp_path, monkeypatch):
    frame = read_frame(str(shared_data / "exr/TestImages/stripes.exr"))
    target = tmp_path / "out.exr"

    def killed(*args, **kwargs):
        raise KeyboardInterrupt  # as if the process were stopped while the pixels are written

    monkeypatch.setattr(frameio.np, "ascontiguousarray", killed)
    with pytest.raises(KeyboardInterrupt):
        write_frame(str(target), frame)
    monkeypatch.undo()
    assert os.listdir(tmp_path) == []

    write_frame(str(target), frame)
    before = target.read_bytes()

    def no_rename(*args):
        raise OSError("disk full")

    monkeypatch.setattr(frameio.os, "replace", no_rename)
    with pytest.raises(OSError):
        write_frame(str(target), frame.with_rgb(frame.rgb() + 1))
    assert os.listdir(tmp_path) == ["out.exr"] and target.read_bytes() == before


def test_write_into_missing_folder_names_it(shared_data, tmp_path):
    frame = read_frame(str(shared_data / "exr/TestImages/stripes.exr"))
    with pytest.raises(FrameIOError, match="does not exist"):
        write_frame(str(tmp_path / "nope" / "out.exr"), frame)


def test_beachball_sequence(shared_data):
    folder = shared_data / "exr/Beachball"
    frames = list(read_sequence(str(folder / "singlepart.####.exr")))
    assert [number for number, _ in frames] == [1, 2, 3]
    assert [f.data_window[:2] for _, f in frames] == [(654, 245), (759, 367), (864, 481)]
    for spelling in ("singlepart.%04d.exr", "singlepart.$F4.exr"):
        assert sequence_paths(str(folder / spelling), "1-3x2") == [
            (1, str(folder / "singlepart.0001.exr")), (3, str(folder / "singlepart.0003.exr"))]


def test_missing_and_empty_sequences_are_reported(shared_data, tmp_path):
    pattern = str(shared_data / "exr/Beachball/singlepart.####.exr")
    with pytest.raises(MissingFramesError) as error:
        sequence_paths(pattern, "1-5,9")
    assert error.value.missing == [4, 5, 9]
    assert "3 of 6 frames missing: 4-5,9 (frames on disk: 1-3)" in str(error.value)
    with pytest.raises(FrameIOError, match="no frames of this sequence"):
        sequence_paths(str(tmp_path / "shot.####.exr"))


def test_write_sequence_and_read_it_back(shared_data, tmp_path):
    pattern = str(tmp_path / "out.%04d.exr")
    for number, frame in read_sequence(str(shared_data / "exr/Beachball/singlepart.####.exr"), [1, 3]):
        write_frame(frame_path := pattern % (1000 + number), frame)
        assert os.path.exists(frame_path)
    assert [n for n, _ in sequence_paths(str(tmp_path / "out.$F4.exr"))] == [1001, 1003]


def test_frames_claiming_too_much_memory_are_refused_before_reading(shared_data, monkeypatch):
    monkeypatch.setattr(frameio, "MAX_FRAME_BYTES", 1 << 20)
    with pytest.raises(FrameIOError, match=r"SquaresSwirls\.exr: header claims 1000×1000 pixels × 3 channels"):
        read_frame(str(shared_data / "exr/TestImages/SquaresSwirls.exr"))


def test_colourspace_is_recorded_and_read_back(shared_data, tmp_path):
    style = read_frame(str(shared_data / "clip/walk.0001.jpg"))
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
    from shotstyle.plugin.codec import encode_raw
    from shotstyle.server.payloads import frame_from_raw
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
    from shotstyle.server.payloads import IsolatedDecoder, frame_to_raw
    rgb = np.random.default_rng(3).uniform(0, 1, (8, 12, 3)).astype(np.float16).astype(np.float32)
    frame = Frame(rgb, ["R", "G", "B"], ["half"] * 3, (0, 0, 12, 8), (0, 0, 12, 8), {}, colourspace="ACEScg")
    decoder = IsolatedDecoder()
    monkeypatch.setattr(decoder, "decode", lambda *a: pytest.fail("a raw payload went to the decoder process"))
    back = decoder.frame(frame_to_raw(frame, "float16"), "sRGB")
    assert np.array_equal(bits(back.pixels), bits(frame.pixels)) and back.colourspace == "sRGB"
