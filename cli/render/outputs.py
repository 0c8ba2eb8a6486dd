"""Where frames go, and how a finished one is recognised: a render's identity (what makes it resumable).

A frame's **identity** is everything that decides its pixels: the model hash, the mix, the
input's colour space, the output's colour space and compression, and the input frame itself
(its size, modification time and the sha256 of its bytes). It is
recorded in every output (`IDENTITY_ATTRIBUTE`, JSON) and compared on resume: a frame whose
output is readable, the input's size and windows, and of the same identity is skipped;
anything else is rendered again, and `check` says why (the summary counts the reasons). The
input is compared by size and modification time, or with ``verify_pixels`` by content.
``force`` re-renders every output that existed when the run began (what other chunks write
meanwhile is judged by identity, so overlapping chunks still share the work). Headers are
checked by default (our writes are atomic, so a final name means a whole file);
``verify_pixels`` decodes every existing output too.

Formats that keep no custom header attributes (JPEG, TIFF, DPX: only with
``--allow-display-output``) carry the identity in their ``ImageDescription``.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from dataclasses import dataclass, field
from typing import Any, Optional

from shotstyle.cli.render.claims import CLAIM_SUFFIX
from shotstyle.media.metadata import COLOURSPACE_ATTRIBUTE, IDENTITY_ATTRIBUTE, MIX_ATTRIBUTE, MODEL_ATTRIBUTE
from shotstyle.media.reading import probe, read_frame
from shotstyle.media.writing import exr_compression, temporary_target
from shotstyle.plugin.params import FrameArgs
from shotstyle.plugin.sequences import SequencePattern
from shotstyle.server.engine.colour import canonical, colour_tags
from shotstyle.server.errors import FrameIOError

# File types whose writers keep our own header attributes (OpenImageIO: EXR attributes, PNG text chunks).
ATTRIBUTE_FORMATS = ("exr", "png")
DESCRIPTION_ATTRIBUTE = "ImageDescription"
DESCRIPTION_MARK = "shotstyle identity: "
HASH_CHUNK = 1 << 20
# How the reasons for re-rendering read, by the identity field that differs.
FIELD_NAMES = {"model": "another model", "mix": "mix", "in_colourspace": "input colour space",
               "out_colourspace": "output colour space", "compression": "compression"}


def file_format(pattern: SequencePattern) -> str:
    """The output's file type by extension ("exr", "jpg"...)."""
    return os.path.splitext(pattern.path(0))[1].lower().lstrip(".")


