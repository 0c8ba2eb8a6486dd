"""A model file's header without torch: the safetensors header → our JSON metadata record.

A safetensors file starts with the length of its JSON header (8 bytes, little-endian) and the
header itself, whose ``"__metadata__"`` maps names to strings; ours is the JSON record under
`METADATA_KEY` (what it holds: see `modelfile`). Reading it costs one small read and no torch
import, so `shotstyle render` can check a finished folder and the store can list its models
without loading a network. The format-version check lives here, so every reader refuses a
file from a newer shotstyle — or one from before the grade (format 1) — the same way.
"""

from __future__ import annotations

import json
import struct
from typing import Any

from shotstyle.plugin import __version__
from shotstyle.server.errors import ModelFileError

FORMAT_VERSION = 2
# Oldest format this shotstyle renders; older files are refused with a message to retrain.
OLDEST_FORMAT = 2
METADATA_KEY = "shotstyle"
# safetensors' own limit on a file's JSON header.
MAX_HEADER_BYTES = 100 << 20


def metadata_from_bytes(data: bytes, name: str) -> dict[str, Any]:
    """The validated "shotstyle" record of a model file whose bytes (at least the header) are ``data``.

    ``name`` labels error messages (a path, an upload); ModelFileError says what is wrong.
    """
    if len(data) < 8:
        raise ModelFileError(f"{name}: not a shotstyle model file (only {len(data)} bytes)")
    (header_size,) = struct.unpack("<Q", data[:8])
    if header_size > len(data) - 8:
        raise ModelFileError(f"{name}: damaged or not a safetensors model file "
                             f"(header claims {header_size} bytes, file has {len(data)})")
    try:
        header = json.loads(data[8:8 + header_size])
        metadata = json.loads(header["__metadata__"][METADATA_KEY])
    except (ValueError, KeyError, TypeError) as exc:
        raise ModelFileError(f"{name}: damaged header or not a shotstyle model file "
                             f"(no readable '{METADATA_KEY}' metadata: {exc})") from exc
    if not isinstance(metadata, dict):
        raise ModelFileError(f"{name}: damaged header: metadata is not a JSON object")
    version = metadata.get("format_version")
    if not isinstance(version, int):
        raise ModelFileError(f"{name}: damaged header: format_version is {version!r}")
    if version > FORMAT_VERSION:
        raise ModelFileError(
            f"{name}: written by a newer shotstyle ({metadata.get('shotstyle_version', '?')}, "
            f"model format {version}); this one ({__version__}) reads format {FORMAT_VERSION} "
            "and older. Upgrade shotstyle to use it.")
    if version < OLDEST_FORMAT:
        raise ModelFileError(
            f"{name}: model format {version}, made by shotstyle {metadata.get('shotstyle_version', '?')} "
            "before a look became a global grade plus a local term; this shotstyle renders model format "
            f"{OLDEST_FORMAT} and newer. Retrain it with `shotstyle train` (same keyframes and style frame): "
            "the new model also exports as a LUT.")
    return metadata


def read_metadata(path: str) -> dict[str, Any]:
    """The validated record of the model file at ``path``, reading only its header."""
    try:
        with open(path, "rb") as handle:
            prefix = handle.read(8)
            if len(prefix) == 8:
                prefix += handle.read(min(struct.unpack("<Q", prefix)[0], MAX_HEADER_BYTES))
    except FileNotFoundError:
        raise ModelFileError(f"{path}: no such file; train a model with `shotstyle train`") from None
    except OSError as exc:
        raise ModelFileError(f"{path}: cannot read the model file ({exc.strerror})") from exc
    return metadata_from_bytes(prefix, path)


def recorded_hash(metadata: dict[str, Any], name: str) -> str:
    """The model hash a record holds (``checksum``: `StyleModel.hash` of the model it describes)."""
    value = metadata.get("checksum")
    if not isinstance(value, str):
        raise ModelFileError(f"{name}: damaged header: no model checksum recorded; "
                             "use a .safetensors model written by `shotstyle train`")
    return value
