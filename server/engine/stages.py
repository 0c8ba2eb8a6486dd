"""The stage runner: items through prepare (host threads) → device (one thread) → finish (host threads).

How both ways to reach the engine keep several frames in flight: the server's worker
(`server.stylizing`: an item is a stylize request) and ``shotstyle render --in-process``
(`cli.render.inprocess`: an item is a frame). The caller says what each stage does
(`Stages`); the runner owns the threads and the queues between them:

    submit ─▶ inbox ─▶ prepare threads ─▶ device queue ─▶ device thread ─▶ finish queue ─▶ finish threads

* prepare runs on ``host_threads`` threads (decoding, reading, staging: host work that mostly
  releases the GIL), the device stage on one thread (so the device sees one caller and its
  queue order), finish on another ``host_threads`` threads (read-back, encoding, writing).
* Bounded queues: at most ``device_queue`` prepared items wait for the device, and as many
  per finishing thread for finish, so a fast stage waits for a slow one and memory stays
  bounded; ``inbox`` bounds the items not yet prepared (0: never blocks `submit`, for a
  caller such as the server's socket loop that must not wait).
* The device stage takes up to ``batch()`` items that are ready together in one call; when
  such a call raises, each item is tried again alone, so one bad item fails alone.
* Every item ends exactly once, on a finishing thread: ``finish`` after its stages, or
  ``failed`` with the exception of the stage that stopped it. What a failure means — the
  whole request's error reply, one frame reported failed — is the caller's policy, in ``failed``.
* Cancelling (``cancelled`` set, e.g. a server stopping, Ctrl-C): items not prepared yet end in
  ``failed`` with ``cancel_error()``; those already prepared go on to their end, so work
  the device has begun is not thrown away.

Knows nothing of ZeroMQ, files or the engine's own steps.
"""

from __future__ import annotations

import queue
import threading
import traceback
from dataclasses import dataclass
from typing import Callable, Generic, Optional, Protocol, Sequence, TypeVar

T = TypeVar("T")
Item = TypeVar("Item", contravariant=True)

# Items waiting for a finishing thread (past the device, or failed), per finishing thread, before stages wait.
FINISH_QUEUE_PER_THREAD = 4


class Stages(Protocol[Item]):
    """What a runner's caller does at each stage; a stage raising ends its item via `failed`."""

    def prepare(self, item: Item) -> None:
        """Host work before the device (any prepare thread)."""

    def device(self, items: Sequence[Item]) -> None:
        """The device's work for one or more items (the device thread only)."""

    def finish(self, item: Item) -> None:
        """Host work after the device, the item's end (any finishing thread)."""

    def failed(self, item: Item, error: BaseException) -> None:
        """The item's end when a stage raised ``error`` (any finishing thread); what it raises is printed."""


@dataclass(frozen=True)
class ThreadNames:
    """Prefixes of the runner's thread names (what a stack dump or `threading.enumerate` shows)."""

    prepare: str
    device: str
    finish: str


@dataclass
class _Failed(Generic[T]):
    item: T
    error: BaseException


class Cancelled(Exception):
    """What an item not prepared yet ends with once the runner is cancelled (unless the caller says otherwise)."""


_STOP = object()  # the end of a queue's items: one per thread that reads it


class StageRunner(Generic[T]):
    """Threads and bounded queues running `Stages` over the items `submit` is given."""

    def __init__(self, stages: Stages[T], names: ThreadNames, host_threads: int, device_queue: int,
                 batch: Callable[[], int] = lambda: 1, inbox: int = 0,
                 cancelled: Optional[threading.Event] = None,
                 cancel_error: Callable[[], Exception] = Cancelled):
        self._stages = stages
        self._batch = batch
        self.cancelled = cancelled or threading.Event()
        self._cancel_error = cancel_error
        count = max(1, host_threads)
        self._inbox: "queue.Queue[object]" = queue.Queue(maxsize=inbox)
        self._ready: "queue.Queue[object]" = queue.Queue(maxsize=max(1, device_queue))
        self._done: "queue.Queue[object]" = queue.Queue(maxsize=FINISH_QUEUE_PER_THREAD * count)
        self._preparing = [self._thread(self._prepare_loop, f"{names.prepare}-{n}") for n in range(count)]
        self._device_thread = self._thread(self._device_loop, names.device)
        self._finishing = [self._thread(self._finish_loop, f"{names.finish}-{n}") for n in range(count)]
        self._closed = False

    @staticmethod
    def _thread(loop: Callable[[], None], name: str) -> threading.Thread:
        thread = threading.Thread(target=loop, name=name, daemon=True)
        thread.start()
        return thread

    def submit(self, item: T) -> None:
        """Send ``item`` through the stages; blocks while ``inbox`` items wait to be prepared."""
        if self._closed:
            raise RuntimeError("StageRunner.submit after close")
        self._inbox.put(item)

    def cancel(self) -> None:
        """Items not prepared yet end in `failed` with the cancel error; returns at once."""
        self.cancelled.set()

    def close(self, timeout: Optional[float] = None) -> None:
        """No more items: returns once every item submitted has ended and the threads have stopped
        (or ``timeout`` seconds passed)."""
        self._closed = True
        for _ in self._preparing:
            self._inbox.put(_STOP)
        for thread in self._preparing:
            thread.join(timeout)
        self._device_thread.join(timeout)
        for _ in self._finishing:
            self._done.put(_STOP)
        for thread in self._finishing:
            thread.join(timeout)

    # --- the stages' loops ----------------------------------------------------------------
    def _prepare_loop(self) -> None:
        while (item := self._inbox.get()) is not _STOP:
            try:
                if self.cancelled.is_set():
                    raise self._cancel_error()
                self._stages.prepare(item)  # type: ignore[arg-type]
            except Exception as exc:  # every failure is the item's, reported in `failed`
                self._done.put(_Failed(item, exc))
                continue
            self._ready.put(item)
        self._ready.put(_STOP)  # the device loop ends once it has one from every prepare thread

    def _device_loop(self) -> None:
        running = len(self._preparing)
        while running:
            items: list[T] = []
            for entry in self._ready_items():
                if entry is _STOP:
                    running -= 1
                else:
                    items.append(entry)  # type: ignore[arg-type]
            if items:
                self._device(items)

    def _ready_items(self) -> list[object]:
        """The next prepared item (waiting for it) and those ready behind it, up to a batch."""
        entries = [self._ready.get()]
        limit = max(1, self._batch())
        while entries[-1] is not _STOP and len(entries) < limit:
            try:
                entries.append(self._ready.get_nowait())
            except queue.Empty:
                break
        return entries

    def _device(self, items: list[T]) -> None:
        try:
            self._stages.device(items)
        except Exception as exc:
            if len(items) > 1:  # which item it was is not known: each again alone
                for item in items:
                    self._device([item])
                return
            self._done.put(_Failed(items[0], exc))
            return
        for item in items:
            self._done.put(item)

    def _finish_loop(self) -> None:
        while (entry := self._done.get()) is not _STOP:
            if isinstance(entry, _Failed):
                self._end_failed(entry.item, entry.error)
                continue
            try:
                self._stages.finish(entry)  # type: ignore[arg-type]
            except Exception as exc:
                self._end_failed(entry, exc)  # type: ignore[arg-type]

    def _end_failed(self, item: T, error: BaseException) -> None:
        try:
            self._stages.failed(item, error)
        except Exception:  # a broken policy must not stop the thread every later item ends on
            traceback.print_exc()
