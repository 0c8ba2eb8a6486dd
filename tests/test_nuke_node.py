"""The ShotStyle Nuke node, driven through the stand-in ``nuke`` module against a real server.

Train -> stylize -> the inner Read points at complete, correct frames (windows, channels,
pass-through); unstylized frames show the plate with a warning; ``nuke -x``-style renders
stylize through the render callbacks with the (local) server; knobs come from the description.
"""

from __future__ import annotations

import importlib
from pathlib import Path

import numpy as np
import pytest

from hostdata import (FRAMES, TRAIN_SETTINGS, channel_names, host_server, read, write_plate, write_style,  # noqa: F401
                      write_tiny_model)
from shotstyle.plugin import params
from shotstyle.plugin.client import Client
from shotstyle.plugin.sequences import SequencePattern

HOSTS = str(Path(__file__).parent / "hosts")


@pytest.fixture
def server(host_server):
    return host_server


@pytest.fixture
def nuke(monkeypatch, tmp_path):
    """The stand-in nuke module with a fresh script saved as tmp_path/shot.nk."""
    monkeypatch.syspath_prepend(HOSTS)
    module = importlib.import_module("nuke")
    assert module.__file__.startswith(HOSTS), "the real nuke module must not be used in tests"
    module.scriptClear()
    module.root()["name"].setValue(str(tmp_path / "shot.nk"))
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


def use_server(monkeypatch, server, group):
    monkeypatch.setenv("SHOTSTYLE_RUNTIME_DIR", str(server.runtime))
    group["server"].setValue(server.address)


def test_knobs_come_from_the_description(shot, nuke):
    from shotstyle.nodes.nuke import knobs
    _, group = shot
    kinds = {"int": nuke.Int_Knob, "float": nuke.Double_Knob, "bool": nuke.Boolean_Knob,
             "choice": nuke.Enumeration_Knob, "button": nuke.PyScript_Knob, "string": nuke.String_Knob,
             "frames": nuke.String_Knob}
    for param in params.describe()["params"]:
        knob = group[param["name"]]
        assert isinstance(knob, kinds[param["kind"]]), param["name"]
        assert knob.tooltip() == param["help"] and knob.label() == param["label"]
        if param["kind"] not in ("button",):
            assert knob.value() == param["default"] or param["name"] in TRAIN_SETTINGS
    assert isinstance(group["style_file"], nuke.File_Knob)
    # A parameter a newer server describes appears on the node without code changes.
    description = params.describe()
    description["params"].append({"name": "grain", "kind": "float", "default": 0.25, "label": "Grain",
                                  "help": "film grain to add", "group": "Render", "min": 0.0, "max": 1.0,
                                  "choices": []})
    assert knobs.sync_knobs(group, description) == ["grain"]
    assert group["grain"].value() == 0.25 and knobs.read_values(group, description)["grain"] == 0.25


def test_menu_entry_and_icon(nuke):
    from shotstyle.nodes.nuke import icon, menu
    menu.register()
    entry = nuke.toolbar("Nodes").findItem("ShotStyle").items["ShotStyle"]
    assert entry["icon"] == "ShotStyle.png" and "create()" in entry["command"]
    assert icon.ICON_PATH.read_bytes() == icon.png_bytes()
    assert icon.ICON_PATH.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_unstylized_frames_show_the_plate_with_a_warning(shot, nuke):
    plate, group = shot
    image = nuke.render_image(group, 2)
    expected = nuke.render_image(plate, 2)
    assert np.array_equal(image.get_pixels(), expected.get_pixels())
    assert "frame 2 is not stylized" in image.spec().get_string_attribute("nuke/warning")
    group["warn_unstylized"].setValue(False)
    assert nuke.render_image(group, 2).spec().get_string_attribute("nuke/warning") == ""


def test_train_needs_a_style_image(shot, nuke):
    from shotstyle.nodes.nuke import actions
    _, group = shot
    group["style_file"].setValue("")
    actions.press(group, "train")
    assert "choose a style image" in group["status"].value()


