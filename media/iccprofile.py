"""What an image's embedded ICC profile says its RGB is, as the Color Interop Forum id OCIO configs
name (e.g. srgb_p3d65_scene for a phone's Display P3 photograph, g22_adobergb_scene for Adobe RGB).

Phones, cameras and Photoshop embed a three-component matrix-based RGB profile (ICC.1): three
colorant XYZ values adapted to the D50 connection space, the adaptation (`chad`, or from the media
white point in version 2 profiles) and one tone curve per channel. The primaries and white are
recovered from those and compared with the primaries interop ids name, the curves with the transfer
functions they name. A matrix/TRC profile of other primaries or curves (ProPhoto RGB) is taken at
its word: its curves decode the pixels to linear light on its primaries (`IccProfile.to_linear`,
media/metadata.py says when). Any other profile (a printer's or a camera's lookup-table profile, a
damaged one) is not used: `describe` says why, by the profile's own name, and the frame keeps the
colour space of its data type. The bytes are untrusted: every offset and size is checked before
it is read.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from shotstyle.media.chromaticities import INTEROP_PRIMARIES, adaptation, rgb_to_xyz, xy_of
from shotstyle.server.errors import ColourError

# Where OpenImageIO puts an embedded profile's bytes (JPEG, PNG, TIFF, WebP, HEIF, PSD).
ICC_ATTRIBUTE = "ICCProfile"
# The connection space's white (the header's PCS illuminant, ICC.1): colorants are given adapted to it.
_D50 = np.array([0.9642, 1.0, 0.8249])
# Primaries and white within this of an interop id's (each x and y) are its: a profile's s15.16
# numbers and its makers' adaptation matrices move them by up to 1e-3; the closest two known sets
# (Rec.2020's red and AP1's) are 5e-3 apart.
PRIMARIES_MATCH = 2e-3
# A tone curve within this of a known transfer function (linear light, over the whole 0..1 range) is
# it: curve tables and a 563/256 "2.2" differ by 2e-4; the closest two known ones (sRGB's and a pure
# 2.2 gamma) 8.5e-3 apart.
TRANSFER_MATCH = 2e-3
_SAMPLES = np.linspace(0.0, 1.0, 257)


def _srgb(x: np.ndarray) -> np.ndarray:
    return np.where(x <= 0.04045, x / 12.92, ((x + 0.055) / 1.055) ** 2.4)


# The transfer functions an interop id's first part names, encoded value -> linear light.
TRANSFERS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "lin": lambda x: x,
    "srgb": _srgb,
    "g18": lambda x: x ** 1.8,
    "g22": lambda x: x ** 2.2,
    "g24": lambda x: x ** 2.4,
}
# The ids a profile may be identified as: the encodings the OCIO default config has a space for.
KNOWN_IDS = frozenset({
    "lin_rec709_scene", "srgb_rec709_scene", "g18_rec709_scene", "g22_rec709_scene", "g24_rec709_scene",
    "lin_p3d65_scene", "srgb_p3d65_scene", "lin_adobergb_scene", "g22_adobergb_scene",
    "lin_ap1_scene", "srgb_ap1_scene", "g22_ap1_scene", "lin_rec2020_scene",
})
# Parameter counts of the parametric curve types (ICC.1's parametricCurveType, function types 0-4).
_PARAMETERS = {0: 1, 1: 3, 2: 4, 3: 5, 4: 7}


@dataclass(frozen=True)
class IccProfile:
    """An embedded profile: its own name ("" when it has none) and the interop id of the RGB it
    describes, or None where it is not one an OCIO config names (`why` then says what it is). A
    matrix/TRC profile has `primaries` (xy of red, green, blue, white) and tone curve tags (`curves`,
    red, green, blue); where no config space is named (ProPhoto RGB, as Lightroom exports) they
    still describe its RGB: the curves take it to linear light (`to_linear`) on those primaries."""
    name: str
    interop_id: str | None
    why: str = ""
    primaries: tuple[float, ...] | None = None
    curves: tuple[bytes, ...] = ()

    def said(self) -> str:
        """The profile as a message names it."""
        return f"ICC profile {self.name!r}" if self.name else "an unnamed ICC profile"

    def summary(self) -> dict[str, Any]:
        """What `shotstyle info` and its JSON say of the profile (its curves' bytes left out)."""
        return {"name": self.name, "said": self.said(), "interop_id": self.interop_id, "why": self.why,
                "primaries": self.primaries, "decodes": self.decodes()}

    def decodes(self) -> bool:
        """Whether its RGB is taken to linear light by the profile's own curves (`to_linear`), there
        being no config space it names."""
        return self.interop_id is None and self.primaries is not None

    def to_linear(self, rgb: np.ndarray) -> np.ndarray:
        """H×W×3 encoded values (0..1) → linear light on `primaries`, by each channel's curve (float32)."""
        channels = [_curve(tag, np.clip(rgb[..., index].astype(np.float64), 0.0, 1.0))
                    for index, tag in enumerate(self.curves)]
        return np.stack(channels, axis=-1).astype(np.float32)


class _Damaged(ValueError):
    """The profile's bytes do not hold what their header or tag table says."""


def _tags(data: bytes) -> dict[bytes, bytes]:
    if len(data) < 132 or data[36:40] != b"acsp":
        raise _Damaged("not an ICC profile")
    count = struct.unpack_from(">I", data, 128)[0]
    if 132 + 12 * count > len(data):
        raise _Damaged("its tag table runs past its end")
    tags = {}
    for index in range(count):
        signature, offset, size = struct.unpack_from(">4sII", data, 132 + 12 * index)
        if offset + size > len(data):
            raise _Damaged(f"its {signature!r} tag runs past its end")
        tags[signature] = data[offset:offset + size]
    return tags


def _s15(data: bytes, offset: int, count: int) -> np.ndarray:
    if offset + 4 * count > len(data):
        raise _Damaged("a number list runs past its tag")
    return np.array(struct.unpack_from(f">{count}i", data, offset), dtype=np.float64) / 65536.0


def _xyz(tags: dict[bytes, bytes], signature: bytes) -> np.ndarray:
    tag = tags.get(signature, b"")
    if tag[:4] != b"XYZ ":
        raise _Damaged(f"its {signature.decode('latin-1')} tag is not an XYZ value")
    return _s15(tag, 8, 3)


def _curve(tag: bytes, x: np.ndarray) -> np.ndarray:
    """A tone curve tag (curv or para) at the encoded values ``x`` (0..1): linear light."""
    if tag[:4] == b"curv" and len(tag) >= 12:
        count = struct.unpack_from(">I", tag, 8)[0]
        if 12 + 2 * count > len(tag):
            raise _Damaged("a curve's table runs past its tag")
        if count == 0:
            return x
        if count == 1:
            return x ** (struct.unpack_from(">H", tag, 12)[0] / 256.0)
        table = np.array(struct.unpack_from(f">{count}H", tag, 12), dtype=np.float64) / 65535.0
        return np.interp(x, np.linspace(0.0, 1.0, count), table)
    if tag[:4] == b"para" and len(tag) >= 12:
        kind = struct.unpack_from(">H", tag, 8)[0]
        if kind not in _PARAMETERS:
            raise _Damaged(f"a parametric curve of unknown type {kind}")
        g, a, b, c, d, e, f = list(_s15(tag, 12, _PARAMETERS[kind])) + [0.0] * (7 - _PARAMETERS[kind])
        if kind == 0:
            return x ** g
        if kind in (1, 2):
            start = -b / a if a else np.inf
            return np.where(x >= start, np.clip(a * x + b, 0.0, None) ** g + (c if kind == 2 else 0.0),
                            c if kind == 2 else 0.0)
        return np.where(x >= d, np.clip(a * x + b, 0.0, None) ** g + e, c * x + f)
    raise _Damaged("a tone curve that is neither curv nor para")


def _name(tags: dict[bytes, bytes]) -> str:
    """The profile's description (version 2 `desc` ASCII, or the first `mluc` record), printable."""
    tag = tags.get(b"desc", b"")
    text = ""
    if tag[:4] == b"desc" and len(tag) >= 12:
        length = struct.unpack_from(">I", tag, 8)[0]
        text = tag[12:12 + length].split(b"\0")[0].decode("latin-1")
    elif tag[:4] == b"mluc" and len(tag) >= 28:
        length, offset = struct.unpack_from(">II", tag, 20)
        text = tag[offset:offset + length].decode("utf-16-be", errors="replace")
    return "".join(ch for ch in text if ch.isprintable()).strip()[:100]


def _primaries(tags: dict[bytes, bytes]) -> tuple[float, ...]:
    """xy of red, green, blue and white of the RGB the colorants describe, before their adaptation to D50."""
    connection = np.column_stack([_xyz(tags, s) for s in (b"rXYZ", b"gXYZ", b"bXYZ")])
    chad = tags.get(b"chad", b"")
    if chad[:4] == b"sf32":
        to_d50 = _s15(chad, 8, 9).reshape(3, 3)
    elif b"wtpt" in tags:
        to_d50 = adaptation(_xyz(tags, b"wtpt"), _D50)   # version 2: the media white, Bradford-adapted
    else:
        to_d50 = np.eye(3)
    own = np.linalg.solve(to_d50, connection)
    if not np.all(np.isfinite(own)) or np.any(own.sum(axis=0) <= 0):
        raise _Damaged("colorants that describe no RGB")
    return tuple(float(v) for v in np.column_stack([xy_of(own), xy_of(own.sum(axis=1, keepdims=True))]).T.reshape(-1))


def identify(data: bytes) -> IccProfile:
    """The profile in ``data`` (an embedded profile's bytes), identified where it can be."""
    try:
        tags = _tags(data)
    except _Damaged as damage:
        return IccProfile("", None, f"damaged ({damage})")
    except struct.error:
        return IccProfile("", None, "damaged")
    name = _name(tags)
    if data[16:20] != b"RGB " or data[20:24] != b"XYZ ":
        return IccProfile(name, None, f"a {data[16:20].decode('latin-1').strip() or '?'} profile, not an RGB one")
    if not all(s in tags for s in (b"rXYZ", b"gXYZ", b"bXYZ", b"rTRC", b"gTRC", b"bTRC")):
        return IccProfile(name, None, "a lookup-table profile, not a matrix and tone curves")
    curve_tags = tuple(tags[s] for s in (b"rTRC", b"gTRC", b"bTRC"))
    try:
        primaries = _primaries(tags)
        rgb_to_xyz(primaries)
        curves = [_curve(tag, _SAMPLES) for tag in curve_tags]
    except (_Damaged, struct.error, np.linalg.LinAlgError, ColourError) as damage:
        return IccProfile(name, None, f"damaged ({damage})" if str(damage) else "damaged")
    if not all(np.all(np.isfinite(curve)) and np.all(np.diff(curve) >= 0) for curve in curves):
        return IccProfile(name, None, "damaged (a tone curve that is not finite or falls)")
    gamut = next((key for key, known in INTEROP_PRIMARIES.items()
                  if np.allclose(known, primaries, rtol=0, atol=PRIMARIES_MATCH)), None)
    transfer = next((key for key, function in TRANSFERS.items()
                     if all(np.abs(curve - function(_SAMPLES)).max() <= TRANSFER_MATCH for curve in curves)), None)
    interop = f"{transfer}_{gamut}_scene"
    if gamut is None or transfer is None or interop not in KNOWN_IDS:
        shown = ", ".join(f"{v:.4f}" for v in primaries)
        return IccProfile(name, None, f"primaries and white xy {shown}"
                          + ("" if transfer else ", tone curves of no known transfer function"), primaries, curve_tags)
    return IccProfile(name, interop, "", primaries, curve_tags)


def describe(attributes: dict[str, Any]) -> IccProfile | None:
    """The profile a frame's header attributes embed, or None without one."""
    value = attributes.get(ICC_ATTRIBUTE)
    if value is None:
        return None
    try:
        data = np.asarray(value, dtype=np.uint8).tobytes()
    except (TypeError, ValueError):
        return IccProfile("", None, "damaged (not bytes)")
    return identify(data)
