"""Fixtures for the Resolve/Fusion script tests: the stand-in Fusion objects and a small comp.

Import the fixtures into a test module to use them (``from fusionhost import fu, comp``).
"""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

from hostdata import write_plate

HOSTS = str(Path(__file__).parent / "hosts")
SHOT_FRAMES = (1001, 1002, 1003)


@pytest.fixture
def fu(monkeypatch):
    monkeypatch.syspath_prepend(HOSTS)
    module = importlib.import_module("fusionscript")
    assert module.__file__.startswith(HOSTS)
    del module.interactions[:]
    return module


def place_loader(loader, first_frame: int) -> None:
    """Move a Loader so its first file shows at comp frame ``first_frame``, keeping its trims
    (what an artist's drag in the timeline does)."""
    keep = {name: loader.GetInput(name) for name in ("ClipTimeStart", "ClipTimeEnd", "HoldFirstFrame",
                                                      "HoldLastFrame")}
    shift = first_frame - int(loader.GetInput("GlobalIn"))
    order = ("GlobalOut", "GlobalIn") if shift > 0 else ("GlobalIn", "GlobalOut")
    for name in order:
        loader.SetInput(name, int(loader.GetInput(name)) + shift)
    for name, value in keep.items():
        loader.SetInput(name, value)


@pytest.fixture
def comp(fu, tmp_path):
    """A saved comp with a real shot's numbering: global range 0-1100, render range 1001-1003,
    Loader1 (the plate, frames 1001-1003, the active tool) -> MediaOut1."""
    comp = fu.Comp(file_name=str(tmp_path / "shot.comp"), name="shot",
                   render_range=(SHOT_FRAMES[0], SHOT_FRAMES[-1]), global_range=(0, 1100))
    comp.Lock()
    plate = comp.AddTool("Loader", 0, 0)
    out = comp.AddTool("MediaOut", 4, 0)
    comp.Unlock()
    plate.SetInput("Clip", write_plate(tmp_path / "plate", frames=SHOT_FRAMES).replace("####", "1001"))
    place_loader(plate, SHOT_FRAMES[0])
    out.ConnectInput("Input", plate)
    comp.SetActiveTool(plate)          # the artist last clicked the plate
    return comp


def fill(window, **values):
    items = window.GetItems()
    for name, value in values.items():
        widget = items[name]
        if widget.kind in ("SpinBox", "DoubleSpinBox"):
            widget.Value = value
        elif widget.kind == "ComboBox":
            widget.CurrentIndex = widget.items.index(value) if isinstance(value, str) else value
        elif widget.kind == "CheckBox":
            widget.Checked = value
        else:
            widget.Text = value


def status(window) -> str:
    from shotstyle.nodes.resolve import dialog
    return str(window.GetItems()[dialog.STATUS].Text)


def wait_for(text: str):
    """An interaction that waits until the status line contains ``text``."""
    return lambda window: (text in status(window)) or False


def idle(window) -> bool:
    """An interaction that waits until no job runs (Cancel is disabled again)."""
    from shotstyle.nodes.resolve import dialog
    return (not window.GetItems()[dialog.CANCEL].Enabled) or False


def close(window) -> None:
    window.On["ShotStyle"].handlers["Close"]({})
