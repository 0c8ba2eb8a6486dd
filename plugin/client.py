"""The shotstyle client that every host (Nuke, Resolve, the farm command) uses to reach a server.

One DEALER socket with a fixed identity (so a reconnected client still receives its job's
events), request ids on every message, timeouts instead of ever blocking for good, reconnect
and retry of idempotent requests only, several frames in flight, an iterator over a
training job's events, and `follow`, the one loop that sees a training job to its end (with
progress, previews and cancel). Standard library and pyzmq only.

A dead server is noticed in seconds, not after a timeout: ZMTP heartbeats drop a connection
whose peer stops answering, the socket monitor reports the drop, and a connection that stays
down for `LOST_AFTER_S` ends the wait with "server lost" (code ``unreachable``). A server that
comes back (restarted at the same address) gets the stylize requests it lost again, and a job
it no longer knows is reported as such. Replies must come from a ROUTER: anything else at the
address (even this socket connected to itself, which TCP allows on a free local port) is
"not a shotstyle server". A client of the local server sends its token (from the server file)
in every request, which gives it the authority control ops need.
"""

from __future__ import annotations

import collections
import os
import time
import uuid
from typing import Any, Callable, Deque, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple, Union

import zmq
from zmq.utils.monitor import recv_monitor_message

from shotstyle.plugin import localserver, protocol
from shotstyle.plugin.address import parse_address
from shotstyle.plugin.codec import EncodedFrame, frames_from_message, frames_to_message
from shotstyle.plugin.errors import ServerError
from shotstyle.plugin.files import write_atomic
from shotstyle.plugin.mattes import Mattes, to_wire
from shotstyle.plugin.params import FrameArgs
from shotstyle.plugin.sockets import heartbeat_options

__all__ = ["Client", "Job", "ServerError", "follow", "load_key", "lut_snippet_path", "write_look"]

Message = Tuple[Dict[str, Any], List[memoryview]]
# How often `follow` asks its should_cancel while a job is quiet.
FOLLOW_POLL_S = 0.5
# A connection down this long (after heartbeats or the OS dropped it) means the server is lost.
LOST_AFTER_S = 3.0
# How often a wait looks at the connection's state.
CONNECTION_CHECK_S = 0.25


def load_key(value: str, secret: bool = False) -> bytes:
    """A Z85 CURVE key given as text, or read from a key file made by `shotstyle keys`."""
    if os.path.isfile(value):
        import zmq.auth  # only clients that use CURVE pay for it
        public, secret_key = zmq.auth.load_certificate(value)
        key = secret_key if secret else public
        if key is None:
            raise ServerError("bad_argument", f"{value}: key file has no {'secret' if secret else 'public'} key; "
                                              "give the '.key_secret' file for a secret key")
        return key
    if len(value) != 40:
        raise ServerError("bad_argument", f"CURVE key {value[:8]}... is neither a key file nor a 40-character Z85 key")
    return value.encode("ascii")


