"""`shotstyle train`: in-process and through a real server process, same bar, model where -o says."""

from __future__ import annotations

import io
import socket

import pytest

from shotstyle.nodes.farm import train
from shotstyle.nodes.farm.cli import main
from testfiles import paths_of

QUICK = ["--steps", "4", "--resolution", "64", "--loss", "look"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def inputs(plate_clip, style_image) -> dict:
    content, preview = paths_of(plate_clip, (1, 30))
    return {"content": content, "style": style_image, "preview": preview}


def test_in_process_training_writes_a_loadable_model_and_shows_progress(inputs, tmp_path, capsys):
    from shotstyle.server.engine.modelfile import load_model
    model = tmp_path / "look.safetensors"
    code = main(["train", "--content", inputs["content"], "--content", str(inputs["preview"]), "--style",
                 inputs["style"], "-o", str(model), "--preview", inputs["preview"], "--in-process", *QUICK])
    assert code == 0
    err = capsys.readouterr().err
    assert "step 4/4" in err and "steps/s" in err and "ETA" in err
    assert f"model written to {model}" in err
    loaded = load_model(str(model))
    assert loaded.metadata["steps"] == 4 and loaded.metadata["loss"] == "look"
    # Fine-tune from it: --init takes the trained model as the starting point.
    again = tmp_path / "again.safetensors"
    assert main(["train", "--content", inputs["content"], "--style", inputs["style"], "-o", str(again),
                 "--init", str(model), "--in-process", "--more-steps", "1", "--resolution", "64", "--loss", "look"]) == 0
    assert load_model(str(again)).hash != loaded.hash


@pytest.mark.parametrize("change, code, message", [
    (lambda a: a.__setitem__(1, "/nowhere/key.jpg"), 3, "/nowhere/key.jpg: no such file"),
    (lambda a: a.extend(["--init", "/nowhere/m.safetensors"]), 4, "--init"),
    (lambda a: a.extend(["--strength", "3"]), 2, "parameter 'strength' = 3.0 is outside its range"),
])
def test_bad_arguments_have_their_exit_codes(inputs, tmp_path, change, code, message, capsys):
    argv = ["--content", inputs["content"], "--style", inputs["style"], "-o", str(tmp_path / "m.safetensors"),
            "--in-process", *QUICK]
    change(argv)
    assert main(["train", *argv]) == code
    assert message in capsys.readouterr().err


def test_in_process_only_options_are_refused_for_a_server(inputs, tmp_path, capsys):
    assert main(["train", "--content", inputs["content"], "--style", inputs["style"], "-o",
                 str(tmp_path / "m.safetensors"), "--vgg", "random", "--server", "tcp://127.0.0.1:9"]) == 2
    assert "--vgg only work with --in-process" in capsys.readouterr().err


def test_unreachable_server_exits_5(inputs, tmp_path, capsys):
    code = main(["train", "--content", inputs["content"], "--style", inputs["style"], "-o",
                 str(tmp_path / "m.safetensors"), "--server", f"tcp://127.0.0.1:{free_port()}", *QUICK])
    assert code == 5
    assert "no answer from tcp://127.0.0.1:" in capsys.readouterr().err


def test_progress_bar_in_a_log_prints_sparse_lines():
    stream = io.StringIO()
    bar = train.ProgressBar(stream)
    for step in range(1, 101):
        bar.update(step, 100, {"total": 1.0 / step, "style": 0.5}, 12.5, (100 - step) / 12.5)
    bar.update(100, 100, {"total": 0.01, "style": 0.5}, 12.5, 0.0)  # a preview event at the last step
    lines = stream.getvalue().splitlines()
    assert len(lines) == 21
    assert lines[-1].startswith("step 100/100 [########################] 100% total=0.01 style=0.5")
    assert lines[-1].endswith("| 12.50 steps/s ETA 0:00")


def test_training_through_a_server_downloads_the_model(inputs, tmp_path, capsys):
    from serverproc import ServerProcess
    from shotstyle.server.engine.modelfile import load_model
    with ServerProcess(tmp_path / "server") as server:
        model = tmp_path / "served.safetensors"
        code = main(["train", "--content", inputs["content"], "--style", inputs["style"], "-o", str(model),
                     "--server", server.address, *QUICK])
        err = capsys.readouterr().err
        assert code == 0, err + server.log()
    assert "step 4/4" in err and "steps/s" in err and "ETA" in err
    assert load_model(str(model)).metadata["steps"] == 4


def test_ctrl_c_keeps_a_checkpoint_and_exits_130(inputs, tmp_path):
    import signal
    import subprocess
    import sys
    from shotstyle.server.engine.modelfile import load_model
    model = tmp_path / "stopped.safetensors"
    process = subprocess.Popen([sys.executable, "-m", "shotstyle.nodes.farm.cli", "train", "--content",
                                inputs["content"], "--style", inputs["style"], "-o", str(model), "--in-process",
                                "--steps", "2000", "--resolution", "64", "--loss", "look"],
                               stderr=subprocess.PIPE, text=True)
    seen = []
    while not (seen and seen[-1].startswith("step ")):  # training is under way
        seen.append(process.stderr.readline())
        assert seen[-1], "".join(seen)
    process.send_signal(signal.SIGINT)
    rest = process.communicate(timeout=120)[1]
    assert process.returncode == 130, rest
    assert "cancelled; the current weights are saved in" in rest
    assert 0 < load_model(str(model)).metadata.get("steps", 1) <= 2000
