"""Image sequence patterns and frame ranges, in the spellings VFX hosts use.

Patterns (the frame token lives in the file name, not the folder):
  ``shot.####.exr``  Nuke / Fusion: one ``#`` per digit, zero padded
  ``shot.@@@@.exr``  the same with ``@``
  ``shot.%04d.exr``  printf style; ``%d`` means no padding
  ``shot.$F4.exr``   Houdini; ``$F`` means no padding
Ranges: ``1001-1100``, ``1001-1100x2`` (every 2nd frame), ``1,5,9-12``, ``7``; negative frames
are allowed (``-5--1``). A range names at most `MAX_RANGE_FRAMES` frames, counted before any
list is made (so ``0-20000000`` is refused at once, not after filling memory).

Standard library only: the host nodes import this too.
"""

from __future__ import annotations

import os
import re
from typing import Iterable

_TOKEN = re.compile(r"(#+|@+|%0?(\d*)d|\$F(\d*))")
_RANGE_PART = re.compile(r"^\s*(-?\d{1,18})\s*(?:-\s*(-?\d{1,18})\s*(?:x\s*(\d{1,18})\s*)?)?$")
# Over an hour at 24 fps: longer renders come in chunks.
MAX_RANGE_FRAMES = 100_000


def parse_frame_range(text: str) -> list[int]:
    """Frames named by ``text`` (``"1001-1100x2"``, ``"1,5,9-12"``...), sorted, without repeats."""
    spans = []
    count = 0
    parts = [p for p in re.split(r"[,\s]+", text.strip()) if p]
    if not parts:
        raise ValueError(f"empty frame range {_short(text)}: give frames like '1001-1100', '1001-1100x2' or "
                         "'1,5,9-12'")
    for part in parts:
        match = _RANGE_PART.match(part)
        if not match:
            raise ValueError(f"frame range {_short(text)}: cannot read {_short(part)}; use 'first-last', "
                             "'first-lastxstep' or single frames")
        first = int(match.group(1))
        last = int(match.group(2)) if match.group(2) is not None else first
        step = int(match.group(3)) if match.group(3) is not None else 1
        if step < 1:
            raise ValueError(f"frame range {_short(text)}: step in {part!r} must be 1 or more")
        if last < first:
            raise ValueError(f"frame range {_short(text)}: {part!r} ends before it starts; write it as {last}-{first}")
        span = range(first, last + 1, step)
        count += len(span)
        if count > MAX_RANGE_FRAMES:
            raise ValueError(f"frame range {_short(text)} names more than {MAX_RANGE_FRAMES} frames; "
                             "split the work into chunks")
        spans.append(span)
    return sorted({frame for span in spans for frame in span})


def _short(text: str, limit: int = 60) -> str:
    return repr(text) if len(text) <= limit else repr(text[:limit]) + f"... ({len(text)} characters)"


def format_frame_range(frames: Iterable[int]) -> str:
    """Compact text for ``frames`` that `parse_frame_range` reads back, e.g. ``"1-3,5,7-11x2"``."""
    ordered = sorted(set(frames))
    parts: list[str] = []
    i = 0
    while i < len(ordered):
        j = i
        if i + 1 < len(ordered):
            step = ordered[i + 1] - ordered[i]
            j = i + 1
            while j + 1 < len(ordered) and ordered[j + 1] - ordered[j] == step:
                j += 1
            if j - i + 1 < 3 and step != 1:
                j = i
        if j == i:
            parts.append(str(ordered[i]))
        else:
            step = ordered[i + 1] - ordered[i]
            parts.append(f"{ordered[i]}-{ordered[j]}" + (f"x{step}" if step != 1 else ""))
        i = j + 1
    return ",".join(parts)


def is_pattern(text: str) -> bool:
    """Whether the file name part of ``text`` holds a frame token (``####``, ``%04d``, ``$F4``, ``@``)."""
    return _TOKEN.search(os.path.basename(text)) is not None