class Client:
    """A connection to one shotstyle server. Not thread-safe: use one Client per thread."""

    def __init__(self, address: Optional[str] = None, *, timeout: float = 30.0, autostart: bool = False,
                 server_public_key: Optional[str] = None, client_keys: Optional[Tuple[str, str]] = None,
                 retries: int = 2, autostart_command: Optional[Sequence[str]] = None, token: Optional[str] = None):
        self.local = address is None  # the local server (found through its server file, or started)
        self.started_server = False  # True when this client started it
        if address is None:
            address = localserver.find_local_server()
            if address is None and autostart:
                address, self.started_server = localserver.autostart(autostart_command)
            if address is None:
                raise ServerError("unreachable", f"no local shotstyle server is running (no live server in "
                                                 f"{localserver.server_file()}); start one with `shotstyle serve` "
                                                 "or allow autostart")
        else:
            address = parse_address(address)
        self.address = address
        self.timeout = timeout
        self.retries = retries
        # The local server's token, when this user can read its server file: authority for control ops.
        self._token = token if token is not None else localserver.token_for(address)
        self._curve: Dict[int, Any] = {}
        if server_public_key is not None:
            if client_keys is None:
                raise ServerError("bad_argument", "a CURVE server key needs a client key pair too "
                                                  "(make one with `shotstyle keys`)")
            self._curve = {zmq.CURVE_SERVERKEY: load_key(server_public_key),
                           zmq.CURVE_PUBLICKEY: load_key(client_keys[0]),
                           zmq.CURVE_SECRETKEY: load_key(client_keys[1], secret=True)}
        self._identity = b"ss-" + uuid.uuid4().hex.encode("ascii")
        self._context: zmq.Context = zmq.Context.instance()
        self._socket: Optional[zmq.Socket] = None
        self._monitor: Optional[zmq.Socket] = None
        self._auth_failed = False
        self._lost_since: Optional[float] = None  # when the connection dropped (None: up, or never made)
        self.reconnects = 0                       # connections re-made after a drop (e.g. a restarted server)
        self._waiting: set = set()              # request ids whose replies we still want
        self._replies: Dict[str, Message] = {}
        self._events: Dict[str, Deque[Message]] = {}  # train request id -> events not yet read
        self._connect()

    # --- connection ---------------------------------------------------------
    def _connect(self) -> None:
        sock = self._context.socket(zmq.DEALER)
        sock.setsockopt(zmq.IDENTITY, self._identity)
        sock.setsockopt(zmq.LINGER, 0)
        for option, value in {**heartbeat_options(), **self._curve}.items():
            sock.setsockopt(option, value)
        self._monitor = sock.get_monitor_socket(zmq.EVENT_HANDSHAKE_FAILED_AUTH | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL
                                                | zmq.EVENT_HANDSHAKE_SUCCEEDED | zmq.EVENT_DISCONNECTED)
        sock.connect(self.address)
        self._socket = sock
        self._lost_since = None

    def _disconnect(self) -> None:
        if self._socket is not None:
            self._socket.disable_monitor()
            self._socket.close(0)
            self._socket = None
        if self._monitor is not None:
            self._monitor.close(0)
            self._monitor = None

    def _reconnect(self) -> None:
        self._disconnect()
        self._connect()

    def close(self) -> None:
        self._disconnect()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def _check_connection(self) -> None:
        """Read the socket monitor; ServerError if the server refused our key or is lost."""
        while self._monitor is not None and self._monitor.poll(0):
            event = recv_monitor_message(self._monitor)["event"]
            if event == zmq.EVENT_HANDSHAKE_FAILED_AUTH:
                self._auth_failed = True
            elif event == zmq.EVENT_DISCONNECTED and self._lost_since is None:
                self._lost_since = time.monotonic()
            elif event == zmq.EVENT_HANDSHAKE_SUCCEEDED and self._lost_since is not None:
                self._lost_since = None
                self.reconnects += 1
        if self._auth_failed:
            raise ServerError("unauthorised", f"the server at {self.address} refused this client's CURVE key; "
                                              "ask its admin to add your public key to its authorised clients")
        if self._lost_since is not None and time.monotonic() - self._lost_since >= LOST_AFTER_S:
            raise ServerError("unreachable", f"server lost: the connection to {self.address} dropped "
                                             f"{time.monotonic() - self._lost_since:.0f} s ago and has not come back "
                                             "(the server stopped, crashed, hangs or cannot be reached)")

    # --- messages -----------------------------------------------------------
    def _send(self, op: str, args: Optional[Dict[str, Any]] = None, frames: Sequence[EncodedFrame] = (),
              payloads: Sequence[Any] = ()) -> str:
        descs, frame_payloads = frames_to_message(frames, first_part=len(payloads))
        header = protocol.request(op, args, descs, token=self._token)
        assert self._socket is not None, "client is closed"
        self._socket.send_multipart(protocol.pack(header, [*payloads, *frame_payloads]), copy=False)
        self._waiting.add(header["id"])
        return header["id"]

    def _receive(self, timeout: float) -> bool:
        """Read one message into the reply/event stores; False when none came within ``timeout``."""
        assert self._socket is not None and self._monitor is not None, "client is closed"
        poller = zmq.Poller()
        poller.register(self._socket, zmq.POLLIN)
        poller.register(self._monitor, zmq.POLLIN)
        deadline = time.monotonic() + timeout
        while True:
            wait = min(deadline - time.monotonic(), CONNECTION_CHECK_S)
            ready = dict(poller.poll(max(0, int(wait * 1000))))
            if self._socket in ready:
                break
            self._check_connection()  # a refused key or a lost server shows up here, long before the timeout
            if time.monotonic() >= deadline:
                return False
        parts = self._socket.recv_multipart(copy=False)
        peer = _socket_type(parts[0])
        if peer not in (None, "ROUTER"):
            raise ServerError("unreachable", f"{self.address} is not a shotstyle server (its socket is a {peer}; "
                                             "was a free local port connected to itself?)")
        try:
            header, payloads = protocol.unpack(parts)
        except protocol.ProtocolError as exc:
            raise ServerError(exc.code, f"unreadable message from {self.address}: {exc.message}") from None
        request_id = header["id"]
        if "event" in header:
            if request_id in self._events:
                self._events[request_id].append((header, payloads))
        elif request_id in self._waiting:
            self._waiting.discard(request_id)
            self._replies[request_id] = (header, payloads)
        return True

    def _await(self, request_ids: Iterable[str], timeout: float, until_reconnect: bool = False) -> Optional[str]:
        """Wait for a reply to any of ``request_ids``; its id, or None after ``timeout`` s of silence
        (or, with ``until_reconnect``, once the connection was re-made: the server may have lost them)."""
        wanted = list(request_ids)
        deadline = time.monotonic() + timeout
        reconnects = self.reconnects
        while True:
            for request_id in wanted:
                if request_id in self._replies:
                    return request_id
            left = deadline - time.monotonic()
            if left <= 0 or until_reconnect and self.reconnects != reconnects:
                return None
            if self._receive(left):
                deadline = time.monotonic() + timeout  # the server is alive: silence counts from now

    def _result(self, request_id: str, frame: Optional[int] = None) -> Tuple[Dict[str, Any], List[EncodedFrame]]:
        header, payloads = self._replies.pop(request_id)
        if not header.get("ok"):
            error = header.get("error") or {}
            raise ServerError(str(error.get("code", "internal")), str(error.get("message", "no message")), frame)
        try:
            frames = frames_from_message(header.get("frames", []), payloads)
        except protocol.ProtocolError as exc:
            raise ServerError(exc.code, f"reply from {self.address}: {exc.message}", frame) from None
        return header.get("result") or {}, frames

    def _timeout_error(self, op: str) -> ServerError:
        self._check_connection()
        return ServerError("timeout", f"no reply to '{op}' from {self.address} within {self.timeout:.0f} s "
                                      "(is the server running? `shotstyle serve`)")

    def call(self, op: str, args: Optional[Dict[str, Any]] = None, frames: Sequence[EncodedFrame] = (),
             payloads: Sequence[Any] = (), timeout: Optional[float] = None) \
            -> Tuple[Dict[str, Any], List[EncodedFrame], List[memoryview]]:
        """One request/reply; idempotent ops are retried on a fresh connection after a timeout."""
        attempts = 1 + (self.retries if op in protocol.IDEMPOTENT_OPS else 0)
        for attempt in range(attempts):
            request_id = self._send(op, args, frames, payloads)
            if self._await([request_id], timeout or self.timeout) is not None:
                raw_payloads = self._replies[request_id][1]
                result, out_frames = self._result(request_id)
                return result, out_frames, raw_payloads
            self._waiting.discard(request_id)
            if attempt + 1 < attempts:
                self._reconnect()
        raise self._timeout_error(op)

    # --- ops ----------------------------------------------------------------
    def hello(self) -> Dict[str, Any]:
        return self.call(protocol.OP_HELLO)[0]

    def status(self) -> Dict[str, Any]:
        return self.call(protocol.OP_STATUS)[0]

    def list_models(self) -> List[Dict[str, Any]]:
        return list(self.call(protocol.OP_MODELS)[0].get("models", []))

    def describe_model(self, name: str) -> Dict[str, Any]:
        return self.call(protocol.OP_MODEL_DESCRIBE, {"name": name})[0]

    def delete_model(self, name: str) -> None:
        self.call(protocol.OP_MODEL_DELETE, {"name": name})

    def put_model(self, path: str, name: Optional[str] = None) -> str:
        """Upload a model file (the server checks it; nothing is ever unpickled) → its name in the store."""
        with open(path, "rb") as handle:
            data = handle.read()
        if name is None:
            name = os.path.basename(path).split(".")[0]
        return str(self.call(protocol.OP_MODEL_PUT, {"name": name}, payloads=[data])[0]["name"])

    def get_model(self, name: str, path: str) -> None:
        """Download a model from the store into ``path`` (atomic)."""
        _, _, payloads = self.call(protocol.OP_MODEL_GET, {"name": name})
        if len(payloads) != 1:
            raise ServerError("bad_message", f"model.get reply for {name!r} carried {len(payloads)} parts, not 1")
        write_atomic(path, bytes(payloads[0]))

    def export_lut(self, name: str, path: Optional[str] = None, size: int = 33) -> Dict[str, Any]:
        """The global grade of model ``name`` as a .cube LUT, an OCIO look and a report.

        Returns the server's result — ``cube_name``, ``ocio`` (the look snippet), ``report``
        (ΔE2000 of the LUT alone vs the full model on the training keyframes: ``lut_vs_full_mean``,
        ``lut_vs_full_p95``, ``full_vs_plate_mean``, ``full_vs_plate_p95``, ``reproduced``),
        ``report_text`` (one paragraph for people) — plus ``cube`` (the file's bytes). With
        ``path``, also writes the .cube there and the snippet beside it (``<path minus .cube>.ocio.yaml``,
        naming the .cube's file name), both atomically, and adds ``paths``.
        """
        result, _, payloads = self.call(protocol.OP_MODEL_LUT, {"name": name, "size": size})
        if len(payloads) != 1:
            raise ServerError("bad_message", f"model.lut reply for {name!r} carried {len(payloads)} parts, not 1")
        result = dict(result, cube=bytes(payloads[0]))
        if path is not None:
            result["paths"] = write_look(path, result["cube"],
                                         result["ocio"].replace(result["cube_name"], os.path.basename(path)))
        return result

    def shutdown(self) -> None:
        self.call(protocol.OP_SHUTDOWN)

    def train(self, keyframes: List[EncodedFrame], style: EncodedFrame, name: str,
              params: Optional[Dict[str, Any]] = None, preview: Optional[EncodedFrame] = None,
              init: Optional[bytes] = None, mattes: Optional[Mattes[EncodedFrame]] = None,
              keep: bool = True) -> "Job":
        """Start training; returns at once with a Job whose events() stream progress and previews.

        Frames are sent with ``extra.role`` = "keyframe" | "style" | "preview", then the matte and
        label images of ``mattes`` (plugin.mattes). ``init``: the bytes of a model file to continue
        training (it travels with the request). ``keep`` False: the store never holds the model
        (the final event carries its file; nothing is left if this client is gone by then).
        """
        tagged = [f.tagged(role="keyframe") for f in keyframes] + [style.tagged(role="style")]
        if preview is not None:
            tagged.append(preview.tagged(role="preview"))
        matte_args, matte_frames = to_wire(mattes or Mattes())
        tagged += matte_frames
        args: Dict[str, Any] = {"name": name, "params": dict(params or {}), **matte_args}
        if init is not None:
            args["init_part"] = 0
        if not keep:
            args["keep"] = False
        request_id = self._send(protocol.OP_TRAIN, args, tagged, payloads=[init] if init is not None else ())
        self._events[request_id] = collections.deque()
        if self._await([request_id], self.timeout) is None:
            self._waiting.discard(request_id)
            del self._events[request_id]
            raise self._timeout_error(protocol.OP_TRAIN)
        try:
            result, _ = self._result(request_id)
        except ServerError:
            del self._events[request_id]
            raise
        return Job(self, str(result["job"]), request_id)

    def stylize(self, frames: List[EncodedFrame], model: str, args: FrameArgs = FrameArgs(),
                in_flight: int = 4) -> List[EncodedFrame]:
        """Stylize frames with ``args``; results in the order given (each tagged with its frame number)."""
        numbered = [f if f.frame is not None else _renumbered(f, i) for i, f in enumerate(frames)]
        by_number = {ef.frame: ef for ef in self.stylize_stream(numbered, model, args, in_flight)}
        results = []
        for original, sent in zip(frames, numbered):
            out = by_number[sent.frame]
            results.append(out if original.frame is not None else _renumbered(out, None))
        return results

    def stylize_stream(self, frames: Iterable[EncodedFrame], model: str, args: FrameArgs = FrameArgs(),
                       in_flight: int = 4,
                       on_error: Optional[Callable[[int, ServerError], None]] = None) -> Iterator[EncodedFrame]:
        """Pipelined stylize with ``args``: keeps ``in_flight`` frames at the server, yields results
        as they complete.

        A frame that fails raises ServerError (with ``.frame``), or, with ``on_error``, is reported
        there and the others go on. Frames must carry distinct frame numbers.
        """
        request = {"model": model, **args.wire()}
        source = iter(frames)
        outstanding: Dict[str, EncodedFrame] = {}
        retries_left = self.retries
        exhausted = False
        try:
            while outstanding or not exhausted:
                while not exhausted and len(outstanding) < max(1, in_flight):
                    ef = next(source, None)
                    if ef is None:
                        exhausted = True
                        break
                    outstanding[self._send(protocol.OP_STYLIZE, request, [ef])] = ef
                if not outstanding:
                    break
                reconnects = self.reconnects
                done = self._await(outstanding, self.timeout, until_reconnect=True)
                if done is None:
                    if self.reconnects == reconnects:  # silence, not a re-made connection: retry on a new socket
                        if retries_left == 0:
                            raise self._timeout_error(protocol.OP_STYLIZE)
                        retries_left -= 1
                        self._reconnect()
                    resend = list(outstanding.values())
                    self._waiting.difference_update(outstanding)
                    outstanding = {self._send(protocol.OP_STYLIZE, request, [ef]): ef for ef in resend}
                    continue
                sent = outstanding.pop(done)
                try:
                    _, out = self._result(done, sent.frame)
                    if len(out) != 1 or out[0].frame != sent.frame:
                        raise ServerError("bad_message", f"reply carried frames {[f.frame for f in out]} for a "
                                                         "request of one frame", sent.frame)
                except ServerError as exc:
                    if on_error is None:
                        raise
                    on_error(sent.frame if sent.frame is not None else -1, exc)
                    continue
                yield out[0]
        finally:
            self._waiting.difference_update(outstanding)

    # --- job events (read by Job) ------------------------------------------------
    def job_event(self, job: "Job", wait: float) -> Optional[Dict[str, Any]]:
        """The next event of ``job``, or None when none arrived within ``wait`` seconds.

        Preview images are EncodedFrames under "image" (and "extra"); a final event that names a
        model has its file's bytes under "model_file". After the final event the job is forgotten.
        """
        queue = self._events.get(job.request_id)
        if queue is None:
            raise ServerError("unknown_job", f"job {job.id} has ended or was not started by this client")
        deadline = time.monotonic() + wait
        while not queue:
            left = deadline - time.monotonic()
            if left <= 0 or not self._receive(left) and not queue:
                return None
        header, payloads = queue.popleft()
        body = dict(header.get("event") or {})
        for ef in frames_from_message(header.get("frames", []), payloads):
            body[str(ef.extra.get("role", "image"))] = ef
        part = body.get("model_part")
        if isinstance(part, int) and not isinstance(part, bool) and 0 <= part < len(payloads):
            body["model_file"] = payloads[part]  # the model's bytes, sent with a final event
        if body.get("type") in protocol.FINAL_EVENTS:
            del self._events[job.request_id]
        return body

    def job_known(self, job: "Job") -> bool:
        """Whether the server still lists ``job`` (ServerError if the server does not answer)."""
        return self.job_listing(job) is not None

    def job_listing(self, job: "Job") -> Optional[Dict[str, Any]]:
        """The server's `status` entry of ``job`` (protocol.OP_STATUS), or None if it is not listed."""
        return next((j for j in self.status().get("jobs", []) if j.get("id") == job.id), None)

    def forget_job(self, job: "Job") -> None:
        """Stop collecting ``job``'s events."""
        self._events.pop(job.request_id, None)


