"""Save finished frames atomically, release their claims and report them: `Writer`.

`write` does it on the calling thread (the in-process render's finishing threads, see
`inprocess`); `put` queues the frame for the writer's own threads, started on first use (a
render through servers, whose streams must not wait for the disk). Either way writing (and
the end of the frame's stylizing, handed over as a callable) overlaps the work on the next
frames. EXR compression is the costliest host step of a GPU render, so a machine with cores to
spare writes several frames at once (`media.frame.io_threads`); they finish in any order.
"""

from __future__ import annotations

import os
import queue
import threading
import time
from typing import Callable, Optional, Tuple, Union

from shotstyle.cli.render.claims import Claims
from shotstyle.cli.render.outputs import Outputs
from shotstyle.cli.render.progress import Progress
from shotstyle.media.frame import Frame, io_threads
from shotstyle.media.writing import write_frame
from shotstyle.server.errors import FrameIOError, FrameWriteError

# Frames waiting per writer thread before `put` blocks the renderer (bounds memory).
QUEUE_FRAMES = 4

# What a backend hands over for a frame: the stylized Frame, a callable that finishes it (the
# colour-out stage), or the exception that stopped it.
FrameResult = Union[Frame, Callable[[], Frame], BaseException]


class Writer:
    """Writes finished frames, releases their claims and reports them (see the module docstring)."""

    def __init__(self, outputs: Outputs, claims: Claims, progress: Progress, stop: Callable[[], None],
                 threads: Optional[int] = None):
        """``stop`` is called when a frame cannot be written for a reason of the system (a full disk):
        the render then hands out no more frames, whose results could not be written either."""
        self._outputs = outputs
        self._stop = stop
        self._claims = claims
        self._progress = progress
        self._count = threads or io_threads()
        self._queue: "queue.Queue[Optional[Tuple[int, FrameResult, float, str]]]" = \
            queue.Queue(maxsize=QUEUE_FRAMES * self._count)
        self._threads: list[threading.Thread] = []
        self._starting = threading.Lock()

    def put(self, frame: int, result: FrameResult, started: float, server: str = "") -> None:
        """Queue ``frame``'s result for the writer's threads; ``started`` is when its work began,
        ``server`` who computed it."""
        with self._starting:
            if not self._threads:
                self._threads = [threading.Thread(target=self._loop, name=f"frame-writer-{n}", daemon=True)
                                 for n in range(self._count)]
                for thread in self._threads:
                    thread.start()
        self._queue.put((frame, result, started, server))

    def close(self) -> None:
        """Write what is queued, then stop the threads."""
        with self._starting:
            threads = self._threads
        for _ in threads:
            self._queue.put(None)
        for thread in threads:
            thread.join()

    def _loop(self) -> None:
        while (item := self._queue.get()) is not None:
            self.write(*item)

    def write(self, frame: int, result: FrameResult, started: float, server: str = "") -> None:
        """Write ``frame``'s result (or report its failure) here and now, release its claim, report it."""
        path = self._outputs.output.path(frame)
        try:
            if isinstance(result, BaseException):
                raise result
            finished = result() if callable(result) else result
            clamped = finished.clamped + write_frame(path, finished, compression=self._outputs.compression,
                                                     attributes=self._outputs.attributes(frame))
        except Exception as exc:
            self._claims.release(frame)
            self._fail(frame, exc)
            return
        self._claims.release(frame)
        self._progress.frame(frame, "rendered", path, time.perf_counter() - started, server=server,
                             clamped=clamped)

    def _fail(self, frame: int, exc: BaseException) -> None:
        if isinstance(exc, FrameWriteError):
            self._stop()
            self._progress.frame(frame, "unwritable", self._outputs.output.path(frame), error=str(exc))
            return
        source = self._outputs.input.path(frame)
        # An input that is absent or cannot be read (a FrameIOError names its file first) is a missing
        # input (exit 3), not a failed render.
        unreadable = isinstance(exc, FrameIOError) and str(exc).startswith(source)
        status = "missing" if unreadable or not os.path.exists(source) else "failed"
        message = f"{source}: input frame does not exist" if not os.path.exists(source) else str(exc)
        self._progress.frame(frame, status, self._outputs.output.path(frame), error=message)
