"""`shotstyle train`: in-process and through a real server process, same bar, model where -o says."""

from __future__ import annotations

import io
import socket

import pytest

from shotstyle.cli import train
from shotstyle.cli.main import main
from shotstyle.plugin.exitcodes import ExitCode
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


@pytest.mark.parametrize("where", ["in-process", "server"])
def test_preview_frame_is_written_beside_the_model_every_n_steps(where, inputs, tmp_path, capsys, monkeypatch,
                                                                 request):
    """`--preview F` writes F's result (display PNG) to MODEL.preview.png and says where; with
    `--preview-every 2` it is rewritten at steps 2 and 4, the last one the finished model's."""
    from shotstyle.cli import review
    from shotstyle.media.reading import read_frame

    writes: list[str] = []
    original = review.write_png
    monkeypatch.setattr(review, "write_png", lambda picture, path: (writes.append(path), original(picture, path)))
    model = tmp_path / "look.safetensors"
    reach = ["--server", request.getfixturevalue("server").address] if where == "server" else ["--in-process"]
    assert main(["train", "--content", inputs["content"], "--style", inputs["style"], "-o", str(model),
                 "--preview", inputs["preview"], "--preview-every", "2", *QUICK, *reach]) == 0
    err = capsys.readouterr().err
    written = tmp_path / "look.preview.png"
    assert f"preview of the --preview frame (step 2) written to {written}" in err
    assert f"preview of the --preview frame at step 4: {written}" in err
    assert writes == [str(written)] * 2                   # steps 2 and 4
    picture = read_frame(str(written))
    assert picture.pixels.shape[1] == 64 and picture.colourspace == "sRGB"   # the training resolution
    assert 0.0 < picture.pixels.mean() < 1.0


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


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    from serverproc import ServerProcess
    with ServerProcess(tmp_path_factory.mktemp("server")) as process:
        yield process


