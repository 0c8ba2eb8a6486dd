"""A tiled EXR plate comes back tiled as it was; what its output cannot keep (MIP levels below the
first, a thumbnail image) is said once, not lost without a word.

Fixtures: a tiled single-level EXR written here, and the session's tiled, MIP-mapped one
(tests/testfiles.py, like the OpenEXR sample ColorCodedLevels.exr).
"""

from __future__ import annotations

import numpy as np
import OpenImageIO as oiio
import pytest

from shotstyle.cli.main import main
from shotstyle.media.metadata import not_kept
from shotstyle.media.reading import probe, read_frame
from shotstyle.media.writing import write_frame
from shotstyle.plugin.exitcodes import ExitCode
from serverproc import ServerProcess
from testfiles import MIP_LEVELS, TILE

TILES = (16, 8)   # not square, not the image's size: a plate's own choice


@pytest.fixture
def tiled_plate(tmp_path) -> str:
    path = str(tmp_path / "tiled.0001.exr")
    spec = oiio.ImageSpec(40, 24, 4, "half")
    spec.channelnames = ("R", "G", "B", "A")
    spec.tile_width, spec.tile_height = TILES
    out = oiio.ImageOutput.create(path)
    assert out.open(path, spec), out.geterror()
    assert out.write_image(np.random.default_rng(0).uniform(0, 1, (24, 40, 4)).astype(np.float32))
    assert out.close()
    return path


def test_a_frame_written_back_keeps_its_tiles(tiled_plate, tmp_path):
    frame = read_frame(tiled_plate)
    assert frame.tiles == TILES
    write_frame(str(tmp_path / "copy.exr"), frame)
    assert probe(str(tmp_path / "copy.exr"))["tiled"] == TILES
    assert np.array_equal(read_frame(str(tmp_path / "copy.exr")).pixels, frame.pixels)
    scanlines = read_frame(str(tmp_path / "copy.exr"))
    scanlines.tiles = None
    write_frame(str(tmp_path / "lines.exr"), scanlines)
    assert probe(str(tmp_path / "lines.exr"))["tiled"] is None


def test_a_render_keeps_the_tiles_in_process(tiny_model, tiled_plate, tmp_path, capsys):
    out = str(tmp_path / "out.####.exr")
    assert main(["render", "--model", tiny_model, "--in", tiled_plate.replace("0001", "####"), "--out", out,
                 "--frames", "1", "--in-process", "--threads", "1"]) == ExitCode.OK
    assert probe(out.replace("####", "0001"))["tiled"] == TILES
    assert "note" not in capsys.readouterr().err   # nothing of a single-level plate is lost


def test_a_render_keeps_the_tiles_through_a_server(tiny_model, tiled_plate, tmp_path):
    out = str(tmp_path / "out.####.exr")
    with ServerProcess(tmp_path / "server") as server:
        assert main(["render", "--model", tiny_model, "--in", tiled_plate.replace("0001", "####"), "--out", out,
                     "--frames", "1", "--server", server.address]) == ExitCode.OK
    assert probe(out.replace("####", "0001"))["tiled"] == TILES


def test_what_a_mip_mapped_plate_loses_is_said_once(tiny_model, made_exrs, tmp_path, capsys):
    assert probe(made_exrs["tiled"])["not_kept"] == [f"its {MIP_LEVELS - 1} lower MIP level(s)"]
    out = str(tmp_path / "out.exr")
    assert main(["render", "--model", tiny_model, "--in", made_exrs["tiled"], "--out", out, "--in-process",
                 "--threads", "1"]) == ExitCode.OK
    header = probe(out)
    assert header["tiled"] == (TILE, TILE) and header["miplevels"] == 1
    said = [line for line in capsys.readouterr().err.splitlines() if "MIP" in line]
    assert len(said) == 1 and "tiling" in said[0] and f"{MIP_LEVELS - 1} lower MIP level(s)" in said[0], said


def test_a_thumbnail_is_named_among_what_is_not_kept():
    """OpenImageIO cannot write EXR thumbnails, so no file here has one: the rule on a header that has."""
    spec = oiio.ImageSpec(64, 48, 3, "half")
    assert not_kept(spec, 1) == []
    spec.attribute("thumbnail_width", 16)
    spec.attribute("thumbnail_height", 12)
    assert not_kept(spec, 3) == ["its 2 lower MIP level(s)", "its 16x12 thumbnail image"]
