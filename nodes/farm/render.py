"""`shotstyle render`: stylize a frame range with a trained model, as a good render-farm citizen.

Frames and chunks are given the ways farm managers pass them: ``--frames 1001-1100``,
``--frames 1001-1100x2``, ``--frames 1001 1100`` or ``--start 1001 --end 1100``; ``--within``
limits a chunk to a shot's own frame list. Input and output are sequence patterns
(``plate.####.exr``, ``%04d``, ``$F4``).

Resumable and safe to run many times at once into one folder:

* a frame whose output is complete (readable, the input's size and windows, written by the
  same model: our EXR attribute ``shotstyle/model`` holds the model hash) is skipped;
  anything else is rendered again. Headers are checked by default (our writes are atomic, so
  a final name means a whole file); ``--verify-pixels`` decodes every existing frame too;
* before rendering a frame a process claims it by creating ``<output>.claim`` exclusively
  (pid, host, time) and holding an advisory lock on it for as long as it works on the frame;
  a claim whose lock is free belongs to a dead process and is taken over (a claim from
  another host is trusted while its heartbeat keeps it fresh); frames claimed by a live
  process are waited for, so every chunk ends with all its frames present;
* frames are written atomically (temporary name, then rename) and the claim is removed after.

Where pixels are computed: ``--server A,B`` spreads frames over those servers with several in
flight each; without it the local server (started if absent); ``--in-process`` runs the engine
here, a reader thread prefetching inputs and a writer thread saving outputs so the network is
never idle waiting for disk.

Output: ``PROGRESS: NN%`` after every frame (the form farm managers parse) or, with
``--json-progress``, one JSON object per line; a summary line at the end.

Exit status (`ExitCode`, shared by the other farm commands):

====  ===================  ==========================================================
0     OK                   every frame rendered or already complete
2     USAGE                bad arguments (frame range, pattern, option values)
3     MISSING_INPUT        some input frames do not exist (the others were rendered)
4     MODEL_ERROR          the model file cannot be read, is damaged or unknown
5     SERVER_UNREACHABLE   no render server answered (or could be started)
6     FRAMES_FAILED        some frames failed for another reason (named in the log);
                           `shotstyle train`: the training itself failed
130   CANCELLED            `shotstyle train` stopped by Ctrl-C (a checkpoint is kept)
====  ===================  ==========================================================
"""

from __future__ import annotations

import argparse
import enum
import errno
import fcntl
import json
import os
import queue
import socket
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Optional

from shotstyle.plugin.sequences import SequencePattern, parse_frame_range
from shotstyle.server.frameio import MODEL_ATTRIBUTE

# The safetensors header key of our metadata record (engine.modelfile.METADATA_KEY; that module
# imports torch, which a resume over a finished folder must not pay for).
MODEL_METADATA_KEY = "shotstyle"
CLAIM_SUFFIX = ".claim"
# A claim written on another host is trusted for this long after its last heartbeat
# (advisory locks are not always shared between hosts on network filesystems).
CLAIM_STALE_AFTER_S = 120.0
CLAIM_HEARTBEAT_S = 20.0
WAIT_POLL_S = 0.2
PREFETCH_FRAMES = 2
SERVER_IN_FLIGHT = 4
HELLO_TIMEOUT_S = 5.0
REQUEST_TIMEOUT_S = 60.0


class ExitCode(enum.IntEnum):
    """Exit statuses of the farm commands; see the module docstring."""
    OK = 0
    USAGE = 2
    MISSING_INPUT = 3
    MODEL_ERROR = 4
    SERVER_UNREACHABLE = 5
    FRAMES_FAILED = 6
    CANCELLED = 130


