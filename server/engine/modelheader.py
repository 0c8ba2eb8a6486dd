"""A model file's header without torch: the safetensors header → our checked JSON metadata record.

A safetensors file starts with the length of its JSON header (8 bytes, little-endian) and the
header itself, which starts with ``{`` and whose ``"__metadata__"`` maps names to strings; ours
is the JSON record under `METADATA_KEY` (what it holds: see `modelfile`). A file is recognised
by that structure (a plausible length, then a JSON object), never by a first byte alone: the
length field of a real model can start with any byte. Other files are named for what they are
(a zip, e.g. torch.save; a pickle) and refused.

Reading the header costs one small read and no torch import, so `shotstyle render` can check a
finished folder and the store can list its models without loading a network. The checks that
need no network live here, so every reader refuses a bad file the same way: the format
version (a file from a newer shotstyle, or one from before the grade — format 1), and
`METADATA_FIELDS`, the schema of the record's fields (types and bounds). The architecture's own
arguments and the tensors are checked by `modelfile`.
"""

from __future__ import annotations

import json
import os
import re
import struct
from typing import Any, Callable, Optional

from shotstyle.plugin import __version__, params
from shotstyle.plugin.quoting import brief
from shotstyle.server.errors import ModelFileError

FORMAT_VERSION = 2
# Oldest format this shotstyle renders; older files are refused with a message to retrain.
OLDEST_FORMAT = 2
METADATA_KEY = "shotstyle"
MODEL_SUFFIX = ".safetensors"   # a model file's name ends so (the store's files, what `info` reads as a model)
WORKING_SPACE = "ACEScct"
# safetensors' own limit on a file's JSON header.
MAX_HEADER_BYTES = 100 << 20
# Our record is a few kilobytes; anything near this is not one we wrote.
MAX_METADATA_BYTES = 64 << 10
ZIP_SIGNATURE = b"PK\x03\x04"
# Pickle protocols 2-5 start with PROTO (0x80) and the protocol number.
PICKLE_PROTOCOLS = tuple(bytes([0x80, n]) for n in range(2, 6))

_HEX64 = re.compile(r"[0-9a-f]{64}")


def _text(limit: int) -> Callable[[Any], Optional[str]]:
    return lambda v: None if isinstance(v, str) and len(v) <= limit else f"must be text of at most {limit} characters"


def _or_none(check: Callable[[Any], Optional[str]]) -> Callable[[Any], Optional[str]]:
    return lambda v: None if v is None else check(v)


def _whole(low: int, high: int) -> Callable[[Any], Optional[str]]:
    return lambda v: None if isinstance(v, int) and not isinstance(v, bool) and low <= v <= high \
        else f"must be a whole number within [{low}, {high}]"


def _param(name: str) -> Callable[[Any], Optional[str]]:
    """A number an effect parameter takes (its range: plugin.params)."""
    def problem(v: Any) -> Optional[str]:
        if not isinstance(v, (int, float)) or isinstance(v, bool):
            return "must be a number"
        try:
            params.check(name, v)
        except ValueError as exc:
            return f"is refused: {exc}"
        return None
    return problem


def _sha256(v: Any) -> Optional[str]:
    return None if isinstance(v, str) and _HEX64.fullmatch(v) else "must be a sha256 hex digest"


def _sha256_list(v: Any) -> Optional[str]:
    return None if isinstance(v, list) and len(v) <= 4096 and all(_sha256(h) is None for h in v) \
        else "must be a list of sha256 hex digests"


# field -> check (None when the value is fine, else what it must be). Every field the loading
# side uses is here; the other training records are only shown, and bounded by MAX_METADATA_BYTES.
METADATA_FIELDS: dict[str, Callable[[Any], Optional[str]]] = {
    "format_version": _whole(1, FORMAT_VERSION),
    "checksum": _sha256,
    "architecture": _text(64),
    "arch_kwargs": lambda v: None if isinstance(v, dict) else "must be a mapping of argument name to value",
    "working_space": lambda v: None if v == WORKING_SPACE else f"must be {WORKING_SPACE!r}",
    "resolution": _whole(8, 16384),
    "strength": _param("strength"),
    "steps": _whole(0, 10 ** 7),
    "loss": _or_none(_text(64)),   # None: a `grade` model, fitted in closed form with no loss
    "shotstyle_version": _text(64),
    "style_sha256": _sha256,
    "keyframe_sha256": _sha256_list,
}
REQUIRED_FIELDS = ("format_version", "checksum", "architecture", "arch_kwargs", "working_space")


