"""Reading image files and image bytes into Frames, guarded for untrusted input: OpenImageIO's
errors become `FrameIOError` naming the file, and a header's claimed size is checked against
`MAX_FRAME_BYTES` before any pixel memory is allocated; a header read alone (`probe`); the files
of a sequence, every asked-for frame present (`sequence_paths`)."""

from __future__ import annotations

import os
from typing import Any, Iterable, Iterator

import numpy as np
import OpenImageIO as oiio

from shotstyle.media.frame import Frame
from shotstyle.media.iccprofile import IccProfile, describe
from shotstyle.media.memoryfiles import memory_file
from shotstyle.media.metadata import colourspace_rule, header_attributes, header_chromaticities, not_kept
from shotstyle.media.oiiomessages import clear_global_error, oiio_message
from shotstyle.plugin.sequences import SequencePattern, format_frame_range, parse_frame_range
from shotstyle.server.errors import FrameIOError, MissingFramesError


# The most pixel memory (float32, all channels) one frame may claim before we allocate it:
# a damaged header announcing a gigantic window must not take the server down.
MAX_FRAME_BYTES = 8 << 30


_FORMAT_NAMES = {
    "half": "half", "float": "float", "uint": "uint", "uint32": "uint",
    "uint8": "uint8", "uint16": "uint16", "int8": "float", "int16": "float", "int": "float", "double": "float",
}


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


def _readable_extensions() -> set[str]:
    """The file name extensions OpenImageIO here has a reader for."""
    listed = str(oiio.get_string_attribute("extension_list"))
    return {ext for entry in listed.split(";") for ext in entry.partition(":")[2].split(",") if ext}


def _open(path: str) -> Any:
    _check_readable(path)
    inp = oiio.ImageInput.open(path)
    if inp is None:
        message = oiio_message(oiio, path)
        extension = os.path.splitext(path)[1].lower().lstrip(".")
        if extension and extension not in _readable_extensions():   # e.g. a phone's HEIC, a camera's raw file
            raise FrameIOError(f"{path}: OpenImageIO here has no reader for .{extension} files; save the image as "
                               "EXR, TIFF, PNG or JPEG first")
        raise FrameIOError(f"{path}: cannot read this image: {message}")
    return inp


def _check_single_part(path: str, inp: Any) -> None:
    """Refuse a file of several images (parts, subimages), leaving the reader at the first. A reader
    sent to a second image and back may report errors its next read did not have (OpenImageIO's WebP
    reader does): `read_frame` checks this after reading the pixels."""
    if inp.seek_subimage(1, 0):
        raise FrameIOError(
            f"{path}: multi-part file; shotstyle reads single-part images only: "
            "split the parts first (e.g. oiiotool --subimage 0)"
        )
    if not inp.seek_subimage(0, 0):
        raise FrameIOError(f"{path}: cannot go back to the first image: {oiio_message(inp)}")
    oiio_message(inp)  # seeking past the last part leaves an error behind
    clear_global_error()


def _check_spec(path: str, spec: Any) -> None:
    """Refuse layouts we cannot round-trip and sizes no real frame has, before reading any pixel."""
    if spec.deep:
        raise FrameIOError(f"{path}: deep image data is not supported; flatten it first (e.g. oiiotool --flatten)")
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


def _read_uint_channels(path: str, inp: Any, pixels: np.ndarray, formats: list[str]) -> None:
    """Put the integer values of uint32 channels (IDs) into ``pixels``: reading as float scales them to 0-1."""
    for index, kind in enumerate(formats):
        if kind == "uint":
            values = inp.read_image(0, 0, index, index + 1, "uint")
            if values is None:
                raise FrameIOError(f"{path}: damaged image data: {oiio_message(inp, path)}")
            pixels[:, :, index] = np.asarray(values).reshape(pixels.shape[:2])


def _grey_as_rgb(pixels: np.ndarray, channels: list[str], formats: list[str]) -> tuple[np.ndarray, list[str], list[str]]:
    """A grey PNG/JPEG/TIFF/DPX image (OpenImageIO's channels Y or Y, A) as R = G = B (and its A),
    as compositing hosts read one: a black-and-white photograph is a style like any other. (An
    EXR's Y is the luminance of a luminance/chroma file, whose colour OpenImageIO drops: refused.)"""
    order = [0, 0, 0, *range(1, len(channels))]
    return (np.ascontiguousarray(pixels[:, :, order]), ["R", "G", "B", *channels[1:]],
            [formats[i] for i in order])