class RenderSetupError(Exception):
    """The render cannot start; ``code`` is the ExitCode to leave with."""

    def __init__(self, code: ExitCode, message: str):
        super().__init__(message)
        self.code = code


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, help="trained model file (.safetensors)")
    parser.add_argument("--in", dest="input", required=True, metavar="PATTERN",
                        help="input sequence, e.g. 'plate.####.exr', 'plate.%%04d.exr', 'plate.$F4.exr'")
    parser.add_argument("--out", dest="output", required=True, metavar="PATTERN", help="output sequence (EXR)")
    parser.add_argument("--frames", nargs="+", metavar="RANGE",
                        help="'1001-1100', '1001-1100x2', '1,5,9-12', or a start/end pair '1001 1100'")
    parser.add_argument("--start", type=int, help="first frame (with --end)")
    parser.add_argument("--end", type=int, help="last frame (with --start)")
    parser.add_argument("--within", metavar="RANGE", help="only frames also in this range (a shot's full list)")
    parser.add_argument("--mix", type=float, default=1.0, help="0 = plate, 1 = full effect (default 1)")
    parser.add_argument("--colourspace", help="colour space of the input RGB (default: ACEScg for float, sRGB else)")
    parser.add_argument("--compression", help="EXR compression of the output (zip, piz, dwaa...; default the input's)")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--server", metavar="ADDR[,ADDR2...]", help="render servers; frames are spread over all")
    where.add_argument("--in-process", action="store_true", help="render here without a server")
    parser.add_argument("--in-flight", type=int, default=SERVER_IN_FLIGHT, help="frames in flight per server")
    parser.add_argument("--threads", type=int, help="--in-process CPU threads (default: all cores); give each of "
                        "several renders on one machine its share")
    parser.add_argument("--json-progress", action="store_true", help="one JSON object per line instead of text")
    parser.add_argument("--verify-pixels", action="store_true",
                        help="decode existing outputs fully before skipping them (default: header checks)")


# ---------------------------------------------------------------- what to render


def frames_from_args(args: argparse.Namespace) -> list[int]:
    """The frame numbers asked for, in order; ValueError with a message for the user."""
    if args.frames and (args.start is not None or args.end is not None):
        raise ValueError("give either --frames or --start/--end, not both")
    if args.frames:
        values = args.frames
        if len(values) == 2 and all(_is_int(v) for v in values):
            frames = parse_frame_range(f"{values[0]}-{values[1]}")
        elif len(values) == 1:
            frames = parse_frame_range(values[0])
        else:
            raise ValueError(f"--frames {' '.join(values)}: give one range ('1001-1100') or a start/end pair")
    elif args.start is not None and args.end is not None:
        frames = parse_frame_range(f"{args.start}-{args.end}")
    else:
        raise ValueError("say which frames: --frames 1001-1100, --frames 1001 1100 or --start 1001 --end 1100")
    if args.within:
        allowed = set(parse_frame_range(args.within))
        frames = [f for f in frames if f in allowed]
    return frames


def _is_int(text: str) -> bool:
    try:
        int(text)
    except ValueError:
        return False
    return True


@dataclass
class Outputs:
    """Where frames go and how a finished one is recognised."""
    input: SequencePattern
    output: SequencePattern
    model_hash: str
    compression: Optional[str] = None
    verify_pixels: bool = False

    def complete(self, frame: int) -> bool:
        """Whether the output of ``frame`` is readable, the input's size and windows, and by this model.

        The header is enough for files we wrote (only ever atomically, so a final name means a
        whole file); ``verify_pixels`` also decodes every pixel, for folders other tools touched.
        """
        from shotstyle.server.errors import FrameIOError
        from shotstyle.server.frameio import probe, read_frame
        path = self.output.path(frame)
        if not os.path.isfile(path):
            return False
        try:
            done = probe(path)
            source = probe(self.input.path(frame))
            if self.verify_pixels:
                read_frame(path)
        except FrameIOError:
            return False
        return (done["attributes"].get(MODEL_ATTRIBUTE) == self.model_hash
                and tuple(done["data_window"]) == tuple(source["data_window"])
                and tuple(done["display_window"]) == tuple(source["display_window"]))


