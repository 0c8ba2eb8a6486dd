"""A frame's metadata: the attributes shotstyle records in the frames it writes, the one rule for
a frame's colour space when none is given, and the header attributes read and written back
(with their OpenImageIO types, so they write back as read)."""

from __future__ import annotations

from typing import Any

import OpenImageIO as oiio

from shotstyle.server.errors import FrameIOError


# Where write_frame records Frame.colourspace, so read_frame gives the same space back.
COLOURSPACE_ATTRIBUTE = "shotstyle/colourspace"
MODEL_ATTRIBUTE = "shotstyle/model"   # hash of the model that stylized the frame (farm resume)
MIX_ATTRIBUTE = "shotstyle/mix"
# JSON of everything that decided a rendered frame's pixels (see cli/render/outputs.py).
IDENTITY_ATTRIBUTE = "shotstyle/identity"


# Attributes OpenImageIO reports about how it read the file, or that only describe a tiled texture
# or its thumbnail (frames are written back as plain scanline images).
_READER_ATTRIBUTES = ("oiio:", "openexr:roundingmode", "textureformat", "wrapmodes", "thumbnail_")


# Types of the standard EXR attributes, for attributes that arrive without one (e.g. over the wire).
_STANDARD_TYPES = {
    "screenWindowCenter": "float2", "chromaticities": "float[8]", "worldToCamera": "matrix",
    "worldToNDC": "matrix", "framesPerSecond": "rational2i", "smpte:TimeCode": "timecode",
    "smpte:KeyCode": "keycode", "adoptedNeutral": "float2",
}


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


def header_attributes(path: str, spec: Any) -> tuple[dict[str, Any], dict[str, str]]:
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


def attribute_type(name: str, value: Any, recorded: str | None) -> Any:
    """The OpenImageIO TypeDesc to write attribute ``name`` with, or None to let OpenImageIO infer it."""
    for candidate in (recorded, _STANDARD_TYPES.get(name)):
        if candidate:
            typedesc = oiio.TypeDesc(candidate)
            if str(typedesc) != "unknown":
                return typedesc
    if isinstance(value, (tuple, list)) and value and all(isinstance(v, str) for v in value):
        return oiio.TypeDesc(f"string[{len(value)}]")
    return None
