"""Issue 21, item 8 (rest): a render into a full disk exits 7 with the system's reason, and
`export-lut` on a full disk names the file it could not write.

The real case runs the command on a nearly full tmpfs mounted in a user namespace (``unshare
-rm``; skipped where the system does not allow one): OpenImageIO's writer itself meets the full
disk there, as on a farm. The others simulate ENOSPC in this process, so they run everywhere.
"""

from __future__ import annotations

import errno
import json
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from shotstyle.cli.main import main
from shotstyle.plugin.exitcodes import ExitCode

FULL = os.strerror(errno.ENOSPC)   # "No space left on device"


def noise_sequence(folder: Path, frames: int = 3) -> str:
    """``frames`` EXRs of noise (about 200 KB each: they do not compress), pattern ``plate.####.exr``."""
    from shotstyle.media.frame import Frame
    from shotstyle.media.writing import write_frame

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for number in range(1, frames + 1):
        pixels = rng.uniform(0, 1, (160, 160, 4)).astype(np.float32)
        write_frame(str(folder / f"plate.{number:04d}.exr"),
                    Frame(pixels, ["R", "G", "B", "A"], ["half"] * 4, (0, 0, 160, 160), (0, 0, 160, 160), {}))
    return str(folder / "plate.####.exr")


def _namespaces_work() -> bool:
    if not shutil.which("unshare") or not sys.platform.startswith("linux"):
        return False
    try:
        return subprocess.run(["unshare", "-rm", "true"], capture_output=True, timeout=30).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def on_full_disk(folder: Path, argv: list[str]) -> subprocess.CompletedProcess:
    """Run ``shotstyle ARGV`` with ``folder`` a 1 MiB tmpfs holding 64 KiB free (room for claims, not frames)."""
    if not _namespaces_work():
        pytest.skip("no user namespaces here (unshare -rm) to mount a small filesystem in")
    folder.mkdir(parents=True, exist_ok=True)
    command = " ".join(shlex.quote(a) for a in [sys.executable, "-m", "shotstyle.cli", *argv])
    script = (f"mount -t tmpfs -o size=1m tmpfs {shlex.quote(str(folder))} && "
              f"dd if=/dev/zero of={shlex.quote(str(folder / 'fill'))} bs=4k count=240 2>/dev/null && exec {command}")
    return subprocess.run(["unshare", "-rm", "sh", "-c", script], capture_output=True, text=True, timeout=300)


def test_a_render_into_a_full_disk_exits_7_with_the_reason(tiny_model, tmp_path):
    plates = noise_sequence(tmp_path / "plates")
    out = tmp_path / "out"
    done = on_full_disk(out, ["render", "--in-process", "--model", tiny_model, "--in", plates,
                              "--out", str(out / "styled.####.exr"), "--frames", "1-3"])
    assert done.returncode == ExitCode.IO_ERROR == 7, (done.returncode, done.stdout, done.stderr)
    assert f"{out / 'styled.0001.exr'}: cannot write it into {out} ({FULL})" in done.stderr, done.stderr
    assert "File output failed" not in done.stderr and "Traceback" not in done.stderr
    assert "exit 7 (IO_ERROR)" in done.stdout


def test_export_lut_on_a_full_disk_names_the_file(tiny_model, tmp_path):
    plates = noise_sequence(tmp_path / "plates", frames=1)
    out = tmp_path / "luts"
    done = on_full_disk(out, ["export-lut", tiny_model, "-o", str(out / "look.cube"),
                              "--keyframe", plates.replace("####", "0001")])
    assert done.returncode == ExitCode.IO_ERROR, (done.returncode, done.stdout, done.stderr)
    assert f"error: {out / 'look.cube'}: {FULL}" in done.stderr, done.stderr


def _disk_full(*args, **kwargs):
    raise OSError(errno.ENOSPC, FULL)


def test_a_full_disk_stops_the_render_and_says_why(tiny_model, tmp_path, monkeypatch, capsys):
    import shotstyle.media.writing as writing

    plates = noise_sequence(tmp_path / "plates", frames=6)
    monkeypatch.setattr(writing.shutil, "copyfile", _disk_full)
    out = tmp_path / "out"
    code = main(["render", "--in-process", "--model", tiny_model, "--in", plates, "--out", str(out / "s.####.exr"),
                 "--frames", "1-6", "--json-progress"])
    captured = capsys.readouterr()
    assert code == ExitCode.IO_ERROR, captured
    events = [json.loads(line) for line in captured.out.splitlines()]
    (summary,) = [e for e in events if e["event"] == "summary"]
    assert summary["unwritable"] and summary["exit_code"] == 7 and not summary["rendered"]
    # the first unwritable frame stops the handing out: frames not handed out yet are not rendered in vain
    # (how many were handed out already depends on the machine's speed)
    assert sorted(summary["unwritable"] + summary["failed"]) == list(range(1, 7)), summary
    (first, *_) = [e for e in events if e["event"] == "frame" and e["status"] == "unwritable"]
    assert first["error"].endswith(f"cannot write it into {out} ({FULL}); free space there, or write somewhere else")
    assert [n for n in os.listdir(out) if not n.startswith("s.")] == []    # no temporary file left
    assert not [n for n in os.listdir(out) if n.endswith((".exr", ".claim"))]


class _FullFile:
    """A file opened for writing on a full disk: made, but every write fails."""

    def __init__(self, path: str, mode: str):
        self._file = open(path, mode)

    def __enter__(self) -> "_FullFile":
        return self

    def __exit__(self, *exc: object) -> None:
        self._file.close()

    write = staticmethod(_disk_full)


def test_export_lut_names_the_file_a_full_disk_refused(tiny_model, tmp_path, monkeypatch, capsys):
    import shotstyle.plugin.files as files

    key = noise_sequence(tmp_path / "plates", frames=1).replace("####", "0001")
    monkeypatch.setattr(files, "open", _FullFile, raising=False)
    code = main(["export-lut", tiny_model, "-o", str(tmp_path / "look.cube"), "--keyframe", key])
    assert code == ExitCode.IO_ERROR
    assert f"error: {tmp_path / 'look.cube'}: {FULL}" in capsys.readouterr().err
    assert os.listdir(tmp_path) == ["plates"]