def test_train_then_stylize_range_reads_complete_frames(shot, nuke, server, monkeypatch, tmp_path):
    from shotstyle.nodes.nuke import actions, node as ssnode
    plate, group = shot
    use_server(monkeypatch, server, group)
    group["model"].setValue("nuke_look")
    nuke.frame(2)
    actions.press(group, "train")
    assert group["status"].value().startswith("trained model nuke_look"), group["status"].value()
    task = nuke.progress_tasks[0]
    assert task.progress and task.progress[-1] == 100 and "step 2/2" in task.messages[-1]
    preview = group.node("Preview")["file"].value()
    assert Path(preview).is_file() and "step" in Path(preview).name          # the keyframe preview arrived
    assert Path(ssnode.model_file(group, "nuke_look")).is_file()                 # kept for farm servers
    assert "nuke_look" in group["model_picker"].values()
    assert group["training_frame"].value() == -1
    group["training_frame"].setValue(2)          # while training, the keyframe shows the latest preview
    assert np.array_equal(nuke.render_image(group, 2).get_pixels(), read(preview)[0])
    group["training_frame"].setValue(-1)

    actions.press(group, "stylize_range")
    pattern = ssnode.result_pattern(group)
    read_node = group.node("Result")
    assert read_node["file"].value() == pattern
    assert (read_node["first"].value(), read_node["last"].value()) == (FRAMES[0], FRAMES[-1])
    assert SequencePattern(pattern).scan() == list(FRAMES)
    assert not SequencePattern(ssnode.plate_pattern(group)).scan()              # temporary plates cleaned up
    for frame in FRAMES:
        result, result_spec = read(SequencePattern(pattern).path(frame))
        source, source_spec = read(SequencePattern(plate["file"].value()).path(frame))
        assert channel_names(result_spec) == channel_names(source_spec)          # every channel came back
        assert (result_spec.x, result_spec.y, result_spec.width, result_spec.height) == \
               (source_spec.x, source_spec.y, source_spec.width, source_spec.height)   # bounding box
        assert (result_spec.full_width, result_spec.full_height) == (source_spec.full_width,
                                                                     source_spec.full_height)   # format
        assert np.array_equal(result[..., 3:], source[..., 3:])                  # alpha and Z pass through
        assert not np.allclose(result[..., :3], source[..., :3], atol=1e-3)      # RGB restyled
        assert np.isfinite(result).all() and result[..., :3].max() > 0          # not black
        shown = nuke.render_image(group, frame)
        assert shown.spec().get_string_attribute("nuke/warning") == ""
        assert np.array_equal(shown.get_pixels(), result)

    # Another mix is another result: the node shows the plate again instead of stale frames.
    group["mix"].setValue(0.5)
    assert group.node("Result")["file"].value() != pattern
    assert "not stylized" in nuke.render_image(group, 1).spec().get_string_attribute("nuke/warning")


def test_cancelled_training_in_the_gui_runs_on_a_worker_thread(shot, nuke, server, monkeypatch):
    from shotstyle.nodes.nuke import actions
    _, group = shot
    use_server(monkeypatch, server, group)
    monkeypatch.setattr(nuke, "GUI", True)
    group["model"].setValue("nuke_cancelled")
    group["steps"].setValue(500)
    nuke.cancel_after_progress[0] = 0              # the artist presses Cancel on the progress bar at once
    worker = actions.press(group, "train")
    assert worker is not None and worker.name == "shotstyle"
    worker.join(120)
    assert not worker.is_alive()
    assert group["status"].value().startswith("training cancelled"), group["status"].value()
    assert group["training_frame"].value() == -1


def test_farm_render_stylizes_frames_before_they_are_read(shot, nuke, server, monkeypatch, tmp_path):
    """`nuke -x`: the render callbacks stylize with the local server, uploading the model it lacks."""
    from shotstyle.nodes.nuke import callbacks, node as ssnode
    plate, group = shot
    monkeypatch.setenv("SHOTSTYLE_RUNTIME_DIR", str(server.runtime))   # the farm node's local server
    group["model"].setValue("farm_look")          # trained elsewhere: only the node's cache copy exists
    write_tiny_model(Path(ssnode.model_file(group, "farm_look")))

    callbacks.register()
    out = nuke.nodes.Write(file=str(tmp_path / "render" / "out.####.exr"), channels="all")
    out.setInput(0, group)
    (tmp_path / "render").mkdir()
    nuke.execute(out, FRAMES[0], FRAMES[-1])

    with Client(server.address) as client:
        assert "farm_look" in [m["name"] for m in client.list_models()]          # uploaded from the cache
    for frame in FRAMES:
        rendered, spec = read(str(tmp_path / "render" / "out.{:04d}.exr".format(frame)))
        source, _ = read(SequencePattern(plate["file"].value()).path(frame))
        stylized, _ = read(SequencePattern(ssnode.result_pattern(group)).path(frame))
        assert np.array_equal(rendered, stylized)
        assert np.array_equal(rendered[..., 3:], source[..., 3:])
        assert not np.allclose(rendered[..., :3], source[..., :3], atol=1e-3)
        assert spec.get_string_attribute("nuke/warning") == ""


def test_connect_shows_the_server_and_its_models(shot, nuke, server, monkeypatch):
    from shotstyle.nodes.nuke import actions
    _, group = shot
    group["server"].setValue(server.address)
    actions.press(group, "connect")
    assert group["status"].value().startswith("connected: shotstyle"), group["status"].value()
    with Client(server.address) as client:
        names = sorted(m["name"] for m in client.list_models())
    assert group["model_picker"].values() == (names or ["(no models)"])
    group["server"].setValue("")
    monkeypatch.setenv("SHOTSTYLE_RUNTIME_DIR", str(server.runtime.parent / "nowhere"))
    actions.press(group, "connect")
    assert group["status"].value().startswith("not connected") and "starts on Train" in group["status"].value()


def test_plates_render_in_consecutive_runs():
    from shotstyle.nodes.hostbridge import frame_runs
    assert frame_runs([1005, 1001, 1002, 1003, 1010, 1012, 1011]) == [(1001, 1003), (1005, 1005), (1010, 1012)]
