"""The `Backend` that runs the engine in this process (``shotstyle render --in-process``).

Frames go through the engine's stage runner (`server.engine.stages`, the server's too): reader
threads read the next inputs and stage their colour channels (page-locked on CUDA), the device
thread runs the network (frames that are ready together as one batch where the execution
batches), and the finishing threads wait for each frame's read-back, put it together and write
it (`Writer.write`), so reading frame n+1 and writing frame n-1 overlap the work on frame n.
A machine with cores to spare reads and writes several frames at once; a small one keeps one
reader and one writer, leaving its cores to the network. On a CPU the threads given (``--threads``,
default all cores) are shared: a network whose work costs less than its frames' reading, colour
and writing (`light`: hrnet-fast) runs on those the reader and finishing threads leave, at least
one (`network_threads`), since torch's parallel steps each wait for their slowest thread, and a
thread sharing its core with a frame's I/O is slow. The policy for a failure: the frame
fails alone (an unreadable input, a frame the engine refuses) and the render goes on; frames
still unread when the render is stopped (Ctrl-C) are handed back unrendered. Importing this
module imports torch.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Optional, Sequence

from shotstyle.cli.render.outputs import Outputs
from shotstyle.cli.render.scheduler import Scheduler
from shotstyle.cli.render.writer import Writer
from shotstyle.media.frame import io_threads
from shotstyle.media.reading import read_frame
from shotstyle.plugin.errors import SetupError
from shotstyle.plugin.exitcodes import ExitCode
from shotstyle.plugin.params import FrameArgs
from shotstyle.server.engine.device import configure_threads, cpu_count
from shotstyle.server.engine.inference import Stylizer
from shotstyle.server.engine.modelfile import load_model
from shotstyle.server.engine.pipeline import PendingFrame, Results, finish, infer, model_tags, prepare
from shotstyle.server.engine.stages import Cancelled, StageRunner, ThreadNames
from shotstyle.server.errors import ShotstyleError

# Inputs read ahead of the network, per reader thread.
PREFETCH_FRAMES = 2
# The most frames one device call takes (when the execution batches and they are ready).
BATCH_FRAMES = 4


@dataclass
class FrameWork:
    """One frame on its way through the stages."""

    number: int
    started: float = 0.0    # when its reading began (the time a frame's line reports)
    pending: Optional[PendingFrame] = None
    results: Results = field(default_factory=list)


class InProcess:
    """The engine in this process: reader threads → the device thread → finishing threads."""

    def __init__(self, model_path: str, args: FrameArgs, threads: Optional[int]):
        try:
            model = load_model(model_path)
        except (ShotstyleError, OSError) as exc:
            raise SetupError(ExitCode.MODEL_ERROR, f"model {model_path}: {exc}") from None
        self.model_hash = model.hash
        self._stylizer = Stylizer(model)
        self.args = args
        self._readers = io_threads()
        configure_threads(self._stylizer.device,
                          network_threads(threads or cpu_count(), 2 * self._readers, self._stylizer.network.light))

    def describe(self) -> str:
        return f"in-process on {self._stylizer.device}"

    def render(self, scheduler: Scheduler, outputs: Outputs, writer: Writer) -> None:
        """Hand each frame the scheduler gives to the stages; return once every one has ended."""
        stages = _FrameStages(self, scheduler, outputs, writer)
        batch = BATCH_FRAMES if self._stylizer.execution.batch_frames else 1
        runner: StageRunner[FrameWork] = StageRunner(
            stages, ThreadNames("frame-reader", "frame-device", "frame-finisher"), self._readers,
            PREFETCH_FRAMES * self._readers, batch=lambda: batch, inbox=self._readers)
        try:
            for frame in scheduler:
                runner.submit(FrameWork(frame))
        except BaseException:  # Ctrl-C: frames not read yet go back, those under way are written
            runner.cancel()
            raise
        finally:
            runner.close()

    def close(self) -> None:
        pass


def network_threads(threads: int, host_threads: int, light: bool) -> int:
    """The network's share of a CPU render's ``threads``: all of them, or for a `light` network
    those its ``host_threads`` (the reader and finishing threads, each busy with a frame's I/O
    most of the time) leave, at least one."""
    return max(1, threads - host_threads) if light else threads


class _FrameStages:
    """The in-process render's `Stages`: read and stage, the device, finish and write."""

    def __init__(self, backend: InProcess, scheduler: Scheduler, outputs: Outputs, writer: Writer):
        self._stylizer = backend._stylizer
        self._scheduler = scheduler
        self._outputs = outputs
        self._writer = writer
        self._args = backend.args
        self._tags = model_tags(self._stylizer, self._args.mix)

    def prepare(self, work: FrameWork) -> None:
        work.started = time.perf_counter()
        args = self._args
        # half stays half from file to file (the engine stages it as it is: see pipeline.prepare)
        plate = read_frame(self._outputs.input.path(work.number), args.colourspace, half=True)
        work.pending = prepare(plate, self._stylizer, args.mix, args.colourspace, args.out_colourspace)

    def device(self, batch: Sequence[FrameWork]) -> None:
        results = infer(self._stylizer, [work.pending for work in batch if work.pending is not None], self._args.mix)
        for work, result in zip(batch, results):
            work.results = result

    def finish(self, work: FrameWork) -> None:
        pending, results, tags = work.pending, work.results, self._tags
        assert pending is not None
        self._writer.write(work.number, lambda: finish(pending, results, tags), work.started)

    def failed(self, work: FrameWork, error: BaseException) -> None:
        if isinstance(error, Cancelled):
            self._scheduler.give_back(work.number)
            return
        self._writer.write(work.number, error, work.started or time.perf_counter())