class Job:
    """A training job running on the server."""

    def __init__(self, client: Client, job_id: str, request_id: str):
        self.client = client
        self.id = job_id
        self.request_id = request_id
        self.final: Optional[Dict[str, Any]] = None
        self._checked = time.monotonic()  # when the job last gave a sign of life
        self._reconnects = client.reconnects

    def next_event(self, wait: float) -> Optional[Dict[str, Any]]:
        """The next event, or None when the job stayed quiet for ``wait`` seconds.

        A lost server raises ServerError "unreachable" within seconds (see the module docstring).
        After the connection was re-made, and after each ``client.timeout`` of silence, it makes
        sure the server still has the job: ServerError "unknown_job" if not (a restarted server).
        A job the server lists as finished whose final event never came (it went out while the
        connection was down) ends with an event made from that listing ("done" names the model;
        a failure raises "training_failed").
        """
        body = self.client.job_event(self, wait)
        now = time.monotonic()
        if body is not None:
            self._checked = now
            if body.get("type") in protocol.FINAL_EVENTS:
                self.final = body
            return body
        if now - self._checked >= self.client.timeout or self.client.reconnects != self._reconnects:
            self._reconnects = self.client.reconnects
            listing = self.client.job_listing(self)
            if listing is None:
                raise ServerError("unknown_job", f"job {self.id} is no longer known to {self.client.address}: the "
                                                 "server was restarted and the job died with it (a checkpoint it "
                                                 "saved stays in that server's store)")
            self._checked = now
            state = listing.get("state")
            if state in protocol.FINAL_EVENTS:
                self.client.forget_job(self)
                if state == protocol.EVENT_FAILED:
                    raise ServerError("training_failed", f"job {self.id} failed on {self.client.address}; its error "
                                                         "message was lost with the connection (see the server's log)")
                kept = state == protocol.EVENT_DONE or listing.get("checkpointed")
                self.final = {"type": state, "step": listing.get("step"),
                              "model": listing.get("name") if kept else None}
                return self.final
        return None

    def events(self, timeout: Optional[float] = None) -> Iterator[Dict[str, Any]]:
        """Events until the final one ("done" | "failed" | "cancelled"), which is yielded last.

        ``timeout``: seconds to wait for each event (None: as long as the server and job live).
        """
        while self.final is None:
            waiting_since = time.monotonic()
            body = None
            while body is None:
                wait = self.client.timeout
                if timeout is not None:
                    wait = min(wait, waiting_since + timeout - time.monotonic())
                    if wait <= 0:
                        raise ServerError("timeout", f"no event from job {self.id} within {timeout:.0f} s")
                body = self.next_event(wait)
            yield body

    def wait(self, timeout: Optional[float] = None) -> Dict[str, Any]:
        """Consume the events; the final one."""
        for _ in self.events(timeout):
            pass
        assert self.final is not None
        return self.final

    def cancel(self) -> None:
        """Ask the server to stop the job; it then sends its "cancelled" event (with a checkpoint)."""
        self.client.call(protocol.OP_CANCEL, {"job": self.id})