@dataclass
class Outputs:
    """Where frames go, the identity each must have, and whether an existing output already has it."""
    input: SequencePattern
    output: SequencePattern
    model_hash: str
    args: FrameArgs                            # colourspace: as given (None: each frame's default);
                                               # out_colourspace: resolved (colour.output_colourspace)
    compression: Optional[str] = None          # as given (None: the input's for EXR)
    verify_pixels: bool = False
    force: bool = False
    _before: dict[int, tuple[int, int]] = field(default_factory=dict)   # frame -> output (inode, mtime) at start
    _taken: dict[int, Optional[dict[str, Any]]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        if self.args.out_colourspace is None:
            raise ValueError("Outputs: the output colour space must be resolved (colour.output_colourspace)")

    @property
    def format(self) -> str:
        return file_format(self.output)

    @property
    def out_colourspace(self) -> str:
        """The space every output is written in."""
        return self.args.out_colourspace or ""

    def identity(self, frame: int, content: bool = True, header: Optional[dict[str, Any]] = None) -> dict[str, Any]:
        """The identity ``frame``'s output must have, from its input as it is now; FrameIOError if unreadable.

        ``content``: include the sha256 of the input's bytes (always recorded; compared with
        ``verify_pixels``); ``header``: the input's `probe`, when the caller has it.
        """
        source = self.input.path(frame)
        header = header or probe(source)
        stat = os.stat(source)
        if self.format == "exr":
            compression = exr_compression(self.output.path(frame), self.compression, header["compression"])
        else:
            compression = self.compression or ""
        identity: dict[str, Any] = {
            "model": self.model_hash, "mix": float(self.args.mix),
            "in_colourspace": canonical(self.args.colourspace or header["colourspace"]),
            "out_colourspace": self.out_colourspace, "compression": compression,
            "input": {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns}}
        if content:
            identity["input"]["sha256"] = _sha256(source)
        return identity

    def begin(self, frames: list[int]) -> None:
        """Note the outputs that exist now: with ``force`` these are the ones to replace."""
        if self.force:
            for frame in frames:
                try:
                    stat = os.stat(self.output.path(frame))
                except OSError:
                    continue
                self._before[frame] = (stat.st_ino, stat.st_mtime_ns)

    def check(self, frame: int) -> tuple[bool, str]:
        """(complete, why not): complete outputs are skipped; ``why`` is empty when there is no output yet."""
        path = self.output.path(frame)
        try:
            stat = os.stat(path)
        except OSError:
            return False, ""
        if self._before.get(frame) == (stat.st_ino, stat.st_mtime_ns):
            return False, "--force"
        try:
            done = probe(path)
            if self.verify_pixels:
                read_frame(path)
        except FrameIOError:
            return False, "unreadable output"
        try:
            source = probe(self.input.path(frame))
        except FrameIOError:
            return False, "input unreadable"
        if tuple(done["data_window"]) != tuple(source["data_window"]) \
                or tuple(done["display_window"]) != tuple(source["display_window"]):
            return False, "input size or windows changed"
        recorded = recorded_identity(done["attributes"])
        if recorded is None:
            return False, "no render identity recorded"
        try:
            wanted = self.identity(frame, content=self.verify_pixels, header=source)
        except (FrameIOError, OSError):
            return False, "input unreadable"
        return _difference(recorded, wanted)

    def complete(self, frame: int) -> bool:
        return self.check(frame)[0]

    def take(self, frame: int) -> None:
        """Record ``frame``'s identity as its input is when the frame is handed out (before it is read)."""
        try:
            identity: Optional[dict[str, Any]] = self.identity(frame)
        except (FrameIOError, OSError):
            identity = None  # the backend cannot read it either and reports the frame
        with self._lock:
            self._taken[frame] = identity

    def attributes(self, frame: int) -> dict[str, Any]:
        """The header attributes that record ``frame``'s identity (from `take`, else computed now)."""
        with self._lock:
            identity = self._taken.pop(frame, None)
        identity = identity or self.identity(frame)
        text = json.dumps(identity, sort_keys=True)
        attributes: dict[str, Any] = {MODEL_ATTRIBUTE: self.model_hash, MIX_ATTRIBUTE: float(self.args.mix),
                                      IDENTITY_ATTRIBUTE: text, COLOURSPACE_ATTRIBUTE: self.out_colourspace}
        if self.format == "exr":
            attributes.update(colour_tags(self.out_colourspace))  # None: the input's tag goes
        elif self.format not in ATTRIBUTE_FORMATS:
            attributes[DESCRIPTION_ATTRIBUTE] = DESCRIPTION_MARK + text
        return attributes


    def leftovers(self, frames: list[int]) -> dict[int, list[str]]:
        """Frames of ``frames`` that have temporary files (of a frame write) or claim files beside their
        output, with those temporary files: what a killed run leaves, or a live one works with."""
        folder = self.output.folder or "."
        try:
            names = os.listdir(folder)
        except OSError:
            return {}
        wanted = set(frames)
        found: dict[int, list[str]] = {}
        for name in names:
            path = os.path.join(self.output.folder, name)
            claim = name.endswith(CLAIM_SUFFIX)
            target = path[:-len(CLAIM_SUFFIX)] if claim else temporary_target(path)
            frame = self.output.frame_of(target) if target is not None else None
            if frame in wanted:
                found.setdefault(frame, [])
                if not claim:
                    found[frame].append(path)
        return found


def recorded_identity(attributes: dict[str, Any]) -> Optional[dict[str, Any]]:
    """The identity an output's header records, or None."""
    text = attributes.get(IDENTITY_ATTRIBUTE)
    description = attributes.get(DESCRIPTION_ATTRIBUTE)
    if not isinstance(text, str) and isinstance(description, str) and description.startswith(DESCRIPTION_MARK):
        text = description[len(DESCRIPTION_MARK):]
    try:
        identity = json.loads(text) if isinstance(text, str) else None
    except ValueError:
        return None
    return identity if isinstance(identity, dict) else None


def _difference(recorded: dict[str, Any], wanted: dict[str, Any]) -> tuple[bool, str]:
    for key, label in FIELD_NAMES.items():
        if recorded.get(key) != wanted[key]:
            if key == "model":
                return False, label
            return False, f"{label} {_shown(recorded.get(key))} -> {_shown(wanted[key])}"
    before, now = recorded.get("input") or {}, wanted["input"]
    if "sha256" in now:  # --verify-pixels: by content, whatever the file's times say
        return (True, "") if before.get("sha256") == now["sha256"] else (False, "input frame changed")
    same = before.get("size") == now["size"] and before.get("mtime_ns") == now["mtime_ns"]
    return (True, "") if same else (False, "input frame changed")


def _shown(value: Any) -> str:
    return "none" if value in (None, "") else f"{value:g}" if isinstance(value, float) else str(value)


def _sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()
