"""THE frame I/O module: every image file the server side reads or writes goes through here.

Built on OpenImageIO. A `Frame` holds the data window of one image (all channels, float32),
its windows, per-channel storage formats and every metadata attribute, so that an EXR read
and written back keeps data/display windows, pixel aspect, metadata, half vs float per channel
and compression; only the RGB channels are ever replaced (`Frame.with_rgb`), everything else
(alpha, Z, AOVs) goes back out bit-exact. PNG/JPEG/TIFF/DPX read into the same `Frame`.

Reading is guarded so a long-lived server can feed it untrusted files: OpenImageIO's errors
(damaged headers, missing or corrupt chunks) become `FrameIOError` naming the file and the
problem, and the header's claimed size is checked against `MAX_FRAME_BYTES` before any pixel
memory is allocated. Tiled / mip-mapped input is read at its full-resolution level and written
back as scanlines. A multi-view (stereo) EXR's views each have their RGB (`Frame.views`).
Multi-part and deep EXRs, and OpenImageIO's luminance-only reading of luminance/chroma EXRs,
are refused with a message saying so (see `Frame.rgb_indices`).

Known limit: pixels are float32, so "uint" (uint32) channels hold integers exactly only up to
2**24; larger IDs lose their low bits.

Writes are atomic: a temporary file in the destination folder (``.NAME.XXXXXXXX.tmp.EXT``, so a
later run can find the ones a killed process left: `temporary_target`), then `os.replace`,
so a killed process never leaves a half-written frame under the final name. The file is
encoded in memory and then copied there, because OpenImageIO's writers lose the system's reason
(a full disk is "File output failed."); the copy's OSError gives it (`FrameWriteError`).

Half-float storage (EXR half channels, float16 buffers): finite values beyond the half range
are clamped to ±`HALF_MAX` (`clamp_to_half`) instead of becoming ±Inf, and counted
(`beyond_half`) so callers report them, as they report NaN/Inf replaced on input. An Inf or NaN
that was in the input stays what it was (pass-through channels keep their bits).
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
import shutil
import tempfile
import uuid
from dataclasses import dataclass, field, replace
from typing import Any, Iterable, Iterator

import numpy as np
import OpenImageIO as oiio

from shotstyle.plugin.sequences import SequencePattern, format_frame_range, parse_frame_range
from shotstyle.server.errors import FrameIOError, FrameWriteError, MissingFramesError

# The most pixel memory (float32, all channels) one frame may claim before we allocate it:
# a damaged header announcing a gigantic window must not take the server down.
MAX_FRAME_BYTES = 8 << 30

EXR_COMPRESSIONS = ("none", "rle", "zips", "zip", "piz", "pxr24", "b44", "b44a", "dwaa", "dwab", "htj2k", "ht256")
DEFAULT_EXR_COMPRESSION = "zip"
UINT32_MAX = 4294967295.0
# Cores per thread reading or writing frames (each EXR read or write also uses OpenEXR's threads).
CORES_PER_IO_THREAD = 4
HALF_MAX = float(np.finfo(np.float16).max)  # 65504
# Where write_frame records Frame.colourspace, so read_frame gives the same space back.
COLOURSPACE_ATTRIBUTE = "shotstyle/colourspace"
MODEL_ATTRIBUTE = "shotstyle/model"   # hash of the model that stylized the frame (farm resume)
MIX_ATTRIBUTE = "shotstyle/mix"
# JSON of everything that decided a rendered frame's pixels (see cli/render/outputs.py).
IDENTITY_ATTRIBUTE = "shotstyle/identity"

_FORMAT_NAMES = {
    "half": "half", "float": "float", "uint": "uint", "uint32": "uint",
    "uint8": "uint8", "uint16": "uint16", "int8": "float", "int16": "float", "int": "float", "double": "float",
}
# Attributes OpenImageIO reports about how it read the file, or that only describe a tiled texture
# or its thumbnail (frames are written back as plain scanline images).
_READER_ATTRIBUTES = ("oiio:", "openexr:roundingmode", "textureformat", "wrapmodes", "thumbnail_")
# The process's umask (reading it means setting it), for the mode of written frames.
_UMASK = os.umask(0o022)
os.umask(_UMASK)
# Types of the standard EXR attributes, for attributes that arrive without one (e.g. over the wire).
_STANDARD_TYPES = {
    "screenWindowCenter": "float2", "chromaticities": "float[8]", "worldToCamera": "matrix",
    "worldToNDC": "matrix", "framesPerSecond": "rational2i", "smpte:TimeCode": "timecode",
    "smpte:KeyCode": "keycode", "adoptedNeutral": "float2",
}


@dataclass(frozen=True)
class View:
    """One view's colour channels in a Frame (a stereo EXR has two): indices of R, G, B and alpha."""

    name: str                      # its name in ``multiView``; "" for an ordinary image
    rgb: tuple[int, int, int]
    alpha: int | None


