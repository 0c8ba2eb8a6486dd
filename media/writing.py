"""Writing Frames as image files, atomically (a temporary file in the destination folder, then
`os.replace`), and as EXR bytes in memory: windows, per-channel half/float, metadata, compression
and an EXR's tiling kept; the system's reason for a failed write (a full disk) given (`FrameWriteError`)."""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from typing import Any

import numpy as np
import OpenImageIO as oiio

from shotstyle.media.frame import Frame, beyond_half, clamp_to_half
from shotstyle.media.memoryfiles import memory_file
from shotstyle.media.metadata import COLOURSPACE_ATTRIBUTE, attribute_type
from shotstyle.media.oiiomessages import clear_global_error, oiio_message
from shotstyle.server.errors import FrameIOError, FrameWriteError


EXR_COMPRESSIONS = ("none", "rle", "zips", "zip", "piz", "pxr24", "b44", "b44a", "dwaa", "dwab", "htj2k", "ht256")
DEFAULT_EXR_COMPRESSION = "zip"
UINT32_MAX = 4294967295.0


# The process's umask (reading it means setting it), for the mode of written frames.
_UMASK = os.umask(0o022)
os.umask(_UMASK)


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
        typedesc = attribute_type(name, value, frame.attribute_types.get(name))
        if typedesc is None:
            spec.attribute(name, value)
        else:
            spec.attribute(name, typedesc, value)
    if ext == "exr":
        spec.attribute("compression", exr_compression(path, compression, frame.attributes.get("compression")))
        if frame.tiles is not None:
            spec.tile_width, spec.tile_height = frame.tiles
            spec.tile_depth = 1
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
    with memory_file(file_format) as encoded:
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
            raise FrameIOError(f"{path}: cannot write this file type: {oiio_message(oiio)}")
        try:
            if not out.open(target, spec):
                raise FrameIOError(f"{path}: cannot open for writing: {oiio_message(out)}")
            pixels, clamped = _pixels_for_writing(frame, spec)
            if not out.write_image(pixels):
                raise FrameIOError(f"{path}: writing failed: {oiio_message(out)}")
        finally:
            closed = out.close()
        if not closed:
            raise FrameIOError(f"{path}: finishing the file failed: {oiio_message(out)}")
    except BaseException:
        clear_global_error()
        raise
    return clamped


def _pixels_for_writing(frame: Frame, spec: Any) -> tuple[np.ndarray, int]:
    """float32 pixels as OpenImageIO converts them, and how many were clamped to the half range.

    uint32 channels are taken as 0-1 by OpenImageIO, so IDs are scaled down; values beyond the
    half range in half channels are clamped (OpenImageIO would write them as ±Inf). Half pixels
    for channels that are all stored half go as they are (no conversion, nothing to clamp).
    """
    formats = [str(f) for f in spec.channelformats] or [str(spec.format)] * spec.nchannels
    if frame.pixels.dtype == np.float16 and set(formats) == {"half"}:
        return np.ascontiguousarray(frame.pixels), 0
    pixels = np.ascontiguousarray(frame.pixels, dtype=np.float32)
    uint_channels = [i for i, f in enumerate(formats) if f == "uint"]
    if uint_channels:
        pixels = pixels.copy()
        ids = np.minimum(np.maximum(np.rint(pixels[:, :, uint_channels].astype(np.float64)), 0.0), UINT32_MAX)
        pixels[:, :, uint_channels] = ids / UINT32_MAX
    halves = [i for i, f in enumerate(formats) if f == "half"]
    clamped = beyond_half(pixels, halves) if halves else 0
    return (clamp_to_half(pixels, halves) if clamped else pixels), clamped


def encode_exr_bytes(frame: Frame, compression: str | None = None) -> bytes:
    """The bytes of an EXR file holding ``frame`` (as `write_frame` would write it), made in memory."""
    label = f"{frame.source or 'frame'} (as EXR bytes)"
    spec = _build_spec(label, frame, compression, None, "exr")
    with memory_file("exr") as path:
        _write_image(path, label, frame, spec, "exr")
        with open(path, "rb") as handle:
            return handle.read()
