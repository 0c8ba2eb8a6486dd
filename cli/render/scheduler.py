"""Which frame a render works on next: each handed out already claimed, none twice across processes."""

from __future__ import annotations

import threading
import time
from typing import Iterator, Optional

from shotstyle.cli.render.claims import Claims
from shotstyle.cli.render.outputs import Outputs
from shotstyle.cli.render.progress import Progress

WAIT_POLL_S = 0.2


class Scheduler:
    """Hands out the frames this process should render next, each already claimed; thread-safe.

    Iterating never blocks: complete frames are reported as skipped, frames a live process
    holds are put aside. `wait_for_others` then waits a moment and offers those again, so a
    chunk finishes complete without two processes ever waiting on each other's claims; frames
    handed back (`give_back`: a server was lost before it answered) are offered again with them.
    A claim that cannot be made at all (an unwritable folder) stops the handing out; ``error``
    then holds the OSError. `stop` (Ctrl-C) stops it too.
    """

    def __init__(self, frames: list[int], outputs: Outputs, claims: Claims, progress: Progress):
        self._pending = list(frames)
        self._waiting: list[int] = []
        self._outputs = outputs
        self._claims = claims
        self._progress = progress
        self._lock = threading.Lock()
        self.error: Optional[OSError] = None
        self._stopped = False

    def next(self) -> Optional[int]:
        with self._lock:
            while self._pending and self.error is None and not self._stopped:
                frame = self._pending.pop(0)
                if self._outputs.complete(frame):
                    self._progress.frame(frame, "skipped", self._outputs.output.path(frame))
                    continue
                try:
                    claimed = self._claims.try_claim(frame)
                except OSError as exc:
                    self.error = exc
                    self._pending.insert(0, frame)
                    return None
                if not claimed:
                    self._waiting.append(frame)
                    continue
                if self._outputs.complete(frame):  # finished by another process since we looked
                    self._claims.release(frame)
                    self._progress.frame(frame, "skipped", self._outputs.output.path(frame))
                    continue
                self._outputs.take(frame)
                return frame
            return None

    def __iter__(self) -> Iterator[int]:
        while (frame := self.next()) is not None:
            yield frame

    def stop(self) -> None:
        """Hand out no more frames: the threads rendering end with the ones they hold."""
        with self._lock:
            self._stopped = True

    def give_back(self, frame: int) -> None:
        """Release a claimed frame this process did not render; it is offered again after `wait_for_others`."""
        self._claims.release(frame)
        with self._lock:
            self._waiting.append(frame)

    def wait_for_others(self) -> bool:
        """False when nothing is left; else waits briefly and re-offers the frames others held."""
        with self._lock:
            if not self._waiting:
                return False
            self._pending, self._waiting = self._waiting, []
        time.sleep(WAIT_POLL_S)
        return True
