"""`shotstyle info` and `shotstyle doctor` through the real console dispatcher."""

from __future__ import annotations

import json

import numpy as np

import pytest

import testfiles
from shotstyle.cli.main import main


# What `info` prints about the first frame of the made sequence and of the OpenEXR sample sequence.
FIRST_FRAME_LINES = {
    "made": ["shot.0001.exr: 90x60, 7 channels, openexr", "data window:    90x60 at (10,6)",
             "display window: 128x80 at (0,0)", "compression:    zips",
             "channels:       R G B A Z disparity.x disparity.y (half)", "colour space:   ACEScg"],
    "sample": ["singlepart.0001.exr: 911x876, 20 channels, openexr", "data window:    911x876 at (654,245)",
               "display window: 2048x1556 at (0,0)", "compression:    zips", "R G B A Z disparityL.x",
               "colour space:   ACEScg"],
}


@pytest.mark.parametrize("source", FIRST_FRAME_LINES)
def test_info_describes_a_sequence(source, exr_sequence, request, capsys):
    pattern = (exr_sequence if source == "made"
               else str(request.getfixturevalue("shared_data") / "exr/Beachball/singlepart.####.exr"))
    assert main(["info", pattern, "--quick", "--verbose"]) == 0
    out = capsys.readouterr().out
    assert f"{pattern}: frames found 1-3 (3 of 3)" in out
    for line in FIRST_FRAME_LINES[source]:
        assert line in out
    assert out.count("data window:") == 3  # the windows move: no frame is "same as previous"


