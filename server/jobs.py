"""Compute for the server: one worker per device, with stylize stages, a task thread and training.

The server's socket loop never computes: it hands work to a `DeviceWorker` and goes back to
its socket. The worker runs:

* stylize requests through its `FramePipeline` (server.stylizing): decode threads, the device
  thread, finishing threads, several requests in flight;
* a task thread: short tasks in arrival order (model uploads, LUT exports);
* training threads: one job at a time on a CPU (others wait in line); on a GPU several at once
  (`TRAINING_SLOTS`), each on its own CUDA stream. Events (progress, previews, checkpoints,
  done/failed/cancelled) are pushed to the requester as they happen.

Results travel back to the loop over inproc ZeroMQ PUSH sockets as ready-made multipart
messages ``[identity, header, payload...]``. On a CPU frames and training would fight for
the same cores, so training yields between steps while frames are waiting: an artist
scrubbing in Nuke gets frames while a colleague's training carries on.

Every failure of a task becomes its error reply and the thread goes on. A thread that dies
anyway (something raised past that, e.g. SystemExit from a library) is found by `supervise`,
which the server loop calls all the time: the request or job it held gets an ``internal``
error, a fresh thread takes its place, and `health` says "degraded" from then on.
"""

from __future__ import annotations

import collections
import dataclasses
import queue
import sys
import threading
import time
import traceback
import uuid
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Optional, Sequence, Tuple

import zmq

from shotstyle.media.frame import Frame
from shotstyle.media.payloads import IsolatedDecoder, encode_like
from shotstyle.plugin import params as effect_params
from shotstyle.plugin import protocol
from shotstyle.plugin.codec import EncodedFrame, frames_to_message
from shotstyle.plugin.mattes import Mattes
from shotstyle.plugin.quoting import brief
from shotstyle.server.errors import RequestError, StoreError, TrainingCancelled, error_of, shutting_down
from shotstyle.server.store import ModelStore
from shotstyle.server.stylizing import FramePipeline, StylizeRequest

if TYPE_CHECKING:  # the engine (torch) is imported when first used
    import numpy as np

    from shotstyle.server.engine.inference import Stylizer
    from shotstyle.server.engine.modelfile import StyleModel
    from shotstyle.server.engine.training import TrainEvent

PROGRESS_INTERVAL_S = 0.25  # at most this often a progress event per job (the last step always)
TRAINING_SLOTS = 4          # training jobs at once where the execution trains concurrently (a GPU)
FAULTS_KEPT = 10            # the most recent worker faults `status` shows

# What a render-thread task returns: (result, frames), or (result, frames, parts) with raw
# payload parts (bytes) sent after the frames' parts.
TaskResult = Tuple[Any, ...]


@dataclasses.dataclass
class TrainJob:
    """One training request: inputs, state and who to tell."""

    identity: bytes
    request_id: str
    name: str
    params: Dict[str, Any]
    keyframes: List[EncodedFrame]
    style: EncodedFrame
    preview: Optional[EncodedFrame] = None
    style_colourspace: Optional[str] = None
    init: Optional[bytes] = None  # a model file to continue training (its network and loss are kept)
    mattes: Mattes[EncodedFrame] = dataclasses.field(default_factory=Mattes)  # the artist's (plugin.mattes)
    client: str = ""  # who asked (server.access principal): limits and cancel rights
    authority: bool = False  # whether the asker may replace a model of the job's name (server.access)
    # False: the model is the asker's alone (train -o): never in the store, its last checkpoint held here.
    keep: bool = True
    checkpoint_file: Optional[bytes] = None
    id: str = dataclasses.field(default_factory=lambda: uuid.uuid4().hex[:12])
    state: str = "queued"  # queued | running | done | failed | cancelled
    step: int = 0
    steps: int = 0
    checkpointed: bool = False
    cancel: threading.Event = dataclasses.field(default_factory=threading.Event)
    device: str = ""  # the device of the worker that has it, and its number (serve --devices)
    worker: int = 0

    def describe(self) -> Dict[str, Any]:
        return {"id": self.id, "name": self.name, "state": self.state, "step": self.step, "steps": self.steps,
                "device": self.device, "worker": self.worker,
                "checkpointed": self.checkpointed}


