"""Issue 15, faults 4 and 7: half-float outputs never hold Inf, and faults end clearly and quickly.

4. values beyond the half range become ±65504 (counted and reported), in frame files and in the
   server's half-float replies;
7. a killed or hung server is noticed in seconds (train: "server lost"; render: failover, or
   exit 5), a restarted one's unknown job is explained, a stopping server's checkpoint reaches
   the client, a killed render's leftovers are cleaned by the next run, I/O errors exit 7 with
   a message (no traceback), and a socket that is not a shotstyle server is named as such.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import zmq

from serverproc import MODEL, ServerProcess, save_tiny_model
from shotstyle.plugin import codec
from shotstyle.plugin.client import Client, ServerError
from shotstyle.plugin.exitcodes import ExitCode


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> str:
    return save_tiny_model(tmp_path_factory.mktemp("model"))


def cli(*argv: str, **kwargs) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "shotstyle.cli", *argv], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kwargs)


def records(stdout: str) -> list[dict]:
    return [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --- fault 4 ---------------------------------------------------------------------------------

def test_f4_a_render_writes_no_inf_where_values_pass_the_half_range(tiny_model, made_exrs, tmp_path, capsys):
    from shotstyle.cli.main import main
    from shotstyle.media.reading import read_frame

    (tmp_path / "in").mkdir()
    shutil.copy(made_exrs["all_half"], tmp_path / "in" / "all.0001.exr")
    code = main(["render", "--model", tiny_model, "--in", str(tmp_path / "in" / "all.####.exr"),
                 "--out", str(tmp_path / "out" / "all.####.exr"), "--frames", "1", "--in-process", "--threads", "1",
                 "--json-progress"])
    assert code == ExitCode.OK
    (frame,) = [r for r in records(capsys.readouterr().out) if r["event"] == "frame"]
    out = read_frame(str(tmp_path / "out" / "all.0001.exr"))
    assert out.channel_formats == ["half"] * 3
    assert not np.isinf(out.pixels).any()  # the input's NaN/Inf were replaced; no new Inf
    assert frame["clamped"] == int(np.count_nonzero(np.abs(out.pixels) == 65504)) - \
        int(np.count_nonzero(np.abs(read_frame(made_exrs["all_half"]).pixels) == 65504)) or frame["clamped"] > 0


def test_f4_the_servers_half_float_replies_hold_no_inf(made_exrs, tmp_path):
    from shotstyle.media.payloads import frame_to_raw
    from shotstyle.media.reading import read_frame

    save_tiny_model(tmp_path / "models")
    with ServerProcess(tmp_path) as server, Client(server.address, timeout=60) as client:
        plate = read_frame(made_exrs["all_half"])
        for sent in (frame_to_raw(plate, "float16", 1), codec.encode_file(made_exrs["all_half"], frame=1)):
            (out,) = client.stylize([sent], MODEL)
            if out.kind == "raw":
                pixels = np.frombuffer(out.data, np.float16)
            else:
                from shotstyle.media.reading import decode_image_bytes
                pixels = decode_image_bytes(bytes(out.data)).pixels
            assert not np.isinf(pixels).any(), out.kind
            assert out.extra.get("clamped", 0) > 0, out.extra


def test_f4_only_finite_values_beyond_the_half_range_are_clamped_and_counted(tmp_path):
    from shotstyle.media.frame import Frame
    from shotstyle.media.reading import read_frame
    from shotstyle.media.writing import write_frame

    pixels = np.array([[[70000.0, -1e9, np.inf, 65504.0, 1.0]]], np.float32)
    frame = Frame(pixels, ["R", "G", "B", "A", "Z"], ["half", "half", "half", "half", "float"], (0, 0, 1, 1),
                  (0, 0, 1, 1), {})
    assert write_frame(str(tmp_path / "f.exr"), frame) == 2
    back = read_frame(str(tmp_path / "f.exr")).pixels[0, 0]
    assert back[:2].tolist() == [65504.0, -65504.0] and np.isposinf(back[2])  # an input Inf stays an Inf
    assert back[3] == 65504.0 and back[4] == 1.0
    assert pixels[0, 0, 0] == 70000.0  # the caller's frame is untouched


# --- fault 7: a lost server ------------------------------------------------------------------

class Reader:
    """Reads a process's stream in a thread (a silent stream cannot hang a test)."""

    def __init__(self, stream) -> None:
        self.lines: list[str] = []
        self._thread = threading.Thread(target=lambda: self.lines.extend(stream), daemon=True)
        self._thread.start()

    def wait_for(self, needle: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not any(needle in line for line in list(self.lines)):
            assert time.monotonic() < deadline and self._thread.is_alive(), f"no {needle!r}: {self.lines}"
            time.sleep(0.05)

    def text(self) -> str:
        """Everything, once the stream has ended (after its process exited)."""
        self._thread.join(10)
        return "".join(self.lines)


@pytest.fixture
def keyframe(tmp_path) -> str:
    from shotstyle.media.frame import Frame
    from shotstyle.media.writing import write_frame

    rgb = np.random.default_rng(0).uniform(0, 1, (48, 64, 3)).astype(np.float32)
    path = str(tmp_path / "key.exr")
    write_frame(path, Frame(rgb, ["R", "G", "B"], ["half"] * 3, (0, 0, 64, 48), (0, 0, 64, 48), {}))
    return path


def start_training(server: ServerProcess, keyframe: str, output: Path) -> tuple[subprocess.Popen, Reader]:
    """A `shotstyle train --server` that has made its first step, and its stderr."""
    client = cli("train", "--server", server.address, "--content", keyframe, "--style", keyframe, "-o", str(output),
                 "--steps", "100000", "--resolution", "32", "--loss", "look", env=server.env)
    err = Reader(client.stderr)
    err.wait_for("step ", 60)
    return client, err


def test_f7_train_says_server_lost_within_10_s_of_a_kill(tmp_path, keyframe):
    with ServerProcess(tmp_path / "srv") as server:
        client, err = start_training(server, keyframe, tmp_path / "m.safetensors")
        server.process.kill()
        killed = time.monotonic()
        try:
            code = client.wait(30)
        finally:
            client.kill()
        waited = time.monotonic() - killed
    assert waited < 10 and code == ExitCode.SERVER_UNREACHABLE, (waited, code, err.text())
    assert "server lost" in err.text()


def test_f7_a_stopping_servers_checkpoint_reaches_the_client_even_if_it_is_then_killed(tmp_path, keyframe):
    from shotstyle.server.engine.modelfile import load_model

    output = tmp_path / "m.safetensors"
    with ServerProcess(tmp_path / "srv") as server:
        client, err = start_training(server, keyframe, output)
        server.process.send_signal(signal.SIGTERM)
        try:
            server.process.wait(10)
        except subprocess.TimeoutExpired:
            pass
        server.kill()  # SIGTERM, then SIGKILL: what farm managers and systemd do
        try:
            code = client.wait(30)
        finally:
            client.kill()
    assert code == ExitCode.FAILED and "stopped" in err.text(), (code, err.text(), server.log()[-3000:])
    assert load_model(str(output)).metadata["steps"] == 100000  # the checkpoint, written locally


def test_f7_a_restarted_servers_unknown_job_is_explained(tmp_path, monkeypatch):
    from shotstyle.plugin import client as client_module

    monkeypatch.setattr(client_module, "LOST_AFTER_S", 60.0, raising=False)  # time for the new server to start
    bind = ["--bind", f"tcp://127.0.0.1:{free_port()}"]
    first = ServerProcess(tmp_path / "a", bind)
    try:
        with Client(first.address, timeout=60) as client:  # the farm's request timeout
            frame = codec.encode_raw(np.full((16, 16, 3), 0.2, np.float16), {
                "width": 16, "height": 16, "channels": ["R", "G", "B"], "formats": ["half"] * 3,
                "dtype": "float16", "data_window": [0, 0, 16, 16], "display_window": [0, 0, 16, 16]})
            job = client.train([frame], frame, "long", {"steps": 100000, "resolution": 32, "loss": "look"})
            assert job.next_event(30) is not None
            first.kill()
            with ServerProcess(tmp_path / "b", bind):
                back = time.monotonic()
                with pytest.raises(ServerError) as err:
                    while time.monotonic() - back < 20:
                        job.next_event(1)
                explained = time.monotonic() - back
    finally:
        first.kill()
    assert err.value.code == "unknown_job" and "restarted" in err.value.message
    assert explained < 10


def test_f7_a_final_event_lost_with_a_dropped_connection_is_made_up_from_status(tmp_path):
    from shotstyle.plugin.client import follow

    with ServerProcess(tmp_path) as server, Client(server.address, timeout=60) as client:
        frame = codec.encode_raw(np.full((16, 16, 3), 0.2, np.float16), {
            "width": 16, "height": 16, "channels": ["R", "G", "B"], "formats": ["half"] * 3,
            "dtype": "float16", "data_window": [0, 0, 16, 16], "display_window": [0, 0, 16, 16]})
        job = client.train([frame], frame, "short", {"steps": 3, "resolution": 32, "loss": "look"})
        deadline = time.monotonic() + 60
        while client.job_listing(job)["state"] != "done":  # finished on the server, its events unread
            assert time.monotonic() < deadline
            time.sleep(0.1)
        while client._receive(0.5):  # every event is in ...
            pass
        client._events[job.request_id].clear()  # ... and gone, as if sent while the connection was down
        client.reconnects += 1                  # ... and it was then re-made
        final = follow(job, timeout=30)
    assert final["type"] == "done" and final["model"] == "short"


def render_argv(model: str, clip: str, out: Path, frames: str, servers: str) -> list[str]:
    return ["render", "--model", model, "--in", clip, "--out", str(out / "s.####.exr"), "--frames", frames,
            "--server", servers, "--json-progress", "--in-flight", "1"]


@pytest.mark.parametrize("fault", [signal.SIGSTOP, signal.SIGKILL], ids=["hung", "killed"])
def test_f7_render_exits_5_within_10_s_of_its_only_server_hanging_or_dying(tiny_model, plate_clip, tmp_path, fault):
    with ServerProcess(tmp_path / "srv") as server:
        render = cli(*render_argv(tiny_model, plate_clip, tmp_path / "out", "1-120", server.address), env=server.env)
        try:
            Reader(render.stdout).wait_for('"status": "rendered"', 60)
            server.process.send_signal(fault)  # hung (SIGSTOP): only heartbeats can tell
            stopped = time.monotonic()
            code = render.wait(40)
            waited = time.monotonic() - stopped
        finally:
            render.kill()
            server.process.send_signal(signal.SIGCONT)
    assert code == ExitCode.SERVER_UNREACHABLE and waited < 10, (code, waited)


def test_f7_render_fails_over_to_the_other_server(tiny_model, plate_clip, tmp_path):
    with ServerProcess(tmp_path / "a") as first, ServerProcess(tmp_path / "b") as second:
        render = cli(*render_argv(tiny_model, plate_clip, tmp_path / "out", "1-40",
                                  f"{first.address},{second.address}"), env=first.env)
        out, err = Reader(render.stdout), Reader(render.stderr)
        try:
            out.wait_for(first.address, 60)  # a frame came from the first server
            first.kill()
            render.wait(240)
        finally:
            render.kill()
        stdout, stderr = out.text(), err.text()
        assert render.returncode == ExitCode.OK, stderr[-3000:]
    done = [r for r in records(stdout) if r["event"] == "frame" and r["status"] == "rendered"]
    assert sorted(r["frame"] for r in done) == [f for f in range(1, 41)
                                                if (tmp_path / "out" / f"s.{f:04d}.exr").exists()]
    assert any(r.get("server") == second.address for r in done)
    assert "lost" in stdout + stderr


def test_f7_a_dead_server_among_several_is_left_out(tiny_model, plate_clip, tmp_path, capsys):
    from shotstyle.cli.main import main

    with ServerProcess(tmp_path / "srv") as server:
        code = main(render_argv(tiny_model, plate_clip, tmp_path / "out", "1-3",
                                f"tcp://127.0.0.1:{free_port()},{server.address}"))
    assert code == ExitCode.OK
    assert "going on with " + server.address in capsys.readouterr().out


def test_f7_a_client_refuses_a_peer_that_is_not_a_shotstyle_server():
    context = zmq.Context.instance()
    echo = context.socket(zmq.DEALER)  # what a socket connected to itself looks like: a DEALER answering
    port = echo.bind_to_random_port("tcp://127.0.0.1")

    def answer() -> None:
        if echo.poll(10000):
            echo.send_multipart(echo.recv_multipart())

    threading.Thread(target=answer, daemon=True).start()
    try:
        with Client(f"tcp://127.0.0.1:{port}", timeout=5, retries=0) as client:
            started = time.monotonic()
            with pytest.raises(ServerError) as err:
                client.hello()
        assert "not a shotstyle server" in err.value.message and time.monotonic() - started < 5
    finally:
        echo.close(0)


# --- fault 7: leftovers and I/O errors ---------------------------------------------------------

def test_f7_the_next_run_removes_what_a_killed_render_left(tiny_model, plate_clip, tmp_path, capsys):
    from shotstyle.cli.main import main

    out = tmp_path / "out"
    out.mkdir()
    # What a render killed while writing frame 2 leaves: the 0-byte temporary file and its claim.
    handle, temporary = tempfile.mkstemp(prefix=".s.0002.", suffix=".tmp.exr", dir=out)
    os.close(handle)
    (out / "s.0002.exr.claim").write_text(f"pid=999999 host={socket.gethostname()} time=then\n")
    unrelated = out / ".notes.txt"
    unrelated.write_text("mine")
    argv = ["render", "--model", tiny_model, "--in", plate_clip, "--out", str(out / "s.####.exr"),
            "--frames", "1-3", "--in-process", "--threads", "1"]
    assert main(argv) == ExitCode.OK
    assert sorted(p.name for p in out.iterdir()) == [".notes.txt", "s.0001.exr", "s.0002.exr", "s.0003.exr"]
    # ... also when the frame was finished meanwhile by another run
    handle, temporary = tempfile.mkstemp(prefix=".s.0003.", suffix=".tmp.exr", dir=out)
    os.close(handle)
    assert main(argv) == ExitCode.OK
    assert not os.path.exists(temporary)
    assert "left by a render that was stopped" in capsys.readouterr().err


def test_f7_an_output_folder_that_cannot_be_made_exits_7_with_a_message(tiny_model, plate_clip, tmp_path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where a folder should be")
    render = cli("render", "--model", tiny_model, "--in", plate_clip, "--out", str(blocker / "sub" / "s.####.exr"),
                 "--frames", "1-2", "--in-process")
    stdout, stderr = render.communicate(timeout=120)
    assert "Traceback" not in stderr and str(blocker) in stderr and "cannot make the folder" in stderr, stderr
    assert render.returncode == ExitCode.IO_ERROR


def test_f7_a_model_output_that_cannot_be_written_exits_7_with_a_message(keyframe, tmp_path):
    into_a_folder = tmp_path / "a-folder"
    into_a_folder.mkdir()
    train = cli("train", "--in-process", "--content", keyframe, "--style", keyframe, "-o", str(into_a_folder),
                "--steps", "1", "--resolution", "32", "--loss", "look")
    stdout, stderr = train.communicate(timeout=300)
    assert "Traceback" not in stderr and f"-o {into_a_folder}: cannot write the model file" in stderr, stderr
    assert train.returncode == ExitCode.IO_ERROR