def header_size(data: bytes | memoryview, name: str, total: Optional[int] = None) -> int:
    """The JSON header length of a safetensors file starting with ``data`` (``total`` bytes long, default
    ``len(data)``); ModelFileError naming what the file is when it is not one."""
    total = len(data) if total is None else total
    start = bytes(data[:9])
    if len(start) < 9:
        raise ModelFileError(f"{name}: not a shotstyle model file (only {total} bytes)")
    (size,) = struct.unpack("<Q", start[:8])
    if 2 <= size <= min(total - 8, MAX_HEADER_BYTES) and start[8:9] == b"{":
        return size
    if start.startswith(ZIP_SIGNATURE) or start.startswith(PICKLE_PROTOCOLS):
        kind = "a zip archive" if start.startswith(ZIP_SIGNATURE) else "a pickle"
        raise ModelFileError(
            f"{name}: this is a pickle / torch.save file ({kind}), not a shotstyle model; those can run code "
            "when opened, so shotstyle refuses them. Use a .safetensors model written by `shotstyle train`.")
    if size > total - 8 and start[8:9] == b"{":
        raise ModelFileError(f"{name}: damaged or cut short (its header claims {size} bytes, the file has {total})")
    if 2 <= size <= min(total - 8, MAX_HEADER_BYTES):
        raise ModelFileError(f"{name}: damaged header or not a shotstyle model file (the header is not a JSON "
                             "object)")
    raise ModelFileError(f"{name}: not a shotstyle model file (no safetensors header); use a .safetensors "
                         "model written by `shotstyle train`")


def metadata_from_bytes(data: bytes | memoryview, name: str, total: Optional[int] = None) -> dict[str, Any]:
    """The checked "shotstyle" record of a model file whose bytes (at least the header) are ``data``.

    ``name`` labels error messages (a path, an upload); ``total`` is the file's size when ``data``
    holds only its start. ModelFileError says what is wrong.
    """
    size = header_size(data, name, total)
    try:
        header = json.loads(bytes(data[8:8 + size]))
        record = header["__metadata__"][METADATA_KEY]
        if not isinstance(record, str):
            raise TypeError(f"'{METADATA_KEY}' is not a string")
        if len(record) > MAX_METADATA_BYTES:
            raise ValueError(f"the record is {len(record)} bytes; ours are under {MAX_METADATA_BYTES}")
        metadata = json.loads(record)
    except (ValueError, KeyError, TypeError, RecursionError) as exc:
        raise ModelFileError(f"{name}: damaged header or not a shotstyle model file "
                             f"(no readable '{METADATA_KEY}' metadata: {brief(str(exc))})") from None
    if not isinstance(metadata, dict):
        raise ModelFileError(f"{name}: damaged header: metadata is not a JSON object")
    version = metadata.get("format_version")
    if isinstance(version, int) and not isinstance(version, bool) and version > FORMAT_VERSION:
        raise ModelFileError(
            f"{name}: written by a newer shotstyle ({brief(metadata.get('shotstyle_version', '?'))}, "
            f"model format {version}); this one ({__version__}) reads format {FORMAT_VERSION} "
            "and older. Upgrade shotstyle to use it.")
    if isinstance(version, int) and not isinstance(version, bool) and version < OLDEST_FORMAT:
        raise ModelFileError(
            f"{name}: model format {version}, made by shotstyle {metadata.get('shotstyle_version', '?')} "
            "before a look became a global grade plus a local term; this shotstyle renders model format "
            f"{OLDEST_FORMAT} and newer. Retrain it with `shotstyle train` (same keyframes and style frame): "
            "the new model also exports as a LUT.")
    check_metadata(metadata, name)
    return metadata


def check_metadata(metadata: dict[str, Any], name: str) -> None:
    """ModelFileError unless every `REQUIRED_FIELDS` is there and every `METADATA_FIELDS` value is allowed."""
    missing = [field for field in REQUIRED_FIELDS if field not in metadata]
    if missing:
        raise ModelFileError(f"{name}: damaged header or not a shotstyle model file: no {', '.join(missing)} "
                             "recorded; use a .safetensors model written by `shotstyle train`")
    for field, check in METADATA_FIELDS.items():
        if field in metadata:
            problem = check(metadata[field])
            if problem is not None:
                raise ModelFileError(f"{name}: metadata '{field}' = {brief(metadata[field])} {problem}; "
                                     "the file is damaged or was not written by shotstyle")


def read_metadata(path: str) -> dict[str, Any]:
    """The checked record of the model file at ``path``, reading only its header."""
    try:
        with open(path, "rb") as handle:
            total = os.fstat(handle.fileno()).st_size
            prefix = handle.read(9)
            if len(prefix) == 9:
                (size,) = struct.unpack("<Q", prefix[:8])
                if 2 <= size <= min(total - 8, MAX_HEADER_BYTES):
                    prefix += handle.read(size - 1)
    except FileNotFoundError:
        raise ModelFileError(f"{path}: no such file; train a model with `shotstyle train`") from None
    except OSError as exc:
        raise ModelFileError(f"{path}: cannot read the model file ({exc.strerror})") from exc
    return metadata_from_bytes(prefix, path, total)


def recorded_hash(metadata: dict[str, Any], name: str) -> str:
    """The model hash a record holds (``checksum``: `StyleModel.hash` of the model it describes)."""
    value = metadata.get("checksum")
    if not isinstance(value, str):
        raise ModelFileError(f"{name}: damaged header: no model checksum recorded; "
                             "use a .safetensors model written by `shotstyle train`")
    return value
