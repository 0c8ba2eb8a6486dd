"""Frame payload framing: how one frame travels in a protocol message (standard library only).

Two lossless encodings:

* ``"file"``: the bytes of an image file, as a host writes it (EXR, with header, windows,
  extra channels and metadata intact); ``header = {"format": "exr"|"png"|"jpg"|"tif"|"dpx"}``.
* ``"raw"``: an interleaved pixel buffer (rows top to bottom, channels in ``channels`` order)
  with a small header, the fast path for local clients and the farm::

      {"width", "height", "channels": [...], "formats": [...per channel "half"|"float"|...],
       "dtype": "float16"|"float32", "data_window": [x, y, w, h], "display_window": [x, y, w, h],
       "attributes": {...JSON-able}, optional "colourspace": "ACEScg"|"sRGB"|...
       (default: the rule files follow, by "formats": ACEScg for half/float, sRGB for 8/16-bit)}

In a message, each frame is a descriptor in the JSON header (``{"kind", "frame", "size",
"header", "part"}``) plus one zero-copy payload part.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

from shotstyle.plugin.protocol import (MAX_FRAME_CHANNELS, MAX_FRAME_DIMENSION, MAX_MESSAGE_BYTES,
                                       ProtocolError)

FILE_FORMATS = {".exr": "exr", ".png": "png", ".jpg": "jpg", ".jpeg": "jpg", ".tif": "tif",
                ".tiff": "tif", ".dpx": "dpx"}
RAW_DTYPES = {"float16": 2, "float32": 4}
KINDS = ("file", "raw")

Buffer = Union[bytes, bytearray, memoryview]


@dataclass
class EncodedFrame:
    """One frame ready for the wire; ``frame`` tags it with its frame number."""

    kind: str
    header: Dict[str, Any]
    data: Any  # bytes or memoryview (or any buffer-protocol object)
    frame: Optional[int] = None
    extra: Dict[str, Any] = field(default_factory=dict)  # free-form tags that travel with the descriptor

    @property
    def nbytes(self) -> int:
        return memoryview(self.data).nbytes

    def tagged(self, **tags: Any) -> "EncodedFrame":
        """The same frame (its data not copied) with ``tags`` added to ``extra``."""
        return EncodedFrame(self.kind, self.header, self.data, self.frame, {**self.extra, **tags})


def raw_nbytes(header: Dict[str, Any]) -> int:
    """Bytes a raw buffer with this header must have."""
    return int(header["width"]) * int(header["height"]) * len(header["channels"]) * RAW_DTYPES[header["dtype"]]


def _check_window(name: str, value: Any) -> None:
    if (not isinstance(value, list) or len(value) != 4
            or not all(isinstance(v, int) and not isinstance(v, bool) for v in value)):
        raise ProtocolError("bad_message", f"raw frame header '{name}' must be [x, y, width, height] integers, "
                                           f"got {value!r}")


def check_raw_header(header: Dict[str, Any]) -> None:
    """Raise ProtocolError unless ``header`` is a complete, in-limits raw buffer header."""
    if not isinstance(header, dict):
        raise ProtocolError("bad_message", "raw frame header must be an object")
    for key in ("width", "height"):
        value = header.get(key)
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ProtocolError("bad_message", f"raw frame header '{key}' must be a positive integer, got {value!r}")
        if value > MAX_FRAME_DIMENSION:
            raise ProtocolError("too_large", f"raw frame {key} {value} exceeds the limit of {MAX_FRAME_DIMENSION} "
                                             "pixels")
    channels, formats = header.get("channels"), header.get("formats")
    if not isinstance(channels, list) or not channels or not all(isinstance(c, str) for c in channels):
        raise ProtocolError("bad_message", f"raw frame header 'channels' must be a non-empty list of names, "
                                           f"got {channels!r}")
    if len(channels) > MAX_FRAME_CHANNELS:
        raise ProtocolError("too_large", f"raw frame has {len(channels)} channels; the limit is {MAX_FRAME_CHANNELS}")
    if not isinstance(formats, list) or len(formats) != len(channels) or not all(isinstance(f, str) for f in formats):
        raise ProtocolError("bad_message", "raw frame header 'formats' must list one format name per channel")
    if header.get("dtype") not in RAW_DTYPES:
        raise ProtocolError("bad_message", f"raw frame header 'dtype' must be one of {sorted(RAW_DTYPES)}, "
                                           f"got {header.get('dtype')!r}")
    for name in ("data_window", "display_window"):
        _check_window(name, header.get(name))
    if header["data_window"][2:] != [header["width"], header["height"]]:
        raise ProtocolError("bad_message", f"raw frame data_window {header['data_window']} does not match its "
                                           f"{header['width']}x{header['height']} size")
    if not isinstance(header.get("colourspace", ""), (str, type(None))):
        raise ProtocolError("bad_message", "raw frame header 'colourspace' must be a colour space name or null")
    if not isinstance(header.get("attributes", {}), dict):
        raise ProtocolError("bad_message", "raw frame header 'attributes' must be an object")
    if raw_nbytes(header) > MAX_MESSAGE_BYTES:
        raise ProtocolError("too_large", f"raw frame of {raw_nbytes(header)} bytes exceeds the message limit "
                                         f"of {MAX_MESSAGE_BYTES}")


def _byte_view(buffer: Any) -> memoryview:
    """A flat unsigned-byte view of a buffer, without copying."""
    view = memoryview(buffer)
    if view.ndim == 1 and view.format == "B":
        return view
    if not view.c_contiguous:
        raise ProtocolError("bad_argument", "frame buffers must be C-contiguous (numpy: np.ascontiguousarray)")
    return view.cast("B")


def encode_file(path_or_bytes: Union[str, os.PathLike, Buffer], fmt: Optional[str] = None,
                frame: Optional[int] = None) -> EncodedFrame:
    """An image file (path, or its bytes with ``fmt``) as a ``"file"`` frame.

    A path travels with the frame (``extra["source"]``), so the server's errors name the file.
    """
    extra: Dict[str, Any] = {}
    if isinstance(path_or_bytes, (str, os.PathLike)):
        path = os.fspath(path_or_bytes)
        if fmt is None:
            ext = os.path.splitext(path)[1].lower()
            if ext not in FILE_FORMATS:
                raise ProtocolError("bad_argument", f"{path}: cannot send '{ext}' files; use one of "
                                                    f"{', '.join(sorted(FILE_FORMATS))}")
            fmt = FILE_FORMATS[ext]
        with open(path, "rb") as handle:
            data: Any = handle.read()
        extra["source"] = path
    else:
        data = path_or_bytes
    fmt = FILE_FORMATS.get("." + str(fmt).lower().lstrip("."), fmt)
    if fmt not in FILE_FORMATS.values():
        raise ProtocolError("bad_argument", f"file format {fmt!r} is not one of {sorted(set(FILE_FORMATS.values()))}")
    return EncodedFrame("file", {"format": fmt}, data, frame, extra)


def encode_raw(buffer: Any, header: Dict[str, Any], frame: Optional[int] = None) -> EncodedFrame:
    """A pixel buffer (any buffer-protocol object, e.g. a C-contiguous numpy array) as a ``"raw"`` frame."""
    header = dict(header)
    header.setdefault("attributes", {})
    check_raw_header(header)
    view = _byte_view(buffer)
    if view.nbytes != raw_nbytes(header):
        raise ProtocolError("bad_argument", f"raw buffer holds {view.nbytes} bytes; the header describes "
                                            f"{raw_nbytes(header)} ({header['width']}x{header['height']}x"
                                            f"{len(header['channels'])} {header['dtype']})")
    return EncodedFrame("raw", header, view, frame)


def to_parts(ef: EncodedFrame) -> Tuple[Dict[str, Any], memoryview]:
    """Descriptor for the JSON header (without ``part``) and the zero-copy payload."""
    view = _byte_view(ef.data)
    desc = {"kind": ef.kind, "frame": ef.frame, "size": view.nbytes, "header": ef.header}
    if ef.extra:
        desc["extra"] = ef.extra
    return desc, view


def from_parts(desc: Dict[str, Any], payload: Any) -> EncodedFrame:
    """Rebuild a frame from its descriptor and payload, checking kind, header and size."""
    kind = desc.get("kind")
    if kind not in KINDS:
        raise ProtocolError("bad_message", f"frame kind must be one of {KINDS}, got {kind!r}")
    frame = desc.get("frame")
    if frame is not None and (not isinstance(frame, int) or isinstance(frame, bool)):
        raise ProtocolError("bad_message", f"frame number must be an integer or null, got {frame!r}")
    header = desc.get("header")
    view = memoryview(payload)
    size = desc.get("size")
    if not isinstance(size, int) or isinstance(size, bool) or size != view.nbytes:
        raise ProtocolError("bad_message", f"frame {frame}: descriptor declares {size!r} bytes but the payload part "
                                           f"has {view.nbytes} (truncated message?)")
    if kind == "raw":
        if not isinstance(header, dict):
            raise ProtocolError("bad_message", f"frame {frame}: raw frame header must be an object")
        check_raw_header(header)
        if raw_nbytes(header) != view.nbytes:
            raise ProtocolError("bad_message", f"frame {frame}: raw header describes {raw_nbytes(header)} bytes "
                                               f"but the payload has {view.nbytes}")
    else:
        if not isinstance(header, dict) or header.get("format") not in FILE_FORMATS.values():
            raise ProtocolError("bad_message", f"frame {frame}: file header must name a 'format' among "
                                               f"{sorted(set(FILE_FORMATS.values()))}, got {header!r}")
        if view.nbytes == 0:
            raise ProtocolError("bad_frame", f"frame {frame}: empty {header['format']} file")
    extra = desc.get("extra", {})
    if not isinstance(extra, dict):
        raise ProtocolError("bad_message", "frame descriptor 'extra' must be an object")
    return EncodedFrame(kind, header, view, frame, extra)


def frames_to_message(frames: Sequence[EncodedFrame], first_part: int = 0) -> Tuple[List[Dict[str, Any]],
                                                                                    List[memoryview]]:
    """Descriptors (with ``part`` set, counting from ``first_part``) and payloads for several frames."""
    descs, payloads = [], []
    for index, ef in enumerate(frames):
        desc, view = to_parts(ef)
        desc["part"] = first_part + index
        descs.append(desc)
        payloads.append(view)
    return descs, payloads


def frames_from_message(descs: Sequence[Dict[str, Any]], payloads: Sequence[Any]) -> List[EncodedFrame]:
    """The inverse of frames_to_message (``protocol.unpack`` has checked the part indices)."""
    return [from_parts(desc, payloads[desc["part"]]) for desc in descs]


def write_file(ef: EncodedFrame, path: str) -> None:
    """Write a ``"file"`` frame's bytes to ``path`` atomically (temp name in the same folder, then rename)."""
    if ef.kind != "file":
        raise ProtocolError("bad_argument", f"{path}: frame {ef.frame} is a raw buffer; only file frames can be "
                                            "written as they are")
    folder = os.path.dirname(os.path.abspath(path))
    temp = os.path.join(folder, f".{os.path.basename(path)}.{os.getpid()}.tmp")
    with open(temp, "wb") as handle:
        handle.write(memoryview(ef.data))
    os.replace(temp, path)
