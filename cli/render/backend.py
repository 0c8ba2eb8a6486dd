"""The one interface every place a render computes pixels in implements: `Backend`.

A backend is built for one model (its constructor loads or uploads it and fails with a
`SetupError` carrying the exit status), then `run` drives it::

    backend.render(scheduler, outputs, writer)   # maybe several times (frames others held)
    backend.close()

`render` takes frames from the scheduler until it runs dry (each already claimed), reads each
input (``outputs.input.path(frame)``), computes the stylized frame and hands it to the writer
(``writer.put(frame, result, started, server)``, or ``writer.write`` on a thread of its own),
never writing files itself and never raising for a frame's own failure: an input that cannot
be read or a frame the engine refuses goes to the writer as the exception, so the frame is
reported failed and the others go on. It
raises only when it can render nothing more at all (`SetupError`: e.g. every server was lost);
frames it had claimed but not finished it hands back (`Scheduler.give_back`).
Two exist: `InProcess` (the engine in this process) and `Servers` (one or more render servers).
"""

from __future__ import annotations

from typing import Protocol

from shotstyle.cli.render.outputs import Outputs
from shotstyle.cli.render.scheduler import Scheduler
from shotstyle.cli.render.writer import Writer


class Backend(Protocol):
    """Where a render's pixels are computed; see the module docstring for the contract."""

    model_hash: str
    """Hash of the model the backend runs (`StyleModel.hash`): run checks it against the file's header."""

    def describe(self) -> str:
        """Where the pixels are computed, in words (the line a render prints before its frames)."""
        ...

    def render(self, scheduler: Scheduler, outputs: Outputs, writer: Writer) -> None:
        """Stylize every frame ``scheduler`` hands out, passing each result (or failure) to ``writer``."""
        ...

    def close(self) -> None:
        """Release what the backend holds (connections, threads); called once, after the last render."""
        ...
