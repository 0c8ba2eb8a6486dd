"""ICC profile bytes for tests: matrix/TRC RGB display profiles as phones, cameras and Photoshop
embed them, laid out as ICC.1 says (the 128-byte header, the tag table, curveType,
parametricCurveType, XYZType and multiLocalizedUnicodeType; version 2's textDescriptionType),
built from RGB primaries or from a real profile's own numbers."""

from __future__ import annotations

import struct
from typing import Sequence, Union

import numpy as np

from shotstyle.media.chromaticities import adaptation, rgb_to_xyz

D50 = np.array([0.9642, 1.0, 0.8249])   # the profile connection space's white (the header's PCS illuminant)
P3_D65 = (0.680, 0.320, 0.265, 0.690, 0.150, 0.060, 0.3127, 0.3290)
REC709 = (0.64, 0.33, 0.30, 0.60, 0.15, 0.06, 0.3127, 0.3290)
ADOBE_RGB = (0.64, 0.33, 0.21, 0.71, 0.15, 0.06, 0.3127, 0.3290)
PROPHOTO = (0.7347, 0.2653, 0.1596, 0.8404, 0.0366, 0.0001, 0.3457, 0.3585)
# sRGB's curve as a parametric curve of type 3 (IEC 61966-2-1): g, a, b, c, d.
SRGB_PARAMETERS = (2.4, 1 / 1.055, 0.055 / 1.055, 1 / 12.92, 0.04045)
# Apple's Display P3 profile (version 4, as macOS and iOS embed it): its colorants and chad tag.
APPLE_P3_COLORANTS = np.array([[0.51512, 0.29198, 0.15710], [0.24120, 0.69225, 0.06657], [-0.00105, 0.04189, 0.78407]])
APPLE_P3_CHAD = np.array([[1.04788, 0.02292, -0.05022], [0.02959, 0.99048, -0.01707], [-0.00925, 0.01508, 0.75168]])

# A tone curve: "srgb" (parametric), a gamma (curv with one entry), a table of linear values, or a
# (type, parameters) parametric curve.
Curve = Union[str, float, Sequence[float], tuple]


def _s15(values) -> bytes:
    return b"".join(struct.pack(">i", int(round(v * 65536))) for v in np.asarray(values, dtype=np.float64).reshape(-1))


def _xyz(value) -> bytes:
    return b"XYZ " + bytes(4) + _s15(value)


def _curve(curve: Curve) -> bytes:
    if curve == "srgb":
        return b"para" + bytes(4) + struct.pack(">HH", 3, 0) + _s15(SRGB_PARAMETERS)
    if isinstance(curve, float):
        return b"curv" + bytes(4) + struct.pack(">IH", 1, int(round(curve * 256)))
    if isinstance(curve, tuple) and len(curve) == 2 and isinstance(curve[0], int):
        return b"para" + bytes(4) + struct.pack(">HH", curve[0], 0) + _s15(curve[1])
    table = np.asarray(curve, dtype=np.float64)
    return b"curv" + bytes(4) + struct.pack(">I", len(table)) + b"".join(
        struct.pack(">H", int(round(v * 65535))) for v in table)


def _description(name: str, version: int) -> bytes:
    if version >= 4:
        text = name.encode("utf-16-be")
        return b"mluc" + bytes(4) + struct.pack(">II", 1, 12) + b"enUS" + struct.pack(">II", len(text), 28) + text
    text = name.encode("latin-1") + b"\0"
    return b"desc" + bytes(4) + struct.pack(">I", len(text)) + text + bytes(8 + 2 + 1 + 67)


def assemble(tags: dict[bytes, bytes], version: int = 4, space: bytes = b"RGB ", connection: bytes = b"XYZ ") -> bytes:
    """A profile holding ``tags`` (signature -> tag bytes), each at a 4-byte boundary."""
    table, body = struct.pack(">I", len(tags)), b""
    start = 128 + 4 + 12 * len(tags)
    for signature, data in tags.items():
        data += bytes(-len(data) % 4)
        table += signature + struct.pack(">II", start + len(body), len(data))
        body += data
    header = (struct.pack(">I", 128 + len(table) + len(body)) + b"none"
              + struct.pack(">I", 0x04300000 if version >= 4 else 0x02100000) + b"mntr" + space + connection
              + bytes(12) + b"acsp" + bytes(24) + bytes(4) + _s15(D50) + bytes(48))
    assert len(header) == 128
    return header + table + body


def matrix_profile(colorants: np.ndarray, curve: Curve, name: str, version: int = 4,
                   chad: np.ndarray | None = None, white: np.ndarray | None = None) -> bytes:
    """A matrix/TRC profile from its D50 colorants (3×3, columns red, green, blue): version 4 with
    the `chad` tag, or version 2 with the media white point `white` (XYZ)."""
    tags = {b"desc": _description(name, version), b"wtpt": _xyz(D50 if white is None else white)}
    if chad is not None:
        tags[b"chad"] = b"sf32" + bytes(4) + _s15(chad)
    for index, signature in enumerate((b"rXYZ", b"gXYZ", b"bXYZ")):
        tags[signature] = _xyz(colorants[:, index])
    for signature in (b"rTRC", b"gTRC", b"bTRC"):
        tags[signature] = _curve(curve)
    return assemble(tags, version)


def profile_of(primaries: tuple[float, ...], curve: Curve, name: str, version: int = 4) -> bytes:
    """The profile of RGB on ``primaries`` (xy of red, green, blue, white) with ``curve``, its colorants
    Bradford-adapted to D50: the adaptation in a `chad` tag (version 4) or implied by the media white
    point (version 2)."""
    own = rgb_to_xyz(primaries)
    to_d50 = adaptation(own.sum(axis=1), D50)
    colorants = to_d50 @ own
    if version >= 4:
        return matrix_profile(colorants, curve, name, version, chad=to_d50)
    return matrix_profile(colorants, curve, name, version, white=own.sum(axis=1))
