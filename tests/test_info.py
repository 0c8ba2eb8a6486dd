"""`shotstyle info` and `shotstyle doctor` through the real console dispatcher."""

from __future__ import annotations

import json

from shotstyle.nodes.farm.cli import main


def test_info_describes_a_sequence(shared_data, capsys):
    pattern = str(shared_data / "exr/Beachball/singlepart.####.exr")
    assert main(["info", pattern, "--quick"]) == 0
    out = capsys.readouterr().out
    assert f"{pattern}: frames found 1-3 (3 of 3)" in out
    assert "singlepart.0001.exr: 911x876, 20 channels, openexr" in out
    assert "data window:    911x876 at (654,245)" in out
    assert "display window: 2048x1556 at (0,0)" in out
    assert "compression:    zips" in out
    assert "R G B A Z disparityL.x" in out and "(half)" in out
    assert "colour space:   ACEScg" in out


def test_info_tiled_and_jpeg(shared_data, capsys):
    tiled = str(shared_data / "exr/MultiResolution/ColorCodedLevels.exr")
    jpeg = str(shared_data / "clip/walk.0001.jpg")
    assert main(["info", tiled, jpeg]) == 0
    out = capsys.readouterr().out
    assert "tiled:          64x64, 10 MIP level(s)" in out
    assert "walk.0001.jpg: 500x281, 3 channels, jpeg" in out and "R G B (uint8)" in out
    assert "colour space:   sRGB" in out


def test_info_counts_nan_and_inf(shared_data, capsys):
    assert main(["info", str(shared_data / "exr/TestImages/BrightRingsNanInf.exr")]) == 0
    assert "non-finite RGB: 18 NaN/Inf values" in capsys.readouterr().out


def test_info_json(shared_data, capsys):
    assert main(["info", str(shared_data / "exr/DisplayWindow/t08.exr"), "--json"]) == 0
    header = json.loads(capsys.readouterr().out)
    assert header["data_window"] == [30, 40, 400, 300] and header["display_window"] == [0, 0, 501, 401]
    assert header["channel_formats"] == ["half"] * 3 and header["compression"] == "piz"


def test_info_reports_missing_frames_and_unreadable_files(shared_data, tmp_path, capsys):
    pattern = str(shared_data / "exr/Beachball/singlepart.%04d.exr")
    damaged = str(shared_data / "exr/damaged/damaged_04.exr")  # header fine, pixel data corrupt
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