# ---------------------------------------------------------------- claims


class Claims:
    """Exclusive per-frame claims beside the output files, safe across processes and hosts.

    A claim is ``<output>.claim`` created with O_EXCL and held with a `fcntl.flock` lock; the
    kernel drops the lock when its process dies, however it dies, which is how a stale claim
    is recognised and taken over.
    """

    def __init__(self, output: SequencePattern, log: Callable[[str], None]):
        self._output = output
        self._log = log
        self._host = socket.gethostname()
        self._held: dict[int, tuple[int, str]] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._heartbeat = threading.Thread(target=self._beat, name="claim-heartbeat", daemon=True)
        self._heartbeat.start()

    def path(self, frame: int) -> str:
        return self._output.path(frame) + CLAIM_SUFFIX

    def try_claim(self, frame: int) -> bool:
        """Claim ``frame`` for this process; False if a live process holds it."""
        path = self.path(frame)
        for _ in range(5):
            try:
                fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o666)
            except FileExistsError:
                taken = self._take_over(path)
                if taken is None:
                    continue  # the claim vanished meanwhile: try to create it again
                if taken is False:
                    return False
                fd = taken
            else:
                if not _lock(fd):  # someone took the brand-new file over before we locked it
                    os.close(fd)
                    return False
            self._write_owner(fd)
            with self._lock:
                self._held[frame] = (fd, path)
            return True
        return False

    def _take_over(self, path: str) -> Optional[int | bool]:
        """fd of a dead process's claim now ours; False if its holder lives; None if it vanished."""
        try:
            fd = os.open(path, os.O_RDWR)
        except FileNotFoundError:
            return None
        if not _lock(fd):
            os.close(fd)
            return False
        try:
            current = os.stat(path)
        except FileNotFoundError:
            os.close(fd)
            return None
        if current.st_ino != os.fstat(fd).st_ino:  # released and re-created while we waited
            os.close(fd)
            return None
        owner = os.pread(fd, 4096, 0).decode("utf-8", "replace")
        fields = dict(part.split("=", 1) for part in owner.split() if "=" in part)
        foreign = fields.get("host") not in (None, self._host)
        if foreign and time.time() - current.st_mtime < CLAIM_STALE_AFTER_S:
            os.close(fd)
            return False
        if owner.strip():  # an empty claim is one whose creator has not locked it yet: it backs off
            self._log(f"taking over stale claim {path} ({owner.strip()})")
        return fd

    def _write_owner(self, fd: int) -> None:
        text = f"pid={os.getpid()} host={self._host} time={time.strftime('%Y-%m-%dT%H:%M:%S')}\n"
        os.ftruncate(fd, 0)
        os.pwrite(fd, text.encode(), 0)

    def release(self, frame: int) -> None:
        """Drop the claim: unlink first, then close (which releases the lock)."""
        with self._lock:
            fd, path = self._held.pop(frame)
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
        os.close(fd)

    def close(self) -> None:
        self._stop.set()
        for frame in list(self._held):
            self.release(frame)

    def _beat(self) -> None:
        while not self._stop.wait(CLAIM_HEARTBEAT_S):
            with self._lock:
                held = list(self._held.values())
            for fd, _ in held:
                try:
                    os.utime(fd)
                except OSError:
                    pass


def _lock(fd: int) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            return False
        raise
    return True


# ---------------------------------------------------------------- progress


@dataclass
class Tally:
    rendered: list[int] = field(default_factory=list)
    skipped: list[int] = field(default_factory=list)
    missing: list[int] = field(default_factory=list)
    failed: list[int] = field(default_factory=list)

    @property
    def finished(self) -> int:
        return len(self.rendered) + len(self.skipped) + len(self.missing) + len(self.failed)


