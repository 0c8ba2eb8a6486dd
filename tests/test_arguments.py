"""Issue 21, item 5: every bad argument gets one line naming the value and what to do: no
traceback, no usage block; negative frame ranges are values in both spellings."""

from __future__ import annotations

import os
import time

import pytest

from shotstyle.cli.main import main
from shotstyle.plugin.exitcodes import ExitCode


@pytest.mark.parametrize("bad, value", [
    (["--threads", "-2"], "'-2'"), (["--threads", "0"], "'0'"), (["--in-flight", "0"], "'0'"),
    (["--in-flight", "-1"], "'-1'"), (["--threads", "many"], "'many'"), (["--server", "::bad::"], "'::bad::'"),
])
def test_a_bad_argument_is_one_line_naming_it(tiny_model, plate_clip, tmp_path, bad, value, capsys):
    with pytest.raises(SystemExit) as stopped:
        main(["render", "--model", tiny_model, "--in", plate_clip, "--out", str(tmp_path / "s.####.exr"),
              "--frames", "1", "--in-process", *bad])
    err = capsys.readouterr().err
    assert stopped.value.code == ExitCode.USAGE == 2
    assert err.count("\n") == 1 and err.startswith("shotstyle render: error: argument " + bad[0]), err
    assert value in err and "--help" in err and "usage:" not in err and "Traceback" not in err
    assert not (tmp_path / "s.0001.exr").exists()


@pytest.mark.parametrize("spelling", [["--frames", "-3--1"], ["--frames=-3--1"]])
def test_negative_frame_ranges_are_values_in_both_spellings(tiny_model, plate_clip, tmp_path, spelling, capsys):
    code = main(["render", "--model", tiny_model, "--in", plate_clip, "--out", str(tmp_path / "s.####.exr"),
                 "--in-process", "--threads", "1", *spelling])
    err = capsys.readouterr().err
    assert code == ExitCode.MISSING_INPUT, err
    assert "none of the 3 frames exist" in err and plate_clip.replace("####", "-0003") in err
    assert "usage:" not in err and "Traceback" not in err


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="needs a folder no user can write into")
def test_train_refuses_an_unwritable_output_folder_before_training(tmp_path, capsys):
    """/proc/self: a folder nobody can make a file in, root included (a chmod'ed folder does not stop root)."""
    key = tmp_path / "key.png"
    key.write_bytes(b"never read")   # refused before any input is decoded
    started = time.perf_counter()
    code = main(["train", "--in-process", "--content", str(key), "--style", str(key), "-o",
                 "/proc/self/look.safetensors", "--steps", "500"])
    err = capsys.readouterr().err
    assert code == ExitCode.IO_ERROR == 7, err
    assert "-o /proc/self/look.safetensors: cannot write into the folder /proc/self" in err
    assert "step" not in err and time.perf_counter() - started < 30