def read_frame(path: str, colourspace: str | None = None, half: bool = False) -> Frame:
    """Read one image file (EXR/PNG/JPEG/TIFF/DPX...) into a Frame; FrameIOError on anything wrong.

    ``colourspace`` is recorded on the Frame; None means `metadata.colourspace_rule` (the one
    shotstyle recorded in the file, else what its header or embedded ICC profile says, else by data
    type), and where that rule decodes by the profile's own curves, the RGB is decoded so (linear
    light on the profile's primaries). ``Frame.nonfinite`` counts NaN/Inf RGB values.
    Pixels are float32, or with ``half`` float16 when every channel is stored half (a render
    that writes half again then makes no float32 copy of the frame).
    """
    path = os.fspath(path)
    inp = _open(path)
    try:
        spec = inp.spec()
        _check_spec(path, spec)
        file_format = inp.format_name()
        formats = [_format_name(f) for f in spec.channelformats] or [_format_name(spec.format)] * spec.nchannels
        as_half = half and set(formats) == {"half"}
        pixels = inp.read_image(0, 0, 0, spec.nchannels, "half" if as_half else "float")
        if pixels is None:
            raise FrameIOError(f"{path}: damaged or truncated image data: {oiio_message(inp, path)}")
        if inp.has_error:
            raise FrameIOError(f"{path}: damaged image data: {oiio_message(inp, path)}")
        pixels = np.asarray(pixels, dtype=np.float16 if as_half else np.float32).reshape(
            spec.height, spec.width, spec.nchannels)
        if "uint" in formats:
            _read_uint_channels(path, inp, pixels, formats)
        _check_single_part(path, inp)   # after the pixels: see there
        attributes, types = header_attributes(path, spec)
        channels = list(spec.channelnames)
        if inp.format_name() != "openexr" and channels[:1] == ["Y"] and channels[1:] in ([], ["A"]):
            pixels, channels, formats = _grey_as_rgb(pixels, channels, formats)
    finally:
        inp.close()
        clear_global_error()
    space, decoding = colourspace_rule(formats, attributes, file_format)
    frame = Frame(
        pixels=pixels,
        channels=channels,
        channel_formats=formats,
        data_window=(spec.x, spec.y, spec.width, spec.height),
        display_window=(spec.full_x, spec.full_y, spec.full_width, spec.full_height),
        attributes=attributes,
        source=path,
        colourspace=colourspace or space,
        attribute_types=types,
        tiles=(spec.tile_width, spec.tile_height) if spec.tile_width > 0 and spec.tile_height > 0 else None,
    )
    if colourspace is None and decoding is not None:
        _decode_profile(frame, decoding)
    try:
        rgb = pixels[:, :, list(frame.rgb_indices())]
        frame.nonfinite = int(np.count_nonzero(~np.isfinite(rgb)))
    except FrameIOError:
        frame.nonfinite = 0
    return frame


def _decode_profile(frame: Frame, profile: IccProfile) -> None:
    """Each view's RGB decoded in place by an embedded profile's own curves to linear light (its alpha
    associated, as OpenImageIO reads it: the curves apply to the colour, then alpha again)."""
    pixels = frame.pixels
    for view in frame.views():
        rgb = pixels[:, :, list(view.rgb)].astype(np.float32)
        alpha = None if view.alpha is None else pixels[:, :, view.alpha:view.alpha + 1].astype(np.float32)
        if alpha is not None:
            rgb = np.divide(rgb, alpha, out=np.zeros_like(rgb), where=alpha > 0)
        linear = profile.to_linear(rgb)
        pixels[:, :, list(view.rgb)] = linear if alpha is None else linear * alpha


def decode_image_bytes(data: Any, ext: str = "exr", colourspace: str | None = None) -> Frame:
    """A Frame from the bytes of an image file (e.g. received over the wire); FrameIOError if damaged.

    Decoded in memory (see `memory_file`); messages name the image by its type and size.
    """
    ext = ext.lower().lstrip(".")
    if not ext.isalnum():
        raise FrameIOError(f"image bytes: bad file type {ext!r}; use exr, png, jpg, tif or dpx")
    size = memoryview(data).nbytes
    with memory_file(ext, data) as path:
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
        _check_single_part(path, inp)
        _check_spec(path, spec)
        formats = [_format_name(f) for f in spec.channelformats] or [_format_name(spec.format)] * spec.nchannels
        attributes, _ = header_attributes(path, spec)
        colourspace = spec.get_string_attribute("oiio:ColorSpace") or None
        profile = describe(attributes)
        space, decoding = colourspace_rule(formats, attributes, file_format)
    finally:
        inp.close()
        clear_global_error()
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
        "not_kept": not_kept(spec, miplevels),
        "file_colourspace": colourspace,
        "colourspace": space,
        "icc_decoded": decoding is not None,   # the embedded profile's own curves decode the RGB (`colourspace_rule`)
        "chromaticities": header_chromaticities(attributes),
        "icc_profile": None if profile is None else profile.summary(),
        "attributes": attributes,
    }


# EXIF ColorSpace (tag 0xA001) 0xFFFF, "uncalibrated": anything but sRGB, most often a camera's Adobe RGB
# (the camera rule DCF gives such files: an Adobe RGB profile, or none).
UNCALIBRATED = ("Exif:ColorSpace", 0xFFFF)
# A DPX header's transfer characteristic for log data (a film scan's printing density, a camera's log).
LOG_TRANSFERS = ("Printing density", "Logarithmic")


def colour_doubt(header: dict) -> str | None:
    """Why the default colour space `probe` gives a file (``header``) may not be what its RGB is, in
    words, or None: an embedded ICC profile shotstyle cannot read, EXIF saying "not sRGB" without a
    profile saying what, a DPX header saying its values are logarithmic."""
    profile, attributes, space = header["icc_profile"], header["attributes"], header["colourspace"]
    if profile is not None and profile["primaries"] is None:
        return f"its {profile['said']} is not one shotstyle can read ({profile['why']}); its RGB is read as {space}"
    if profile is None and attributes.get(UNCALIBRATED[0]) == UNCALIBRATED[1]:
        return (f"its EXIF says its colours are uncalibrated and it embeds no ICC profile (a camera set to Adobe RGB "
                f"writes this); its RGB is read as {space}")
    if header["format"] == "dpx" and attributes.get("dpx:Transfer") in LOG_TRANSFERS:
        return (f"its header says its values are logarithmic (dpx:Transfer {attributes['dpx:Transfer']}); they are "
                f"read as {space} (the studio config, ocio://studio-config-latest, has ADX10 and the cameras' logs)")
    return None


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
