"""Where a render's frames go, and how a finished one is recognised (what makes a render resumable).

A frame whose output is complete — readable, the input's size and windows, written by the same
model (our EXR attribute ``shotstyle/model`` holds the model hash) — is skipped; anything else
is rendered again. Headers are checked by default (our writes are atomic, so a final name
means a whole file); ``verify_pixels`` decodes every existing frame too.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Optional

from shotstyle.nodes.farm.render.claims import CLAIM_SUFFIX
from shotstyle.plugin.sequences import SequencePattern
from shotstyle.server.errors import FrameIOError
from shotstyle.server.frameio import MODEL_ATTRIBUTE, probe, read_frame, temporary_target


@dataclass
class Outputs:
    """Where frames go and how a finished one is recognised."""
    input: SequencePattern
    output: SequencePattern
    model_hash: str
    compression: Optional[str] = None
    verify_pixels: bool = False

    def complete(self, frame: int) -> bool:
        """Whether the output of ``frame`` is readable, the input's size and windows, and by this model.

        The header is enough for files we wrote (only ever atomically, so a final name means a
        whole file); ``verify_pixels`` also decodes every pixel, for folders other tools touched.
        """
        path = self.output.path(frame)
        if not os.path.isfile(path):
            return False
        try:
            done = probe(path)
            source = probe(self.input.path(frame))
            if self.verify_pixels:
                read_frame(path)
        except FrameIOError:
            return False
        return (done["attributes"].get(MODEL_ATTRIBUTE) == self.model_hash
                and tuple(done["data_window"]) == tuple(source["data_window"])
                and tuple(done["display_window"]) == tuple(source["display_window"]))

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
