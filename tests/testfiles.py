"""Test material made at test time, so a fresh clone tests everything without ``../shared/data``.

EXRs of every layout the frame I/O must handle (data/display windows, tiled and mip-mapped,
AOVs and odd channel names, NaN/±Inf, half/float/uint per channel, a wide float range and every
half value, metadata of many types, multi-part, deep and luminance-only or luminance/chroma
files), damaged copies of a good EXR (truncated, bytes changed where readers trust them), and
small sRGB plates and a style image in place of the walk clip.

Files are written with OpenImageIO directly (never through `shotstyle.media`, the code
under test), at most 256 px, once per test session into pytest's temporary folders: the
session fixtures below (``made_exrs``, ``damaged_exrs``, ``exr_sequence``, ``plate_clip``,
``style_image``) are registered for every test module by ``conftest.py``. The shared data stays
as extra real material in the tests that name it.
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Callable, Dict, Iterable, List, Sequence, Tuple

import numpy as np
import OpenImageIO as oiio
import pytest

# --- layouts: constants the tests assert against -------------------------------------------------

DISPLAY = (0, 0, 128, 80)                 # x, y, width, height of every made EXR's display window
CROP_WINDOW = (12, 8, 100, 60)            # data window inside the display window
OVERSCAN_WINDOW = (-16, -8, 160, 96)      # data window around it (negative origin)
AOV_WINDOW = (20, 10, 80, 50)
AOV_CHANNELS = ("R", "G", "B", "A", "Z", "N.x", "N.y", "N.z", "diffuse.R", "diffuse.G", "diffuse.B", "id")
AOV_FORMATS = ("half",) * 4 + ("float",) * 4 + ("half",) * 3 + ("uint",)
AOV_ATTRIBUTES = {"multiView": ("left", "right"), "PixelAspectRatio": 1.0}
TILE = 32
MIP_SIZE = (96, 64)                       # not a power of two: partial tiles and odd levels
MIP_LEVELS = 7                            # 96x64, 48x32, 24x16, 12x8, 6x4, 3x2, 1x1
# (x, y, channel, value) of every non-finite RGB value in "nan_inf"; its alpha also holds a NaN.
NONFINITE_PIXELS = ((3, 2, 0, np.nan), (4, 2, 1, np.inf), (5, 2, 2, -np.inf),
                    (10, 20, 0, np.inf), (11, 20, 1, np.nan), (12, 20, 2, np.nan), (40, 30, 0, -np.inf))
ALL_HALF_NONFINITE = 3 * 2048             # 2046 NaN and 2 Inf bit patterns, in each of R, G, B
SEQUENCE_FRAMES = (1, 2, 3)
SEQUENCE_WINDOWS = {1: (10, 6, 90, 60), 2: (18, 9, 92, 62), 3: (26, 12, 94, 58)}   # the object moves
SEQUENCE_CHANNELS = ("R", "G", "B", "A", "Z", "disparity.x", "disparity.y")
PLATE_SIZE = (192, 108)                   # width, height of the sRGB plates and the style image
PLATE_FRAMES = 120                        # enough that a render killed after a few frames is still running
PLATE_PATTERN = "plate.####.jpg"
METADATA = {   # name: (OpenImageIO type, value); each survives an OpenImageIO write and read as is
    "owner": ("string", "shotstyle tests"),
    "studio/take": ("int", 7),
    "exposure": ("float", 1.5),
    "PixelAspectRatio": ("float", 2.0),
    "screenWindowCenter": ("float2", (0.25, -0.5)),
    "adoptedNeutral": ("float2", (0.3125, 0.3125)),
    "worldToCamera": ("matrix", tuple(float(i) for i in range(16))),
    "framesPerSecond": ("rational2i", (24000, 1001)),
    "smpte:TimeCode": ("timecode", (0x01020304, 0)),
    "smpte:KeyCode": ("keycode", (1, 2, 3, 4, 5, 6, 7)),
    "multiView": ("string[2]", ("left", "right")),
    "chromaticities": ("float[8]", (0.75, 0.25, 0.125, 0.875, 0.125, 0.0625, 0.3125, 0.3125)),
    "shot/lens": ("vector", (35.0, 2.5, 1.0)),
}


def _spec(width: int, height: int, channels: Sequence[str], formats: Sequence[str],
          data_window: Tuple[int, int, int, int] | None = None, display=DISPLAY) -> "oiio.ImageSpec":
    spec = oiio.ImageSpec(width, height, len(channels), formats[0])
    if len(set(formats)) > 1:
        spec.channelformats = tuple(oiio.TypeDesc(f) for f in formats)
    spec.channelnames = tuple(channels)
    if data_window:
        spec.x, spec.y = data_window[:2]
    spec.full_x, spec.full_y, spec.full_width, spec.full_height = display
    return spec


def write_image(path: Path, pixels: np.ndarray, channels: Sequence[str], formats: Sequence[str] | str = "half",
                data_window: Tuple[int, int, int, int] | None = None, display=DISPLAY,
                attributes: Dict[str, Tuple[str, object]] | None = None, compression: str = "zip") -> str:
    """One image file (type from the extension): ``pixels`` H×W×C float32 (uint channels: integer values)."""
    height, width = pixels.shape[:2]
    formats = [formats] * len(channels) if isinstance(formats, str) else list(formats)
    spec = _spec(width, height, channels, formats, data_window, display)
    for name, (kind, value) in (attributes or {}).items():
        spec.attribute(name, oiio.TypeDesc(kind), value)
    spec.attribute("compression", compression)
    pixels = np.ascontiguousarray(pixels, np.float32)
    if "uint" in formats:   # OpenImageIO converts float 0-1 to the uint range: hand it the fraction
        pixels = pixels.copy()
        ids = [i for i, f in enumerate(formats) if f == "uint"]
        pixels[..., ids] = pixels[..., ids].astype(np.float64) / 4294967295.0
    out = oiio.ImageOutput.create(str(path))
    assert out and out.open(str(path), spec), oiio.geterror()
    assert out.write_image(pixels), out.geterror()
    assert out.close(), out.geterror()
    return str(path)


def _ramp(width: int, height: int, channels: int, seed: int = 0) -> np.ndarray:
    """Smooth, distinct values per channel plus a little texture: easy to tell channels apart."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    noise = np.random.default_rng(seed).uniform(-0.02, 0.02, (height, width, channels)).astype(np.float32)
    layers = [(c + 1) / (channels + 1) + 0.3 * np.sin(xx / (5 + c) + yy / (7 + 2 * c)) for c in range(channels)]
    return np.stack(layers, -1) + noise


