"""The `Backend` that spreads a render over one or more servers (``--server A,B``, or the local one).

Each server gets its own thread and client streaming frames with several in flight. Frames
travel as raw buffers (half stays half, lossless; anything else float32, so results match an
in-process render). The model is uploaded once per server under a name made from its hash, so
chunks of one model share it and other shots' models never clash.

Failover: a server that cannot be reached at the start is left out while another answers; one
that is lost during the render (the client notices within seconds: see plugin.client) hands
the frames it held back to the scheduler, and the other servers render them. When every
server is lost, `render` raises SetupError (exit 5).
"""

from __future__ import annotations

import threading
import time
from typing import Callable, Iterator, Optional

from shotstyle.cli.connection import connect, server_line
from shotstyle.cli.render.outputs import Outputs
from shotstyle.cli.render.scheduler import Scheduler
from shotstyle.cli.render.writer import FrameResult, Writer
from shotstyle.media.payloads import frame_from_raw, frame_to_raw
from shotstyle.media.reading import read_frame
from shotstyle.plugin.client import Client
from shotstyle.plugin.codec import EncodedFrame
from shotstyle.plugin.errors import ServerError, SetupError
from shotstyle.plugin.exitcodes import ExitCode
from shotstyle.plugin.params import FrameArgs
from shotstyle.plugin.userconfig import CurveKeys


# Errors after which a server is taken to be gone (its frames go to the others).
LOST_CODES = frozenset({"unreachable", "timeout", "shutting_down"})


class Servers:
    """One or more render servers; each gets its own thread streaming frames with several in flight."""

    def __init__(self, addresses: list[Optional[str]], model_path: str, model_hash: str, args: FrameArgs,
                 in_flight: int, keys: Optional[CurveKeys] = None, log: Callable[[str], None] = lambda _: None):
        self._args = args
        self._in_flight = max(1, in_flight)
        self._log = log
        self._lock = threading.Lock()
        self.clients: list[Client] = []
        self._lost: list[str] = []  # what became of the servers left out or lost
        unreachable = []
        for address in addresses:
            try:
                self.clients.append(connect(address, keys))
            except SetupError as exc:
                unreachable.append(str(exc))
        for reason in unreachable:
            self._leave_out(None, reason)
        # Named by content: chunks of one model share it, other shots' models never clash.
        self.model_name = f"farm-{model_hash[:20]}"
        self.model_hash = model_hash
        try:
            for client in list(self.clients):
                try:
                    self._upload(client, model_path)
                except ServerError as exc:
                    if exc.code not in LOST_CODES:
                        raise SetupError(exc.exit_code, f"model {model_path}: {exc}") from None
                    self._leave_out(client, f"{client.address}: {exc}")
            self._check_any_left()
        except (SetupError, OSError) as exc:
            self.close()
            if isinstance(exc, OSError):
                raise SetupError(ExitCode.MODEL_ERROR, f"model {model_path}: {exc}") from None
            raise

    def describe(self) -> str:
        return "; ".join(server_line(client) for client in self.clients)

    def _upload(self, client: Client, model_path: str) -> None:
        if _stored_hash(client, self.model_name) != self.model_hash:
            client.put_model(model_path, self.model_name)
            stored = _stored_hash(client, self.model_name)
            if stored != self.model_hash:
                raise SetupError(ExitCode.MODEL_ERROR, f"model {model_path}: {client.address} "
                                 f"stored it with hash {stored}, expected {self.model_hash}")

    def _leave_out(self, client: Optional[Client], reason: str) -> None:
        """Stop using a server that cannot be reached or was lost; say so."""
        if client is not None:
            self.clients.remove(client)
            client.close()
        self._lost.append(reason)
        if self.clients:
            self._log(f"{reason}; going on with {', '.join(c.address for c in self.clients)}")

    def _check_any_left(self) -> None:
        if not self.clients:
            raise SetupError(ExitCode.SERVER_UNREACHABLE, "no server left to render on: " + "; ".join(self._lost))

    def render(self, scheduler: Scheduler, outputs: Outputs, writer: Writer) -> None:
        """One streaming thread per server, all drawing from the one scheduler."""
        self._check_any_left()
        threads = [threading.Thread(target=self._stream, args=(client, scheduler, outputs, writer),
                                    name=f"server-{index}", daemon=True)
                   for index, client in enumerate(self.clients)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        self._check_any_left()

    def _stream(self, client: Client, scheduler: Scheduler, outputs: Outputs, writer: Writer) -> None:
        started: dict[int, float] = {}
        tiles: dict[int, Optional[tuple[int, int]]] = {}   # each plate's tiling, for its output (raw has none)

        def requests() -> Iterator[EncodedFrame]:
            for frame in scheduler:
                started[frame] = time.perf_counter()
                try:
                    plate = read_frame(outputs.input.path(frame), self._args.colourspace)
                    tiles[frame] = plate.tiles
                    # half travels as half (lossless); anything else as float32 so results match in-process
                    dtype = "float16" if set(plate.channel_formats) == {"half"} else "float32"
                    yield frame_to_raw(plate, dtype, frame)
                except Exception as exc:
                    writer.put(frame, exc, started.pop(frame))

        def failed(frame: int, exc: ServerError) -> None:
            writer.put(frame, exc, started.pop(frame))

        try:
            for result in client.stylize_stream(requests(), self.model_name, self._args, in_flight=self._in_flight,
                                                on_error=failed):
                number = int(result.frame or 0)  # the client checks it is the number we sent
                stylized: FrameResult
                try:
                    stylized = frame_from_raw(result)
                    stylized.clamped = int(result.extra.get("clamped", 0))  # the server's half-float reply
                    stylized.tiles = tiles.pop(number, None)
                except Exception as exc:
                    stylized = exc
                writer.put(number, stylized, started.pop(number), client.address)
        except Exception as exc:
            if isinstance(exc, ServerError) and exc.code in LOST_CODES:  # the others render what it held
                with self._lock:
                    self._leave_out(client, f"server {client.address} lost ({exc.message})")
                for frame in list(started):
                    started.pop(frame)
                    scheduler.give_back(frame)
                return
            for frame in list(started):  # anything else: what it held fails, the other servers go on
                writer.put(frame, exc, started.pop(frame))

    def close(self) -> None:
        for client in self.clients:
            client.close()


def _stored_hash(client: Client, name: str) -> Optional[str]:
    try:
        return client.describe_model(name).get("hash")
    except ServerError as exc:
        if exc.code == "unknown_model":
            return None
        raise