def test_training_through_a_server_downloads_the_model(server, inputs, tmp_path, capsys):
    from shotstyle.server.engine.modelfile import load_model
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
    process = subprocess.Popen([sys.executable, "-m", "shotstyle.cli", "train", "--content",
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


@pytest.fixture
def checkpoint(inputs, tmp_path) -> str:
    """A Ctrl-C checkpoint: a 10-step run stopped after 3 steps."""
    from shotstyle.server.engine.modelfile import save_model
    from shotstyle.server.engine.pipeline import load_working
    from shotstyle.server.engine.training import TrainConfig, train as train_model
    from shotstyle.server.errors import TrainingCancelled
    path = str(tmp_path / "stopped.safetensors")
    steps: list[int] = []
    with pytest.raises(TrainingCancelled):
        train_model([load_working(inputs["content"])], load_working(inputs["style"]),
                    TrainConfig(loss="look", steps=10, resolution=32), on_event=lambda e: steps.append(e.step),
                    should_cancel=lambda: len(steps) >= 3, checkpoint=lambda m: save_model(m, path))
    return path


def test_init_continues_the_rest_of_an_interrupted_run(inputs, checkpoint, tmp_path, capsys):
    from shotstyle.server.engine.modelfile import load_model
    model = tmp_path / "done.safetensors"
    assert main(["train", "--content", inputs["content"], "--style", inputs["style"], "-o", str(model),
                 "--init", checkpoint, "--in-process", "--resolution", "32"]) == 0
    err = capsys.readouterr().err
    assert f"continuing {checkpoint} (hrnet-fast, loss look) from step 3: 7 more, 10 in all" in err
    assert "step 10/10" in err and "step 3/10" not in err
    metadata = load_model(str(model)).metadata
    assert metadata["steps_total"] == 10 and metadata["steps_trained"] == 10
    assert metadata["init_model"] == load_model(checkpoint).hash
    # --steps is the total when continuing: asking for fewer than it has had is refused.
    assert main(["train", "--content", inputs["content"], "--style", inputs["style"], "-o", str(model),
                 "--init", str(model), "--in-process", "--steps", "5"]) == ExitCode.USAGE
    assert "has trained 10 steps already" in capsys.readouterr().err
    # A finished model trains further only when told how far.
    assert main(["train", "--content", inputs["content"], "--style", inputs["style"], "-o", str(model),
                 "--init", str(model), "--in-process"]) == ExitCode.USAGE
    assert "give --steps TOTAL or --more-steps N" in capsys.readouterr().err


def test_init_refuses_another_network_or_loss(inputs, checkpoint, tmp_path, capsys):
    for flag, value, own in (("--arch", "hrnet", "hrnet-fast"), ("--loss", "vgg", "look")):
        assert main(["train", "--content", inputs["content"], "--style", inputs["style"], "-o",
                     str(tmp_path / "x.safetensors"), "--init", checkpoint, "--in-process", flag, value]) \
            == ExitCode.USAGE
        assert f"{flag} {value}: {checkpoint} was trained with {own}" in capsys.readouterr().err
    assert not (tmp_path / "x.safetensors").exists()


def test_init_through_a_server_carries_the_model_with_the_request(server, inputs, checkpoint, tmp_path, capsys):
    from shotstyle.server.engine.modelfile import load_model
    model = tmp_path / "more.safetensors"
    code = main(["train", "--content", inputs["content"], "--style", inputs["style"], "-o", str(model),
                 "--init", checkpoint, "--resolution", "32", "--server", server.address])
    err = capsys.readouterr().err
    assert code == 0, err + server.log()
    assert "step 10/10" in err and "from step 3: 7 more, 10 in all" in err
    metadata = load_model(str(model)).metadata
    assert metadata["steps_trained"] == 10 and metadata["init_model"] == load_model(checkpoint).hash


def test_a_damaged_keyframe_sent_to_a_server_is_named(server, inputs, tmp_path, capsys):
    broken = tmp_path / "broken.exr"   # the bytes travel without their path: the request names them
    broken.write_bytes(b"\x76\x2f\x31\x01" + b"\0" * 64)
    code = main(["train", "--content", str(broken), "--style", inputs["style"], "-o",
                 str(tmp_path / "b.safetensors"), *QUICK, "--server", server.address])
    assert code == ExitCode.MISSING_INPUT and f"{broken}: " in capsys.readouterr().err


def test_model_files_are_readable_by_the_farm(inputs, tmp_path):
    import os
    model = tmp_path / "shared.safetensors"
    previous = os.umask(0o022)
    try:
        assert main(["train", "--content", inputs["content"], "--style", inputs["style"], "-o", str(model),
                     "--in-process", *QUICK]) == 0
        assert model.stat().st_mode & 0o777 == 0o644
        os.umask(0o027)
        assert main(["train", "--content", inputs["content"], "--style", inputs["style"], "-o", str(model),
                     "--in-process", *QUICK]) == 0
        assert model.stat().st_mode & 0o777 == 0o640
    finally:
        os.umask(previous)


def test_the_preview_path_names_each_step_makes_its_folder_and_remembers_the_latest(tmp_path):
    """`plugin.previews.PreviewFile`, the path `train --preview`, the Nuke node and the Resolve dialog share."""
    from shotstyle.plugin.files import write_atomic
    from shotstyle.plugin.previews import PreviewFile

    per_step = PreviewFile(str(tmp_path / "cache" / "preview" / "keyframe.step{:06d}.exr").format)  # Nuke's naming
    assert per_step.step is None and per_step.path is None
    first = per_step.write(2, lambda path: write_atomic(path, b"two"))
    second = per_step.write(4, lambda path: write_atomic(path, b"four"))
    assert first.endswith("keyframe.step000002.exr") and second.endswith("keyframe.step000004.exr")
    assert (per_step.step, per_step.path) == (4, second) and open(second, "rb").read() == b"four"
    one = PreviewFile(lambda step: str(tmp_path / "look.preview.png"))                    # train's, Resolve's
    one.write(1, lambda path: write_atomic(path, b"1"))
    assert one.write(2, lambda path: write_atomic(path, b"2")) == str(tmp_path / "look.preview.png")
    assert (tmp_path / "look.preview.png").read_bytes() == b"2"
    blocked = PreviewFile(lambda step: str(tmp_path / "look.preview.png" / "x.png"))       # a file where a folder goes
    with pytest.raises(OSError):
        blocked.write(1, lambda path: write_atomic(path, b"x"))
    assert blocked.step is None
