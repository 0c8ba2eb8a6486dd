"""Ctrl-C of `render` and `train`, in-process and through a server, exits 130 every time.

SIGINT arrives at several moments (just after the command's first line, and at growing delays
into the work); a farm manager must see 130 (cancelled), never an abort (SIGABRT, "terminate
called without an active exception") or a signal death. The render's plates are large float
EXRs, so that its reader threads are often inside OpenImageIO when the signal lands: before
the fix, more than half the renders through a server aborted that way.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import numpy as np

from serverproc import ServerProcess, save_tiny_model
from shotstyle.plugin.exitcodes import ExitCode
from testfiles import write_image, write_style

DELAYS_S = (0.0, 0.1, 0.3, 0.6, 1.0)   # after the first line the command prints


def interrupted(argv: list[str], delay: float) -> tuple[int, str]:
    """Run the command, send SIGINT `delay` s after its first line; its exit status and stderr.
    The command starts with SIGINT at its default, as from a terminal: a suite run in the
    background of a shell without job control ignores SIGINT, and its children inherit that."""
    process = subprocess.Popen([sys.executable, "-m", "shotstyle.cli", *argv],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    first = process.stderr.readline() if process.stderr else ""
    time.sleep(delay)
    process.send_signal(signal.SIGINT)
    rest = process.communicate(timeout=120)[1]
    return process.returncode, first + rest


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with ServerProcess(tmp_path_factory.mktemp("server")) as running:
        yield running


@pytest.fixture(scope="module")
def large_plates(tmp_path_factory) -> str:
    folder = tmp_path_factory.mktemp("plates")
    pixels = np.random.default_rng(0).random((720, 1280, 3), dtype=np.float32)
    for frame in range(1, 13):
        write_image(folder / f"p.{frame:04d}.exr", pixels, ["R", "G", "B"], "float")
    return str(folder / "p.####.exr")


@pytest.mark.slow
@pytest.mark.parametrize("where, tries", [("server", 10), ("in-process", 4)])
def test_ctrl_c_of_render_exits_130_every_time(where, tries, large_plates, server, tmp_path):
    model = save_tiny_model(tmp_path / "models")
    reach = ["--server", server.address] if where == "server" else ["--in-process", "--threads", "1"]
    for n in range(tries):
        delay = DELAYS_S[n % len(DELAYS_S)]
        argv = ["render", "--model", model, "--in", large_plates, "--out", str(tmp_path / f"out{n}" / "s.####.exr"),
                "--frames", "1-12", *reach]
        code, err = interrupted(argv, delay)
        assert code == ExitCode.CANCELLED, (delay, code, err)
        assert "terminate called" not in err and "Traceback" not in err, err


@pytest.mark.slow
@pytest.mark.parametrize("where, tries", [("server", 4), ("in-process", 3)])
def test_ctrl_c_of_train_exits_130_every_time(where, tries, plate_clip, server, tmp_path):
    style = write_style(tmp_path / "style.png")
    keyframe = plate_clip.replace("####", "0001")
    reach = ["--server", server.address] if where == "server" else ["--in-process"]
    for n in range(tries):
        delay = DELAYS_S[n % len(DELAYS_S)]
        argv = ["train", "--content", keyframe, "--style", style, "-o", str(tmp_path / f"m{n}.safetensors"),
                "--steps", "2000", "--resolution", "32", "--loss", "look", *reach]
        code, err = interrupted(argv, delay)
        assert code == ExitCode.CANCELLED, (delay, code, err)
        assert "terminate called" not in err and "Traceback" not in err, err


@pytest.mark.slow
def test_ctrl_c_of_a_training_queued_behind_another_ends_at_once(plate_clip, tmp_path):
    """A training waiting behind a long one is cancelled when asked, not when the one ahead ends
    (its client used to sit at "cancelling the server job..." for the whole of the other training)."""
    style = write_style(tmp_path / "style.png")
    keyframe = plate_clip.replace("####", "0001")
    with ServerProcess(tmp_path / "server") as server:
        ahead = subprocess.Popen([sys.executable, "-m", "shotstyle.cli", "train", "--content", keyframe, "--style", style,
                                  "-o", str(tmp_path / "ahead.safetensors"), "--steps", "100000", "--resolution", "32",
                                  "--loss", "look", "--server", server.address],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        try:
            assert ahead.stderr is not None
            ahead.stderr.readline()
            code, err = interrupted(["train", "--content", keyframe, "--style", style, "-o",
                                     str(tmp_path / "queued.safetensors"), "--steps", "2000", "--resolution", "32",
                                     "--loss", "look", "--server", server.address], 0.5)
            assert code == ExitCode.CANCELLED, (code, err)
            assert "no checkpoint had been made yet" in err
            assert ahead.poll() is None   # the training ahead goes on
        finally:
            ahead.send_signal(signal.SIGINT)
            ahead.communicate(timeout=120)