class DeviceWorker:
    """Stylize stages, a task thread and training threads for one compute device."""

    def __init__(self, store: ModelStore, device: str, context: zmq.Context, results_address: str,
                 vgg: Optional[str] = None, number: int = 0):
        from shotstyle.server.engine.device import execution_for, pick_device

        self.store = store
        self.device = device
        self.number = number  # among the server's workers
        self.execution = execution_for(pick_device(device))
        self.vgg = vgg
        self.decoder = IsolatedDecoder()
        self._context = context
        self._results_address = results_address
        self._tasks: "queue.Queue[Optional[Tuple[bytes, str, str, Callable[[], TaskResult]]]]" = queue.Queue()
        self._trainings: "queue.Queue[Optional[TrainJob]]" = queue.Queue()
        self._jobs: Dict[str, TrainJob] = {}
        self._render_load: Dict[str, int] = collections.Counter()
        self._busy = threading.Condition()
        self._states = threading.Lock()   # a queued job's next state: running (its thread) or cancelled (`cancel`)
        self._rendering = 0  # render tasks queued or running
        self._stylizers: "collections.OrderedDict[Tuple[str, int], Stylizer]" = collections.OrderedDict()
        self._stylizers_lock = threading.Lock()
        self.stopping = threading.Event()
        self.frames = FramePipeline(self._stylizer, context, results_address, self.stopping, self._request_done,
                                    {"device": device, "worker": number})
        slots = TRAINING_SLOTS if self.execution.concurrent_training else 1
        self._loops: Dict[str, Callable[[], None]] = {"shotstyle-tasks": self._task_loop, **{
            f"shotstyle-train-{n}": self._train_loop for n in range(slots)}}
        self._holding: Dict[str, Any] = {}  # thread name -> the (identity, request id) or TrainJob it works on
        self._deaths: Dict[str, str] = {}   # thread name -> what killed it
        self._faults: "collections.deque[Dict[str, Any]]" = collections.deque(maxlen=FAULTS_KEPT)
        self._threads = [self._start(name) for name in self._loops]

    def _start(self, name: str) -> threading.Thread:
        loop = self._loops[name]

        def guarded() -> None:
            try:
                loop()
            except BaseException as exc:  # recorded for `supervise`, which restarts the thread
                self._deaths[name] = f"{type(exc).__name__}: {brief(exc)}"
                traceback.print_exc()

        thread = threading.Thread(target=guarded, name=name, daemon=True)
        thread.start()
        return thread

    # --- what the loop asks -----------------------------------------------------
    def renders_in_flight(self, client: str) -> int:
        """Render tasks queued or running for ``client`` (a server.access principal)."""
        with self._busy:
            return self._render_load[client]

    def active_jobs(self, client: str) -> int:
        return sum(1 for j in list(self._jobs.values()) if j.client == client and j.state in ("queued", "running"))

    def job(self, job_id: str) -> TrainJob:
        """The queued or running job ``job_id``; RequestError(unknown_job) if there is none."""
        job = self._jobs.get(job_id)
        if job is None or job.state not in ("queued", "running"):
            raise RequestError("unknown_job", f"no queued or running job {brief(job_id)}; running jobs: "
                                              f"{[j.id for j in list(self._jobs.values()) if j.state == 'running']}")
        return job

    def jobs(self) -> List[Dict[str, Any]]:
        return [j.describe() for j in list(self._jobs.values())]

    def queued_renders(self) -> int:
        with self._busy:
            return self._rendering

    def submit(self, identity: bytes, request_id: str, task: Callable[[], TaskResult],
               client: Optional[str] = None) -> None:
        """Run ``task`` (a model upload, a LUT export) on the task thread; its result (or error) is the
        reply to ``request_id``.

        ``client`` is who the task counts against (`renders_in_flight`); default: the identity.
        """
        client = self._request_started(identity, client)
        self._tasks.put((identity, request_id, client, task))

    def stylize(self, identity: bytes, request_id: str, frames: List[EncodedFrame], model: str,
                args: effect_params.FrameArgs, client: Optional[str] = None) -> None:
        """Stylize ``frames`` with ``args`` through the frame pipeline; the reply goes to ``request_id``.
        ``client``: as for `submit`."""
        client = self._request_started(identity, client)
        self.frames.submit(StylizeRequest(identity, request_id, client, frames, model, args))

    def _request_started(self, identity: bytes, client: Optional[str]) -> str:
        """Count a request in; who it counts against (``client``, default: the identity)."""
        client = identity.hex() if client is None else client
        with self._busy:
            self._rendering += 1
            self._render_load[client] += 1
        return client

    def _request_done(self, client: str) -> None:
        with self._busy:
            self._rendering -= 1
            self._render_load[client] -= 1
            if not self._render_load[client]:
                del self._render_load[client]
            self._busy.notify_all()

    def training_load(self) -> int:
        """Training jobs queued or running here."""
        return sum(1 for j in list(self._jobs.values()) if j.state in ("queued", "running"))

    def has_job(self, job_id: str) -> bool:
        return job_id in self._jobs

    def submit_training(self, job: TrainJob) -> None:
        job.device, job.worker = self.device, self.number
        self._jobs[job.id] = job
        self._trainings.put(job)

    def cancel(self, job_id: str) -> tuple[TrainJob, bool]:
        """Ask a job to stop: (the job, whether it ended here). A queued job ends at once, as
        "cancelled" (its event is then the caller's to send: a job waiting behind a long training
        must not keep its client waiting for that training); a running one checkpoints and ends
        between steps."""
        job = self.job(job_id)
        job.cancel.set()
        with self._busy:
            self._busy.notify_all()
        with self._states:
            ended = job.state == "queued"
            if ended:
                job.state = "cancelled"
        return job, ended

    def request_stop(self) -> None:
        """Stop taking work; a running training job checkpoints and reports "cancelled"."""
        self.stopping.set()
        with self._busy:
            self._busy.notify_all()
        self._tasks.put(None)
        for _ in self._threads[1:]:
            self._trainings.put(None)

    def alive(self) -> bool:
        """Threads still working, or requests not answered yet (a stopping server drains them)."""
        return any(thread.is_alive() for thread in self._threads) or self.queued_renders() > 0

    def supervise(self) -> List[List[Any]]:
        """Restart threads that died; the messages that answer what they held (for the loop to send)."""
        messages: List[List[Any]] = []
        if self.stopping.is_set():
            return messages
        for index, thread in enumerate(self._threads):
            if thread.is_alive():
                continue
            name = thread.name
            cause = self._deaths.pop(name, "it stopped")
            self._faults.append({"thread": name, "error": cause, "time": time.time()})
            message = f"the server's {name} thread died ({cause}); it was restarted: please report this"
            held = self._holding.pop(name, None)
            if isinstance(held, TrainJob):
                held.state = "failed"
                body = {"type": protocol.EVENT_FAILED, "error": {"code": "internal", "message": message}}
                messages.append([held.identity, protocol.encode_header(protocol.event(held.request_id, held.id, body))])
            elif held is not None:
                identity, request_id = held
                messages.append([identity, protocol.encode_header(protocol.error_reply(request_id, "internal",
                                                                                       message))])
            self._threads[index] = self._start(name)
        return messages

    def health(self) -> str:
        """`protocol.HEALTH_OK`, or HEALTH_DEGRADED once a thread has died (and was restarted)."""
        return protocol.HEALTH_DEGRADED if self._faults or not all(t.is_alive() for t in self._threads) \
            else protocol.HEALTH_OK

    def faults(self) -> List[Dict[str, Any]]:
        """The most recent thread deaths: thread, error, time."""
        return list(self._faults)

    def close(self, timeout: float = 10.0) -> None:
        """After request_stop: wait for the threads, then stop the decoder helpers."""
        for thread in self._threads:
            thread.join(timeout)
        self.frames.close(timeout)
        self.decoder.close()

    # --- task thread (model uploads, LUT exports) ---------------------------------------------
    def _task_loop(self) -> None:
        out = self._context.socket(zmq.PUSH)
        out.connect(self._results_address)
        name = threading.current_thread().name
        try:
            while (item := self._tasks.get()) is not None:
                identity, request_id, client, task = item
                del item  # what a task holds (an upload, frames) is freed as soon as it is done
                self._holding[name] = (identity, request_id)
                try:
                    message = self._answer(request_id, task)
                finally:
                    del task
                    self._request_done(client)
                _push(out, [identity, *message])
                del message
                self._holding.pop(name, None)
        finally:
            out.close(0)

    def _answer(self, request_id: str, task: Callable[[], TaskResult]) -> List[Any]:
        """The reply to a task: its result, or the error reply of whatever it raised."""
        try:
            if self.stopping.is_set():
                raise shutting_down()
            result, frames, *parts = task()
            descs, payloads = frames_to_message(frames)
            return protocol.pack(protocol.reply(request_id, result, descs), [*payloads, *(parts[0] if parts else ())])
        except Exception as exc:  # a too-large reply included: the error reply is bounded
            code, message = error_of(exc)
            return [protocol.encode_header(protocol.error_reply(request_id, code, message))]

    def _stylizer(self, model_name: str, tile: int) -> Stylizer:
        from shotstyle.server.engine.inference import Stylizer

        model = self.store.get(model_name)
        key = (model_name, tile)
        with self._stylizers_lock:  # decode threads ask at the same time
            cached = self._stylizers.get(key)
            if cached is None or cached.model is not model:
                cached = Stylizer(model, tile_pixels=tile or None, execution=self.execution)
                self._stylizers[key] = cached
                while len(self._stylizers) > 4:
                    self._stylizers.popitem(last=False)
            self._stylizers.move_to_end(key)
            return cached

    # --- training thread ------------------------------------------------------------
    def _between_steps(self, job: TrainJob) -> bool:
        """Training's should_cancel hook: where training shares the cores with frames (a CPU),
        wait while frames are queued; True to stop."""
        if not self.execution.concurrent_training:
            with self._busy:
                while self._rendering and not job.cancel.is_set() and not self.stopping.is_set():
                    self._busy.wait(0.5)
        return job.cancel.is_set() or self.stopping.is_set()

    def _train_loop(self) -> None:
        out = self._context.socket(zmq.PUSH)
        out.connect(self._results_address)
        name = threading.current_thread().name
        try:
            while (job := self._trainings.get()) is not None:
                self._holding[name] = job
                try:
                    self._run_job(job, out)
                except Exception as exc:  # e.g. the store's disk is full: tell the requester, keep the thread
                    job.state = "failed"
                    code, message = error_of(exc)
                    body = {"type": protocol.EVENT_FAILED,
                            "error": {"code": code, "message": protocol.bounded_message(message)}}
                    _push(out, [job.identity, protocol.encode_header(protocol.event(job.request_id, job.id, body))])
                self._holding.pop(name, None)
                del job
                # Finished jobs are forgotten after a while; a few stay so `status` can show them.
                finished = [j for j in list(self._jobs.values()) if j.state not in ("queued", "running")]
                for old in finished[:-8]:
                    self._jobs.pop(old.id, None)
        finally:
            out.close(0)

    def _run_job(self, job: TrainJob, out: zmq.Socket) -> None:
        def push(body: Dict[str, Any], frames: Sequence[EncodedFrame] = (), model_file: Optional[bytes] = None) \
                -> None:
            descs, payloads = frames_to_message(frames)
            if model_file is not None:  # a final event carries the model, in case the server is gone a moment later
                body = {**body, "model_part": len(payloads)}
                payloads.append(memoryview(model_file))
            header = protocol.event(job.request_id, job.id, body, descs)
            _push(out, [job.identity, *protocol.pack(header, payloads)])

        with self._states:
            if job.state == "cancelled":   # while queued: `cancel` ended it and its event went then
                return
            job.state = "cancelled" if job.cancel.is_set() or self.stopping.is_set() else "running"
        if job.state == "cancelled":
            reason = protocol.CANCEL_BY_CLIENT if job.cancel.is_set() else protocol.CANCEL_BY_SERVER
            push({"type": protocol.EVENT_CANCELLED, "model": None, "reason": reason})
            return
        try:
            model = self._train(job, push)
        except TrainingCancelled:
            job.state = "cancelled"
            reason = protocol.CANCEL_BY_CLIENT if job.cancel.is_set() else protocol.CANCEL_BY_SERVER
            push({"type": protocol.EVENT_CANCELLED, "model": job.name if job.checkpointed else None,
                  "step": job.step, "reason": reason}, model_file=self._checkpoint_file(job))
            return
        except Exception as exc:
            job.state = "failed"
            code, message = error_of(exc)
            push({"type": protocol.EVENT_FAILED, "error": {"code": "training_failed" if code == "internal" else code,
                                                           "message": protocol.bounded_message(message)}})
            return
        from shotstyle.server.engine.modelfile import model_to_bytes

        data = model_to_bytes(model)
        try:
            if job.keep:
                self.store.write(job.name, data, replace=self._may_replace(job))
        except StoreError as exc:  # e.g. the store's disk is full: the finished model still reaches the client
            job.state = "failed"
            message = f"{exc}. The trained model comes with this reply (train -o writes it)"
            push({"type": protocol.EVENT_FAILED, "error": {"code": exc.code,
                                                           "message": protocol.bounded_message(message)},
                  "hash": model.hash, "step": job.step}, model_file=data)
            return
        job.state = "done"
        push({"type": protocol.EVENT_DONE, "model": job.name, "hash": model.hash, "step": job.step}, model_file=data)

    def _checkpoint_file(self, job: TrainJob) -> Optional[bytes]:
        """The bytes of ``job``'s last checkpoint (None: it made none)."""
        if not job.checkpointed:
            return None
        return self.store.read_bytes(job.name) if job.keep else job.checkpoint_file

    @staticmethod
    def _may_replace(job: TrainJob) -> bool:
        """Whether ``job`` may write over a model of its name: with authority, or over its own checkpoint."""
        return job.authority or job.checkpointed

    def _train(self, job: TrainJob, push: Callable[..., None]) -> StyleModel:
        from shotstyle.media.orientation import upright
        from shotstyle.server.engine.colour import from_working
        from shotstyle.server.engine.device import own_stream
        from shotstyle.server.engine.pipeline import frame_colourspace, picture_alpha, working_rgb
        from shotstyle.server.engine.training import config_from_params, train
        from shotstyle.server.matteimages import MATTE_COLOURSPACE, engine_mattes

        values = effect_params.validate(job.params, partial=False)
        colourspace = effect_params.explicit(values["colourspace"])
        init = None
        if job.init is not None:
            from shotstyle.server.engine.modelfile import model_from_bytes
            from shotstyle.server.engine.resume import check_same_network

            init = model_from_bytes(job.init, name=f"the model to continue ({job.name})")
            check_same_network(init.metadata, f"the model to continue ({job.name})", job.params.get("arch"),
                               job.params.get("loss"))
            values["loss"] = init.metadata.get("loss", values["loss"])  # "auto" must not switch it mid-training
        config = config_from_params(values, vgg=self.vgg, device=self.device)
        job.steps = config.steps
        plates = [self.decoder.frame(ef, colourspace) for ef in job.keyframes]
        keyframes = [working_rgb(plate, colourspace) for plate in plates]
        style_frame = upright(self.decoder.frame(job.style, job.style_colourspace))
        style = working_rgb(style_frame, job.style_colourspace)
        matte_frames = job.mattes.map(lambda ef: self.decoder.frame(ef, MATTE_COLOURSPACE))
        mattes = engine_mattes(matte_frames, plates, style_frame)
        preview = None if job.preview is None else working_rgb(self.decoder.frame(job.preview, colourspace),
                                                               colourspace)
        # Previews go back in the colour space the first keyframe was read in, encoded like it came in.
        like = job.keyframes[0]
        out_space = frame_colourspace(plates[0], colourspace)
        last_progress = [0.0]

        def preview_frame(rgb: np.ndarray, role: str) -> EncodedFrame:
            pixels = from_working(rgb, out_space)
            h, w = pixels.shape[:2]
            frame = Frame(pixels=pixels, channels=["R", "G", "B"], channel_formats=["half"] * 3,
                          data_window=(0, 0, w, h), display_window=(0, 0, w, h), attributes={},
                          colourspace=out_space)
            ef = encode_like(frame, like, job.step)
            ef.extra["role"] = role
            return ef

        def on_event(event: TrainEvent) -> None:
            job.step, job.steps = event.step, event.steps
            body = {"type": event.kind, "step": event.step, "steps": event.steps,
                    "losses": {k: float(v) for k, v in event.losses.items()},
                    "steps_per_s": float(event.steps_per_s), "eta_s": float(event.eta_s)}
            if event.kind == protocol.EVENT_PREVIEW and event.preview is not None:
                images = [preview_frame(event.preview, "image")]
                if event.preview_extra is not None:
                    images.append(preview_frame(event.preview_extra, "extra"))
                push(body, images)
                return
            now = time.monotonic()
            if now - last_progress[0] >= PROGRESS_INTERVAL_S or event.step >= event.steps:
                last_progress[0] = now
                push(body)

        def checkpoint(model: StyleModel) -> None:
            if job.keep:
                model_hash = self.store.put(job.name, model, replace=self._may_replace(job))
            else:
                from shotstyle.server.engine.modelfile import model_to_bytes

                job.checkpoint_file, model_hash = model_to_bytes(model), model.hash
            job.checkpointed = True
            push({"type": protocol.EVENT_CHECKPOINT, "step": job.step, "model": job.name, "hash": model_hash})

        with own_stream(self.execution):
            return train(keyframes, style, config, preview_frame=preview, on_event=on_event,
                         should_cancel=lambda: self._between_steps(job), checkpoint=checkpoint, init=init,
                         mattes=mattes, alphas=[picture_alpha(plate) for plate in plates],
                         style_alpha=picture_alpha(style_frame))


def _push(out: zmq.Socket, message: List[Any]) -> None:
    """Send a result to the loop; a failure is logged, never fatal to the thread."""
    try:
        out.send_multipart(message, copy=False)
    except zmq.ZMQError as exc:
        print(f"shotstyle serve: could not pass a result on: {exc}", file=sys.stderr)
