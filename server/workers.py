"""Several compute devices behind one server: a `DeviceWorker` per device (`serve --devices`).

`Workers` gives the loop the interface of one worker. A stylize request goes to the worker
with the fewest requests in flight, a training job to the one with the fewest jobs queued or
running (a job stays on its worker), a short task (a model upload) to the least busy one;
questions about load, jobs, liveness and health are answered over all of them, and each
worker's dead threads are restarted (`supervise`). The same device may
be named twice (`--devices cpu,cpu` runs two CPU workers: how the tests exercise this).
"""

from __future__ import annotations

from typing import Any, Callable, Dict, List, Optional

import zmq

from shotstyle.plugin import protocol
from shotstyle.plugin.codec import EncodedFrame
from shotstyle.plugin.params import FrameArgs
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
    def submit(self, identity: bytes, request_id: str, task: Callable[[], TaskResult],
               client: Optional[str] = None) -> None:
        self._least(DeviceWorker.queued_renders).submit(identity, request_id, task, client)

    def stylize(self, identity: bytes, request_id: str, frames: List[EncodedFrame], model: str, args: FrameArgs,
                client: Optional[str] = None) -> None:
        self._least(DeviceWorker.queued_renders).stylize(identity, request_id, frames, model, args, client)

    def submit_training(self, job: TrainJob) -> None:
        self._least(DeviceWorker.training_load).submit_training(job)

    def cancel(self, job_id: str) -> tuple[TrainJob, bool]:
        return self._worker_of(job_id).cancel(job_id)

    def _worker_of(self, job_id: str) -> DeviceWorker:
        for worker in self.workers:
            if worker.has_job(job_id):
                return worker
        return self.workers[0]  # none has it: its answer is the unknown_job error

    # --- questions ----------------------------------------------------------------------
    def job(self, job_id: str) -> TrainJob:
        return self._worker_of(job_id).job(job_id)

    def renders_in_flight(self, client: str) -> int:
        return sum(worker.renders_in_flight(client) for worker in self.workers)

    def active_jobs(self, client: str) -> int:
        return sum(worker.active_jobs(client) for worker in self.workers)

    def jobs(self) -> List[Dict[str, Any]]:
        return [job for worker in self.workers for job in worker.jobs()]

    def queued_renders(self) -> int:
        return sum(worker.queued_renders() for worker in self.workers)

    def health(self) -> str:
        """HEALTH_OK while every worker's is; else the first other one (HEALTH_DEGRADED)."""
        states = [worker.health() for worker in self.workers]
        return next((state for state in states if state != protocol.HEALTH_OK), protocol.HEALTH_OK)

    def faults(self) -> List[Dict[str, Any]]:
        return [{**fault, "worker": worker.number} for worker in self.workers for fault in worker.faults()]

    def supervise(self) -> List[List[Any]]:
        return [message for worker in self.workers for message in worker.supervise()]

    # --- stopping -----------------------------------------------------------------------
    def request_stop(self) -> None:
        for worker in self.workers:
            worker.request_stop()

    def alive(self) -> bool:
        return any(worker.alive() for worker in self.workers)

    def close(self, timeout: float = 10.0) -> None:
        for worker in self.workers:
            worker.close(timeout)

