"""The `Backend` that runs the engine in this process (``shotstyle render --in-process``).

Frames are in flight in three stages so the device never waits for disk: reader threads read
the next inputs and stage their colour channels (page-locked on CUDA), the device stage runs
here (frames that are ready together go through the network as one batch where the execution
batches), and the writer threads wait for each frame's read-back, put it together and save it.
A machine with cores to spare reads and writes several frames at once; a small one keeps one
reader and one writer, leaving its cores to the network. Importing this module imports torch.
"""

from __future__ import annotations

import queue
import threading
import time
from functools import partial
from typing import Optional, Tuple, Union

from shotstyle.cli.render.outputs import Outputs
from shotstyle.cli.render.scheduler import Scheduler
from shotstyle.cli.render.writer import FrameResult, Writer
from shotstyle.media.frame import io_threads
from shotstyle.media.reading import read_frame
from shotstyle.plugin.errors import SetupError
from shotstyle.plugin.exitcodes import ExitCode
from shotstyle.server.engine.device import configure_threads
from shotstyle.server.engine.inference import Stylizer
from shotstyle.server.engine.modelfile import load_model
from shotstyle.server.engine.pipeline import PendingFrame, finish, infer, model_tags, prepare
from shotstyle.server.errors import ShotstyleError

# Inputs read ahead of the network, per reader thread.
PREFETCH_FRAMES = 2
# The most frames one device call takes (when the execution batches and they are ready).
BATCH_FRAMES = 4

Item = Tuple[int, Union[PendingFrame, BaseException], float]


class InProcess:
    """The engine in this process: reader threads → device stage here → writer threads."""

    def __init__(self, model_path: str, mix: float, colourspace: Optional[str], threads: Optional[int],
                 out_colourspace: Optional[str] = None):
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
        self._out_colourspace = out_colourspace
        self._readers = io_threads()

    def describe(self) -> str:
        return f"in-process on {self._stylizer.device}"

    def render(self, scheduler: Scheduler, outputs: Outputs, writer: Writer) -> None:
        """Read and stage on the reader threads, the device stage here, the rest on the writer's."""
        ready: "queue.Queue[Optional[Item]]" = queue.Queue(maxsize=PREFETCH_FRAMES * self._readers)
        tags = model_tags(self._stylizer, self._mix)

        def read_ahead() -> None:
            try:
                for frame in scheduler:
                    started = time.perf_counter()
                    try:
                        plate = read_frame(outputs.input.path(frame), self._colourspace)
                        ready.put((frame, prepare(plate, self._stylizer, self._mix, self._colourspace,
                                                  self._out_colourspace), started))
                    except Exception as exc:
                        ready.put((frame, exc, started))
            finally:
                ready.put(None)

        readers = [threading.Thread(target=read_ahead, name=f"frame-reader-{n}", daemon=True)
                   for n in range(self._readers)]
        for reader in readers:
            reader.start()
        running = len(readers)
        while running:
            batch = []
            for item in self._ready_items(ready):
                if item is None:
                    running -= 1
                elif isinstance(item[1], BaseException):
                    writer.put(item[0], item[1], item[2])
                else:
                    batch.append((item[0], item[1], item[2]))
            for frame, result, started in self._device_stage(batch, tags):
                writer.put(frame, result, started)
        for reader in readers:
            reader.join()

    def _ready_items(self, ready: "queue.Queue[Optional[Item]]") -> list[Optional[Item]]:
        """The next item (waiting for it), and those ready behind it up to a batch, if batching."""
        items = [ready.get()]
        while self._stylizer.execution.batch_frames and len(items) < BATCH_FRAMES:
            try:
                items.append(ready.get_nowait())
            except queue.Empty:
                break
        return items

    def _device_stage(self, batch: list[tuple[int, PendingFrame, float]],
                      tags: dict) -> list[tuple[int, FrameResult, float]]:
        """Each frame with what finishes it on a writer thread, or the exception that stopped
        it; a frame the engine refuses fails alone (the batch is retried frame by frame)."""
        try:
            results = infer(self._stylizer, [pending for _, pending, _ in batch], self._mix)
            return [(frame, partial(finish, pending, result, tags), started)
                    for (frame, pending, started), result in zip(batch, results)]
        except Exception as exc:
            if len(batch) == 1:
                return [(batch[0][0], exc, batch[0][2])]
        return [out for item in batch for out in self._device_stage([item], tags)]

    def close(self) -> None:
        pass
