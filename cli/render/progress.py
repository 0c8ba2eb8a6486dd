"""What a render says while it runs: a line per frame, and the summary and exit status at the end.

Text output prints ``PROGRESS: NN%`` after every frame (the form farm managers parse);
``--json-progress`` prints one JSON object per line instead (``log``, ``frame`` and a final
``summary`` event). With ``-q`` text output says only errors, failed frames and the summary
of a run that did not succeed (`cli.verbosity`); JSON lines are always written.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Optional, TextIO

from shotstyle.cli.verbosity import ERRORS, NORMAL, shows
from shotstyle.plugin.exitcodes import ExitCode


@dataclass
class Tally:
    """Frame numbers by what became of them."""
    rendered: list[int] = field(default_factory=list)
    skipped: list[int] = field(default_factory=list)
    missing: list[int] = field(default_factory=list)
    failed: list[int] = field(default_factory=list)
    unwritable: list[int] = field(default_factory=list)  # rendered, but the system would not let us write it
    stale: dict[int, str] = field(default_factory=dict)  # frame -> why its existing output is rendered again

    def replaced(self) -> dict[str, int]:
        """How many rendered frames replaced an older output, by reason."""
        counts: dict[str, int] = {}
        for frame in self.rendered:
            if frame in self.stale:
                counts[self.stale[frame]] = counts.get(self.stale[frame], 0) + 1
        return counts

    @property
    def finished(self) -> int:
        return len(self.rendered) + len(self.skipped) + len(self.missing) + len(self.failed) + len(self.unwritable)


class Progress:
    """Per-frame lines (text with ``PROGRESS: NN%``, or JSON) and the final summary; thread-safe."""

    def __init__(self, total: int, json_lines: bool, out: Optional[TextIO] = None, err: Optional[TextIO] = None):
        self.total = total
        self.json_lines = json_lines
        self.tally = Tally()
        self.started = time.perf_counter()
        self._out = out or sys.stdout
        self._err = err or sys.stderr
        self._lock = threading.Lock()

    def log(self, message: str, level: int = ERRORS) -> None:
        """Say ``message``: by default an error, said even with -q; NORMAL for a note."""
        with self._lock:
            if self.json_lines:
                self._emit({"event": "log", "message": message})
            elif shows(level):
                print(f"shotstyle render: {message}", file=self._err, flush=True)

    def stale(self, frame: int, reason: str) -> None:
        """``frame``'s output exists but differs (``reason``): it is rendered again. Each reason is said once."""
        with self._lock:
            first = reason not in self.tally.stale.values()
            self.tally.stale[frame] = reason
        if first:
            self.log(f"re-rendering frames whose output differs: {reason} (first: frame {frame})", NORMAL)

    def frame(self, frame: int, status: str, path: str, seconds: float = 0.0, error: str = "",
              server: str = "", clamped: int = 0) -> None:
        """Report ``frame``: ``status`` is a `Tally` field (rendered, skipped, missing, failed, unwritable);
        ``clamped``: values beyond the half-float range written as ±65504."""
        with self._lock:
            getattr(self.tally, status).append(frame)
            percent = 100 * self.tally.finished // max(self.total, 1)
            if self.json_lines:
                record: dict[str, Any] = {"event": "frame", "frame": frame, "status": status, "path": path,
                          "done": self.tally.finished, "total": self.total, "percent": percent,
                          "elapsed": round(time.perf_counter() - self.started, 4)}
                if seconds:
                    record["seconds"] = round(seconds, 4)
                if error:
                    record["error"] = error
                if server:
                    record["server"] = server
                if clamped:
                    record["clamped"] = clamped
                self._emit(record)
                return
            if error:
                print(f"shotstyle render: frame {frame} FAILED: {error}", file=self._err, flush=True)
            if not shows(NORMAL):
                return
            if not error:
                timing = f" in {seconds:.2f} s" if seconds else ""
                where = f" on {server}" if server else ""
                note = f" ({clamped} values beyond the half-float range clamped to ±65504)" if clamped else ""
                print(f"shotstyle render: frame {frame} {status}{timing}{where}: {path}{note}", file=self._out)
            print(f"PROGRESS: {percent}%", file=self._out, flush=True)

    def summary(self, code: ExitCode) -> None:
        seconds = time.perf_counter() - self.started
        tally = self.tally
        fps = len(tally.rendered) / seconds if seconds > 0 else 0.0
        with self._lock:
            replaced = tally.replaced()
            if self.json_lines:
                self._emit({"event": "summary", "rendered": len(tally.rendered), "skipped": len(tally.skipped),
                            "replaced": replaced, "missing": sorted(tally.missing), "failed": sorted(tally.failed),
                            "unwritable": sorted(tally.unwritable),
                            "seconds": round(seconds, 3), "fps": round(fps, 3), "exit_code": int(code)})
                return
            if not shows(NORMAL if code == ExitCode.OK else ERRORS):
                return
            why = ", ".join(f"{reason} x{count}" for reason, count in sorted(replaced.items()))
            again = f" ({sum(replaced.values())} replaced older outputs: {why})" if replaced else ""
            unwritable = f", {len(tally.unwritable)} not written" if tally.unwritable else ""
            failed = len(tally.failed) + len(tally.missing) + len(tally.unwritable)
            print(f"shotstyle render: {len(tally.rendered)} rendered{again}, {len(tally.skipped)} skipped, "
                  f"{failed} failed ({len(tally.missing)} missing input{unwritable}) "
                  f"in {seconds:.2f} s, {fps:.2f} fps; exit {int(code)} ({code.name})", file=self._out, flush=True)

    def _emit(self, record: dict[str, Any]) -> None:
        print(json.dumps(record), file=self._out, flush=True)

    def exit_code(self) -> ExitCode:
        """The run's status from its frames: an output the system would not let us write (its cause
        stops every frame) outweighs a failed frame, which outweighs a missing input."""
        if self.tally.unwritable:
            return ExitCode.IO_ERROR
        if self.tally.failed:
            return ExitCode.FAILED
        if self.tally.missing:
            return ExitCode.MISSING_INPUT
        return ExitCode.OK