def lut_snippet_path(cube_path: str) -> str:
    """Where the OCIO look snippet goes beside a LUT file: ``look.cube`` (or ``.clf``) -> ``look.ocio.yaml``."""
    return os.path.splitext(cube_path)[0] + ".ocio.yaml"


def write_look(cube_path: str, cube: Union[bytes, str], snippet: str) -> List[str]:
    """Write a .cube and its OCIO look snippet beside it (`lut_snippet_path`), both atomically;
    the two paths."""
    snippet_path = lut_snippet_path(cube_path)
    write_atomic(cube_path, cube)
    write_atomic(snippet_path, snippet)
    return [cube_path, snippet_path]


def follow(job: Job, on_progress: Optional[Callable[[Dict[str, Any]], None]] = None,
           on_preview: Optional[Callable[[int, EncodedFrame], None]] = None,
           should_cancel: Optional[Callable[[], bool]] = None, timeout: Optional[float] = None,
           poll: float = FOLLOW_POLL_S) -> Dict[str, Any]:
    """Follow a training job to its end: the one loop every host and the farm use.

    ``on_progress(event)`` gets each progress and preview event (both carry step, steps, losses,
    steps_per_s, eta_s); ``on_preview(step, image)`` each preview image (an EncodedFrame, encoded
    like the keyframe was sent). ``should_cancel()`` is asked at least every ``poll`` seconds,
    also while the job is quiet; once it is true the job is cancelled and followed on to its
    "cancelled" event, which names the checkpoint kept. ``timeout``: seconds of silence before
    giving up (None: as long as the server and the job live).

    Returns the final event ("done" or "cancelled"); a "failed" job raises ServerError with the
    job's error code and message (its exit status then matches an in-process failure), and the
    finished model's bytes as ``model_file`` when its server trained it but could not keep it.
    """
    cancelled = False
    quiet_since = time.monotonic()
    while True:
        if not cancelled and should_cancel is not None and should_cancel():
            cancelled = True
            try:
                job.cancel()
            except ServerError as exc:
                if exc.code != "unknown_job":  # it ended meanwhile: its final event is on its way
                    raise
        event = job.next_event(poll)
        if event is None:
            if timeout is not None and time.monotonic() - quiet_since >= timeout:
                raise ServerError("timeout", f"no event from job {job.id} within {timeout:.0f} s")
            continue
        quiet_since = time.monotonic()
        kind = event.get("type")
        if kind in (protocol.EVENT_PROGRESS, protocol.EVENT_PREVIEW) and on_progress is not None:
            on_progress(event)
        if kind == protocol.EVENT_PREVIEW and on_preview is not None and event.get("image") is not None:
            on_preview(int(event.get("step", 0)), event["image"])
        elif kind == protocol.EVENT_FAILED:
            error = event.get("error") or {}
            raise ServerError(str(error.get("code", "training_failed")), str(error.get("message", "no message")),
                              model_file=event.get("model_file"))
        elif kind in protocol.FINAL_EVENTS:
            return event


def _socket_type(part: Any) -> Optional[str]:
    """The ZMTP socket type of the peer a received part came from (None when ZeroMQ cannot say)."""
    try:
        value = part.get("Socket-Type")
    except (zmq.ZMQError, AttributeError):
        return None
    return value if isinstance(value, str) else None


def _renumbered(ef: EncodedFrame, frame: Optional[int]) -> EncodedFrame:
    return EncodedFrame(ef.kind, ef.header, ef.data, frame, ef.extra)