class Progress:
    """Per-frame lines (text with ``PROGRESS: NN%``, or JSON) and the final summary; thread-safe."""

    def __init__(self, total: int, json_lines: bool, out=None, err=None):
        self.total = total
        self.json_lines = json_lines
        self.tally = Tally()
        self.started = time.perf_counter()
        self._out = out or sys.stdout
        self._err = err or sys.stderr
        self._lock = threading.Lock()

    def log(self, message: str) -> None:
        with self._lock:
            if self.json_lines:
                self._emit({"event": "log", "message": message})
            else:
                print(f"shotstyle render: {message}", file=self._err, flush=True)

    def frame(self, frame: int, status: str, path: str, seconds: float = 0.0, error: str = "",
              server: str = "") -> None:
        with self._lock:
            getattr(self.tally, status).append(frame)
            percent = 100 * self.tally.finished // max(self.total, 1)
            if self.json_lines:
                record = {"event": "frame", "frame": frame, "status": status, "path": path,
                          "done": self.tally.finished, "total": self.total, "percent": percent,
                          "elapsed": round(time.perf_counter() - self.started, 4)}
                if seconds:
                    record["seconds"] = round(seconds, 4)
                if error:
                    record["error"] = error
                if server:
                    record["server"] = server
                self._emit(record)
                return
            if error:
                print(f"shotstyle render: frame {frame} FAILED: {error}", file=self._err, flush=True)
            else:
                timing = f" in {seconds:.2f} s" if seconds else ""
                where = f" on {server}" if server else ""
                print(f"shotstyle render: frame {frame} {status}{timing}{where}: {path}", file=self._out)
            print(f"PROGRESS: {percent}%", file=self._out, flush=True)

    def summary(self, code: ExitCode) -> None:
        seconds = time.perf_counter() - self.started
        tally = self.tally
        fps = len(tally.rendered) / seconds if seconds > 0 else 0.0
        with self._lock:
            if self.json_lines:
                self._emit({"event": "summary", "rendered": len(tally.rendered), "skipped": len(tally.skipped),
                            "missing": sorted(tally.missing), "failed": sorted(tally.failed),
                            "seconds": round(seconds, 3), "fps": round(fps, 3), "exit_code": int(code)})
                return
            print(f"shotstyle render: {len(tally.rendered)} rendered, {len(tally.skipped)} skipped, "
                  f"{len(tally.failed) + len(tally.missing)} failed ({len(tally.missing)} missing input) "
                  f"in {seconds:.2f} s, {fps:.2f} fps; exit {int(code)} ({code.name})", file=self._out, flush=True)

    def _emit(self, record: dict) -> None:
        print(json.dumps(record), file=self._out, flush=True)

    def exit_code(self) -> ExitCode:
        if self.tally.failed:
            return ExitCode.FRAMES_FAILED
        if self.tally.missing:
            return ExitCode.MISSING_INPUT
        return ExitCode.OK


# ---------------------------------------------------------------- scheduling


class Scheduler:
    """Hands out the frames this process should render next, each already claimed; thread-safe.

    Iterating never blocks: complete frames are reported as skipped, frames a live process
    holds are put aside. `wait_for_others` then waits a moment and offers those again, so a
    chunk finishes complete without two processes ever waiting on each other's claims.
    """

    def __init__(self, frames: list[int], outputs: Outputs, claims: Claims, progress: Progress):
        self._pending = list(frames)
        self._waiting: list[int] = []
        self._outputs = outputs
        self._claims = claims
        self._progress = progress
        self._lock = threading.Lock()

    def next(self) -> Optional[int]:
        with self._lock:
            while self._pending:
                frame = self._pending.pop(0)
                if self._outputs.complete(frame):
                    self._progress.frame(frame, "skipped", self._outputs.output.path(frame))
                    continue
                if not self._claims.try_claim(frame):
                    self._waiting.append(frame)
                    continue
                if self._outputs.complete(frame):  # finished by another process since we looked
                    self._claims.release(frame)
                    self._progress.frame(frame, "skipped", self._outputs.output.path(frame))
                    continue
                return frame
            return None

    def __iter__(self) -> Iterator[int]:
        while (frame := self.next()) is not None:
            yield frame

    def wait_for_others(self) -> bool:
        """False when nothing is left; else waits briefly and re-offers the frames others held."""
        with self._lock:
            if not self._waiting:
                return False
            self._pending, self._waiting = self._waiting, []
        time.sleep(WAIT_POLL_S)
        return True


