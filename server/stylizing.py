"""A worker's stylize requests, several in flight: decode → device → encode, on the stage runner.

An item of the runner (`server.engine.stages`) is a stylize request: its frames are decoded
(EXR bytes in isolated helper processes, one per decode thread; raw buffers directly) and
staged for the device on a decode thread; the device stage (`pipeline.infer`) runs on the one
device thread; a finishing thread waits for the frames' read-back, encodes them like they came
in and sends the reply. So while the device works on one request, the next ones are being
decoded and the last ones encoded: on a GPU server the device is not left waiting for host
work, and no stage ever runs on the socket thread (`submit` never blocks).

Backpressure: at most `DEVICE_QUEUE` decoded requests wait for the device, so decoding stops
while the device is behind (memory stays bounded whatever clients send). The policy for a
failure: any stage's failure is the whole request's error reply (a frame's own failure names
the frame), and a stopping worker answers what it has not decoded yet with "shutting_down";
`done(client)` is called once per request, after its reply is sent, so the worker can count
what is in flight.

Engine modules (torch) are imported when the first request arrives.
"""

from __future__ import annotations

import sys
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Optional, Sequence

import zmq

from shotstyle.media.frame import io_threads
from shotstyle.media.payloads import IsolatedDecoder, encode_like
from shotstyle.plugin import protocol
from shotstyle.plugin.codec import EncodedFrame, frames_to_message
from shotstyle.plugin.params import FrameArgs
from shotstyle.server.engine.stages import StageRunner, ThreadNames
from shotstyle.server.errors import RequestError, ShotstyleError, error_of, shutting_down, wire_code

if TYPE_CHECKING:
    from shotstyle.server.engine.inference import Stylizer
    from shotstyle.server.engine.pipeline import PendingFrame

# Decoded requests waiting for the device, at most.
DEVICE_QUEUE = 4


@dataclass
class StylizeRequest:
    """One stylize request on its way through the stages."""

    identity: bytes
    request_id: str
    client: Any
    frames: List[EncodedFrame]
    model: str
    args: FrameArgs
    stylizer: "Optional[Stylizer]" = None
    pending: "List[PendingFrame]" = field(default_factory=list)
    results: List[Any] = field(default_factory=list)
    spent: Dict[str, float] = field(default_factory=lambda: {"decode": 0.0, "stylize": 0.0, "encode": 0.0})


class FramePipeline:
    """The stages of one worker (the runner's `Stages` for stylize requests); `submit` returns at once."""

    def __init__(self, stylizer_for: "Callable[[str, int], Stylizer]", context: zmq.Context, results_address: str,
                 stopping: threading.Event, done: Callable[[Any], None], where: Dict[str, Any]):
        self._stylizer_for = stylizer_for
        self._where = where  # the worker's device and number, in every reply
        self._done = done
        self._local = threading.local()  # each decode thread's own helper process
        self._decoders: List[IsolatedDecoder] = []
        self._decoders_lock = threading.Lock()
        self._out = context.socket(zmq.PUSH)
        self._out.connect(results_address)
        self._out_lock = threading.Lock()  # one socket, used by the stages in turn
        self._runner: StageRunner[StylizeRequest] = StageRunner(
            self, ThreadNames("shotstyle-decode", "shotstyle-device", "shotstyle-encode"), io_threads(),
            DEVICE_QUEUE, cancelled=stopping, cancel_error=shutting_down)

    def submit(self, request: StylizeRequest) -> None:
        self._runner.submit(request)

    def close(self, timeout: float = 10.0) -> None:
        """After the worker stops: let queued requests be answered, then stop every stage."""
        self._runner.close(timeout)
        with self._decoders_lock:
            for decoder in self._decoders:
                decoder.close()
        with self._out_lock:
            self._out.close(0)

    # --- stages ---------------------------------------------------------------------
    def prepare(self, request: StylizeRequest) -> None:
        from shotstyle.server.engine.pipeline import prepare

        args = request.args
        request.stylizer = self._stylizer_for(request.model, args.tile)
        decoder = self._decoder()
        for ef in request.frames:
            start = time.perf_counter()
            try:
                frame = decoder.frame(ef, args.colourspace)
                request.pending.append(prepare(frame, request.stylizer, args.mix, args.colourspace,
                                                args.out_colourspace))
            except ShotstyleError as exc:  # this frame's problem: say which frame
                raise RequestError(wire_code(exc), f"frame {ef.frame}: {exc}") from None
            request.spent["decode"] += time.perf_counter() - start

    def device(self, requests: Sequence[StylizeRequest]) -> None:
        from shotstyle.server.engine.pipeline import infer

        for request in requests:  # the runner's batch is one request: its frames are the batch
            start = time.perf_counter()
            assert request.stylizer is not None
            request.results = infer(request.stylizer, request.pending, request.args.mix)
            request.spent["stylize"] += time.perf_counter() - start

    def finish(self, request: StylizeRequest) -> None:
        from shotstyle.server.engine.pipeline import finish, model_tags

        assert request.stylizer is not None
        tags = model_tags(request.stylizer, request.args.mix)
        start = time.perf_counter()
        encoded = []
        for ef, pending, result in zip(request.frames, request.pending, request.results):
            encoded.append(encode_like(finish(pending, result, tags), ef, ef.frame))
        request.spent["encode"] += time.perf_counter() - start
        result = {"model": request.model, "hash": request.stylizer.model_hash,
                  "frames": [ef.frame for ef in request.frames], **self._where,
                  "timings_ms": {k: round(v * 1000, 3) for k, v in request.spent.items()}}
        descs, payloads = frames_to_message(encoded)
        self._reply(request, protocol.pack(protocol.reply(request.request_id, result, descs), payloads))

    def failed(self, request: StylizeRequest, error: BaseException) -> None:
        code, message = error_of(error)
        self._reply(request, [protocol.encode_header(protocol.error_reply(request.request_id, code, message))])

    # --- helpers --------------------------------------------------------------------
    def _decoder(self) -> IsolatedDecoder:
        decoder: Optional[IsolatedDecoder] = getattr(self._local, "decoder", None)
        if decoder is None:
            decoder = self._local.decoder = IsolatedDecoder()
            with self._decoders_lock:
                self._decoders.append(decoder)
        return decoder

    def _reply(self, request: StylizeRequest, message: List[Any]) -> None:
        try:
            with self._out_lock:
                self._out.send_multipart([request.identity, *message], copy=False)
        except zmq.ZMQError as exc:
            print(f"shotstyle serve: could not pass a reply on: {exc}", file=sys.stderr)
        finally:
            request.pending, request.results = [], []  # frames are freed with the reply
            self._done(request.client)
