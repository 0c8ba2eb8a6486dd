"""A frame's metadata: the attributes shotstyle records in the frames it writes, the one rule for
a frame's colour space when none is given (with the header's ``chromaticities`` and an embedded ICC
profile), and the header attributes read and written back (with their OpenImageIO types, so they
write back as read)."""

from __future__ import annotations

from typing import Any

import OpenImageIO as oiio

from shotstyle.media.iccprofile import IccProfile, describe
from shotstyle.server.errors import FrameIOError


# Where write_frame records Frame.colourspace, so read_frame gives the same space back.
COLOURSPACE_ATTRIBUTE = "shotstyle/colourspace"
MODEL_ATTRIBUTE = "shotstyle/model"   # hash of the model that stylized the frame (farm resume)
MIX_ATTRIBUTE = "shotstyle/mix"
# JSON of everything that decided a rendered frame's pixels (see cli/render/outputs.py).
IDENTITY_ATTRIBUTE = "shotstyle/identity"


# The interop id of what integer data is taken to be without a profile saying otherwise ("sRGB").
SRGB_ID = "srgb_rec709_scene"
# Float data of file types whose convention names its primaries (OpenImageIO's type name -> space):
# Radiance RGBE is linear Rec.709, as OpenImageIO, Nuke and Blender read it.
FORMAT_SPACES = {"hdr": "lin_rec709_scene"}


# The standard EXR attribute naming the RGB primaries and white point (xy of red, green, blue, white).
CHROMATICITIES_ATTRIBUTE = "chromaticities"
# How a frame's colour space is named when its header's chromaticities decide it: scene-linear RGB on
# those primaries (server.engine.colour.resolve gives it the config's own name where one matches).
CHROMATICITIES_SPACE = "linear, chromaticities "


# Attributes OpenImageIO reports about how it read the file (an embedded ICC profile's header fields
# included: the profile itself is kept), or that only describe a texture's MIP levels or a thumbnail
# image (frames are written back as one level, tiled as read, without a thumbnail: `not_kept` says so).
_READER_ATTRIBUTES = ("oiio:", "openexr:roundingmode", "textureformat", "wrapmodes", "thumbnail_", "ICCProfile:")


# Types of the standard EXR attributes, for attributes that arrive without one (e.g. over the wire).
_STANDARD_TYPES = {
    "screenWindowCenter": "float2", "chromaticities": "float[8]", "worldToCamera": "matrix",
    "worldToNDC": "matrix", "framesPerSecond": "rational2i", "smpte:TimeCode": "timecode",
    "smpte:KeyCode": "keycode", "adoptedNeutral": "float2",
}


def default_colourspace(formats: list[str], attributes: dict[str, Any] | None = None,
                        file_format: str | None = None) -> str:
    """The one rule for the colour space of a frame's RGB when none is given (`colourspace_rule`)."""
    return colourspace_rule(formats, attributes, file_format)[0]


def colourspace_rule(formats: list[str], attributes: dict[str, Any] | None = None,
                     file_format: str | None = None) -> tuple[str, IccProfile | None]:
    """The one rule for the colour space of a frame's RGB when none is given, and the embedded ICC
    profile whose own curves decode the RGB into that space (None: the RGB is in it as stored).

    The space shotstyle recorded in the frame (`COLOURSPACE_ATTRIBUTE`). Else, for half/float data
    (linear light): scene-linear RGB on the primaries of the header's ``chromaticities``
    (`chromaticities_space`), else on those of an embedded ICC profile (media/iccprofile.py: only
    its primaries, as a 32-bit file's curves do not describe its data), else the file type's
    convention (`FORMAT_SPACES`: a Radiance HDR is linear Rec.709), else "ACEScg". For 8/16-bit
    integer data: the config space an embedded ICC profile names (a phone's Display P3 photograph
    is srgb_p3d65_scene, not sRGB), else for a matrix/TRC profile of other primaries or curves
    (ProPhoto RGB) scene-linear RGB on its primaries, decoded by its curves; else "sRGB". Files
    (`file_format`: OpenImageIO's name of their type), raw buffers and the previews a training
    sends back all follow it.
    """
    attributes = attributes or {}
    recorded = attributes.get(COLOURSPACE_ATTRIBUTE)
    if isinstance(recorded, str) and recorded:
        return recorded, None
    profile = describe(attributes)
    if any(f in ("half", "float") for f in formats):
        primaries = header_chromaticities(attributes) or (profile.primaries if profile is not None else None)
        if primaries is not None:
            return chromaticities_space(primaries), None
        return FORMAT_SPACES.get(file_format or "", "ACEScg"), None
    if profile is not None and profile.interop_id is not None and profile.interop_id != SRGB_ID:
        return profile.interop_id, None
    if profile is not None and profile.decodes() and profile.primaries is not None:
        return chromaticities_space(profile.primaries), profile
    return "sRGB", None


def header_chromaticities(attributes: dict[str, Any]) -> tuple[float, ...] | None:
    """The 8 numbers of a header's ``chromaticities`` (red, green, blue, white xy), or None without one.

    A value that is not 8 numbers is left out (an application's own attribute of that name)."""
    value = attributes.get(CHROMATICITIES_ATTRIBUTE)
    if not isinstance(value, (tuple, list)) or len(value) != 8:
        return None
    try:
        return tuple(float(v) for v in value)
    except (TypeError, ValueError):
        return None


def chromaticities_space(values: tuple[float, ...]) -> str:
    """The colour space name of scene-linear RGB on the primaries ``values`` (as `header_chromaticities`)."""
    return CHROMATICITIES_SPACE + " ".join(f"{v:.6g}" for v in values)


def space_chromaticities(name: str) -> tuple[float, ...] | None:
    """The 8 numbers a `chromaticities_space` name holds, or None for any other name."""
    if not name.startswith(CHROMATICITIES_SPACE):
        return None
    try:
        values = tuple(float(v) for v in name[len(CHROMATICITIES_SPACE):].split())
    except ValueError:
        return None
    return values if len(values) == 8 else None


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


def not_kept(spec: Any, miplevels: int) -> list[str]:
    """What of a file written back from its Frame is lost (each a phrase for a message): MIP levels
    below the first, an embedded thumbnail image; empty when nothing is."""
    lost = []
    if miplevels > 1:
        lost.append(f"its {miplevels - 1} lower MIP level(s)")
    width, height = spec.get_int_attribute("thumbnail_width", 0), spec.get_int_attribute("thumbnail_height", 0)
    if width and height:
        lost.append(f"its {width}x{height} thumbnail image")
    return lost


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