def _crop(path: Path) -> str:
    w, h = CROP_WINDOW[2:]
    return write_image(path, _ramp(w, h, 3), ("R", "G", "B"), data_window=CROP_WINDOW, compression="piz")


def _overscan(path: Path) -> str:
    w, h = OVERSCAN_WINDOW[2:]
    pixels = _ramp(w, h, 4, seed=1)
    pixels[..., 3] = 1.0
    return write_image(path, pixels, ("R", "G", "B", "A"), data_window=OVERSCAN_WINDOW)


def aov_pixels(width: int, height: int, seed: int = 2) -> np.ndarray:
    """RGBA (premultiplied, holes of zero alpha), depth, normals, a diffuse layer and integer IDs."""
    pixels = _ramp(width, height, len(AOV_CHANNELS), seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    alpha = np.clip(1.5 - np.hypot(xx - width / 2, yy - height / 2) / (0.3 * min(width, height)), 0, 1)
    pixels[..., 3] = alpha
    pixels[..., :3] *= alpha[..., None]
    pixels[..., 4] = 10.0 + 200.0 * xx / width          # depth far above 1: float, not half
    pixels[..., 5:8] = pixels[..., 5:8] * 2 - 1         # normals in -1..1
    pixels[..., 11] = (xx // 8 + 1000 * (yy // 8)).astype(np.float32)   # object IDs
    return pixels


def _aovs(path: Path) -> str:
    w, h = AOV_WINDOW[2:]
    attributes = {"multiView": ("string[2]", AOV_ATTRIBUTES["multiView"])}
    return write_image(path, aov_pixels(w, h), AOV_CHANNELS, AOV_FORMATS, data_window=AOV_WINDOW,
                       attributes=attributes, compression="zips")


def _lowercase(path: Path) -> str:
    """Channels named b, g, r (written in that order): R, G, B must still be found by name."""
    pixels = np.empty((16, 24, 3), np.float32)
    pixels[...] = (0.9, 0.5, 0.1)
    return write_image(path, pixels, ("b", "g", "r"), display=(0, 0, 24, 16))


def _layer_only(path: Path) -> str:
    """Only a named layer (beauty.R/G/B) and depth: no plain R, G, B."""
    return write_image(path, _ramp(24, 16, 4), ("beauty.R", "beauty.G", "beauty.B", "Z"),
                       display=(0, 0, 24, 16))


def _nan_inf(path: Path) -> str:
    pixels = _ramp(64, 40, 4, seed=3)
    for x, y, channel, value in NONFINITE_PIXELS:
        pixels[y, x, channel] = value
    pixels[0, 0, 3] = np.nan  # not an RGB value: not counted
    return write_image(path, pixels, ("R", "G", "B", "A"), display=(0, 0, 64, 40))


def _mixed_types(path: Path) -> str:
    pixels = _ramp(32, 16, 6, seed=4)
    pixels[..., 1] += np.float32(1e-4)     # not representable in half near 1: only survives as float
    pixels[..., 5] = np.arange(32 * 16, dtype=np.float32).reshape(16, 32) * 4099   # IDs above 2**16
    return write_image(path, pixels, ("R", "G", "B", "A", "Z", "id"),
                       ("half", "float", "half", "half", "float", "uint"), display=(0, 0, 32, 16))


def wide_float_values() -> np.ndarray:
    """64×64×3 float32: ±1e-38…±3e38 (log steps), zeros, subnormals, 65504 and just above it."""
    magnitudes = np.logspace(-38, 38.5, 64 * 64 * 3 // 2, dtype=np.float64).astype(np.float32)
    values = np.concatenate([magnitudes, -magnitudes])
    values[:6] = (0.0, -0.0, 1e-45, -1e-45, 65504.0, 65520.0)
    return values.reshape(64, 64, 3)


def _wide_range(path: Path) -> str:
    return write_image(path, wide_float_values(), ("R", "G", "B"), "float", display=(0, 0, 64, 64))


def all_half_values() -> np.ndarray:
    """256×256×3 float32 holding every half bit pattern once per channel (R in order, G and B shuffled)."""
    every = np.arange(65536, dtype=np.uint16).view(np.float16).astype(np.float32)
    rng = np.random.default_rng(5)
    return np.stack([every, every[rng.permutation(65536)], every[rng.permutation(65536)]], -1).reshape(256, 256, 3)


def _all_half(path: Path) -> str:
    return write_image(path, all_half_values(), ("R", "G", "B"), display=(0, 0, 256, 256), compression="piz")


def _metadata(path: Path) -> str:
    return write_image(path, _ramp(16, 8, 3), ("R", "G", "B"), display=(0, 0, 16, 8), attributes=METADATA)


def mip_level_colour(level: int) -> Tuple[float, float, float, float]:
    return ((level % 3 == 0) * 1.0, (level % 3 == 1) * 1.0, (level % 3 == 2) * 1.0, 1.0 - level / 10)


def _tiled(path: Path) -> str:
    """Tiled (32×32), mip-mapped, each level one flat colour (as the OpenEXR sample ColorCodedLevels)."""
    width, height = MIP_SIZE
    spec = _spec(width, height, ("R", "G", "B", "A"), ["half"] * 4, display=(0, 0, width, height))
    spec.tile_width = spec.tile_height = TILE
    spec.attribute("compression", "zip")
    spec.attribute("textureformat", "Plain Texture")   # OpenImageIO's switch for writing MIP levels
    out = oiio.ImageOutput.create(str(path))
    assert out.open(str(path), spec, "Create"), out.geterror()
    for level in range(MIP_LEVELS):
        if level:
            spec.width, spec.height = max(width >> level, 1), max(height >> level, 1)
            spec.full_width, spec.full_height = spec.width, spec.height
            assert out.open(str(path), spec, "AppendMIPLevel"), out.geterror()
        pixels = np.empty((spec.height, spec.width, 4), np.float32)
        pixels[...] = mip_level_colour(level)
        assert out.write_image(pixels), out.geterror()
    assert out.close(), out.geterror()
    del out   # OpenImageIO finishes a MIP-mapped file only when the writer is destroyed
    return str(path)


def _luminance(path: Path) -> str:
    """A tiled luminance-only (Y) EXR, as OpenImageIO reads luminance/chroma files (the Garden sample)."""
    width, height = 64, 48
    spec = _spec(width, height, ("Y",), ["half"], display=(0, 0, width, height))
    spec.tile_width = spec.tile_height = TILE
    spec.attribute("compression", "piz")
    out = oiio.ImageOutput.create(str(path))
    assert out.open(str(path), spec), out.geterror()
    assert out.write_image(_ramp(width, height, 1) * 4), out.geterror()
    assert out.close(), out.geterror()
    return str(path)


def _attribute(name: str, kind: str, data: bytes) -> bytes:
    return name.encode() + b"\0" + kind.encode() + b"\0" + struct.pack("<i", len(data)) + data


def _luminance_chroma(path: Path) -> str:
    """A scanline EXR as OpenEXR's RGBA interface writes with WRITE_YC: Y, and RY/BY at half resolution.

    OpenImageIO cannot write subsampled channels, so the file is assembled byte by byte
    (uncompressed, OpenEXR file layout: magic, version 2, attributes, offset table, scanline chunks).
    """
    width, height = 16, 8
    channels = (("BY", 2), ("RY", 2), ("Y", 1))   # sorted by name, as OpenEXR stores them
    chlist = b"".join(n.encode() + b"\0" + struct.pack("<iB3xii", 1, 0, s, s) for n, s in channels) + b"\0"
    box = struct.pack("<iiii", 0, 0, width - 1, height - 1)
    header = (b"\x76\x2f\x31\x01" + struct.pack("<I", 2)
              + _attribute("channels", "chlist", chlist) + _attribute("compression", "compression", b"\0")
              + _attribute("dataWindow", "box2i", box) + _attribute("displayWindow", "box2i", box)
              + _attribute("lineOrder", "lineOrder", b"\0")
              + _attribute("pixelAspectRatio", "float", struct.pack("<f", 1.0))
              + _attribute("screenWindowCenter", "v2f", struct.pack("<ff", 0.0, 0.0))
              + _attribute("screenWindowWidth", "float", struct.pack("<f", 1.0)) + b"\0")
    values = {"Y": 0.5, "RY": 0.1, "BY": -0.1}
    chunks = []
    for y in range(height):
        data = b"".join(np.full(width // s, values[n], np.float16).tobytes() for n, s in channels if y % s == 0)
        chunks.append(struct.pack("<ii", y, len(data)) + data)
    offsets, position = [], len(header) + 8 * height
    for chunk in chunks:
        offsets.append(position)
        position += len(chunk)
    Path(path).write_bytes(header + struct.pack(f"<{height}Q", *offsets) + b"".join(chunks))
    return str(path)


def _multipart(path: Path) -> str:
    rgb = _spec(8, 8, ("R", "G", "B"), ["half"] * 3, display=(0, 0, 8, 8))
    depth = _spec(8, 8, ("Z",), ["float"], display=(0, 0, 8, 8))
    out = oiio.ImageOutput.create(str(path))
    assert out.open(str(path), (rgb, depth)), out.geterror()
    assert out.write_image(np.full((8, 8, 3), 0.5, np.float32))
    assert out.open(str(path), depth, "AppendSubimage"), out.geterror()
    assert out.write_image(np.ones((8, 8, 1), np.float32))
    assert out.close(), out.geterror()
    return str(path)


def _deep(path: Path) -> str:
    """Deep RGBA+Z: two samples in every pixel."""
    spec = _spec(8, 6, ("R", "G", "B", "A", "Z"), ["half"] * 4 + ["float"], display=(0, 0, 8, 6))
    spec.alpha_channel, spec.z_channel, spec.deep = 3, 4, True
    buf = oiio.ImageBuf(spec)
    for y in range(6):
        for x in range(8):
            buf.set_deep_samples(x, y, 0, 2)
            for sample in range(2):
                for channel, value in enumerate((0.2, 0.3, 0.4, 0.5, 1.0 + sample)):
                    buf.set_deep_value(x, y, 0, channel, sample, value)
    assert buf.write(str(path)), buf.geterror()
    return str(path)


# name: writer. Every test that wants "an EXR of this kind" asks ``made_exrs[name]``.
EXR_MAKERS: Dict[str, Callable[[Path], str]] = {
    "crop": _crop, "overscan": _overscan, "aovs": _aovs, "lowercase": _lowercase, "layer_only": _layer_only,
    "nan_inf": _nan_inf, "mixed_types": _mixed_types, "wide_range": _wide_range, "all_half": _all_half,
    "metadata": _metadata, "tiled": _tiled, "luminance": _luminance, "luminance_chroma": _luminance_chroma,
    "multipart": _multipart, "deep": _deep,
}
# What shotstyle must read and write back unchanged (the others it refuses, or reads only as luminance).
READABLE_EXRS = ("crop", "overscan", "aovs", "lowercase", "layer_only", "nan_inf", "mixed_types", "wide_range",
                 "all_half", "metadata", "tiled", "luminance")


def write_sequence(folder: Path) -> str:
    """``folder/shot.####.exr``, frames 1-3: RGBA + depth + disparity, half, the object moving in the frame."""
    folder.mkdir(parents=True, exist_ok=True)
    for frame in SEQUENCE_FRAMES:
        w, h = SEQUENCE_WINDOWS[frame][2:]
        pixels = _ramp(w, h, len(SEQUENCE_CHANNELS), seed=frame)
        pixels[..., 3] = 1.0
        write_image(folder / f"shot.{frame:04d}.exr", pixels, SEQUENCE_CHANNELS, data_window=SEQUENCE_WINDOWS[frame],
                    attributes={"multiView": ("string[2]", ("right", "left"))}, compression="zips")
    return str(folder / "shot.####.exr")


# --- damaged files -------------------------------------------------------------------------------

def exr_layout(data: bytes) -> Dict[str, object]:
    """Where things sit in a single-part scanline EXR: each attribute's value span, the offset table, chunks."""
    position, attributes = 8, {}
    while data[position] != 0:
        name_end = data.index(b"\0", position)
        kind_end = data.index(b"\0", name_end + 1)
        (size,) = struct.unpack_from("<i", data, kind_end + 1)
        start = kind_end + 5
        attributes[data[position:name_end].decode()] = (start, start + size)
        position = start + size
    table = position + 1
    x0, y0, x1, y1 = struct.unpack_from("<iiii", data, attributes["dataWindow"][0])
    compression = data[attributes["compression"][0]]
    lines_per_chunk = {0: 1, 1: 1, 2: 1, 3: 16, 4: 32, 5: 16}.get(compression, 32)
    chunks = -(-(y1 - y0 + 1) // lines_per_chunk)
    offsets = struct.unpack_from(f"<{chunks}Q", data, table)
    return {"attributes": attributes, "table": table, "offsets": offsets, "pixels": table + 8 * chunks}


def _set(data: bytes, at: int, new: bytes) -> bytes:
    return data[:at] + new + data[at + len(new):]


def _flip(data: bytes, at: int, count: int = 1) -> bytes:
    return _set(data, at, bytes(b ^ 0xFF for b in data[at:at + count]))


Damage = Callable[[bytes, Dict], bytes]
# name: how a good zip-compressed scanline EXR is broken. Each one must be refused with a clear
# error, except the RECOVERABLE ones, which may also read back with exactly the good pixels.
DAMAGES: Dict[str, Damage] = {
    "cut_in_magic": lambda d, l: d[:3],
    "cut_in_header": lambda d, l: d[: l["table"] // 2],
    "cut_after_header": lambda d, l: d[: l["table"]],
    "cut_in_offset_table": lambda d, l: d[: l["table"] + 12],
    "cut_in_first_chunk": lambda d, l: d[: l["offsets"][0] + 20],
    "cut_in_last_chunk": lambda d, l: d[: l["offsets"][-1] + (len(d) - l["offsets"][-1]) // 2],
    "cut_last_byte": lambda d, l: d[:-1],
    "bad_magic": lambda d, l: _flip(d, 0),
    "bad_version": lambda d, l: _set(d, 4, struct.pack("<I", 9)),
    "bad_channel_type": lambda d, l: _set(d, d.index(b"\0", l["attributes"]["channels"][0]) + 1,
                                          struct.pack("<i", 7)),
    "inverted_data_window": lambda d, l: _set(d, l["attributes"]["dataWindow"][0] + 8, struct.pack("<i", -1000)),
    "huge_data_window": lambda d, l: _set(d, l["attributes"]["dataWindow"][0] + 8, struct.pack("<ii", 2**30, 2**30)),
    "garbage_in_header": lambda d, l: _set(d, l["attributes"]["channels"][0], b"\xff" * 24),
    "offset_past_the_end": lambda d, l: _set(d, l["table"], struct.pack("<Q", 2**40)),
    "chunk_size_huge": lambda d, l: _set(d, l["offsets"][0] + 4, struct.pack("<i", 2**31 - 1)),
    "chunk_size_negative": lambda d, l: _set(d, l["offsets"][0] + 4, struct.pack("<i", -5)),
    "zip_bytes_changed": lambda d, l: _flip(d, l["offsets"][0] + 8 + 10, 8),
    "zip_bytes_zeroed": lambda d, l: _set(d, l["offsets"][-1] + 8, b"\0" * 32),
}
# OpenEXR rebuilds an offset table that points outside the file by walking the chunks.
RECOVERABLE_DAMAGES = ("offset_past_the_end",)


def damaged_source_pixels() -> np.ndarray:
    """The good file the damaged ones are made from: RGBA + depth, zip, 64 lines (two zip chunks)."""
    pixels = _ramp(48, 64, 5, seed=6)
    pixels[..., 3] = 1.0
    return pixels


def write_damaged(folder: Path) -> Dict[str, str]:
    folder.mkdir(parents=True, exist_ok=True)
    good = Path(write_image(folder / "good.exr", damaged_source_pixels(), ("R", "G", "B", "A", "Z"),
                            display=(0, 0, 48, 64), compression="zip"))
    data = good.read_bytes()
    layout = exr_layout(data)
    paths = {"good": str(good)}
    for name, damage in DAMAGES.items():
        broken = damage(data, layout)
        assert broken != data, name
        (folder / f"{name}.exr").write_bytes(broken)
        paths[name] = str(folder / f"{name}.exr")
    return paths


# --- plates and style images (sRGB, 8-bit) -------------------------------------------------------

def scene(frame: int, width: int = PLATE_SIZE[0], height: int = PLATE_SIZE[1]) -> np.ndarray:
    """A warm outdoor shot in sRGB 0..1: sky, a ridge, bushes, a road and a figure walking; the camera pans."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    u, v = (xx + 1.5 * frame) / width, yy / height                     # the camera pans right
    rgb = np.stack([0.95 - 0.25 * v, 0.78 - 0.3 * v, 0.62 - 0.3 * v], -1)                  # warm sky
    ridge = 0.42 + 0.08 * np.sin(9 * u) + 0.04 * np.sin(23 * u + 1) + 0.015 * np.sin(71 * u)
    rock = 0.55 + 0.12 * np.sin(40 * u + 30 * v) * np.sin(17 * v)
    rgb = np.where((v > ridge)[..., None], np.stack([0.75 * rock, 0.5 * rock, 0.38 * rock], -1), rgb)
    texture = np.random.default_rng(7).uniform(0.6, 1.0, (height, width + 2 * PLATE_FRAMES))
    leaves = texture[:, (xx[0] + 1.5 * frame).astype(int) % texture.shape[1]]
    bushes = v > 0.62 + 0.05 * np.sin(13 * u) * np.sin(5 * u + 2)
    rgb = np.where(bushes[..., None], np.stack([0.16 * leaves, 0.22 * leaves, 0.1 * leaves], -1), rgb)
    rgb = np.where((v > 0.85)[..., None], np.full(3, 0.2, np.float32), rgb)                 # road
    cx, cy = 0.45 + 0.004 * frame, 0.66                                                      # the walker
    body = ((xx / width - cx) / 0.035) ** 2 + ((v - cy) / 0.2) ** 2 < 1
    rgb = np.where(body[..., None], np.array([0.7, 0.3, 0.18], np.float32), rgb)
    return np.clip(rgb, 0, 1).astype(np.float32)


def style_pixels(width: int = PLATE_SIZE[0], height: int = PLATE_SIZE[1]) -> np.ndarray:
    """A cool, overcast look in sRGB 0..1: grey-blue clouds over green hills."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    u, v = xx / width, yy / height
    clouds = 0.55 + 0.15 * np.sin(11 * u + 3 * np.sin(7 * v)) * np.sin(9 * v)
    rgb = np.stack([clouds * 0.85, clouds * 0.92, clouds * 1.05], -1)
    hills = v > 0.5 + 0.08 * np.sin(6 * u)
    grass = 0.3 + 0.1 * np.random.default_rng(8).uniform(size=(height, width)).astype(np.float32)
    rgb = np.where(hills[..., None], np.stack([0.45 * grass, 0.9 * grass, 0.35 * grass], -1), rgb)
    return np.clip(rgb, 0, 1).astype(np.float32)


def write_srgb(path: Path, rgb: np.ndarray, kind: str = "uint8") -> str:
    """An sRGB file of ``rgb`` (0..1) as 8- or 16-bit integers; JPEG, PNG, TIFF... by extension."""
    return write_image(path, rgb, ("R", "G", "B"), kind, display=(0, 0, rgb.shape[1], rgb.shape[0]),
                       compression="jpeg:95" if str(path).endswith(".jpg") else "zip")


def write_style(path: Path, width: int = PLATE_SIZE[0], height: int = PLATE_SIZE[1]) -> str:
    """The style image as an 8-bit sRGB file (PNG, JPEG... by extension)."""
    return write_srgb(path, style_pixels(width, height))


def write_plates(folder: Path, frames: Iterable[int] = range(1, PLATE_FRAMES + 1)) -> str:
    """``folder/plate.####.jpg``: the panning shot as 8-bit sRGB JPEGs; returns the pattern."""
    folder.mkdir(parents=True, exist_ok=True)
    for frame in frames:
        write_srgb(folder / PLATE_PATTERN.replace("####", f"{frame:04d}"), scene(frame))
    return str(folder / PLATE_PATTERN)


# --- session fixtures (registered in conftest.py) ------------------------------------------------

@pytest.fixture(scope="session")
def made_exrs(tmp_path_factory) -> Dict[str, str]:
    """name -> path of every EXR in `EXR_MAKERS`, written once per session."""
    folder = tmp_path_factory.mktemp("made-exr")
    return {name: make(folder / f"{name}.exr") for name, make in EXR_MAKERS.items()}


@pytest.fixture(scope="session")
def damaged_exrs(tmp_path_factory) -> Dict[str, str]:
    """name -> path of each damaged EXR in `DAMAGES`, plus "good": the file they were made from."""
    return write_damaged(tmp_path_factory.mktemp("damaged-exr"))


@pytest.fixture(scope="session")
def exr_sequence(tmp_path_factory) -> str:
    """The pattern of a three-frame EXR sequence (``shot.####.exr``, frames `SEQUENCE_FRAMES`)."""
    return write_sequence(tmp_path_factory.mktemp("made-sequence"))


@pytest.fixture(scope="session")
def plate_clip(tmp_path_factory) -> str:
    """The pattern of `PLATE_FRAMES` sRGB JPEG plates (``plate.####.jpg``, frames 1…)."""
    return write_plates(tmp_path_factory.mktemp("made-plates"))


@pytest.fixture(scope="session")
def style_image(tmp_path_factory) -> str:
    """An 8-bit sRGB PNG style image."""
    return write_style(tmp_path_factory.mktemp("made-style") / "style.png")


def paths_of(pattern: str, frames: Iterable[int]) -> List[str]:
    return [pattern.replace("####", f"{frame:04d}") for frame in frames]


def render_still(model: str, source: str, out: Path, *extra: str) -> int:
    """`shotstyle render` of one still in-process (a file in, a file out), on one thread."""
    from shotstyle.cli.main import main
    return main(["render", "--model", model, "--in", source, "--out", str(out), "--in-process", "--threads", "1",
                 *extra])
