"""The `Backend` that runs the engine in this process (``shotstyle render --in-process``).

Three stages overlap so the network is never idle waiting for disk: a reader thread reads the
next inputs and converts them into the working space, the network runs here, and the writer
thread converts back and saves. Importing this module imports torch.
"""

from __future__ import annotations

import queue
import threading
import time
from functools import partial
from typing import Optional, Tuple, Union

from shotstyle.nodes.farm.render.outputs import Outputs
from shotstyle.nodes.farm.render.scheduler import Scheduler
from shotstyle.nodes.farm.render.writer import Writer
from shotstyle.plugin.errors import SetupError
from shotstyle.plugin.exitcodes import ExitCode
from shotstyle.server.engine.device import configure_threads
from shotstyle.server.engine.inference import Stylizer
from shotstyle.server.engine.modelfile import load_model
from shotstyle.server.engine.pipeline import PendingFrame, finish, infer, model_tags, prepare
from shotstyle.server.errors import ShotstyleError
from shotstyle.server.frameio import read_frame

# Inputs read ahead of the network.
PREFETCH_FRAMES = 2


class InProcess:
    """The engine in this process: read-ahead thread → network here → writer thread."""

    def __init__(self, model_path: str, mix: float, colourspace: Optional[str], threads: Optional[int]):
        try:
            model = load_model(model_path)
        except (ShotstyleError, OSError) as exc:
            raise SetupError(ExitCode.MODEL_ERROR, f"model {model_path}: {exc}") from None
        self.model_hash = model.hash
        self._stylizer = Stylizer(model)
        if threads:
            configure_threads(self._stylizer.device, threads)
        self._mix = mix
        self._colourspace = colourspace

    def render(self, scheduler: Scheduler, outputs: Outputs, writer: Writer) -> None:
        """Colour-in on the reader thread, the network here, colour-out on the writer thread."""
        inputs: "queue.Queue[Optional[Tuple[int, Union[PendingFrame, BaseException], float]]]" = \
            queue.Queue(maxsize=PREFETCH_FRAMES)
        tags = model_tags(self._stylizer, self._mix)

        def read_ahead() -> None:
            try:
                for frame in scheduler:
                    started = time.perf_counter()
                    try:
                        plate = read_frame(outputs.input.path(frame), self._colourspace)
                        inputs.put((frame, prepare(plate, self._stylizer, self._mix, self._colourspace), started))
                    except Exception as exc:
                        inputs.put((frame, exc, started))
            finally:
                inputs.put(None)

        reader = threading.Thread(target=read_ahead, name="frame-reader", daemon=True)
        reader.start()
        while (item := inputs.get()) is not None:
            frame, pending, started = item
            if isinstance(pending, BaseException):
                writer.put(frame, pending, started)
                continue
            try:
                (stylized,) = infer(self._stylizer, [pending], self._mix)
                writer.put(frame, partial(finish, pending, stylized, tags), started)
            except Exception as exc:
                writer.put(frame, exc, started)
        reader.join()

    def close(self) -> None:
        pass