@dataclass
class Frame:
    """One image: the data window's pixels (H×W×C float32, channels in file order) plus its header.

    Frames that arrive as half raw buffers keep float16 pixels (server.payloads); every reader
    here gives float32, and `rgb()` is float32 either way."""

    pixels: np.ndarray
    channels: list[str]
    channel_formats: list[str]
    data_window: tuple[int, int, int, int]
    display_window: tuple[int, int, int, int]
    attributes: dict[str, Any]
    source: str | None = None
    colourspace: str | None = None
    nonfinite: int = 0
    # Values beyond the half range already clamped to ±HALF_MAX on the way here (the frame pipeline's half output,
    # a server's half-float reply).
    clamped: int = 0
    # OpenImageIO type names ("float2", "string[2]", "matrix"...) of `attributes`, so they write back as read.
    attribute_types: dict[str, str] = field(default_factory=dict)

    def _where(self) -> str:
        return self.source or "frame"

    def views(self) -> list["View"]:
        """Every view's colour channels: the image's own R, G, B (and A) first, then, in a multi-view
        (stereo) EXR, each other view that has its own (``left.R``, ``left.G``, ``left.B``, ``left.A``).

        By the OpenEXR convention the default view (first in ``multiView``) owns the plain channels
        and another view's carry its name before the channel's own. FrameIOError without R, G, B.
        """
        names = self.attributes.get("multiView")
        names = [str(n) for n in names] if isinstance(names, (list, tuple)) and names else [""]
        found = [View(names[0], self.rgb_indices(), self.alpha_index())]
        lowered = [c.lower() for c in self.channels]
        for name in names[1:]:
            prefix = name.lower() + "."
            if all(prefix + c in lowered for c in "rgb"):
                rgb = tuple(lowered.index(prefix + c) for c in "rgb")
                alpha = lowered.index(prefix + "a") if prefix + "a" in lowered else None
                found.append(View(name, rgb, alpha))  # type: ignore[arg-type]
        return found

    def rgb_indices(self) -> tuple[int, int, int]:
        """Indices of the R, G, B channels (plain or of the un-named layer); FrameIOError if there are none."""
        lowered = [c.lower() for c in self.channels]
        for names in (("r", "g", "b"), ("red", "green", "blue"), ("rgba.r", "rgba.g", "rgba.b")):
            if all(n in lowered for n in names):
                return tuple(lowered.index(n) for n in names)  # type: ignore[return-value]
        if "y" in lowered:
            raise FrameIOError(
                f"{self._where()}: luminance-only image (channels {', '.join(self.channels)}); shotstyle needs R, G, B. "
                "Luminance/chroma EXRs are read by OpenImageIO as luminance only: convert the file to RGB first."
            )
        raise FrameIOError(
            f"{self._where()}: no R, G, B channels (channels are {', '.join(self.channels)}); "
            "shuffle the colour layer into R, G, B before sending it to shotstyle"
        )

    def alpha_index(self) -> int | None:
        """Index of the alpha channel, or None."""
        lowered = [c.lower() for c in self.channels]
        for name in ("a", "alpha", "rgba.a"):
            if name in lowered:
                return lowered.index(name)
        return None

    def rgb(self) -> np.ndarray:
        """H×W×3 float32 copy of the RGB channels."""
        return np.ascontiguousarray(self.pixels[:, :, list(self.rgb_indices())], dtype=np.float32)

    def with_rgb(self, rgb: np.ndarray) -> "Frame":
        """A new Frame with RGB replaced by ``rgb`` (H×W×3); every other channel and the header unchanged."""
        return self.with_views([rgb], self.views()[:1])

    def with_views(self, rgbs: list[np.ndarray], views: list["View"]) -> "Frame":
        """A new Frame with each of ``views``' RGB replaced (H×W×3 each); every other channel and the header
        unchanged."""
        height, width = self.pixels.shape[:2]
        pixels = self.pixels.copy()
        for rgb, view in zip(rgbs, views):
            if rgb.shape != (height, width, 3):
                raise FrameIOError(f"{self._where()}: new RGB is {rgb.shape}, the frame needs {(height, width, 3)}")
            pixels[:, :, list(view.rgb)] = rgb
        return replace(self, pixels=pixels, attributes=dict(self.attributes),
                       attribute_types=dict(self.attribute_types), nonfinite=0, clamped=0)


