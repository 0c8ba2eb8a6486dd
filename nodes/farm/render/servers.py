"""The `Backend` that spreads a render over one or more servers (``--server A,B``, or the local one).

Each server gets its own thread and client streaming frames with several in flight. Frames
travel as raw buffers (half stays half, lossless; anything else float32, so results match an
in-process render). The model is uploaded once per server under a name made from its hash, so
chunks of one model share it and other shots' models never clash. A server that goes away
fails only the frames it held; the other servers go on.
"""

from __future__ import annotations

import threading
import time
from typing import Iterator, Optional

from shotstyle.nodes.farm.connection import connect
from shotstyle.nodes.farm.render.outputs import Outputs
from shotstyle.nodes.farm.render.scheduler import Scheduler
from shotstyle.nodes.farm.render.writer import FrameResult, Writer
from shotstyle.plugin.client import Client
from shotstyle.plugin.codec import EncodedFrame
from shotstyle.plugin.errors import ServerError, SetupError
from shotstyle.plugin.exitcodes import ExitCode
from shotstyle.server.frameio import read_frame
from shotstyle.server.payloads import frame_from_raw, frame_to_raw


class Servers:
    """One or more render servers; each gets its own thread streaming frames with several in flight."""

    def __init__(self, addresses: list[Optional[str]], model_path: str, model_hash: str, mix: float,
                 colourspace: Optional[str], in_flight: int):
        self._mix = mix
        self._colourspace = colourspace
        self._in_flight = max(1, in_flight)
        self.clients: list[Client] = []
        try:
            for address in addresses:
                self.clients.append(connect(address))
        except SetupError:
            self.close()
            raise
        # Named by content: chunks of one model share it, other shots' models never clash.
        self.model_name = f"farm-{model_hash[:20]}"
        self.model_hash = model_hash
        try:
            for client in self.clients:
                if _stored_hash(client, self.model_name) != model_hash:
                    client.put_model(model_path, self.model_name)
                    stored = _stored_hash(client, self.model_name)
                    if stored != model_hash:
                        raise SetupError(ExitCode.MODEL_ERROR, f"model {model_path}: {client.address} "
                                         f"stored it with hash {stored}, expected {model_hash}")
        except (ServerError, OSError) as exc:
            self.close()
            raise SetupError(ExitCode.MODEL_ERROR, f"model {model_path}: {exc}") from None
        except SetupError:
            self.close()
            raise

    def render(self, scheduler: Scheduler, outputs: Outputs, writer: Writer) -> None:
        """One streaming thread per server, all drawing from the one scheduler."""
        threads = [threading.Thread(target=self._stream, args=(client, scheduler, outputs, writer),
                                    name=f"server-{index}", daemon=True)
                   for index, client in enumerate(self.clients)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    def _stream(self, client: Client, scheduler: Scheduler, outputs: Outputs, writer: Writer) -> None:
        started: dict[int, float] = {}

        def requests() -> Iterator[EncodedFrame]:
            for frame in scheduler:
                started[frame] = time.perf_counter()
                try:
                    plate = read_frame(outputs.input.path(frame), self._colourspace)
                    # half travels as half (lossless); anything else as float32 so results match in-process
                    dtype = "float16" if set(plate.channel_formats) == {"half"} else "float32"
                    yield frame_to_raw(plate, dtype, frame)
                except Exception as exc:
                    writer.put(frame, exc, started.pop(frame))

        def failed(frame: int, exc: ServerError) -> None:
            writer.put(frame, exc, started.pop(frame))

        try:
            for result in client.stylize_stream(requests(), self.model_name, mix=self._mix, in_flight=self._in_flight,
                                                colourspace=self._colourspace, on_error=failed):
                number = int(result.frame or 0)  # the client checks it is the number we sent
                stylized: FrameResult
                try:
                    stylized = frame_from_raw(result)
                    stylized.clamped = int(result.extra.get("clamped", 0))  # the server's half-float reply
                except Exception as exc:
                    stylized = exc
                writer.put(number, stylized, started.pop(number), client.address)
        except Exception as exc:  # the server went away: what it still held fails, the other servers go on
            for frame in list(started):
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