# ---------------------------------------------------------------- writing


class Writer:
    """A thread that writes finished frames, releases their claims and reports them."""

    def __init__(self, outputs: Outputs, claims: Claims, progress: Progress):
        self._outputs = outputs
        self._claims = claims
        self._progress = progress
        self._queue: queue.Queue = queue.Queue(maxsize=PREFETCH_FRAMES + 2)
        self._thread = threading.Thread(target=self._loop, name="frame-writer", daemon=True)
        self._thread.start()

    def put(self, frame: int, result: Any, started: float, server: str = "") -> None:
        """Queue a stylized Frame, a callable finishing one, or an exception for ``frame``.

        ``server`` says who computed it."""
        self._queue.put((frame, result, started, server))

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join()

    def _loop(self) -> None:
        from shotstyle.server.frameio import write_frame
        while (item := self._queue.get()) is not None:
            frame, result, started, server = item
            path = self._outputs.output.path(frame)
            try:
                if isinstance(result, BaseException):
                    raise result
                if callable(result):  # the colour-out stage, run here so it overlaps the network
                    result = result()
                write_frame(path, result, compression=self._outputs.compression,
                            attributes={MODEL_ATTRIBUTE: self._outputs.model_hash})
            except Exception as exc:
                self._claims.release(frame)
                self._fail(frame, exc)
                continue
            self._claims.release(frame)
            self._progress.frame(frame, "rendered", path, time.perf_counter() - started, server=server)

    def _fail(self, frame: int, exc: BaseException) -> None:
        source = self._outputs.input.path(frame)
        status = "missing" if not os.path.exists(source) else "failed"
        message = str(exc) if status == "failed" else f"{source}: input frame does not exist"
        self._progress.frame(frame, status, self._outputs.output.path(frame), error=message)


# ---------------------------------------------------------------- backends


class InProcess:
    """The engine in this process: read-ahead thread → network here → writer thread."""

    def __init__(self, model_path: str, mix: float, colourspace: Optional[str], threads: Optional[int]):
        from shotstyle.server.engine.device import configure_threads
        from shotstyle.server.engine.inference import Stylizer
        from shotstyle.server.engine.modelfile import load_model
        from shotstyle.server.errors import ShotstyleError
        try:
            model = load_model(model_path)
        except (ShotstyleError, OSError) as exc:
            raise RenderSetupError(ExitCode.MODEL_ERROR, f"model {model_path}: {exc}") from None
        self.model_hash = model.hash
        self._stylizer = Stylizer(model)
        if threads:
            configure_threads(self._stylizer.device, threads)
        self._mix = mix
        self._colourspace = colourspace

    def render(self, scheduler: Scheduler, outputs: Outputs, writer: Writer) -> None:
        """Colour-in on the reader thread, the network here, colour-out on the writer thread."""
        from functools import partial

        from shotstyle.server.engine.pipeline import finish, infer, model_tags, prepare
        from shotstyle.server.frameio import read_frame
        inputs: queue.Queue = queue.Queue(maxsize=PREFETCH_FRAMES)
        tags = model_tags(self._stylizer, self._mix)

        def read_ahead() -> None:
            try:
                for frame in scheduler:
                    started = time.perf_counter()
                    try:
                        plate = read_frame(outputs.input.path(frame), self._colourspace)
                        inputs.put((frame, prepare(plate, self._mix, self._colourspace), started))
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


