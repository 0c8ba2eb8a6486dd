"""A render never writes over its own inputs: an output that resolves to a plate (or the model) is
refused before a frame is read, whatever the spelling (symlinks, ``..``, ``####`` / ``%04d`` /
``$F4``, hard links) and whatever the flags (issue 21, item 1)."""

from __future__ import annotations

import hashlib
import os
import shutil
import sys
from pathlib import Path

import pytest

from shotstyle.cli.main import main
from shotstyle.plugin.exitcodes import ExitCode


def digests(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir()) if p.is_file()}


@pytest.fixture
def shot(tmp_path, exr_sequence) -> Path:
    """A copy of the three-frame EXR sequence in ``tmp_path/shot`` (``shot.####.exr``, frames 1-3)."""
    folder = tmp_path / "shot"
    shutil.copytree(os.path.dirname(exr_sequence), folder)
    return folder


def _no_frame_read(monkeypatch) -> None:
    """Make every frame reader of the render (wherever it was imported by name) fail the test."""
    import shotstyle.cli.render.inprocess  # noqa: F401  (bind its names before patching)
    import shotstyle.cli.render.outputs  # noqa: F401
    import shotstyle.media.reading as reading

    def refuse(*args, **kwargs):
        raise AssertionError("a frame was read before the output was checked")
    for module in [m for name, m in sys.modules.items() if name.startswith("shotstyle.")]:
        for name in ("probe", "read_frame"):
            if getattr(module, name, None) is getattr(reading, name):
                monkeypatch.setattr(module, name, refuse)


@pytest.mark.parametrize("spelling", ["same", "printf", "houdini_dotdot", "symlinked_folder", "hard_link"])
@pytest.mark.parametrize("flag", [[], ["--force"]])
def test_output_onto_the_plates_is_refused_before_reading(tiny_model, shot, tmp_path, spelling, flag,
                                                          monkeypatch, capsys):
    source = str(shot / "shot.####.exr")
    output = {"same": source, "printf": str(shot / "shot.%04d.exr"),
              "houdini_dotdot": str(shot / ".." / "shot" / "shot.$F4.exr")}.get(spelling)
    if spelling == "symlinked_folder":
        (tmp_path / "link").symlink_to(shot, target_is_directory=True)
        output = str(tmp_path / "link" / "shot.####.exr")
    if spelling == "hard_link":
        (tmp_path / "out").mkdir()
        os.link(shot / "shot.0002.exr", tmp_path / "out" / "style.0002.exr")
        output = str(tmp_path / "out" / "style.####.exr")
    before = digests(shot)
    _no_frame_read(monkeypatch)
    code = main(["render", "--model", tiny_model, "--in", source, "--out", output, "--frames", "1-3",
                 "--in-process", "--threads", "1", *flag])
    err = capsys.readouterr().err
    assert code == ExitCode.USAGE == 2
    assert "would replace the input" in err and output.split("/")[-1][:5] in err
    assert str(shot / ("shot.0002.exr" if spelling == "hard_link" else "shot.0001.exr")) in err
    assert digests(shot) == before


def test_output_onto_the_model_is_refused(tiny_model, shot, tmp_path, capsys):
    model = tmp_path / "m.0001.safetensors"
    shutil.copy(tiny_model, model)
    before = hashlib.sha256(model.read_bytes()).hexdigest()
    code = main(["render", "--model", str(model), "--in", str(shot / "shot.####.exr"), "--out",
                 str(tmp_path / "m.####.safetensors"), "--frames", "1", "--allow-display-output", "--in-process"])
    assert code == ExitCode.USAGE
    assert str(model) in capsys.readouterr().err
    assert hashlib.sha256(model.read_bytes()).hexdigest() == before


def test_same_folder_other_name_still_renders(tiny_model, shot, capsys):
    before = digests(shot)
    code = main(["render", "--model", tiny_model, "--in", str(shot / "shot.####.exr"), "--out",
                 str(shot / "style.####.exr"), "--frames", "1-3", "--in-process", "--threads", "1"])
    assert code == ExitCode.OK, capsys.readouterr().err
    after = digests(shot)
    assert {k: after[k] for k in before} == before
    assert sorted(set(after) - set(before)) == ["style.0001.exr", "style.0002.exr", "style.0003.exr"]
