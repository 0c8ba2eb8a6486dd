"""The ShotStyle Fusion script against Fusion's real behaviours (through the stand-in in tests/hosts).

Tools are made inside comp.Lock() at explicit positions (no file browsers, no auto-connection
to the artist's active tool), renders are quiet, the result Loader lines up frame for frame
with the plate in a comp whose global range starts at 0, and keeps its trims when re-run;
Train and Stylize leave the dialog responsive with a working Cancel.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fusionhost import SHOT_FRAMES, close, comp, fill, fu, idle, status, wait_for  # noqa: F401
from hostdata import TRAIN_SETTINGS, host_server, read, write_style, write_tiny_model  # noqa: F401
from shotstyle.nodes.resolve import script
from shotstyle.plugin.client import Client


@pytest.fixture(scope="module")
def server(host_server, tmp_path_factory):
    with Client(host_server.address) as client:
        client.put_model(write_tiny_model(tmp_path_factory.mktemp("tiny") / "tiny.safetensors"), "fusion_tiny")
    return host_server


def stylize(fu, comp, server, monkeypatch, **values):
    monkeypatch.setenv("SHOTSTYLE_RUNTIME_DIR", str(server.runtime))
    fu.interact(idle)
    fu.interact(lambda window: fill(window, server=server.address, model="fusion_tiny", **values))
    fu.interact(lambda window: window.click("stylize_range"))
    fu.interact(idle)
    fu.interact(close)
    return script.main(fu.script_globals(comp, in_resolve=False))


def test_tools_are_made_locked_at_explicit_positions_and_render_quietly(fu, comp, server, monkeypatch):
    shown = stylize(fu, comp, server, monkeypatch, wiring=1)
    assert status(shown.window).startswith("stylized 3 frames"), status(shown.window)
    assert comp.dialogs == [], "modal dialogs blocked the script: {}".format(comp.dialogs)
    assert comp.unlocked_adds == [], "tools added outside comp.Lock(): {}".format(comp.unlocked_adds)
    assert all(r.get("RenderFlags") == fu.REQF_QUIET for r in comp.renders)
    loader = comp.FindTool("Loader1_ShotStyle")
    assert loader is not None and loader.position != (fu.AUTO_POSITION, fu.AUTO_POSITION)
    assert loader.connections == {}                       # not wired to the artist's active tool
    assert comp.FindTool("MediaOut1").connections["Input"] is loader


def test_result_lines_up_with_the_plate_frame_for_frame(fu, comp, server, monkeypatch):
    shown = stylize(fu, comp, server, monkeypatch, wiring=1)
    loader = comp.FindTool("Loader1_ShotStyle")
    first = Path(loader.GetInput("Clip"))
    for frame in SHOT_FRAMES:                              # comp frame N shows the result made from plate N
        expected, _ = read(str(first.with_name("shotstyle.{:04d}.exr".format(frame))))
        assert np.array_equal(comp.FindTool("MediaOut1").image(frame).get_pixels(), expected), frame
    assert status(shown.window).startswith("stylized")


def test_rerun_keeps_the_result_loaders_trims(fu, comp, server, monkeypatch):
    stylize(fu, comp, server, monkeypatch, wiring=1)
    loader = comp.FindTool("Loader1_ShotStyle")
    loader.SetInput("ClipTimeStart", 1)                   # the artist trims the first frame off
    loader.SetInput("HoldFirstFrame", 1)                  # ...and holds the next one in its place
    comp.attrs["COMPN_RenderStart"] = 1000.0              # a longer range: a clip of another length
    comp.FindTool("Loader1").SetInput("GlobalIn", 1000)   # the plate now shows its first frame from 1000
    stylize(fu, comp, server, monkeypatch, wiring=1)
    assert (loader.GetInput("ClipTimeStart"), loader.GetInput("HoldFirstFrame")) == (1, 1)
    assert loader.GetInput("GlobalIn") == 1000 and loader.GetInput("GlobalOut") == 1003
    first = Path(loader.GetInput("Clip"))
    held, _ = read(str(first.with_name("shotstyle.1001.exr")))
    assert np.array_equal(comp.FindTool("MediaOut1").image(1000).get_pixels(), held)   # the held frame


def test_training_leaves_the_dialog_responsive_and_can_be_cancelled(fu, comp, server, monkeypatch, tmp_path):
    monkeypatch.setenv("SHOTSTYLE_RUNTIME_DIR", str(server.runtime))
    settings = dict(TRAIN_SETTINGS, steps=2000)
    fu.interact(idle)
    fu.interact(lambda window: fill(window, server=server.address, model="fusion_cancelled",
                                    style_file=write_style(tmp_path / "style.png"), **settings))
    fu.interact(lambda window: window.click("train"))
    fu.interact(wait_for("step"))                          # progress arrives while the dialog runs
    fu.interact(lambda window: window.click("cancel"))
    fu.interact(wait_for("cancelled"))
    fu.interact(close)
    shown = script.main(fu.script_globals(comp, in_resolve=False))
    assert "training cancelled" in status(shown.window)
    assert shown.dispatcher.longest_handler_s < 2.0, shown.dispatcher.longest_handler_s
    assert comp.dialogs == []


def test_a_failed_media_pool_import_is_reported(fu, comp, server, monkeypatch):
    globals_ = fu.script_globals(comp, in_resolve=True)
    monkeypatch.setattr(globals_["bmd"].resolve.media_pool, "ImportMedia", lambda items: [])
    monkeypatch.setenv("SHOTSTYLE_RUNTIME_DIR", str(server.runtime))
    fu.interact(idle)
    fu.interact(lambda window: fill(window, server=server.address, model="fusion_tiny", wiring=1))
    fu.interact(lambda window: window.click("stylize_range"))
    fu.interact(idle)
    fu.interact(close)
    shown = script.main(globals_)
    assert "could not add" in status(shown.window) and "Media Pool" in status(shown.window)
    assert status(shown.window).startswith("stylized 3 frames")
