"""Cryptomatte: the matte of one named object or material from a frame's ID/coverage channels.

A cryptomatte layer (its type name, e.g. ``CryptoObject``) stores ranked (ID, coverage) pairs per
pixel: ``CryptoObject00.R``/``.G`` hold rank 0, ``.B``/``.A`` rank 1, ``CryptoObject01.R``/``.G``
rank 2, and so on (some files name the suffixes ``.red``, ``.green``, ``.blue``, ``.alpha``, as
the Cryptomatte project's own sample ``special_chars.exr`` does). A name's ID is the MurmurHash3
(x86, 32-bit, seed 0) of its UTF-8 bytes, stored as the float32 with those bits and its exponent
clamped to 1..254, so no ID is zero, a denormal, an infinity or a NaN (Cryptomatte specification
1.1.0, Psyop). A name's matte is the sum of the coverages of the ranks that hold its ID. IDs are
computed from the name, so no manifest (the names a renderer may list in the header or a sidecar
file) is needed for a name; a pattern (``window_*``, shell-style, case-sensitive) takes every name
the header's manifest lists that matches it (a name the manifest lists is itself, though it hold
``*`` or ``[``), and the manifest says which names a layer holds when a name is not found.

Only float32 channels hold IDs: a half-float copy of the layer (a Write at 16-bit half) has lost
them, and is refused.
"""

from __future__ import annotations

import json
from fnmatch import fnmatchcase

import numpy as np

from shotstyle.media.frame import Frame

_MASK = 0xFFFFFFFF
# Channel suffixes of a rank pair, (ID, coverage) for the even rank then for the odd one, in the
# two spellings files use.
RANK_SUFFIXES = ((("R", "G"), ("B", "A")), (("red", "green"), ("blue", "alpha")))
# Names listed from a layer's manifest in a message.
LISTED_NAMES = 8
# A name holding one of these is a pattern over the manifest's names.
PATTERN_CHARACTERS = "*?["


def _rotate(value: int, bits: int) -> int:
    return ((value << bits) | (value >> (32 - bits))) & _MASK


def murmur3_32(data: bytes, seed: int = 0) -> int:
    """MurmurHash3_x86_32 of ``data`` (Austin Appleby's public-domain hash), as an unsigned int."""
    c1, c2 = 0xCC9E2D51, 0x1B873593
    h = seed & _MASK
    whole = len(data) - len(data) % 4
    for start in range(0, whole, 4):
        k = int.from_bytes(data[start:start + 4], "little")
        k = (_rotate((k * c1) & _MASK, 15) * c2) & _MASK
        h = (_rotate(h ^ k, 13) * 5 + 0xE6546B64) & _MASK
    if len(data) > whole:
        k = int.from_bytes(data[whole:], "little")
        h ^= (_rotate((k * c1) & _MASK, 15) * c2) & _MASK
    h ^= len(data)
    h = ((h ^ (h >> 16)) * 0x85EBCA6B) & _MASK
    h = ((h ^ (h >> 13)) * 0xC2B2AE35) & _MASK
    return h ^ (h >> 16)


def name_id(name: str) -> np.float32:
    """The float32 ID a cryptomatte stores for ``name``."""
    bits = murmur3_32(name.encode("utf-8"))
    exponent = min(max((bits >> 23) & 0xFF, 1), 254)
    bits = (bits & 0x807FFFFF) | (exponent << 23)
    return np.array([bits], np.uint32).view(np.float32)[0]


def layers(channels: list[str]) -> list[str]:
    """The cryptomatte layers among ``channels``: every type name with a ``NAME00.R`` (or ``.red``) channel."""
    found = []
    for suffixes in RANK_SUFFIXES:
        suffix = "00." + suffixes[0][0]
        found += [c[:-len(suffix)] for c in channels if c.endswith(suffix) and len(c) > len(suffix)]
    return list(dict.fromkeys(found))


def rank_channels(channels: list[str], layer: str) -> list[tuple[int, int]]:
    """(ID, coverage) channel indices of ``layer``'s ranks, in rank order."""
    pairs = []
    for number in range(100):
        names = [(f"{layer}{number:02d}.{i}", f"{layer}{number:02d}.{c}") for suffixes in RANK_SUFFIXES for i, c in suffixes]
        found = [(channels.index(i), channels.index(c)) for i, c in names if i in channels and c in channels]
        if not found:
            break
        pairs += found
    return pairs


def manifest_names(frame: Frame, layer: str) -> list[str]:
    """The names ``frame``'s header lists for ``layer`` (``cryptomatte/KEY/manifest``); none if it lists none."""
    for key, value in frame.attributes.items():
        if key.startswith("cryptomatte/") and key.endswith("/name") and value == layer:
            manifest = frame.attributes.get(key[:-len("name")] + "manifest")
            try:
                names = json.loads(manifest) if isinstance(manifest, str) else {}
            except ValueError:
                return []
            return sorted(names) if isinstance(names, dict) else []
    return []


def _holds_pattern(name: str) -> bool:
    return any(c in name for c in PATTERN_CHARACTERS)


def not_found(frame: Frame, layer: str, name: str) -> str:
    """What to say when no pixel holds ``name`` in ``layer``: the names the manifest lists, if it lists any."""
    listed = manifest_names(frame, layer)
    if listed:
        more = f" ({len(listed)} in all)" if len(listed) > LISTED_NAMES else ""
        known = f"; the names its manifest lists: {', '.join(listed[:LISTED_NAMES])}{more}"
    elif _holds_pattern(name):
        known = "; a pattern needs the layer's manifest in the header"
    else:
        known = ""
    return (f"no pixel holds {name!r} in cryptomatte layer {layer!r}{known}; give the object's or material's name "
            "as the renderer wrote it")


def matte(frame: Frame, layer: str, name: str) -> np.ndarray:
    """The H×W coverage of ``name`` (or of every manifest name a pattern matches) in ``frame``'s cryptomatte
    ``layer`` (0..1); ValueError naming the file when the frame has no such layer or holds it in half floats."""
    where = frame.source or "keyframe"
    pairs = rank_channels(frame.channels, layer)
    if not pairs:
        found = layers(frame.channels)
        raise ValueError(f"{where}: no cryptomatte layer {layer!r} (no {layer}00.R channel); "
                         + (f"its layers: {', '.join(found)}" if found else "it has no cryptomatte layers"))
    half = [i for pair in pairs for i in pair if frame.channel_formats[i] != "float"]
    if half:
        raise ValueError(f"{where}: cryptomatte layer {layer!r} is not stored as 32-bit float ({frame.channels[half[0]]} "
                         f"is {frame.channel_formats[half[0]]}), so its IDs are lost; "
                         "write the layer as 32-bit float, or extract the matte into a channel and give channel:NAME")
    # A name holding pattern characters is a pattern over the manifest's names, unless the manifest lists it
    # as it is; without a manifest a name is itself.
    listed = manifest_names(frame, layer) if _holds_pattern(name) else []
    names = [n for n in listed if fnmatchcase(n, name)] if listed and name not in listed else [name]
    wanted = np.array([name_id(n) for n in names], np.float32)
    pixels = frame.pixels
    coverage = np.zeros(pixels.shape[:2], np.float32)
    for id_index, coverage_index in pairs:
        ids = np.ascontiguousarray(pixels[:, :, id_index], dtype=np.float32)
        coverage += np.where(np.isin(ids, wanted), pixels[:, :, coverage_index], 0).astype(np.float32)
    return np.clip(coverage, 0.0, 1.0)
