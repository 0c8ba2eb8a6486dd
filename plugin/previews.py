"""Where a training's preview pictures go: the one path `train --preview`, the Nuke node and the
Resolve dialog write them by. Standard library only (it runs inside the hosts).

A `PreviewFile` names the file for each step (one name rewritten, or a new name per step where
a host caches what it has read), makes its folder, has the picture written there atomically
and remembers the latest (step, path), for a caller to show or say. What the picture is stays
with the caller: a host writes the frame the server sent (its viewer applies the display
transform); the command line, with no viewer, writes a display-referred PNG.
"""

from __future__ import annotations

import os
from typing import Callable, Optional


class PreviewFile:
    """The file a training's preview is written to; ``where(step)`` is its path at ``step``."""

    def __init__(self, where: Callable[[int], str]):
        self.where = where
        self.step: Optional[int] = None
        self.path: Optional[str] = None

    def write(self, step: int, write: Callable[[str], None]) -> str:
        """Have ``write(path)`` write the picture of ``step`` (atomically: readers never see half of
        one) into its path, its folder made first; the path. OSError when it cannot be written."""
        path = self.where(step)
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        write(path)
        self.step, self.path = step, path
        return path