def test_info_prints_one_line_per_sequence_by_default(exr_sequence, plate_clip, made_exrs, capsys):
    """A sequence (whose windows move from frame to frame), a long one and a file: one line each."""
    long_clip = plate_clip.replace("####", "%04d")
    assert main(["info", exr_sequence, long_clip, made_exrs["nan_inf"]]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3, lines
    assert lines[0] == (f"{exr_sequence}: frames found 1-3 (3 of 3); 90x60, R G B A Z disparity.x disparity.y "
                        "(half), zips compression, ACEScg; 2 of 3 frames differ from the first (--verbose shows each)")
    assert lines[1] == (f"{long_clip}: frames found 1-{testfiles.PLATE_FRAMES} ({testfiles.PLATE_FRAMES} of "
                        f"{testfiles.PLATE_FRAMES}); 192x108, R G B (uint8), no compression, sRGB")
    assert lines[2].startswith(made_exrs["nan_inf"] + ": ")
    assert lines[2].endswith(f"; {len(testfiles.NONFINITE_PIXELS)} NaN/Inf RGB values (replaced before the network)")


def test_info_tiled_and_jpeg(made_exrs, plate_clip, capsys):
    jpeg = testfiles.paths_of(plate_clip, [1])[0]
    assert main(["info", made_exrs["tiled"], jpeg, "-v"]) == 0
    out = capsys.readouterr().out
    assert f"tiled:          32x32, {testfiles.MIP_LEVELS} MIP level(s)" in out
    assert "plate.0001.jpg: 192x108, 3 channels, jpeg" in out and "R G B (uint8)" in out
    assert "colour space:   sRGB" in out


def test_info_counts_nan_and_inf(made_exrs, capsys):
    assert main(["info", made_exrs["nan_inf"], "-v"]) == 0
    assert f"non-finite RGB: {len(testfiles.NONFINITE_PIXELS)} NaN/Inf values" in capsys.readouterr().out


def test_info_json(made_exrs, capsys):
    assert main(["info", made_exrs["crop"], "--json"]) == 0
    header = json.loads(capsys.readouterr().out)
    assert header["data_window"] == list(testfiles.CROP_WINDOW) and header["display_window"] == list(testfiles.DISPLAY)
    assert header["channel_formats"] == ["half"] * 3 and header["compression"] == "piz"


def test_info_reports_missing_frames_and_unreadable_files(exr_sequence, damaged_exrs, tmp_path, capsys):
    pattern = exr_sequence.replace("####", "%04d")
    damaged = damaged_exrs["cut_in_last_chunk"]  # header fine, pixel data cut short
    assert main(["info", pattern, damaged, str(tmp_path / "nope.exr"), "--frames", "2-5"]) == 3
    captured = capsys.readouterr()
    assert "frames found 2-3 (2 of 4), missing 4-5" in captured.out
    assert f"{pattern}: frames 4-5 missing" in captured.err
    assert f"{damaged}: damaged or truncated image data" in captured.err
    assert "nope.exr: no such file" in captured.err


def test_info_empty_sequence_and_bad_range(tmp_path, capsys):
    assert main(["info", str(tmp_path / "shot.####.exr")]) == 3
    assert "no frames of this sequence on disk" in capsys.readouterr().err
    assert main(["info", str(tmp_path / "shot.####.exr"), "--frames", "9-1"]) == 2
    assert "ends before it starts" in capsys.readouterr().err


def test_doctor_reports_every_piece(capsys):
    assert main(["doctor"]) == 0
    out = capsys.readouterr().out
    for label in ("Python:", "torch:", "device:", "OpenImageIO:", "OpenColorIO:", "pyzmq:", "VGG-19:"):
        assert label in out
    assert "working space ACEScct" in out
    assert "CPU" in out or "CUDA" in out or "MPS" in out


def test_info_reports_gaps_without_frames_and_json_is_only_json(plate_clip, tmp_path, capsys):
    import shutil
    folder = tmp_path / "gap"
    folder.mkdir()
    for frame, path in zip((1, 2, 4, 5), testfiles.paths_of(plate_clip, (1, 2, 4, 5))):
        shutil.copy(path, folder)
    pattern = str(folder / "plate.####.jpg")
    assert main(["info", pattern, "--quick"]) == 3
    captured = capsys.readouterr()
    assert "frames found 1-2,4-5 (4 of 5), missing 3" in captured.out and "frames 3 missing" in captured.err
    (folder / "plate.0001.jpg").write_bytes(b"not a jpeg")
    assert main(["info", pattern, "--quick", "--json"]) == 3
    lines = capsys.readouterr().out.splitlines()
    records = [json.loads(line) for line in lines]            # every line is JSON
    assert records[0]["sequence"] == pattern and records[0]["missing"] == "3"
    assert records[1]["path"].endswith("plate.0001.jpg") and "error" in records[1]
    assert [r.get("frame") for r in records[2:]] == [2, 4, 5]


def test_info_a_sequence_of_every_other_frame_has_no_gaps(plate_clip, tmp_path, capsys):
    import shutil
    for path in testfiles.paths_of(plate_clip, (1, 3, 5, 7)):
        shutil.copy(path, tmp_path)
    assert main(["info", str(tmp_path / "plate.####.jpg"), "--quick"]) == 0
    assert "frames found 1-7x2 (4 of 4)" in capsys.readouterr().out


def test_doctor_says_which_loss_auto_picks_and_which_server_runs(tmp_path, monkeypatch, capsys):
    from serverproc import ServerProcess
    assert main(["doctor"]) == 0
    out = capsys.readouterr().out
    assert "loss:        loss 'auto' -> 'target'" in out
    assert "features:    efficientnet-lite0 (ImageNet" in out
    assert "this install's local server: not running" in out
    with ServerProcess(tmp_path / "server") as server:
        monkeypatch.setenv("SHOTSTYLE_RUNTIME_DIR", str(server.runtime))
        assert main(["doctor"]) == 0
        out = capsys.readouterr().out
    assert f"this install's local server: {server.address} (pid {server.process.pid}" in out
    assert "started with `shotstyle serve`" in out and "`shotstyle stop` ends it" in out


def test_info_describes_a_model_file_from_its_header(tiny_model, tmp_path, capsys):
    """How a model was made, without loading it: what a pipeline TD checks before a farm render."""
    rng = np.random.default_rng(0)
    keyframe = np.concatenate([rng.uniform(0.1, 0.9, (32, 48, 3)), np.zeros((32, 48, 1))], axis=2).astype(np.float32)
    keyframe[:, :24, 3] = 1   # the left half is picture, the right half transparent
    plate = testfiles.write_image(tmp_path / "plate.png", keyframe, ["R", "G", "B", "A"], "uint8",
                                  display=(0, 0, 48, 32), compression="none")
    style = testfiles.write_image(tmp_path / "style.png", rng.uniform(0, 1, (32, 48, 3)).astype(np.float32),
                                  ["R", "G", "B"], "uint8", display=(0, 0, 48, 32), compression="none")
    model = str(tmp_path / "grade.safetensors")
    assert main(["train", "--in-process", "--arch", "grade", "--content", plate, "--style", style, "-o", model]) == 0
    capsys.readouterr()
    assert main(["info", model, tiny_model]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert printed[0] == f"{model}: shotstyle model, grade network, no loss (the grade alone), trained at 512 px"
    assert "    picture:        keyframes 50%, style 100% (the rest transparent: not learnt from)" in printed
    assert any(line.startswith("    grade:          33³ lattice, amount 1.0; its LUT (export-lut) carries 100% of "
                               "the keyframe's effect") for line in printed)
    assert f"{tiny_model}: shotstyle model, hrnet-fast network, loss look" in printed   # a record without a resolution
    assert main(["info", "--json", model]) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["path"] == model and record["model"]["architecture"] == "grade"
    (tmp_path / "not.safetensors").write_bytes(b"PK\x03\x04" + bytes(60))
    assert main(["info", str(tmp_path / "not.safetensors")]) == 3
    assert "not.safetensors" in capsys.readouterr().err
