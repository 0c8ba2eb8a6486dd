"""Fixtures for the Nuke node tests: the stand-in ``nuke`` module and a small shot with a ShotStyle node.

Import the fixtures into a test module to use them (``from nukehost import nuke, shot``).
"""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

from hostdata import FRAMES, TRAIN_SETTINGS, write_plate, write_style

HOSTS = str(Path(__file__).parent / "hosts")


@pytest.fixture
def nuke(monkeypatch, tmp_path):
    """The stand-in nuke module with a fresh script saved as tmp_path/shot.nk."""
    monkeypatch.syspath_prepend(HOSTS)
    module = importlib.import_module("nuke")
    assert module.__file__.startswith(HOSTS), "the real nuke module must not be used in tests"
    module.scriptClear()
    module.root()["name"].setValue(str(tmp_path / "shot.nk"))
    module.root()["first_frame"].setValue(FRAMES[0])
    module.root()["last_frame"].setValue(FRAMES[-1])
    yield module
    module.scriptClear()


@pytest.fixture
def shot(nuke, tmp_path):
    """A plate Read (frames 1-3) selected, a style image, and a ShotStyle node made from the menu command."""
    plate = nuke.nodes.Read(file=write_plate(tmp_path / "plate"), first=FRAMES[0], last=FRAMES[-1])
    plate.setSelected(True)
    from shotstyle.nodes.nuke import node as ssnode
    group = ssnode.create()
    group["style_file"].setValue(write_style(tmp_path / "style.png"))
    for name, value in TRAIN_SETTINGS.items():
        group[name].setValue(value)
    return plate, group


def fake_nuke_executable(folder: Path) -> Path:
    """An executable named ``nuke`` that runs the stand-in command line (tests/hosts/nuke_cli.py)."""
    import stat
    import sys
    folder.mkdir(parents=True, exist_ok=True)
    exe = folder / "nuke"
    exe.write_text('#!/bin/sh\nexec "{}" "{}" "$@"\n'.format(sys.executable, Path(HOSTS) / "nuke_cli.py"))
    exe.chmod(exe.stat().st_mode | stat.S_IEXEC)
    return exe
