"""`shotstyle serve`: the persistent ZeroMQ server.

One ROUTER socket (default ``tcp://127.0.0.1:5599``; ``--port 0`` picks a free port, ``--bind``
any ZeroMQ address, ``ipc://`` included). The loop only parses, validates and routes: compute
happens on the device worker (server.jobs), whose results come back over an inproc socket the
loop polls beside the ROUTER. Every failure becomes an error reply with a protocol error code
(bounded in size, so it can always be sent); no request can stop the loop, and a worker thread
that dies anyway is restarted (`status` and `hello` then report health "degraded"). Control ops
need authority (server.access). SIGINT/SIGTERM stop it gracefully: a running training job saves
a checkpoint to the store and reports "cancelled" (with the checkpoint's bytes) before the
process exits. While it runs, the server file in the runtime folder (plugin.localserver: one per
install, mode 0600) tells local clients where it is and holds the token that gives them
authority; ``hello`` says which version and install answer. A new server refuses to start where
another answers or while this install's local server runs (`shotstyle stop` ends that). With
``--idle-exit`` (what a server started on demand gets) it stops once no request, job or queued
frame has kept it busy for that long.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
import traceback
from typing import Any, Callable, Dict, List, Optional

import zmq

from shotstyle.plugin import __version__, localserver, protocol
from shotstyle.plugin import mattes as plugin_mattes
from shotstyle.plugin import params as effect_params
from shotstyle.plugin.quoting import brief
from shotstyle.plugin.sockets import heartbeat_options
from shotstyle.plugin.codec import FILE_FORMATS, RAW_DTYPES, EncodedFrame, frames_from_message
from shotstyle.server import access, keys
from shotstyle.server.errors import RequestError, error_of, shutting_down
from shotstyle.server.jobs import TrainJob
from shotstyle.server.memory import TrimWhenIdle
from shotstyle.server.workers import Workers
from shotstyle.server.store import ModelStore, check_name

RESULTS_ADDRESS = "inproc://shotstyle-results"
POLL_MS = 200
DRAIN_TIMEOUT_S = 120.0
TRAIN_ROLES = ("keyframe", "style", "preview")


class Server:
    """The ROUTER loop; ``serve()`` runs until shutdown is requested (op or signal)."""

    def __init__(self, bind: str, store: ModelStore, devices: List[str], *, curve_secret: Optional[str] = None,
                 authorized_keys: Optional[str] = None, vgg: Optional[str] = None, write_server_file: bool = True,
                 server_file: Optional[str] = None, idle_exit_s: Optional[float] = None, autostarted: bool = False):
        keys.check_bind(bind, curve_secret, authorized_keys)
        self.store = store
        self.device = ",".join(devices)  # what hello and status report
        self.context = zmq.Context()
        self.auth = keys.start_authenticator(self.context, authorized_keys) if curve_secret and authorized_keys \
            else None
        self.router = self.context.socket(zmq.ROUTER)
        self.router.setsockopt(zmq.LINGER, 1000)
        self.router.setsockopt(zmq.ROUTER_HANDOVER, 1)  # a reconnecting client keeps its identity (job events)
        self.router.setsockopt(zmq.MAXMSGSIZE, protocol.MAX_MESSAGE_BYTES)
        for option, value in heartbeat_options(protocol.SERVER_HEARTBEAT_TIMEOUT_MS).items():
            self.router.setsockopt(option, value)
        if curve_secret:
            for option, value in keys.server_curve_options(curve_secret).items():
                self.router.setsockopt(option, value)
        self.router.bind(bind)
        self.address = self.router.getsockopt_string(zmq.LAST_ENDPOINT)
        self.results = self.context.socket(zmq.PULL)
        self.results.bind(RESULTS_ADDRESS)
        self.worker = Workers(store, devices, self.context, RESULTS_ADDRESS, vgg=vgg)
        self.started = time.time()
        self.stop_requested = False
        self.idle_exit_s = idle_exit_s
        self.last_request = time.monotonic()
        self._hello_static = self._capabilities(vgg)
        self._server_file = (server_file or localserver.own_server_file()) \
            if write_server_file and keys.is_local_address(self.address) else None
        self._token = access.new_token() if self._server_file else None
        self._caller = access.Caller(b"", "", False)  # who sent the request in hand (one at a time)
        self._uploads = 0  # model.put bytes accepted and not stored yet (the worker's thread lowers it)
        self._trim = TrimWhenIdle()
        self._uploads_lock = threading.Lock()
        if self._server_file:
            localserver.write_server_file(self.address, self._server_file, device=self.device, models=self.store.folder,
                                          autostarted=autostarted, idle_exit_s=idle_exit_s, token=self._token)

    def _capabilities(self, vgg: Optional[str]) -> Dict[str, Any]:
        from shotstyle.server.engine.colour import available_colourspaces
        from shotstyle.server.engine.losses import resolve_loss_name
        from shotstyle.server.engine.networks import ARCHITECTURES

        auto_loss, loss_note = resolve_loss_name("auto", vgg)
        return {"encodings": ["raw", "file"], "raw_dtypes": sorted(RAW_DTYPES),
                "file_formats": sorted(set(FILE_FORMATS.values())), "architectures": list(ARCHITECTURES),
                "colourspaces": available_colourspaces(), "curve": self.auth is not None,
                "vgg_weights": auto_loss == "vgg", "auto_loss": auto_loss, "loss_note": loss_note}

    # --- loop ---------------------------------------------------------------------
    def request_stop(self, *_: Any) -> None:
        self.stop_requested = True

    def serve(self) -> None:
        poller = zmq.Poller()
        poller.register(self.router, zmq.POLLIN)
        poller.register(self.results, zmq.POLLIN)
        drain_deadline: Optional[float] = None
        self.last_request = time.monotonic()  # the idle time counts from here, not from a slow start
        try:
            while True:
                if self.stop_requested and drain_deadline is None:
                    self.worker.request_stop()
                    drain_deadline = time.monotonic() + DRAIN_TIMEOUT_S
                if drain_deadline is not None and (not self.worker.alive() or time.monotonic() > drain_deadline):
                    self._forward_results()
                    return
                if drain_deadline is None and self._idle_too_long():
                    print(f"shotstyle serve: idle for {(self.idle_exit_s or 0) / 60:g} min (no requests, jobs "
                          "or frames): stopping", flush=True)
                    self.stop_requested = True
                for message in self.worker.supervise():  # a worker thread died: restart it, answer its task
                    self._send(message)
                self._trim.tick(self.worker.queued_renders() > 0)
                ready = dict(poller.poll(POLL_MS))
                if self.results in ready:
                    self._forward_results()
                if self.router in ready:
                    for _ in range(100):
                        try:
                            parts = self.router.recv_multipart(zmq.NOBLOCK, copy=False)
                        except zmq.Again:
                            break
                        self._handle_safely(parts)
                        del parts  # a big refused upload is freed now, not when the next message comes
        finally:
            self.close()

    def _idle_too_long(self) -> bool:
        """Whether an idle-exit server has had no request, job or queued frame for its idle time."""
        if self.idle_exit_s is None or time.monotonic() - self.last_request < self.idle_exit_s:
            return False
        if self.worker.queued_renders() or any(j["state"] in ("queued", "running") for j in self.worker.jobs()):
            self.last_request = time.monotonic()  # work in hand counts as activity: the idle time starts after it
            return False
        return True

    def _handle_safely(self, parts: List[Any]) -> None:
        """`_handle`, and if even that fails (a bug), log it and go on: no message stops the loop."""
        try:
            self._handle(parts)
        except Exception:
            traceback.print_exc()

    def _forward_results(self) -> None:
        while True:
            try:
                message = self.results.recv_multipart(zmq.NOBLOCK, copy=False)
            except zmq.Again:
                return
            self._send(message)

    def _send(self, message: List[Any]) -> None:
        try:
            self.router.send_multipart(message, copy=False)
        except zmq.ZMQError as exc:  # a client that is gone must not stop the loop
            print(f"shotstyle serve: could not send a reply: {exc}", file=sys.stderr)

    def close(self) -> None:
        self.worker.request_stop()
        self.worker.close()
        if self._server_file:
            localserver.remove_server_file(path=self._server_file)
        if self.auth is not None:
            self.auth.stop()
        self.router.close(1000)
        self.results.close(0)
        if not self.worker.alive():  # a thread stuck past the drain timeout would hang term()
            self.context.term()

    # --- requests -----------------------------------------------------------------
    def _handle(self, parts: List[Any]) -> None:
        identity = parts[0].bytes
        request_id = "-"
        self.last_request = time.monotonic()
        try:
            if len(parts) < 2:
                raise protocol.ProtocolError("bad_message", "message has no header part")
            request_id = _best_effort_id(parts[1])
            header, payloads = protocol.unpack(parts[1:])
            op, args = protocol.check_request(header)
            self._caller = access.identify(parts[1], identity, header.get("token"), self._token,
                                           self.address.startswith("ipc://"))
            if self.stop_requested and op not in protocol.READ_OPS:
                raise shutting_down()
            if op in protocol.CONTROL_OPS:
                self._check_authority(op)
            answer = self.HANDLERS[op](self, identity, request_id, args, header.get("frames", []), payloads)
            if answer is None:
                return
            result, out_payloads = answer
            message = [identity, *protocol.pack(protocol.reply(request_id, result), out_payloads)]
        except Exception as exc:  # every failure is a reply (bounded: it always fits); the loop goes on
            code, text = error_of(exc)
            message = [identity, protocol.encode_header(protocol.error_reply(request_id, code, text))]
        self._send(message)

    def _check_authority(self, what: str) -> None:
        if not self._caller.authority:
            raise RequestError("forbidden", f"{what} needs the server owner's authority: the token in the local "
                                            f"server file {localserver.server_file()} (readable by the user the "
                                            "server runs as), an ipc:// connection from that user, or an "
                                            "authorised CURVE key")

    def _check_replace(self, name: str) -> None:
        """Replacing a model (put, train) needs authority: one that exists, or one a queued or running
        training job will write; making a new one does not. The store checks again as it writes."""
        if os.path.isfile(self.store.path(name)):
            self._check_authority(f"replacing the existing model {name!r}")
        if self._in_training(name):
            self._check_authority(f"model {name!r} is what a queued or running training job will write; writing it")

    def _in_training(self, name: str) -> bool:
        return any(j["name"] == name and j["state"] in ("queued", "running") for j in self.worker.jobs())

    def _op_hello(self, *_: Any) -> Any:
        return {"version": __version__, "protocol": protocol.PROTOCOL_VERSION, "device": self.device,
                "models": self.store.names(), "capabilities": self._hello_static,
                "params": effect_params.describe(), "limits": protocol.LIMITS,
                "install": localserver.install_info(), "pid": os.getpid(), "health": self.worker.health()}, []

    def _op_status(self, *_: Any) -> Any:
        return {"version": __version__, "device": self.device, "pid": os.getpid(), "address": self.address,
                "uptime_s": round(time.time() - self.started, 3), "jobs": self.worker.jobs(),
                "queued_requests": self.worker.queued_renders(), "loaded_models": self.store.loaded(),
                "models_dir": self.store.folder, "health": self.worker.health(), "faults": self.worker.faults()}, []

    def _op_models(self, *_: Any) -> Any:
        return {"models": self.store.list()}, []

    def _op_model_describe(self, identity: bytes, request_id: str, args: Dict[str, Any], *_: Any) -> Any:
        return self.store.describe(check_name(args.get("name"))), []

    def _op_model_delete(self, identity: bytes, request_id: str, args: Dict[str, Any], *_: Any) -> Any:
        name = check_name(args.get("name"))
        if self._in_training(name):
            raise RequestError("bad_argument", f"model {name!r} is being trained; cancel the job first")
        self.store.delete(name)
        return {}, []

    def _op_model_get(self, identity: bytes, request_id: str, args: Dict[str, Any], *_: Any) -> Any:
        return {"name": args.get("name")}, [self.store.read_bytes(check_name(args.get("name")))]

    def _op_model_lut(self, identity: bytes, request_id: str, args: Dict[str, Any], *_: Any) -> Any:
        from shotstyle.server.engine.lut import CUBE_SIZES, export_look

        name = check_name(args.get("name"))
        size = args.get("size", 33)
        if size not in CUBE_SIZES or isinstance(size, bool):
            raise RequestError("bad_argument", f"model.lut size {size!r}: use one of {list(CUBE_SIZES)}")
        self._check_load()

        def task() -> Any:
            model = self.store.get(name)
            look = export_look(model, f"{name}.cube", size)
            return ({"name": name, "hash": model.hash, "size": size, "cube_name": f"{name}.cube", "ocio": look.ocio,
                     "report": look.report, "report_text": look.describe()}, [], [look.lut.encode("utf-8")])
        self.worker.submit(identity, request_id, task, client=self._caller.principal)
        return None

    def _op_model_put(self, identity: bytes, request_id: str, args: Dict[str, Any], descs: Any,
                      payloads: List[memoryview]) -> Any:
        name = check_name(args.get("name"))
        if len(payloads) != 1 or descs:
            raise RequestError("bad_message", f"model.put takes exactly one payload part (the model file), "
                                              f"got {len(payloads)}")
        self._check_replace(name)
        self._check_load()
        data, replace, size = payloads[0], self._caller.authority, len(payloads[0])
        with self._uploads_lock:
            if self._uploads + size > protocol.MAX_UPLOAD_BYTES_IN_FLIGHT:
                raise RequestError("busy", f"the server is storing {self._uploads} bytes of uploaded models; this "
                                           f"one ({size} bytes) would pass its limit of "
                                           f"{protocol.MAX_UPLOAD_BYTES_IN_FLIGHT}: send it again in a moment")
            self._uploads += size

        def store() -> Any:
            try:
                return {"name": name, "hash": self.store.put_bytes(name, data, replace)}, []
            finally:
                with self._uploads_lock:
                    self._uploads -= size
        self.worker.submit(identity, request_id, store, client=self._caller.principal)
        return None

    def _op_shutdown(self, *_: Any) -> Any:
        self.stop_requested = True
        return {}, []

    def _op_cancel(self, identity: bytes, request_id: str, args: Dict[str, Any], *_: Any) -> Any:
        job_id = args.get("job")
        if not isinstance(job_id, str):
            raise RequestError("bad_argument", f"cancel needs args.job, a job id string; got {brief(job_id)}")
        job = self.worker.job(job_id)
        if job.client != self._caller.principal:
            self._check_authority(f"cancelling job {job_id} of another client")
        job, ended = self.worker.cancel(job_id)
        if ended:   # it was queued: its requester hears the end now, not after the training ahead of it
            body = {"type": protocol.EVENT_CANCELLED, "model": None, "reason": protocol.CANCEL_BY_CLIENT}
            self._send([job.identity, protocol.encode_header(protocol.event(job.request_id, job.id, body))])
        return {"job": job.id}, []

    def _check_load(self) -> None:
        if self.worker.renders_in_flight(self._caller.principal) >= protocol.MAX_REQUESTS_IN_FLIGHT_PER_CLIENT:
            raise RequestError("too_many_jobs", f"this client already has {protocol.MAX_REQUESTS_IN_FLIGHT_PER_CLIENT} "
                                                "requests in flight; wait for replies before sending more")

    def _frames(self, descs: List[Dict[str, Any]], payloads: List[memoryview]) -> List[EncodedFrame]:
        if len(descs) > protocol.MAX_FRAMES_PER_REQUEST:
            raise RequestError("too_large", f"{len(descs)} frames in one request; the limit is "
                                            f"{protocol.MAX_FRAMES_PER_REQUEST}")
        return frames_from_message(descs, payloads)

    def _op_stylize(self, identity: bytes, request_id: str, args: Dict[str, Any], descs: Any,
                    payloads: List[memoryview]) -> Any:
        model = check_name(args.get("model"))
        if not os.path.isfile(self.store.path(model)):
            raise RequestError("unknown_model", f"no model {model!r} in the store {self.store.folder}; known: "
                                                f"{', '.join(self.store.names()) or 'none'}")
        frame_args = effect_params.FrameArgs.from_values(args)
        frames = self._frames(descs, payloads)
        if not frames:
            raise RequestError("bad_argument", "stylize needs at least one frame")
        self._check_load()
        self.worker.stylize(identity, request_id, frames, model, frame_args, client=self._caller.principal)
        return None

    def _op_train(self, identity: bytes, request_id: str, args: Dict[str, Any], descs: Any,
                  payloads: List[memoryview]) -> Any:
        name = check_name(args.get("name"))
        values = args.get("params", {})
        train_names = set(effect_params.group("Training")) | set(effect_params.group("Colour"))
        if not isinstance(values, dict) or set(values) - train_names:
            raise RequestError("bad_argument", f"train params must be an object with keys among "
                                               f"{sorted(train_names)}; got {brief(values)}")
        effect_params.validate(values)
        style_colourspace = args.get("style_colourspace")
        if style_colourspace is not None and not isinstance(style_colourspace, str):
            raise RequestError("bad_argument", "style_colourspace must be a colour space name, got "
                                               f"{brief(style_colourspace)}")
        is_matte = [isinstance(d.get("extra"), dict)
                    and d["extra"].get("role") in (plugin_mattes.ROLE_MATTE, plugin_mattes.ROLE_LABELS) for d in descs]
        matte_descs = [d for d, matte in zip(descs, is_matte) if matte]   # bounded by plugin.mattes.from_wire
        frames = self._frames([d for d, matte in zip(descs, is_matte) if not matte], payloads)
        keep = args.get("keep", True)
        if not isinstance(keep, bool):
            raise RequestError("bad_argument", f"keep must be true or false, got {brief(keep)}")
        init_part = args.get("init_part")
        if init_part is not None and (not isinstance(init_part, int) or isinstance(init_part, bool)
                                      or not 0 <= init_part < len(payloads)
                                      or any(desc.get("part") == init_part for desc in descs)):
            raise RequestError("bad_argument", f"init_part must name the payload part holding the model file to "
                                               f"continue, not a frame's; got {init_part!r}")
        by_role: Dict[str, List[EncodedFrame]] = {role: [] for role in TRAIN_ROLES}
        for ef in frames:
            role = ef.extra.get("role")
            if role not in by_role:
                raise RequestError("bad_argument",
                                   f"train frame {ef.frame} has role {brief(role)}; use one of {TRAIN_ROLES}")
            by_role[role].append(ef)
        if not by_role["keyframe"] or len(by_role["style"]) != 1 or len(by_role["preview"]) > 1:
            counts = [(role, len(found)) for role, found in by_role.items()]
            raise RequestError("bad_argument", f"train needs one or more keyframes, exactly one style frame and at "
                                               f"most one preview frame; got {counts}")
        mattes = plugin_mattes.from_wire(args, frames_from_message(matte_descs, payloads), len(by_role["keyframe"]))
        if self.worker.active_jobs(self._caller.principal) >= protocol.MAX_JOBS_PER_CLIENT:
            raise RequestError("too_many_jobs", f"this client already has {protocol.MAX_JOBS_PER_CLIENT} training jobs "
                                                "queued or running; wait for one to finish or cancel it")
        self._check_replace(name)
        job = TrainJob(identity=identity, request_id=request_id, name=name, params=values,
                       keyframes=by_role["keyframe"], style=by_role["style"][0],
                       preview=by_role["preview"][0] if by_role["preview"] else None,
                       style_colourspace=effect_params.explicit(style_colourspace),
                       init=None if init_part is None else bytes(payloads[init_part]), client=self._caller.principal,
                       authority=self._caller.authority, mattes=mattes, keep=keep)
        # The reply goes out before the job can produce events, so the client always sees it first.
        self._send([identity, *protocol.pack(protocol.reply(request_id, {"job": job.id}))])
        self.worker.submit_training(job)
        return None

    # Op -> handler (protocol.OP_SPECS describes each op's arguments): (identity, request id, args, frame
    # descriptors, payload parts) -> (result, payload parts) to reply with, or None when the handler replies later.
    HANDLERS: Dict[str, Callable[..., Any]] = {
        protocol.OP_HELLO: _op_hello, protocol.OP_STATUS: _op_status, protocol.OP_MODELS: _op_models,
        protocol.OP_MODEL_DESCRIBE: _op_model_describe, protocol.OP_MODEL_DELETE: _op_model_delete,
        protocol.OP_MODEL_PUT: _op_model_put, protocol.OP_MODEL_GET: _op_model_get,
        protocol.OP_MODEL_LUT: _op_model_lut, protocol.OP_TRAIN: _op_train, protocol.OP_CANCEL: _op_cancel,
        protocol.OP_STYLIZE: _op_stylize, protocol.OP_SHUTDOWN: _op_shutdown,
    }


def _best_effort_id(part: Any) -> str:
    """The request id of a header we may not be able to fully parse (for the error reply)."""
    try:
        request_id = json.loads(bytes(part.buffer if hasattr(part, "buffer") else part)).get("id")
    except Exception:
        return "-"
    return request_id if isinstance(request_id, str) and 0 < len(request_id) <= protocol.MAX_REQUEST_ID_LENGTH \
        else "-"
