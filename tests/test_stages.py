"""The stage runner both ways to the engine use (server.engine.stages): every item ends exactly
once, a failure ends only its own item whatever stage it happens in (a batch the device refuses
is tried again item by item), the queues bound what is in flight, and cancelling ends what is not
prepared yet."""

from __future__ import annotations

import threading
import time
from typing import Sequence

import pytest

from shotstyle.server.engine.stages import Cancelled, StageRunner, ThreadNames

NAMES = ThreadNames("test-prepare", "test-device", "test-finish")


class Recorder:
    """Stages over integers: ``bad`` maps an item to the stage that raises for it."""

    def __init__(self, bad: dict[int, str] | None = None, hold: threading.Event | None = None):
        self.bad = bad or {}
        self.hold = hold
        self.lock = threading.Lock()
        self.ended: dict[int, str] = {}
        self.batches: list[list[int]] = []
        self.prepared = 0

    def _raise_if_bad(self, item: int, stage: str) -> None:
        if self.bad.get(item) == stage:
            raise ValueError(f"{stage} refuses {item}")

    def prepare(self, item: int) -> None:
        self._raise_if_bad(item, "prepare")
        with self.lock:
            self.prepared += 1

    def device(self, items: Sequence[int]) -> None:
        if self.hold is not None:
            self.hold.wait(30)
        self.batches.append(list(items))
        for item in items:
            self._raise_if_bad(item, "device")

    def finish(self, item: int) -> None:
        self._raise_if_bad(item, "finish")
        self._end(item, "done")

    def failed(self, item: int, error: BaseException) -> None:
        self._end(item, type(error).__name__ + ": " + str(error))

    def _end(self, item: int, how: str) -> None:
        with self.lock:
            assert item not in self.ended, f"item {item} ended twice"
            self.ended[item] = how


@pytest.mark.parametrize("threads, batch", [(1, 1), (3, 1), (2, 4)])
def test_every_item_ends_once_and_a_failure_only_its_own(threads, batch):
    stages = Recorder({3: "prepare", 5: "device", 8: "finish"})
    runner = StageRunner(stages, NAMES, threads, device_queue=2, batch=lambda: batch)
    for item in range(12):
        runner.submit(item)
    runner.close()
    assert stages.ended == {**{n: "done" for n in range(12)}, 3: "ValueError: prepare refuses 3",
                            5: "ValueError: device refuses 5", 8: "ValueError: finish refuses 8"}
    assert all(len(b) <= batch for b in stages.batches)
    assert [5] in stages.batches  # the batch it was in was refused: it went again alone
    assert not [t for t in threading.enumerate() if t.name.startswith("test-")]


def test_the_queues_bound_what_waits_for_a_stalled_device():
    hold = threading.Event()
    stages = Recorder(hold=hold)
    runner = StageRunner(stages, NAMES, 2, device_queue=3)
    for item in range(40):
        runner.submit(item)  # inbox 0: never blocks, like the server's socket loop
    deadline = time.monotonic() + 10
    while stages.prepared < 6 and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.2)  # would the prepare threads go on past the bound?
    # one item in the device, three queued for it, and one held by each prepare thread
    assert stages.prepared == 1 + 3 + 2
    hold.set()
    runner.close()
    assert sorted(stages.ended) == list(range(40)) and set(stages.ended.values()) == {"done"}


def test_cancelling_ends_what_is_not_prepared_yet():
    hold = threading.Event()
    stages = Recorder(hold=hold)
    runner = StageRunner(stages, NAMES, 1, device_queue=1)
    for item in range(10):
        runner.submit(item)
    deadline = time.monotonic() + 10
    while stages.prepared < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    runner.cancel()
    hold.set()
    runner.close()
    done = sorted(n for n, how in stages.ended.items() if how == "done")
    assert sorted(stages.ended) == list(range(10))
    assert done == list(range(len(done))) and len(done) >= 3  # what was prepared went on to its end
    assert all(how == f"{Cancelled.__name__}: " for n, how in stages.ended.items() if n not in done)
