"""The shotstyle wire protocol: the one place that defines what travels over ZeroMQ.

Every message is a multipart ZeroMQ message::

    [JSON header | payload part 0 | payload part 1 | ...]

The header is a UTF-8 JSON object. Three kinds exist:

* request (client -> server)::

      {"v": PROTOCOL_VERSION, "id": "<request id>", "op": "<op>", "args": {...},
       "frames": [<frame descriptor>, ...], "token": "<optional: the local server's token>"}

* reply (server -> client), exactly one per request::

      {"v": ..., "id": "<request id>", "ok": true, "result": {...}, "frames": [...]}
      {"v": ..., "id": "<request id>", "ok": false, "error": {"code": "<code>", "message": "..."}}

* event (server -> client), pushed for a training job while it runs::

      {"v": ..., "id": "<train request id>", "job": "<job id>", "event": {"type": ...}, "frames": [...]}

A frame descriptor (see ``codec.to_parts``) names the payload part that holds its bytes
(``"part"``), so binary payloads are sent zero-copy and never embedded in JSON.

Ops (``OP_SPECS``: each op's arguments, frames, reply and who may send it); every op not listed is
answered with ``unknown_op``.
Error codes (``ERROR_CODES``): every failed request is answered with one of them. Error
messages are cut to `MAX_ERROR_MESSAGE_CHARS` (with a note saying so), so an error reply always
fits the header limit, whatever value the message quotes.

Who may do what (each op's ``authority``): reading ops, stylize and training a new model are open to every
client that can connect. Stopping the server, deleting models, replacing an existing model (by
``model.put`` or ``train``) and cancelling another client's job need *authority*: the ``token``
the server writes into its per-user server file (mode 0600, plugin.localserver; local clients
send it in every request), a connection over ``ipc://`` from the server's own user, or, on a
CurveZMQ server, an authorised client key. Per-client limits (`MAX_JOBS_PER_CLIENT`,
`MAX_REQUESTS_IN_FLIGHT_PER_CLIENT`) count per CURVE key, per connection for a token holder, and
per peer address for everyone else (never per self-chosen socket identity).
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence, Tuple

from shotstyle.plugin.errors import CodedError
from shotstyle.plugin.quoting import brief

PROTOCOL_VERSION = 1

# --- ops -------------------------------------------------------------------
OP_HELLO = "hello"
OP_STATUS = "status"
OP_MODELS = "models"
OP_MODEL_DESCRIBE = "model.describe"
OP_MODEL_DELETE = "model.delete"
OP_MODEL_PUT = "model.put"
OP_MODEL_GET = "model.get"
OP_MODEL_LUT = "model.lut"
OP_TRAIN = "train"
OP_CANCEL = "cancel"
OP_STYLIZE = "stylize"
OP_SHUTDOWN = "shutdown"

# Who may send an op (see the module docstring).
OPEN = "every client that can connect"
AUTHORITY = "authority"
AUTHORITY_TO_REPLACE = "open; authority to replace an existing model or one a training job will write"
AUTHORITY_FOR_OTHERS = "open for the client's own job; authority for another client's"


@dataclass(frozen=True)
class OpSpec:
    """One op: its arguments (name -> what it holds; a trailing "?" on the name: optional), what its
    frames carry, what its reply holds, who may send it, whether a stopping server still answers it
    (a client can still fetch the checkpoint of a stopped job), and whether a client may send it
    again after a timeout or reconnect (same answer, no side effect twice)."""

    args: Dict[str, str]
    frames: str
    result: str
    authority: str
    while_stopping: bool = False
    idempotent: bool = False


# The one table of ops: the server has a handler for each (server.app.Server.HANDLERS), and a test
# checks that every argument a handler reads is described here.
OP_SPECS: Dict[str, OpSpec] = {
    OP_HELLO: OpSpec({}, "", "HELLO_FIELDS", OPEN, while_stopping=True, idempotent=True),
    OP_STATUS: OpSpec({}, "", "STATUS_FIELDS; jobs: [{id, name, state, step, steps, checkpointed}]", OPEN,
                      while_stopping=True, idempotent=True),
    OP_MODELS: OpSpec({}, "", "{models: [{name, hash, metadata...}]}", OPEN, while_stopping=True, idempotent=True),
    OP_MODEL_DESCRIBE: OpSpec({"name": "a model in the store"}, "", "{name, hash, size, metadata}", OPEN,
                              while_stopping=True, idempotent=True),
    OP_MODEL_DELETE: OpSpec({"name": "a model in the store (not one being trained)"}, "", "{}", AUTHORITY),
    OP_MODEL_PUT: OpSpec({"name": "the name to store it under"},
                         "none; one payload part: the model file's bytes (never pickled)", "{name, hash}",
                         AUTHORITY_TO_REPLACE),
    OP_MODEL_GET: OpSpec({"name": "a model in the store"}, "", "{name} + one payload part: the model file's bytes",
                         OPEN, while_stopping=True, idempotent=True),
    OP_MODEL_LUT: OpSpec({"name": "a model in the store", "size?": "the cube's size, one of engine.lut.CUBE_SIZES"},
                         "", "{name, hash, size, cube_name, ocio, report, report_text} + one payload part: the "
                         ".cube file's bytes (the model's global grade)", OPEN, idempotent=True),
    OP_TRAIN: OpSpec({"name": "the model to write",
                      "params": "the Training and Colour parameters (plugin.params)",
                      "style_colourspace?": "the style frame's colour space",
                      "init_part?": "the payload part holding a model file to continue (params.steps: this run's "
                                    "steps)",
                      "matte_channels?": "plate mattes as channels of the keyframes (plugin.mattes)",
                      "keep?": "false: the model is the asker's alone: the store never holds it (checkpoints stay in "
                               "memory), the final event carries its file, and a job whose asker is gone leaves "
                               "nothing behind; default true (the store keeps it under name)"},
                     "keyframes + one style (+ one preview) (+ matte and label images, see plugin.mattes)",
                     "{job}; then events", AUTHORITY_TO_REPLACE),
    OP_CANCEL: OpSpec({"job": "a job id"}, "", "{job} (the job then sends its \"cancelled\" event)",
                      AUTHORITY_FOR_OTHERS, idempotent=True),
    OP_STYLIZE: OpSpec({"model": "a model in the store", "mix": "plugin.params (all but the model: params.FrameArgs)",
                        "colourspace": "plugin.params", "tile": "plugin.params",
                        "out_colourspace?": "the replies' colour space (default: the input's)"},
                       "the frames to stylize",
                       "frames (same numbers, same encoding) + {model, hash, frames, device, worker (which of serve "
                       "--devices), timings_ms: {decode, stylize, encode}}", OPEN, idempotent=True),
    OP_SHUTDOWN: OpSpec({}, "", "{} then the server stops gracefully", AUTHORITY),
}
OPS = tuple(OP_SPECS)
CONTROL_OPS = frozenset(op for op, spec in OP_SPECS.items() if spec.authority == AUTHORITY)
READ_OPS = frozenset(op for op, spec in OP_SPECS.items() if spec.while_stopping)
IDEMPOTENT_OPS = frozenset(op for op, spec in OP_SPECS.items() if spec.idempotent)

# install: {prefix, python, package} the server runs from; pid: its process (the server file names it too)
HELLO_FIELDS = ("version", "protocol", "device", "models", "capabilities", "params", "limits", "install", "pid",
                "health")
STATUS_FIELDS = ("version", "device", "pid", "address", "uptime_s", "jobs", "queued_requests", "loaded_models",
                 "models_dir", "health", "faults")
# "health": "ok", or "degraded" once a worker thread has died (it was restarted; "faults" says
# which thread, when and of what: a bug to report).
HEALTH_OK = "ok"
HEALTH_DEGRADED = "degraded"

# --- event types (header["event"]["type"]) ---------------------------------
EVENT_PROGRESS = "progress"    # {step, steps, losses: {name: value}, steps_per_s, eta_s}
EVENT_PREVIEW = "preview"      # {step} + frames: [keyframe preview, optional extra-frame preview]
EVENT_CHECKPOINT = "checkpoint"  # {step, model} the job's model was saved to the store
EVENT_DONE = "done"            # {model, hash, model_part}
EVENT_FAILED = "failed"        # {error: {code, message}}
EVENT_CANCELLED = "cancelled"  # {model: name of the checkpoint kept, or null; model_part; reason}
# Final events that name a model carry its file too: "model_part" is the index of the payload part
# holding the model file's bytes, so the client keeps the result even if the server is gone a
# moment later. "reason" of a cancelled event: "client" (a cancel op) or "server_stopping".
CANCEL_BY_CLIENT = "client"
CANCEL_BY_SERVER = "server_stopping"
FINAL_EVENTS = frozenset({EVENT_DONE, EVENT_FAILED, EVENT_CANCELLED})

# --- error codes -----------------------------------------------------------
ERROR_CODES: Dict[str, str] = {
    "bad_message": "the multipart message is malformed: header not JSON, fields missing or of the wrong type, "
                   "payload parts missing or of a size other than declared",
    "version_mismatch": "client and server speak different protocol versions; update the older side",
    "unknown_op": "the op is not one of protocol.OPS",
    "bad_argument": "an argument or effect parameter is missing, of the wrong type or out of range",
    "too_large": "a limit was exceeded: message size, frame dimensions or frames per request",
    "too_many_jobs": "this client already has the maximum number of jobs or requests in flight",
    "bad_frame": "a frame payload could not be decoded (damaged EXR, unsupported channels, ...)",
    "unknown_model": "no model of that name in the server's store",
    "bad_model": "a model file is damaged, tampered with or of an unknown format/architecture",
    "unknown_job": "no job with that id (finished jobs are forgotten)",
    "weights_unavailable": "the ImageNet VGG-19 weights the vgg loss needs are not on the server; install them "
                           "there (install.py) or train with the look loss",
    "training_failed": "training stopped on an error",
    "cancelled": "the work was cancelled by its client (a training job's checkpoint is kept)",
    "shutting_down": "the server is stopping and takes no new work",
    "forbidden": "this client lacks the authority the op needs: the local server's token (from its server file), "
                 "an ipc:// connection from the server's user, or an authorised CURVE key",
    "busy": "the server holds as much of this kind of work (uploads in flight) as it takes; send it again later",
    "io_error": "the server cannot write (or read) a file for a reason of its system: a full disk, no permission, "
                "a read-only filesystem; the message names the folder",
    "internal": "an unexpected server error; the message names it and the server keeps running",
    "timeout": "client side: no reply within the timeout",
    "unreachable": "client side: no server answers at that address",
    "unauthorised": "client side: the server refused this client's CURVE key",
}

# --- limits ----------------------------------------------------------------
MAX_HEADER_BYTES = 1 << 20             # 1 MiB of JSON
MAX_MESSAGE_BYTES = 2 << 30            # 2 GiB per message, all parts together
MAX_FRAME_DIMENSION = 16384            # width or height of one frame, pixels
MAX_FRAME_CHANNELS = 256
MAX_FRAMES_PER_REQUEST = 64
MAX_MATTES = 32                        # named mattes in one train request
MAX_MATTE_FRAMES = 128                 # matte and label images in one train request (beside its other frames)
MAX_JOBS_PER_CLIENT = 2                # training jobs queued or running per client
MAX_REQUESTS_IN_FLIGHT_PER_CLIENT = 32  # stylize requests queued or running per client
MAX_UPLOAD_BYTES_IN_FLIGHT = 2 << 30  # model.put bytes accepted and not yet stored, all clients together
MAX_REQUEST_ID_LENGTH = 128
MAX_JSON_DEPTH = 32                    # nesting of objects and lists in a header
MAX_ERROR_MESSAGE_CHARS = 4000         # longer error messages are cut, with a note saying so

# ZMTP heartbeats, both ends: a peer that stops answering pings is dropped after HEARTBEAT_TIMEOUT_MS
# (a killed process on the same machine is seen at once; a hung or unplugged one after this long).
HEARTBEAT_IVL_MS = 1000
HEARTBEAT_TIMEOUT_MS = 3000
HEARTBEAT_TTL_MS = 6000
# The server's own wait for a client's answer to its ping. ZeroMQ counts only whole frames as an
# answer, and a client's pong waits behind the part it is sending: a 900 MB model.put takes seconds
# to arrive on a busy server or a slow link, and after HEARTBEAT_TIMEOUT_MS the server dropped the
# connection mid-upload (the request was lost, never answered). This is long enough for a part of
# MAX_MESSAGE_BYTES at 20 MB/s; a client that really hangs only keeps its replies queued that long.
SERVER_HEARTBEAT_TIMEOUT_MS = 120_000

LIMITS = {
    "max_header_bytes": MAX_HEADER_BYTES,
    "max_message_bytes": MAX_MESSAGE_BYTES,
    "max_frame_dimension": MAX_FRAME_DIMENSION,
    "max_frame_channels": MAX_FRAME_CHANNELS,
    "max_frames_per_request": MAX_FRAMES_PER_REQUEST,
    "max_mattes": MAX_MATTES,
    "max_matte_frames": MAX_MATTE_FRAMES,
    "max_upload_bytes_in_flight": MAX_UPLOAD_BYTES_IN_FLIGHT,
    "max_jobs_per_client": MAX_JOBS_PER_CLIENT,
    "max_requests_in_flight_per_client": MAX_REQUESTS_IN_FLIGHT_PER_CLIENT,
}


class ProtocolError(CodedError):
    """A message that breaks the protocol; ``code`` is one of ERROR_CODES."""

    def __init__(self, code: str, message: str):
        assert code in ERROR_CODES, code
        super().__init__(code, message)

    def as_error(self) -> Dict[str, str]:
        return {"code": self.code, "message": self.message}


def new_request_id() -> str:
    return uuid.uuid4().hex


def bounded_message(message: str, limit: int = MAX_ERROR_MESSAGE_CHARS) -> str:
    """``message`` cut to ``limit`` characters, with a note saying how much was left out."""
    if len(message) <= limit:
        return message
    return f"{message[:limit]} [message cut: {len(message) - limit} more characters]"


def _too_deep(value: Any, limit: int) -> bool:
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, (dict, list)):
            if depth > limit:
                return True
            stack.extend((child, depth + 1) for child in (item.values() if isinstance(item, dict) else item))
    return False


def encode_header(header: Dict[str, Any]) -> bytes:
    """JSON-encode a header (compact, UTF-8); NaN/Inf are refused so every peer can parse it."""
    data = json.dumps(header, separators=(",", ":"), allow_nan=False).encode("utf-8")
    if len(data) > MAX_HEADER_BYTES:
        raise ProtocolError("too_large", f"message header is {len(data)} bytes; the limit is {MAX_HEADER_BYTES}")
    return data


def decode_header(data: Any) -> Dict[str, Any]:
    """Parse and check the common fields of any header; ProtocolError says what is wrong."""
    raw = bytes(data)
    if len(raw) > MAX_HEADER_BYTES:
        raise ProtocolError("too_large", f"message header is {len(raw)} bytes; the limit is {MAX_HEADER_BYTES}")
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise ProtocolError("bad_message",
                            f"message header is not UTF-8 JSON: {bounded_message(str(exc), 200)}") from None
    except RecursionError:
        header = None
    if header is None or _too_deep(header, MAX_JSON_DEPTH):
        raise ProtocolError("bad_message", f"message header nests objects or lists deeper than {MAX_JSON_DEPTH} "
                                           "levels")
    if not isinstance(header, dict):
        raise ProtocolError("bad_message", f"message header must be a JSON object, got {type(header).__name__}")
    version = header.get("v")
    if version != PROTOCOL_VERSION:
        raise ProtocolError("version_mismatch",
                            f"protocol version {version!r} received, this side speaks version {PROTOCOL_VERSION}; "
                            "update shotstyle on the older side")
    request_id = header.get("id")
    if not isinstance(request_id, str) or not 0 < len(request_id) <= MAX_REQUEST_ID_LENGTH:
        raise ProtocolError("bad_message", f"header field 'id' must be a string of 1-{MAX_REQUEST_ID_LENGTH} "
                                           f"characters, got {brief(request_id)}")
    frames = header.get("frames", [])
    if not isinstance(frames, list) or not all(isinstance(f, dict) for f in frames):
        raise ProtocolError("bad_message", "header field 'frames' must be a list of objects")
    return header


def check_request(header: Dict[str, Any]) -> Tuple[str, Dict[str, Any]]:
    """Return (op, args) of a decoded request header."""
    op = header.get("op")
    if not isinstance(op, str):
        raise ProtocolError("bad_message", f"request header field 'op' must be a string, got {brief(op)}")
    if op not in OPS:
        raise ProtocolError("unknown_op", f"unknown op {brief(op)}; this server knows: {', '.join(OPS)}")
    args = header.get("args", {})
    if not isinstance(args, dict):
        raise ProtocolError("bad_message", f"request header field 'args' must be an object, got {type(args).__name__}")
    return op, args


def request(op: str, args: Optional[Dict[str, Any]] = None, frames: Sequence[Dict[str, Any]] = (),
            request_id: Optional[str] = None, token: Optional[str] = None) -> Dict[str, Any]:
    header = {"v": PROTOCOL_VERSION, "id": request_id or new_request_id(), "op": op,
              "args": args or {}, "frames": list(frames)}
    if token is not None:
        header["token"] = token
    return header


def reply(request_id: str, result: Optional[Dict[str, Any]] = None,
          frames: Sequence[Dict[str, Any]] = ()) -> Dict[str, Any]:
    return {"v": PROTOCOL_VERSION, "id": request_id, "ok": True, "result": result or {}, "frames": list(frames)}


def error_reply(request_id: str, code: str, message: str) -> Dict[str, Any]:
    """An error reply; ``message`` is cut to MAX_ERROR_MESSAGE_CHARS, so the reply always fits the limits."""
    assert code in ERROR_CODES, code
    return {"v": PROTOCOL_VERSION, "id": request_id, "ok": False,
            "error": {"code": code, "message": bounded_message(message)}}


def event(request_id: str, job: str, body: Dict[str, Any], frames: Sequence[Dict[str, Any]] = ()) -> Dict[str, Any]:
    return {"v": PROTOCOL_VERSION, "id": request_id, "job": job, "event": body, "frames": list(frames)}


def pack(header: Dict[str, Any], payloads: Sequence[Any] = ()) -> List[Any]:
    """The multipart message as a list for ``send_multipart(..., copy=False)``."""
    return [encode_header(header), *payloads]


def unpack(parts: Sequence[Any]) -> Tuple[Dict[str, Any], List[memoryview]]:
    """Split a received multipart message (bytes or zmq.Frame parts) into header and payload views.

    Checks the total size and that every frame descriptor points at an existing part.
    """
    if not parts:
        raise ProtocolError("bad_message", "empty message: expected a JSON header part")
    views = [p.buffer if hasattr(p, "buffer") else memoryview(p) for p in parts]
    total = sum(v.nbytes for v in views)
    if total > MAX_MESSAGE_BYTES:
        raise ProtocolError("too_large", f"message is {total} bytes; the limit is {MAX_MESSAGE_BYTES}")
    header = decode_header(views[0])
    payloads = views[1:]
    for desc in header.get("frames", []):
        part = desc.get("part")
        if not isinstance(part, int) or isinstance(part, bool) or not 0 <= part < len(payloads):
            raise ProtocolError("bad_message", f"frame descriptor names payload part {part!r} but the message "
                                               f"has {len(payloads)} payload part(s) (truncated message?)")
    return header, payloads