class SequencePattern:
    """A parsed sequence pattern: builds frame paths and finds the frames present on disk."""

    def __init__(self, text: str):
        folder, name = os.path.split(text)
        matches = list(_TOKEN.finditer(name))
        if not matches:
            raise ValueError(
                f"{text!r} is not a sequence pattern: put the frame number as '####', '%04d' or '$F4' in the file name"
            )
        token = matches[-1]
        spelled = token.group(1)
        if spelled[0] in "#@":
            self.padding = len(spelled)
        else:
            digits = token.group(2) if spelled.startswith("%") else token.group(3)
            self.padding = int(digits) if digits else 0
        self.text = text
        self.folder = folder
        self._prefix = name[: token.start()]
        self._suffix = name[token.end():]
        digits_rx = r"-?\d+" if self.padding <= 1 else r"-?\d{%d,}" % self.padding
        self._name_rx = re.compile("^" + re.escape(self._prefix) + "(" + digits_rx + ")" + re.escape(self._suffix) + "$")

    def __repr__(self) -> str:
        return f"SequencePattern({self.text!r})"

    def path(self, frame: int) -> str:
        """The file path of ``frame``."""
        number = f"-{abs(frame):0{self.padding}d}" if frame < 0 else f"{frame:0{self.padding}d}"
        return os.path.join(self.folder, self._prefix + number + self._suffix)

    def frame_of(self, path: str) -> int | None:
        """The frame number ``path`` stands for in this sequence, or None if it is not one of its files."""
        folder, name = os.path.split(path)
        if os.path.normpath(folder or ".") != os.path.normpath(self.folder or "."):
            return None
        match = self._name_rx.match(name)
        if not match:
            return None
        frame = int(match.group(1))
        return frame if self.path(frame) == os.path.join(self.folder, name) else None

    def scan(self) -> list[int]:
        """Frames of this sequence present on disk, sorted."""
        try:
            names = os.listdir(self.folder or ".")
        except OSError:
            return []
        frames = []
        for name in names:
            frame = self.frame_of(os.path.join(self.folder, name))
            if frame is not None:
                frames.append(frame)
        return sorted(frames)

    def missing(self, frames: Iterable[int]) -> list[int]:
        """Those of ``frames`` that have no file on disk."""
        return [f for f in frames if not os.path.isfile(self.path(f))]



def refuse_overwriting(outputs: "SequencePattern", inputs: Iterable[str], frames: Iterable[int]) -> None:
    """ValueError naming both paths if an output frame of ``outputs`` would be one of ``inputs``.

    Paths are compared as the filesystem resolves them (symlinks, ``..``, either pattern spelling
    giving the same name) and, where both exist, by identity (hard links). A render checks this
    before it reads a frame; no option turns the clash into an overwrite.
    """
    folders: dict[str, str] = {}   # a sequence's frames share their folder: resolve it once
    known: dict[object, str] = {}
    for path in inputs:
        for key in _file_keys(path, folders):
            known.setdefault(key, path)
    for frame in frames:
        path = outputs.path(frame)
        for key in _file_keys(path, folders):
            if key in known:
                raise ValueError(f"--out {outputs.text}: its file {path} is the input {known[key]}; writing it would "
                                 "replace the input. Give --out a pattern in another folder or with another name")


def _file_keys(path: str, folders: dict[str, str]) -> list[object]:
    """What identifies ``path``'s file: its resolved path and, if it exists, its device and inode."""
    folder, name = os.path.split(path)
    if folder not in folders:
        folders[folder] = os.path.realpath(folder or ".")
    resolved = os.path.join(folders[folder], name)
    if os.path.islink(resolved):
        resolved = os.path.realpath(resolved)
    keys: list[object] = [os.path.normcase(resolved)]
    try:
        status = os.stat(resolved)
    except OSError:
        return keys
    keys.append((status.st_dev, status.st_ino))
    return keys


STILL_FRAME = 1   # the frame number a still image stands for


class StillImage(SequencePattern):
    """One image file as a one-frame sequence (frame `STILL_FRAME`): `render --in still.png`."""

    def __init__(self, path: str):  # no frame token to parse: the whole name is the frame's file
        self.text = path
        self.folder, self._name = os.path.split(path)
        self.padding = 0

    def path(self, frame: int) -> str:
        return os.path.join(self.folder, self._name)

    def frame_of(self, path: str) -> int | None:
        return STILL_FRAME if os.path.normpath(path) == os.path.normpath(self.path(STILL_FRAME)) else None

    def scan(self) -> list[int]:
        return [STILL_FRAME] if os.path.isfile(self.path(STILL_FRAME)) else []


def sequence_or_still(text: str) -> SequencePattern:
    """A `SequencePattern` when the file name holds a frame token, else a `StillImage`."""
    return SequencePattern(text) if _TOKEN.search(os.path.basename(text)) else StillImage(text)