def io_threads() -> int:
    """How many frames to read, or write, at once on this machine: one per `CORES_PER_IO_THREAD`
    cores, one on a small machine (its cores belong to the network)."""
    return max(1, int((os.cpu_count() or 1) // CORES_PER_IO_THREAD))


def _oiio_message(source: Any, path: str = "") -> str:
    """The pending OpenImageIO error of ``source`` (an ImageInput/ImageOutput or the oiio module), cleared.

    Repeated lines and the reader's own "(path): " prefixes are dropped: our messages start with the path.
    """
    try:
        text = source.geterror()
    except UnicodeDecodeError as error:
        # Damaged headers put raw bytes in channel/attribute names; the binding cannot decode them.
        text = bytes(error.object).decode("utf-8", "backslashreplace")
    if path:
        text = text.replace(f" ({path}): ", ": ")
    lines = [line.strip() for line in text.split("\n") if line.strip()]
    return "; ".join(dict.fromkeys(lines)) or "unknown OpenImageIO error"


def _clear_global_error() -> None:
    _oiio_message(oiio)


def _format_name(typedesc: Any) -> str:
    return _FORMAT_NAMES.get(str(typedesc), "float")


def _check_readable(path: str) -> None:
    if not os.path.exists(path):
        raise FrameIOError(f"{path}: no such file; check the path and frame number")
    if os.path.isdir(path):
        raise FrameIOError(f"{path}: is a folder, not an image file")
    if not os.access(path, os.R_OK):
        raise FrameIOError(f"{path}: not readable (permissions)")
    if os.path.getsize(path) == 0:
        raise FrameIOError(f"{path}: empty file (0 bytes); it was probably not written completely")


def _open(path: str) -> Any:
    _check_readable(path)
    inp = oiio.ImageInput.open(path)
    if inp is None:
        raise FrameIOError(f"{path}: cannot read this image: {_oiio_message(oiio, path)}")
    return inp


def _check_spec(path: str, inp: Any, spec: Any) -> None:
    """Refuse layouts we cannot round-trip and sizes no real frame has, before reading any pixel."""
    if spec.deep:
        raise FrameIOError(f"{path}: deep image data is not supported; flatten it first (e.g. oiiotool --flatten)")
    if inp.seek_subimage(1, 0):
        raise FrameIOError(
            f"{path}: multi-part file; shotstyle reads single-part images only: "
            "split the parts first (e.g. oiiotool --subimage 0)"
        )
    if not inp.seek_subimage(0, 0):
        raise FrameIOError(f"{path}: cannot go back to the first image: {_oiio_message(inp)}")
    _oiio_message(inp)  # seeking past the last part leaves an error behind
    _clear_global_error()
    if spec.width <= 0 or spec.height <= 0 or spec.nchannels <= 0:
        raise FrameIOError(f"{path}: damaged header: {spec.width}×{spec.height} pixels with {spec.nchannels} channels")
    if spec.depth > 1:
        raise FrameIOError(f"{path}: volume images (depth {spec.depth}) are not supported")
    claimed = spec.width * spec.height * spec.nchannels * 4
    if claimed > MAX_FRAME_BYTES:
        raise FrameIOError(
            f"{path}: header claims {spec.width}×{spec.height} pixels × {spec.nchannels} channels "
            f"({claimed / (1 << 30):.1f} GiB as float), over the {MAX_FRAME_BYTES >> 30} GiB limit: damaged or not a frame"
        )
    names = list(spec.channelnames)
    if len(set(names)) != len(names) or any(not n.isprintable() or not n for n in names):
        raise FrameIOError(f"{path}: damaged header: bad channel names {names!r}")


def default_colourspace(formats: list[str], attributes: dict[str, Any] | None = None) -> str:
    """The one rule for the colour space of a frame's RGB when none is given.

    The space shotstyle recorded in the frame (`COLOURSPACE_ATTRIBUTE`), else by its storage:
    "ACEScg" (scene-linear) for half/float data, "sRGB" for 8/16-bit integer data. Files, raw
    buffers and the previews a training sends back all follow it.
    """
    recorded = (attributes or {}).get(COLOURSPACE_ATTRIBUTE)
    if isinstance(recorded, str) and recorded:
        return recorded
    return "ACEScg" if any(f in ("half", "float") for f in formats) else "sRGB"


def _header(path: str, spec: Any) -> tuple[dict[str, Any], dict[str, str]]:
    attributes: dict[str, Any] = {}
    types: dict[str, str] = {}
    for param in spec.extra_attribs:
        if param.name.startswith(_READER_ATTRIBUTES):
            continue
        try:
            value = param.value
        except UnicodeDecodeError:
            raise FrameIOError(f"{path}: damaged header: attribute {param.name!r} holds bytes that are not text")
        attributes[param.name] = value
        types[param.name] = str(param.type)
    return attributes, types


def _read_uint_channels(path: str, inp: Any, pixels: np.ndarray, formats: list[str]) -> None:
    """Put the integer values of uint32 channels (IDs) into ``pixels``: reading as float scales them to 0-1."""
    for index, kind in enumerate(formats):
        if kind == "uint":
            values = inp.read_image(0, 0, index, index + 1, "uint")
            if values is None:
                raise FrameIOError(f"{path}: damaged image data: {_oiio_message(inp, path)}")
            pixels[:, :, index] = np.asarray(values).reshape(pixels.shape[:2])


def read_frame(path: str, colourspace: str | None = None) -> Frame:
    """Read one image file (EXR/PNG/JPEG/TIFF/DPX...) into a Frame; FrameIOError on anything wrong.

    ``colourspace`` is recorded on the Frame; None means `default_colourspace` (the one shotstyle
    recorded in the file, else by data type). ``Frame.nonfinite`` counts NaN/Inf RGB values.
    """
    path = os.fspath(path)
    inp = _open(path)
    try:
        spec = inp.spec()
        _check_spec(path, inp, spec)
        pixels = inp.read_image(0, 0, 0, spec.nchannels, "float")
        if pixels is None:
            raise FrameIOError(f"{path}: damaged or truncated image data: {_oiio_message(inp, path)}")
        if inp.has_error:
            raise FrameIOError(f"{path}: damaged image data: {_oiio_message(inp, path)}")
        formats = [_format_name(f) for f in spec.channelformats] or [_format_name(spec.format)] * spec.nchannels
        pixels = np.asarray(pixels, dtype=np.float32).reshape(spec.height, spec.width, spec.nchannels)
        if "uint" in formats:
            _read_uint_channels(path, inp, pixels, formats)
        attributes, types = _header(path, spec)
    finally:
        inp.close()
        _clear_global_error()
    frame = Frame(
        pixels=pixels,
        channels=list(spec.channelnames),
        channel_formats=formats,
        data_window=(spec.x, spec.y, spec.width, spec.height),
        display_window=(spec.full_x, spec.full_y, spec.full_width, spec.full_height),
        attributes=attributes,
        source=path,
        colourspace=colourspace or default_colourspace(formats, attributes),
        attribute_types=types,
    )
    try:
        rgb = pixels[:, :, list(frame.rgb_indices())]
        frame.nonfinite = int(np.count_nonzero(~np.isfinite(rgb)))
    except FrameIOError:
        frame.nonfinite = 0
    return frame


def _attribute_type(name: str, value: Any, recorded: str | None) -> Any:
    """The OpenImageIO TypeDesc to write attribute ``name`` with, or None to let OpenImageIO infer it."""
    for candidate in (recorded, _STANDARD_TYPES.get(name)):
        if candidate:
            typedesc = oiio.TypeDesc(candidate)
            if str(typedesc) != "unknown":
                return typedesc
    if isinstance(value, (tuple, list)) and value and all(isinstance(v, str) for v in value):
        return oiio.TypeDesc(f"string[{len(value)}]")
    return None


def _output_format(ext: str, formats: list[str]) -> Any:
    """Pixel storage for the file: per channel for EXR, the widest channel type otherwise."""
    if ext == "exr":
        # 8-bit values survive half exactly (to the 8-bit step); 16-bit ones need float.
        return [oiio.TypeDesc({"uint8": "half", "uint16": "float"}.get(f, f)) for f in formats]
    for kind in ("float", "half", "uint", "uint16", "uint8"):
        if kind in formats:
            return oiio.TypeDesc({"uint": "uint16"}.get(kind, kind))
    return oiio.TypeDesc("float")


def _build_spec(path: str, frame: Frame, compression: str | None, extra: dict | None, ext: str) -> Any:
    """The ImageSpec to write ``frame`` as file type ``ext`` ("exr", "png"...); messages name ``path``."""
    height, width, nchannels = frame.pixels.shape
    if len(frame.channels) != nchannels or len(frame.channel_formats) != nchannels:
        raise FrameIOError(
            f"{path}: frame has {nchannels} channels of pixels but {len(frame.channels)} names "
            f"and {len(frame.channel_formats)} formats"
        )
    if frame.data_window[2:] != (width, height):
        raise FrameIOError(f"{path}: data window {frame.data_window} does not match the {width}×{height} pixels")
    pixel_format = _output_format(ext, frame.channel_formats)
    if isinstance(pixel_format, list):
        # OpenImageIO writes spec.format when all channels agree, so it must be the real type.
        spec = oiio.ImageSpec(width, height, nchannels, pixel_format[0])
        if len({str(f) for f in pixel_format}) > 1:
            spec.channelformats = tuple(pixel_format)
    else:
        spec = oiio.ImageSpec(width, height, nchannels, pixel_format)
    spec.channelnames = tuple(frame.channels)
    spec.x, spec.y = frame.data_window[:2]
    spec.full_x, spec.full_y, spec.full_width, spec.full_height = frame.display_window
    alpha = frame.alpha_index()
    spec.alpha_channel = -1 if alpha is None else alpha
    attributes = dict(frame.attributes)
    if frame.colourspace:
        attributes[COLOURSPACE_ATTRIBUTE] = frame.colourspace
    attributes.update(extra or {})
    for name, value in attributes.items():
        if name == "compression" or value is None:
            continue
        typedesc = _attribute_type(name, value, frame.attribute_types.get(name))
        if typedesc is None:
            spec.attribute(name, value)
        else:
            spec.attribute(name, typedesc, value)
    if ext == "exr":
        spec.attribute("compression", exr_compression(path, compression, frame.attributes.get("compression")))
    elif compression:
        spec.attribute("compression", compression)
    return spec


def exr_compression(path: str, chosen: str | None, own: Any = None) -> str:
    """The compression an EXR is written with: ``chosen``, else the frame's ``own`` (if an EXR one), else zip.

    FrameIOError (naming ``path``) for an unknown ``chosen``.
    """
    if chosen:
        if chosen.lower().split(":")[0] not in EXR_COMPRESSIONS:
            raise FrameIOError(f"{path}: unknown EXR compression {chosen!r}; "
                               f"choose one of {', '.join(EXR_COMPRESSIONS)}")
        return chosen.lower()
    if isinstance(own, str) and own.lower().split(":")[0] in EXR_COMPRESSIONS:
        return own.lower()
    return DEFAULT_EXR_COMPRESSION


def beyond_half(pixels: np.ndarray, channels: list[int] | None = None) -> int:
    """How many finite values of ``pixels`` (in ``channels``; None: all) lie beyond the half-float range."""
    values = pixels if channels is None else pixels[..., channels]
    count = int(np.count_nonzero(np.abs(values) > HALF_MAX))  # NaN is not counted, ±Inf is: taken off below
    return count - int(np.count_nonzero(np.isinf(values))) if count else 0


def clamp_to_half(pixels: np.ndarray, channels: list[int] | None = None) -> np.ndarray:
    """``pixels`` with finite values beyond the half-float range (in ``channels``; None: all) clamped to
    ±HALF_MAX: a copy when there are any, else ``pixels`` itself. ±Inf and NaN stay as they are."""
    if not beyond_half(pixels, channels):
        return pixels
    out = np.array(pixels, copy=True)
    view = out if channels is None else out[..., channels]
    finite = np.isfinite(view)
    clipped = np.where(finite, np.clip(view, -HALF_MAX, HALF_MAX), view)
    if channels is None:
        out[...] = clipped
    else:
        out[..., channels] = clipped
    return out


def half_channels(frame: Frame) -> list[int]:
    """Indices of the channels an EXR of ``frame`` stores as half floats."""
    return [i for i, f in enumerate(_output_format("exr", frame.channel_formats)) if str(f) == "half"]


def _temporary_affixes(path: str) -> tuple[str, str]:
    """(prefix, suffix) of `write_frame`'s temporary names for ``path``; mkstemp puts 8 characters between."""
    base, ext = os.path.splitext(os.path.basename(path))
    return f".{base}.", f".tmp{ext}"


_TEMPORARY_NAME = re.compile(r"\.(.+)\.[a-z0-9_]{8}\.tmp(\.[^.]+)?")


def temporary_target(path: str) -> str | None:
    """The file a `write_frame` temporary file at ``path`` was to become, or None if it is not one."""
    folder, name = os.path.split(path)
    match = _TEMPORARY_NAME.fullmatch(name)
    return os.path.join(folder, match.group(1) + (match.group(2) or "")) if match else None


def write_frame(path: str, frame: Frame, compression: str | None = None, attributes: dict | None = None) -> int:
    """Write ``frame`` to ``path`` atomically; the file type follows the extension.

    EXR keeps both windows, per-channel half/float, metadata and (unless ``compression`` names
    another: "zip", "piz", "dwaa"...) the frame's own compression. ``attributes`` are merged into
    the metadata (e.g. ``{"shotstyle/model": hash}``). Returns how many values were beyond the
    half-float range of their channel and clamped (see the module docstring).
    """
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise FrameIOError(f"{path}: the folder {folder} does not exist; create it first")
    file_format = os.path.splitext(path)[1].lower().lstrip(".")
    spec = _build_spec(path, frame, compression, attributes, file_format)
    with _memory_file(file_format) as encoded:
        clamped = _write_image(encoded, path, frame, spec, file_format)
        temporary = None
        try:
            prefix, suffix = _temporary_affixes(path)
            handle, temporary = tempfile.mkstemp(prefix=prefix, suffix=suffix, dir=folder)
            os.close(handle)
            shutil.copyfile(encoded, temporary)
            os.chmod(temporary, 0o666 & ~_UMASK)  # mkstemp makes it 0600; a frame gets the usual mode
            os.replace(temporary, path)
        except BaseException as exc:
            if temporary is not None and os.path.exists(temporary):
                os.unlink(temporary)
            if isinstance(exc, OSError):
                raise FrameWriteError(f"{path}: cannot write it into {folder} ({exc.strerror or exc}); "
                                      "free space there, or write somewhere else") from None
            raise
    return clamped


def _write_image(target: str, path: str, frame: Frame, spec: Any, file_format: str) -> int:
    """Write ``frame`` with ``spec`` into ``target`` as ``file_format``; messages name ``path``.

    Returns how many values were clamped to the half-float range."""
    try:
        out = oiio.ImageOutput.create(file_format)
        if out is None:
            raise FrameIOError(f"{path}: cannot write this file type: {_oiio_message(oiio)}")
        try:
            if not out.open(target, spec):
                raise FrameIOError(f"{path}: cannot open for writing: {_oiio_message(out)}")
            pixels, clamped = _pixels_for_writing(frame, spec)
            if not out.write_image(pixels):
                raise FrameIOError(f"{path}: writing failed: {_oiio_message(out)}")
        finally:
            closed = out.close()
        if not closed:
            raise FrameIOError(f"{path}: finishing the file failed: {_oiio_message(out)}")
    except BaseException:
        _clear_global_error()
        raise
    return clamped


def _pixels_for_writing(frame: Frame, spec: Any) -> tuple[np.ndarray, int]:
    """float32 pixels as OpenImageIO converts them, and how many were clamped to the half range.

    uint32 channels are taken as 0-1 by OpenImageIO, so IDs are scaled down; values beyond the
    half range in half channels are clamped (OpenImageIO would write them as ±Inf).
    """
    pixels = np.ascontiguousarray(frame.pixels, dtype=np.float32)
    formats = [str(f) for f in spec.channelformats] or [str(spec.format)] * spec.nchannels
    uint_channels = [i for i, f in enumerate(formats) if f == "uint"]
    if uint_channels:
        pixels = pixels.copy()
        ids = np.minimum(np.maximum(np.rint(pixels[:, :, uint_channels].astype(np.float64)), 0.0), UINT32_MAX)
        pixels[:, :, uint_channels] = ids / UINT32_MAX
    halves = [i for i, f in enumerate(formats) if f == "half"]
    clamped = beyond_half(pixels, halves) if halves else 0
    return (clamp_to_half(pixels, halves) if clamped else pixels), clamped


# memfd, and /proc to reach it by a path (Linux).
_HAVE_MEMFD = hasattr(os, "memfd_create") and os.path.isdir("/proc/self/fd")


@contextlib.contextmanager
def _memory_file(ext: str, data: Any = None) -> Iterator[str]:
    """A path ending in ``.ext`` whose bytes (``data``, if given) live in memory, for OpenImageIO.

    OpenImageIO's Python binding (3.2) has no in-memory I/O (its C++ IOProxy is not exposed), so
    bytes are decoded and encoded through a file that is RAM: an anonymous memfd, reached through
    a symlink that carries the extension OpenImageIO picks its reader by (a damaged EXR then
    gets the EXR reader's diagnosis, and no other format's reader sees the bytes). Without memfd
    and /proc (macOS), a temporary file.
    """
    link = os.path.join(_memory_folder(), f"shotstyle-{os.getpid()}-{uuid.uuid4().hex}.{ext}")
    if _HAVE_MEMFD:
        fd = os.memfd_create("shotstyle-frame", os.MFD_CLOEXEC)
        try:
            if data is not None:
                with open(fd, "wb", closefd=False) as handle:
                    handle.write(data)
            os.symlink(f"/proc/self/fd/{fd}", link)
            try:
                yield link
            finally:
                os.unlink(link)
        finally:
            os.close(fd)
        return
    try:
        if data is not None:
            with open(link, "wb") as handle:
                handle.write(data)
        yield link
    finally:
        if os.path.exists(link):
            os.unlink(link)


@functools.lru_cache(maxsize=None)
def _memory_folder() -> str:
    """Where `_memory_file` puts its names: /dev/shm where there is one (RAM), else the temp folder.

    The first call in a process removes the names left by processes that died holding one (a
    decoder killed by a damaged file): names carry their process id.
    """
    shm = "/dev/shm"
    folder = shm if os.path.isdir(shm) and os.access(shm, os.W_OK) else tempfile.gettempdir()
    for name in os.listdir(folder):
        match = _MEMORY_NAME.fullmatch(name)
        if match and not _process_alive(int(match.group(1))):
            with contextlib.suppress(OSError):
                os.unlink(os.path.join(folder, name))
    return folder


_MEMORY_NAME = re.compile(r"shotstyle-(\d+)-[0-9a-f]{32}\.[a-z0-9]+")


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def encode_exr_bytes(frame: Frame, compression: str | None = None) -> bytes:
    """The bytes of an EXR file holding ``frame`` (as `write_frame` would write it), made in memory."""
    label = f"{frame.source or 'frame'} (as EXR bytes)"
    spec = _build_spec(label, frame, compression, None, "exr")
    with _memory_file("exr") as path:
        _write_image(path, label, frame, spec, "exr")
        with open(path, "rb") as handle:
            return handle.read()


def decode_image_bytes(data: Any, ext: str = "exr", colourspace: str | None = None) -> Frame:
    """A Frame from the bytes of an image file (e.g. received over the wire); FrameIOError if damaged.

    Decoded in memory (see `_memory_file`); messages name the image by its type and size.
    """
    ext = ext.lower().lstrip(".")
    if not ext.isalnum():
        raise FrameIOError(f"image bytes: bad file type {ext!r}; use exr, png, jpg, tif or dpx")
    size = memoryview(data).nbytes
    with _memory_file(ext, data) as path:
        try:
            frame = read_frame(path, colourspace)
        except FrameIOError as error:
            raise FrameIOError(str(error).replace(path, f"received {ext} image ({size} bytes)")) from None
    frame.source = None
    return frame


def probe(path: str) -> dict:
    """Header-only description of an image file (what `shotstyle info` prints); FrameIOError if unreadable."""
    path = os.fspath(path)
    inp = _open(path)
    try:
        spec = inp.spec()
        file_format = inp.format_name()
        miplevels = 1
        while inp.seek_subimage(0, miplevels):
            miplevels += 1
        _check_spec(path, inp, spec)
        formats = [_format_name(f) for f in spec.channelformats] or [_format_name(spec.format)] * spec.nchannels
        attributes, _ = _header(path, spec)
        colourspace = spec.get_string_attribute("oiio:ColorSpace") or None
    finally:
        inp.close()
        _clear_global_error()
    return {
        "path": path,
        "format": file_format,
        "width": spec.width,
        "height": spec.height,
        "data_window": (spec.x, spec.y, spec.width, spec.height),
        "display_window": (spec.full_x, spec.full_y, spec.full_width, spec.full_height),
        "channels": list(spec.channelnames),
        "channel_formats": formats,
        "compression": attributes.get("compression"),
        "pixel_aspect": attributes.get("PixelAspectRatio", 1.0),
        "tiled": (spec.tile_width, spec.tile_height) if spec.tile_width else None,
        "miplevels": miplevels,
        "file_colourspace": colourspace,
        "colourspace": default_colourspace(formats, attributes),
        "attributes": attributes,
    }


def sequence_paths(pattern: str, frames: str | Iterable[int] | None = None) -> list[tuple[int, str]]:
    """(frame, path) for each frame of ``pattern`` (``shot.####.exr``...) in ``frames``.

    ``frames``: a range text ("1001-1100x2"), frame numbers, or None for every frame on disk.
    MissingFramesError (with ``.missing``) if any asked-for frame has no file; FrameIOError if none exist.
    """
    sequence = SequencePattern(pattern)
    if frames is None:
        wanted = sequence.scan()
        if not wanted:
            raise FrameIOError(f"{pattern}: no frames of this sequence on disk; check the folder and the pattern")
    else:
        wanted = parse_frame_range(frames) if isinstance(frames, str) else sorted(set(frames))
        missing = sequence.missing(wanted)
        if missing:
            present = sequence.scan()
            found = f"frames on disk: {format_frame_range(present)}" if present else "no frames on disk"
            raise MissingFramesError(
                f"{pattern}: {len(missing)} of {len(wanted)} frames missing: {format_frame_range(missing)} ({found})",
                missing,
            )
    return [(frame, sequence.path(frame)) for frame in wanted]


def read_sequence(pattern: str, frames: str | Iterable[int] | None = None,
                  colourspace: str | None = None) -> Iterator[tuple[int, Frame]]:
    """(frame, Frame) for each frame of a sequence, read lazily; checks for missing frames up front."""
    for frame, path in sequence_paths(pattern, frames):
        yield frame, read_frame(path, colourspace)
