"""`shotstyle render` as a farm citizen: chunks, resume, claims, kills, per-frame failures, servers.

A tiny untrained `hrnet-fast` network stands in for a trained model (rendering does not care
whether the weights are good), and small sRGB JPEGs made at test time (tests/testfiles.py) are
the plate.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from shotstyle.cli import render
from shotstyle.cli.main import main
from shotstyle.media.metadata import MODEL_ATTRIBUTE
from shotstyle.plugin.exitcodes import ExitCode
from testfiles import PLATE_FRAMES, PLATE_PATTERN, PLATE_SIZE

PLATE_SHAPE = (PLATE_SIZE[1], PLATE_SIZE[0], 3)


@pytest.fixture
def clip(plate_clip) -> str:
    return plate_clip


def render_argv(model: str, source: str, out: Path, frames: str, *extra: str) -> list[str]:
    """A render command; in-process ones use one CPU thread each (several share the 2 test cores)."""
    cores = ["--threads", "1"] if "--in-process" in extra else []
    return ["render", "--model", model, "--in", source, "--out", str(out / "style.####.exr"),
            "--frames", frames, "--json-progress", *cores, *extra]


def spawn(argv: list[str]) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "shotstyle.cli", *argv],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def summary_of(stdout: str) -> dict:
    records = [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]
    (summary,) = [r for r in records if r["event"] == "summary"]
    return summary


def pixels(path: Path) -> np.ndarray:
    from shotstyle.media.reading import read_frame
    return read_frame(str(path)).pixels


def frames_in(folder: Path) -> list[str]:
    """Finished frames: files under their final names (not claims, not temporary files)."""
    return sorted(n for n in os.listdir(folder) if re.fullmatch(r"style\.\d{4}\.exr", n)) if folder.is_dir() else []


def leftovers(folder: Path) -> list[str]:
    return sorted(name for name in os.listdir(folder) if not name.endswith(".exr") or name.startswith("."))


def test_three_overlapping_chunks_equal_one_process(tiny_model, clip, tmp_path, capsys):
    single, shared = tmp_path / "single", tmp_path / "shared"
    assert main(render_argv(tiny_model, clip, single, "1-9", "--in-process")) == 0
    assert summary_of(capsys.readouterr().out)["rendered"] == 9
    chunks = ["1-4", "3-7", "1-9x2"]  # disjoint and overlapping, as three farm tasks might get them
    processes = [spawn(render_argv(tiny_model, clip, shared, chunk, "--in-process")) for chunk in chunks]
    results = [(p.wait(timeout=120), *p.communicate()) for p in processes]
    for code, out, err in results:
        assert code == 0, err
    summaries = [summary_of(out) for _, out, _ in results]
    # Every frame written exactly once across the three processes.
    assert sum(s["rendered"] for s in summaries) == 8
    assert sorted(os.listdir(shared)) == [f"style.{f:04d}.exr" for f in (1, 2, 3, 4, 5, 6, 7, 9)]
    for name in os.listdir(shared):
        np.testing.assert_array_equal(pixels(shared / name), pixels(single / name))
    assert leftovers(shared) == []


def test_resume_skips_complete_frames_and_redoes_wrong_ones(tiny_model, clip, tmp_path, capsys):
    from shotstyle.media.reading import read_frame
    from shotstyle.media.writing import write_frame
    out = tmp_path / "out"
    assert main(render_argv(tiny_model, clip, out, "1-4", "--in-process")) == 0
    capsys.readouterr()
    first = (out / "style.0001.exr").stat().st_mtime_ns
    # Frame 2: written by another model; frame 3: wrong size; frame 4: damaged.
    other = read_frame(str(out / "style.0002.exr"))
    identity = json.loads(other.attributes["shotstyle/identity"])
    write_frame(str(out / "style.0002.exr"), other, attributes={
        MODEL_ATTRIBUTE: "0" * 64, "shotstyle/identity": json.dumps({**identity, "model": "0" * 64})})
    small = read_frame(str(out / "style.0003.exr"))
    small.pixels, small.data_window = small.pixels[:10], (0, 0, small.pixels.shape[1], 10)
    write_frame(str(out / "style.0003.exr"), small)
    (out / "style.0004.exr").write_bytes(b"\x76\x2f\x31\x01" + b"\0" * 40)
    assert main(render_argv(tiny_model, clip, out, "1-4", "--in-process")) == 0
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    status = {r["frame"]: r["status"] for r in records if r["event"] == "frame"}
    assert status == {1: "skipped", 2: "rendered", 3: "rendered", 4: "rendered"}
    assert (out / "style.0001.exr").stat().st_mtime_ns == first
    from shotstyle.server.engine.modelfile import load_model
    assert read_frame(str(out / "style.0003.exr")).data_window == (0, 0, *PLATE_SIZE)
    assert read_frame(str(out / "style.0004.exr")).attributes[MODEL_ATTRIBUTE] == load_model(tiny_model).hash
    # A file cut short by some other tool keeps a good header: --verify-pixels decodes it and redoes it.
    whole = (out / "style.0002.exr").read_bytes()
    (out / "style.0002.exr").write_bytes(whole[: len(whole) * 2 // 3])
    assert main(render_argv(tiny_model, clip, out, "1-4", "--in-process", "--verify-pixels")) == 0
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["frame"] for r in records if r.get("status") == "rendered"] == [2]
    assert pixels(out / "style.0002.exr").shape == PLATE_SHAPE


def test_recorded_hash_is_the_loaded_models_hash(tiny_model):
    """Resume reads the hash without torch; it must be the one the engine stamps into frames."""
    from shotstyle.server.engine import modelfile
    from shotstyle.server.engine.modelheader import read_metadata, recorded_hash
    assert recorded_hash(read_metadata(tiny_model), tiny_model) == modelfile.load_model(tiny_model).hash


def test_resume_over_a_finished_folder_never_imports_torch(tiny_model, clip, tmp_path):
    out = tmp_path / "out"
    argv = render_argv(tiny_model, clip, out, "1-3", "--in-process")
    assert main(argv) == 0
    check = ("import sys; from shotstyle.cli.main import main; code = main(sys.argv[1:]); "
             "assert 'torch' not in sys.modules, 'resume imported torch'; sys.exit(code)")
    done = subprocess.run([sys.executable, "-c", check, *argv], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert summary_of(done.stdout)["skipped"] == 3


def test_a_model_from_a_newer_shotstyle_is_refused_before_rendering(clip, tmp_path, capsys):
    from safetensors.numpy import save_file
    model = tmp_path / "future.safetensors"
    save_file({"w": np.zeros(1, np.float32)}, str(model),
              metadata={"shotstyle": json.dumps({"format_version": 99, "checksum": "0" * 64})})
    assert main(["render", "--model", str(model), "--in", clip, "--out", str(tmp_path / "o.####.exr"),
                 "--frames", "1"]) == ExitCode.MODEL_ERROR
    assert "written by a newer shotstyle" in capsys.readouterr().err


def test_sigkill_mid_render_leaves_no_partial_frame_and_rerun_finishes(tiny_model, clip, tmp_path):
    out = tmp_path / "out"
    process = spawn(render_argv(tiny_model, clip, out, f"1-{PLATE_FRAMES}", "--in-process"))
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and len(frames_in(out)) < 4:
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    finished = frames_in(out)
    assert 4 <= len(finished) < PLATE_FRAMES
    for name in finished:  # whatever carries a final name is a whole frame
        assert pixels(out / name).shape == PLATE_SHAPE
    rerun = spawn(render_argv(tiny_model, clip, out, f"1-{PLATE_FRAMES}", "--in-process"))
    stdout, stderr = rerun.communicate(timeout=180)
    assert rerun.returncode == 0, stderr
    summary = summary_of(stdout)
    assert (summary["skipped"], summary["rendered"]) == (len(finished), PLATE_FRAMES - len(finished))
    assert len(frames_in(out)) == PLATE_FRAMES
    assert not [n for n in os.listdir(out) if n.endswith(".claim")]


def test_stale_claim_is_taken_over_and_a_live_one_waited_for(tiny_model, clip, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    (out / "style.0001.exr.claim").write_text(f"pid={dead.stdout.strip()} host={socket.gethostname()}\n")
    live = os.open(out / "style.0002.exr.claim", os.O_CREAT | os.O_RDWR)
    fcntl.flock(live, fcntl.LOCK_EX)

    def let_go():
        os.unlink(out / "style.0002.exr.claim")
        os.close(live)

    timer = threading.Timer(1.5, let_go)
    started = time.monotonic()
    timer.start()
    assert main(render_argv(tiny_model, clip, out, "1-3", "--in-process")) == 0
    timer.join()
    assert time.monotonic() - started >= 1.5  # it waited for the live claim instead of skipping frame 2
    summary = summary_of(capsys.readouterr().out)
    assert summary["rendered"] == 3
    assert sorted(os.listdir(out)) == ["style.0001.exr", "style.0002.exr", "style.0003.exr"]


def test_missing_and_damaged_inputs_fail_only_their_frames(tiny_model, clip, tmp_path, capsys):
    plates = tmp_path / "plates"
    plates.mkdir()
    for frame in (1, 2, 4, 5):
        shutil.copy(clip.replace("####", f"{frame:04d}"), plates)
    out = tmp_path / "out"
    argv = render_argv(tiny_model, str(plates / PLATE_PATTERN), out, "1-5", "--in-process")
    assert main(argv) == ExitCode.MISSING_INPUT == 3
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    (failure,) = [r for r in records if r["event"] == "frame" and r["status"] == "missing"]
    third = str(plates / PLATE_PATTERN.replace("####", "0003"))
    assert failure["frame"] == 3 and third in failure["error"]
    assert sorted(os.listdir(out)) == [f"style.{f:04d}.exr" for f in (1, 2, 4, 5)]
    open(third, "wb").write(b"\xff\xd8\xff\xe0 not really a jpeg")
    text_mode = [a for a in argv if a != "--json-progress"]
    assert main(text_mode) == ExitCode.MISSING_INPUT == 3   # an unreadable input is a missing input (issue 21)
    captured = capsys.readouterr()
    assert "frame 3 FAILED" in captured.err and os.path.basename(third) in captured.err
    assert "(1 missing input)" in captured.out
    assert "PROGRESS: 100%" in captured.out and "4 skipped" in captured.out


@pytest.mark.parametrize("frames, expected", [
    (["--frames", "1001-1010"], list(range(1001, 1011))),
    (["--frames", "1001-1010x3"], [1001, 1004, 1007, 1010]),
    (["--frames", "1001", "1003"], [1001, 1002, 1003]),
    (["--start", "7", "--end", "9"], [7, 8, 9]),
    (["--frames", "1-20", "--within", "1,5,9-12"], [1, 5, 9, 10, 11, 12]),
])
def test_frame_ranges_as_farm_managers_pass_them(frames, expected):
    import argparse
    parser = argparse.ArgumentParser()
    render.configure(parser)
    args = parser.parse_args(["--model", "m", "--in", "a.####.exr", "--out", "b.####.exr", *frames])
    assert render.frames_from_args(args) == expected


@pytest.mark.parametrize("argv, code, message", [
    (["--frames", "9-1"], 2, "ends before it starts"),
    (["--frames", "1-3", "--mix", "2"], 2, "--mix"),
    (["--frames", "1-3", "--model", "/nowhere/model.safetensors"], 4, "no such file"),
])
def test_usage_and_model_errors_have_their_exit_codes(tiny_model, clip, tmp_path, argv, code, message, capsys):
    base = ["render", "--model", tiny_model, "--in", clip, "--out", str(tmp_path / "o.####.exr"), "--in-process"]
    assert main(base + argv) == code
    assert message in capsys.readouterr().err


def test_a_still_image_renders_without_a_pattern_or_frames(tiny_model, clip, tmp_path, capsys):
    """`render --in still.jpg --out out.exr`: the one image, as frame 1 of its sequence would be;
    a still may go to a display file (PNG) without --allow-display-output."""
    still = clip.replace("####", "0001")
    assert main(render_argv(tiny_model, clip, tmp_path / "seq", "1", "--in-process")) == 0
    capsys.readouterr()
    assert main(["render", "--model", tiny_model, "--in", still, "--out", str(tmp_path / "one" / "out.exr"),
                 "--in-process", "--json-progress"]) == 0
    assert summary_of(capsys.readouterr().out)["rendered"] == 1
    np.testing.assert_array_equal(pixels(tmp_path / "one" / "out.exr"), pixels(tmp_path / "seq" / "style.0001.exr"))
    assert main(["render", "--model", tiny_model, "--in", still, "--out", str(tmp_path / "one" / "out.exr"),
                 "--in-process", "--json-progress"]) == 0            # complete: skipped, like a sequence's frame
    assert summary_of(capsys.readouterr().out)["skipped"] == 1
    assert main(["render", "--model", tiny_model, "--in", still, "--out", str(tmp_path / "one" / "review.png"),
                 "--in-process"]) == 0
    assert pixels(tmp_path / "one" / "review.png").shape == PLATE_SHAPE
    assert sorted(os.listdir(tmp_path / "one")) == ["out.exr", "review.png"]   # no claim or temporary file left
    capsys.readouterr()
    assert main(["render", "--model", tiny_model, "--in", still, "--out", str(tmp_path / "x.exr"),
                 "--frames", "1-3", "--in-process"]) == ExitCode.USAGE
    assert "is one image (no frame token" in capsys.readouterr().err
    assert main(["render", "--model", tiny_model, "--in", clip, "--out", str(tmp_path / "x.exr"),
                 "--frames", "1-3", "--in-process"]) == ExitCode.USAGE
    assert "is one file but --in" in capsys.readouterr().err


def test_damaged_model_is_a_model_error(tmp_path, clip, capsys):
    model = tmp_path / "bad.safetensors"
    model.write_bytes(b"\x80\x04 pickled? no thanks")
    assert main(["render", "--model", str(model), "--in", clip, "--out", str(tmp_path / "o.####.exr"),
                 "--frames", "1", "--in-process"]) == ExitCode.MODEL_ERROR
    assert "bad.safetensors" in capsys.readouterr().err


def test_two_servers_both_receive_frames_and_match_in_process(tiny_model, clip, tmp_path, capsys):
    from serverproc import ServerProcess
    from shotstyle.plugin.client import Client
    from shotstyle.server.engine.modelfile import load_model
    local = tmp_path / "local"
    assert main(render_argv(tiny_model, clip, local, "1-4", "--in-process")) == 0
    capsys.readouterr()
    with ThreadPoolExecutor(2) as pool:  # start both at once: each start imports torch
        first, second = pool.map(ServerProcess, (tmp_path / "a", tmp_path / "b"))
    with first, second:
        out = tmp_path / "served"
        argv = render_argv(tiny_model, clip, out, "1-4", "--server", f"{first.address},{second.address}",
                           "--in-flight", "2")
        assert main(argv) == 0
        records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
        served = {r["frame"]: r["server"] for r in records if r["event"] == "frame"}
        assert sorted(served) == list(range(1, 5))
        assert set(served.values()) == {first.address, second.address}
        model_name = "farm-" + load_model(tiny_model).hash[:20]
        for server in (first, second):
            with Client(server.address) as client:
                assert model_name in client.status()["loaded_models"]
    for frame in range(1, 5):  # servers use all cores, the local render one: equal to half precision
        name = f"style.{frame:04d}.exr"
        np.testing.assert_allclose(pixels(out / name), pixels(local / name), rtol=2 ** -10, atol=1e-6)


def test_an_in_process_cpu_render_gives_a_light_network_the_threads_its_io_leaves(tiny_model, tmp_path):
    """hrnet-fast (`light`: its work costs a CPU less than its frames' reading, colour and writing)
    runs on the threads the reader and finishing threads leave, at least one; a network heavier
    than its I/O (hrnet) on all the render's threads."""
    import torch
    from shotstyle.cli.render.inprocess import InProcess
    from shotstyle.media.frame import io_threads
    from shotstyle.plugin.params import FrameArgs
    from shotstyle.server.engine.modelfile import StyleModel, save_model
    from shotstyle.server.engine.networks import build_network
    heavy = str(tmp_path / "hrnet.safetensors")
    save_model(StyleModel(build_network("hrnet", width=4, blocks=1), {"loss": "look"}), heavy)
    before = torch.get_num_threads()
    try:
        for threads in (1, 6):
            InProcess(tiny_model, FrameArgs(), threads)
            assert torch.get_num_threads() == max(1, threads - 2 * io_threads())
            InProcess(heavy, FrameArgs(), threads)
            assert torch.get_num_threads() == threads
    finally:
        torch.set_num_threads(before)


def test_a_half_plate_stays_half_from_file_to_file(tiny_model, tmp_path, monkeypatch, capsys):
    """An in-process render of half EXRs reads them as half, stages them for the engine as half and
    writes the half result as it is (no float32 copy, no conversion back): the written pixels are
    bit for bit the float32 path's result rounded to half, and the clamp count is the same."""
    import shotstyle.cli.render.inprocess as inprocess
    from shotstyle.media.reading import read_frame
    from shotstyle.server.engine.inference import Stylizer
    from shotstyle.server.engine.modelfile import load_model
    from shotstyle.server.engine.pipeline import stylize_frame
    from testfiles import write_image

    rng = np.random.default_rng(3)
    rgb = rng.uniform(0, 4, (24, 32, 3))
    alpha = np.where(rng.uniform(size=(24, 32, 1)) < 0.2, 0.0, rng.uniform(0.3, 1, (24, 32, 1)))
    # Uncovered pixels keep their RGB, converted to the output's space: AP1 -> AP0 takes this blue
    # 0.15% beyond the half range, so some values are clamped and counted.
    rgb[0, :4], alpha[0, :4] = (0.0, 0.0, 65504.0), 0.0
    plates = tmp_path / "plates"
    plates.mkdir()
    for frame in (1, 2):
        write_image(plates / f"p.{frame:04d}.exr", np.concatenate([rgb * frame, alpha], 2).astype(np.float32),
                    ["R", "G", "B", "A"], "half", display=(0, 0, 32, 24))
    staged = []
    prepare = inprocess.prepare
    monkeypatch.setattr(inprocess, "prepare", lambda frame, *a: staged.append(frame.pixels.dtype) or prepare(frame, *a))
    out = tmp_path / "out"
    argv = ["render", "--model", tiny_model, "--in", str(plates / "p.####.exr"), "--out", str(out / "s.####.exr"),
            "--frames", "1-2", "--in-process", "--threads", "1", "--json-progress", "--colourspace", "ACEScg",
            "--out-colourspace", "ACES2065-1"]
    assert main(argv) == 0
    clamped = {r["frame"]: r.get("clamped", 0) for r in map(json.loads, capsys.readouterr().out.splitlines())
               if r["event"] == "frame"}
    assert staged == [np.dtype(np.float16)] * 2
    stylizer = Stylizer(load_model(tiny_model))
    for frame in (1, 2):
        plate = read_frame(str(plates / f"p.{frame:04d}.exr"), "ACEScg")
        expected = stylize_frame(stylizer, plate, out_colourspace="ACES2065-1").pixels
        beyond = np.isfinite(expected) & (np.abs(expected) > 65504)
        got = read_frame(str(out / f"s.{frame:04d}.exr"), half=True).pixels
        assert got.dtype == np.float16
        assert np.array_equal(got.view(np.uint16), np.clip(expected, -65504, 65504).astype(np.float16).view(np.uint16))
        assert clamped[frame] == int(beyond.sum()) > 0


def test_default_uses_the_local_server_starting_it_if_absent(tiny_model, clip, tmp_path, capsys):
    from shotstyle.plugin import localserver
    from shotstyle.plugin.client import Client
    assert localserver.find_local_server() is None
    try:
        assert main(render_argv(tiny_model, clip, tmp_path / "out", "1-2")) == 0
        records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
        address = localserver.find_local_server()
        assert address is not None
        assert {r["server"] for r in records if r["event"] == "frame"} == {address}
    finally:
        address = localserver.find_local_server()
        if address:
            with Client(address) as client:
                client.shutdown()


def test_unreachable_server_exits_5(tiny_model, clip, tmp_path, capsys):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    started = time.monotonic()
    code = main(render_argv(tiny_model, clip, tmp_path / "out", "1-2", "--server", f"tcp://127.0.0.1:{port}"))
    assert code == ExitCode.SERVER_UNREACHABLE
    assert time.monotonic() - started < 15
    assert f"no answer from tcp://127.0.0.1:{port}" in capsys.readouterr().out
