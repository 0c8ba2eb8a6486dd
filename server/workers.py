"""Several compute devices behind one server: a `DeviceWorker` per device (`serve --devices`).

`Workers` gives the loop the interface of one worker. A stylize request goes to the worker
with the fewest requests in flight, a training job to the one with the fewest jobs queued or
running (a job stays on its worker), a short task (a model upload) to the least busy one;
questions about load, jobs and liveness are answered over all of them. The same device may
be named twice (`--devices cpu,cpu` runs two CPU workers: how the tests exercise this).
"""

from __future__ import annotations

from typing import Any, Callable, Dict, List, Optional

import zmq

from shotstyle.plugin.codec import EncodedFrame
from shotstyle.server.jobs import DeviceWorker, TaskResult, TrainJob
from shotstyle.server.store import ModelStore


class Workers:
    """One `DeviceWorker` per device in `devices`, used like one."""

    def __init__(self, store: ModelStore, devices: List[str], context: zmq.Context, results_address: str,
                 vgg: Optional[str] = None):
        self.workers = [DeviceWorker(store, device, context, results_address, vgg=vgg, number=number)
                        for number, device in enumerate(devices)]

    def _least(self, load: Callable[[DeviceWorker], int]) -> DeviceWorker:
        return min(self.workers, key=load)  # the first of equals: one device gets the work while idle

    # --- work ---------------------------------------------------------------------------
    def submit(self, identity: bytes, request_id: str, task: Callable[[], TaskResult]) -> None:
        self._least(DeviceWorker.queued_renders).submit(identity, request_id, task)

    def stylize(self, identity: bytes, request_id: str, frames: List[EncodedFrame], model: str, mix: float,
                colourspace: Optional[str], tile: int, out_colourspace: Optional[str] = None) -> None:
        self._least(DeviceWorker.queued_renders).stylize(identity, request_id, frames, model, mix, colourspace, tile,
                                                         out_colourspace)

    def submit_training(self, job: TrainJob) -> None:
        self._least(DeviceWorker.training_load).submit_training(job)

    def cancel(self, job_id: str) -> TrainJob:
        for worker in self.workers:
            if worker.has_job(job_id):
                return worker.cancel(job_id)
        return self.workers[0].cancel(job_id)  # none has it: the unknown_job error

    # --- questions ----------------------------------------------------------------------
    def renders_in_flight(self, identity: bytes) -> int:
        return sum(worker.renders_in_flight(identity) for worker in self.workers)

    def active_jobs(self, identity: bytes) -> int:
        return sum(worker.active_jobs(identity) for worker in self.workers)

    def jobs(self) -> List[Dict[str, Any]]:
        return [job for worker in self.workers for job in worker.jobs()]

    def queued_renders(self) -> int:
        return sum(worker.queued_renders() for worker in self.workers)

    # --- stopping -----------------------------------------------------------------------
    def request_stop(self) -> None:
        for worker in self.workers:
            worker.request_stop()

    def alive(self) -> bool:
        return any(worker.alive() for worker in self.workers)

    def close(self, timeout: float = 10.0) -> None:
        for worker in self.workers:
            worker.close(timeout)