class Servers:
    """One or more render servers; each gets its own thread streaming frames with several in flight."""

    def __init__(self, addresses: list[Optional[str]], model_path: str, model_hash: str, mix: float,
                 colourspace: Optional[str], in_flight: int):
        from shotstyle.plugin.client import ServerError
        self._mix = mix
        self._colourspace = colourspace
        self._in_flight = max(1, in_flight)
        self.clients: list[Any] = []
        try:
            for address in addresses:
                self.clients.append(connect(address))
        except RenderSetupError:
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
                        raise RenderSetupError(ExitCode.MODEL_ERROR, f"model {model_path}: {client.address} "
                                               f"stored it with hash {stored}, expected {model_hash}")
        except (ServerError, OSError) as exc:
            self.close()
            raise RenderSetupError(ExitCode.MODEL_ERROR, f"model {model_path}: {exc}") from None
        except RenderSetupError:
            self.close()
            raise

    def render(self, scheduler: Scheduler, outputs: Outputs, writer: Writer) -> None:
        threads = [threading.Thread(target=self._stream, args=(client, scheduler, outputs, writer),
                                    name=f"server-{index}", daemon=True)
                   for index, client in enumerate(self.clients)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    def _stream(self, client, scheduler: Scheduler, outputs: Outputs, writer: Writer) -> None:
        from shotstyle.server.frameio import read_frame
        from shotstyle.server.payloads import frame_from_raw, frame_to_raw
        started: dict[int, float] = {}

        def requests():
            for frame in scheduler:
                started[frame] = time.perf_counter()
                try:
                    plate = read_frame(outputs.input.path(frame), self._colourspace)
                    # half travels as half (lossless); anything else as float32 so results match in-process
                    dtype = "float16" if set(plate.channel_formats) == {"half"} else "float32"
                    yield frame_to_raw(plate, dtype, frame)
                except Exception as exc:
                    writer.put(frame, exc, started.pop(frame))

        def failed(frame: int, exc: Exception) -> None:
            writer.put(frame, exc, started.pop(frame))

        try:
            for result in client.stylize_stream(requests(), self.model_name, mix=self._mix, in_flight=self._in_flight,
                                                colourspace=self._colourspace, on_error=failed):
                try:
                    stylized = frame_from_raw(result)
                except Exception as exc:
                    stylized = exc
                writer.put(result.frame, stylized, started.pop(result.frame), client.address)
        except Exception as exc:  # the server went away: what it still held fails, the other servers go on
            for frame in list(started):
                writer.put(frame, exc, started.pop(frame))

    def close(self) -> None:
        for client in self.clients:
            client.close()


def _stored_hash(client, name: str) -> Optional[str]:
    from shotstyle.plugin.client import ServerError
    try:
        return client.describe_model(name).get("hash")
    except ServerError as exc:
        if exc.code == "unknown_model":
            return None
        raise


def connect(address: Optional[str]):
    """A Client to ``address`` (None: the local server, started if absent) that has answered hello.

    hello gets a short timeout and no retries, so a dead address fails in seconds, not minutes.
    """
    from shotstyle.plugin.client import Client, ServerError
    try:
        client = Client(address, autostart=address is None, timeout=HELLO_TIMEOUT_S, retries=0)
    except ServerError as exc:
        raise RenderSetupError(ExitCode.SERVER_UNREACHABLE, f"no local server: {exc.message}; start one with "
                               "`shotstyle serve`, give --server, or use --in-process") from None
    try:
        client.hello()
    except ServerError as exc:
        client.close()
        raise RenderSetupError(ExitCode.SERVER_UNREACHABLE, f"no answer from {client.address}: {exc.message}; "
                               "start one with `shotstyle serve`, check the address, or use --in-process") from None
    client.timeout, client.retries = REQUEST_TIMEOUT_S, 2
    return client


# ---------------------------------------------------------------- the command


def run(args: argparse.Namespace) -> int:
    progress = Progress(0, args.json_progress)
    try:
        frames = frames_from_args(args)
        input_pattern = SequencePattern(args.input)
        output_pattern = SequencePattern(args.output)
        if not 0.0 <= args.mix <= 1.0:
            raise ValueError(f"--mix {args.mix}: give a value from 0 (plate) to 1 (full effect)")
    except ValueError as exc:
        progress.log(str(exc))
        return _finish(progress, ExitCode.USAGE)
    progress.total = len(frames)
    try:
        model_hash = recorded_model_hash(args.model)
    except RenderSetupError as exc:
        progress.log(str(exc))
        return _finish(progress, exc.code)
    if frames and len(input_pattern.missing(frames)) == len(frames):
        progress.log(f"input {args.input}: none of the {len(frames)} frames exist "
                     f"(first: {input_pattern.path(frames[0])})")
        return _finish(progress, ExitCode.MISSING_INPUT)
    outputs = Outputs(input_pattern, output_pattern, model_hash, args.compression, args.verify_pixels)
    todo = []
    for frame in frames:  # the cheap pass: a complete folder costs no model load and no server
        if outputs.complete(frame):
            progress.frame(frame, "skipped", output_pattern.path(frame))
        else:
            todo.append(frame)
    if not todo:
        return _finish(progress, ExitCode.OK)
    os.makedirs(os.path.dirname(os.path.abspath(output_pattern.path(todo[0]))), exist_ok=True)
    try:
        backend = _backend(args, model_hash)
        if backend.model_hash != model_hash:
            raise RenderSetupError(ExitCode.MODEL_ERROR, f"model {args.model}: its weights hash to "
                                   f"{backend.model_hash[:12]}, its header records {model_hash[:12]}")
    except RenderSetupError as exc:
        progress.log(str(exc))
        return _finish(progress, exc.code)
    claims = Claims(output_pattern, progress.log)
    writer = Writer(outputs, claims, progress)
    try:
        scheduler = Scheduler(todo, outputs, claims, progress)
        backend.render(scheduler, outputs, writer)
        while scheduler.wait_for_others():
            backend.render(scheduler, outputs, writer)
    except OSError as exc:  # e.g. the output folder is not writable: no frame can be claimed
        progress.log(f"render stopped: {exc}")
    finally:
        writer.close()
        claims.close()
        backend.close()
    tally = progress.tally
    accounted = set(tally.rendered) | set(tally.skipped) | set(tally.missing) | set(tally.failed)
    for frame in todo:  # never report success for a frame nobody wrote
        if frame not in accounted:
            progress.frame(frame, "failed", output_pattern.path(frame), error="not rendered (see the errors above)")
    return _finish(progress, progress.exit_code())


def recorded_model_hash(path: str) -> str:
    """The model hash recorded in the model file's header, read without loading torch.

    It equals `StyleModel.hash` of the loaded model (the loader refuses a file where they differ),
    so a resume over a finished folder never pays for torch or a server.
    """
    from safetensors import SafetensorError, safe_open
    if not os.path.isfile(path):
        raise RenderSetupError(ExitCode.MODEL_ERROR, f"model {path}: no such file; train one with `shotstyle train`")
    try:
        with safe_open(path, framework="numpy") as handle:
            record = json.loads((handle.metadata() or {})[MODEL_METADATA_KEY])
        return str(record["checksum"])
    except (SafetensorError, OSError, ValueError, KeyError, TypeError) as exc:
        raise RenderSetupError(ExitCode.MODEL_ERROR, f"model {path}: not a readable shotstyle model file ({exc}); "
                               "use a .safetensors model written by `shotstyle train`") from None


def _backend(args: argparse.Namespace, model_hash: str):
    if args.in_process:
        return InProcess(args.model, args.mix, args.colourspace, args.threads)
    addresses: list[Optional[str]] = [a.strip() for a in args.server.split(",") if a.strip()] if args.server else [None]
    return Servers(addresses, args.model, model_hash, args.mix, args.colourspace, args.in_flight)


def _finish(progress: Progress, code: ExitCode) -> int:
    progress.summary(code)
    return int(code)
