"""The ShotStyle Nuke node, driven through the stand-in ``nuke`` module against a real server.

Train -> stylize -> the inner Read shows complete, correct frames (windows, channels,
pass-through); unstylized frames show the plate with a warning in the Viewer only; knobs come
from the description, with what a compositor uses on the main tab; the style and preview
frames come from the node's inputs or files; the cache is named by a stable id (renames,
version-ups, copies); every server round trip runs off the main thread on the node's one
connection.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from hostdata import (FRAMES, TRAIN_SETTINGS, channel_names, host_server, read, write_plate,  # noqa: F401
                      write_style, write_tiny_model)
from nukehost import nuke, shot  # noqa: F401
from shotstyle.plugin import params
from shotstyle.plugin.client import Client
from shotstyle.plugin.sequences import SequencePattern
from testfiles import PLATE_SIZE, write_image


@pytest.fixture
def server(host_server):
    return host_server


@pytest.fixture
def gui(nuke, monkeypatch):
    """An interactive session: workers run on threads, knob changes come back through the main loop."""
    monkeypatch.setattr(nuke, "GUI", True)
    return nuke


def use_server(monkeypatch, server, group):
    monkeypatch.setenv("SHOTSTYLE_RUNTIME_DIR", str(server.runtime))
    group["server"].setValue(server.address)


def press_and_wait(nuke, group, button):
    """Press a button in the GUI and run Nuke's main loop until its worker is done."""
    from shotstyle.nodes.nuke import actions
    worker = actions.press(group, button)
    assert worker is not None and worker.name == "shotstyle", "{} ran on the main thread".format(button)
    nuke.main_loop(until=lambda: not worker.is_alive())
    return worker


def tab_of(group, knob_name):
    tab = None
    for knob in group.allKnobs():
        if knob.Class() == "Tab_Knob" and getattr(knob, "group_flag", 0) == 0:
            tab = knob.name()
        if knob.name() == knob_name:
            return tab
    raise KeyError(knob_name)


def test_knobs_come_from_the_description(shot, nuke):
    from shotstyle.nodes.nuke import knobs
    _, group = shot
    kinds = {"int": nuke.Int_Knob, "float": nuke.Double_Knob, "bool": nuke.Boolean_Knob,
             "choice": nuke.Enumeration_Knob, "button": nuke.PyScript_Knob, "string": nuke.String_Knob,
             "frames": nuke.String_Knob, "mattes": nuke.Multiline_Eval_String_Knob}
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


def test_what_a_compositor_expects(gui, tmp_path):
    """Main tab: Train, Stylize range, the style (model) choice and Mix; inputs; colour; panel opens."""
    from shotstyle.nodes.nuke import node as ssnode
    gui.nodes.Read(file=write_plate(tmp_path / "plate"), first=FRAMES[0], last=FRAMES[-1]).setSelected(True)
    group = ssnode.create()
    for name in ("train", "stylize_range", "model", "model_picker", "mix", "keyframes", "mattes", "style_file",
                 "preview_file", "status"):
        assert tab_of(group, name) == "shotstyle", name
    for name in ("steps", "strength", "loss", "server", "colourspace", "cache_dir"):
        assert tab_of(group, name) == "ss_settings", name
    assert not any(k.Class() == "Tab_Knob" and getattr(k, "group_flag", 0) == gui.TABBEGINCLOSEDGROUP
                   for k in group.allKnobs())                          # nothing hidden in a closed group
    assert [n.name() for n in group.nodes() if n.Class() == "Input"] == ["plate", "style", "preview"]
    assert group["tile_color"].value() == ssnode.NODE_COLOUR
    assert gui.panels_shown == [group.fullName()]


def test_menu_entry_and_icon(nuke):
    from shotstyle.nodes.nuke import icon, menu
    menu.register()
    entry = nuke.toolbar("Nodes").findItem("ShotStyle").items["ShotStyle"]
    assert entry["icon"] == "ShotStyle.png" and "create()" in entry["command"]
    assert icon.ICON_PATH.read_bytes() == icon.png_bytes()
    assert icon.ICON_PATH.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_unstylized_frames_show_the_plate_with_a_warning_in_the_viewer_only(shot, gui):
    plate, group = shot
    image = gui.render_image(group, 2)
    assert np.array_equal(image.get_pixels(), gui.render_image(plate, 2).get_pixels())
    assert "frame 2 is not stylized" in image.spec().get_string_attribute("nuke/warning")
    group["warn_unstylized"].setValue(False)
    assert gui.render_image(group, 2).spec().get_string_attribute("nuke/warning") == ""
    gui.GUI = False                       # a terminal session (the farm): never the plate
    with pytest.raises(RuntimeError, match="Read error"):
        gui.render_image(group, 2)


def test_train_needs_a_style_frame(shot, nuke):
    from shotstyle.nodes.nuke import actions
    _, group = shot
    group["style_file"].setValue("")
    actions.press(group, "train")
    assert "connect a style frame to its 'style' input, or choose a Style file" in group["status"].value()


def test_picking_a_trained_style_sets_the_model(shot, nuke):
    _, group = shot
    group["model_picker"].setValues(["look_a", "look_b"])
    nuke.user_edit(group["model_picker"], "look_b")
    assert group["model"].value() == "look_b"


def test_train_then_stylize_range_reads_complete_frames(shot, gui, server, monkeypatch, tmp_path):
    from shotstyle.nodes.nuke import node as ssnode
    plate, group = shot
    use_server(monkeypatch, server, group)
    group["model"].setValue("nuke_look")
    gui.frame(2)
    press_and_wait(gui, group, "train")
    assert group["status"].value().startswith("trained model nuke_look"), group["status"].value()
    task = gui.progress_tasks[0]
    assert task.progress and task.progress[-1] == 100 and "step 2/2" in task.messages[-1]
    preview = group.node("Preview")["file"].value()
    assert Path(preview).is_file() and "step" in Path(preview).name          # the keyframe preview arrived
    assert Path(ssnode.model_file(group, "nuke_look")).is_file()                 # kept for farm renders
    assert "nuke_look" in group["model_picker"].values()
    assert group["training_frame"].value() == -1
    group["training_frame"].setValue(2)          # while training, the keyframe shows the latest preview
    assert np.array_equal(gui.render_image(group, 2).get_pixels(), read(preview)[0])
    group["training_frame"].setValue(-1)

    press_and_wait(gui, group, "stylize_range")
    pattern = ssnode.result_pattern(group)
    assert gui.filename(group.node("Result"), gui.REPLACE) == SequencePattern(pattern).path(gui.frame())
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
        shown = gui.render_image(group, frame)
        assert shown.spec().get_string_attribute("nuke/warning") == ""
        assert np.array_equal(shown.get_pixels(), result)

    # Export LUT: the browser offers the node's cache; the .cube and its OCIO look go where the artist says,
    # and the artist is told how much of the look the LUT carries. Cancelling the browser does nothing.
    from shotstyle.nodes.nuke import actions
    assert actions.press(group, "export_lut") is None and gui.browsers_shown[-1][1:] == (
        "*.cube", ssnode.lut_file(group, "nuke_look"))
    gui.files_chosen.append(str(tmp_path / "grades" / "shot_look"))
    press_and_wait(gui, group, "export_lut")
    cube = tmp_path / "grades" / "shot_look.cube"
    lines = cube.read_text().splitlines()
    assert "LUT_3D_SIZE 33" in lines and sum(len(line.split()) == 3 for line in lines) >= 33 ** 3
    assert "shot_look.cube" in (tmp_path / "grades" / "shot_look.ocio.yaml").read_text()
    assert group["status"].value() == "LUT of nuke_look written: {} and {}".format(
        cube, tmp_path / "grades" / "shot_look.ocio.yaml")
    assert "The LUT reproduces" in gui.messages[-1] and str(cube) in gui.messages[-1]

    # Another mix (set from Python: no knobChanged) is another result: the plate again, not stale frames.
    group["mix"].setValue(0.5)
    assert ssnode.result_pattern(group) != pattern
    assert "not stylized" in gui.render_image(group, 1).spec().get_string_attribute("nuke/warning")


def test_style_and_preview_frames_come_from_the_nodes_inputs(shot, gui, server, monkeypatch, tmp_path):
    from shotstyle.nodes.nuke import node as ssnode
    plate, group = shot
    use_server(monkeypatch, server, group)
    group["style_file"].setValue("")                      # the input wins; no file needed
    style_folder = tmp_path / "style_seq"
    style = gui.nodes.Read(file=write_plate(style_folder, frames=(1,)), first=1, last=1)
    group.setInput(ssnode.STYLE_INPUT, style)
    group.setInput(ssnode.PREVIEW_INPUT, plate)
    group["model"].setValue("nuke_inputs")
    gui.frame(3)                                          # the still style input is held at its frame 1
    press_and_wait(gui, group, "train")
    assert group["status"].value().startswith("trained model nuke_inputs"), group["status"].value()
    style_written = Path(ssnode.training_pattern(group, ssnode.STYLE_WRITE).replace("####", "0001"))
    assert np.array_equal(read(str(style_written))[0], read(str(style_folder / "plate.0001.exr"))[0])
    preview_written = Path(ssnode.training_pattern(group, ssnode.PREVIEW_WRITE).replace("####", "0003"))
    assert preview_written.is_file()


def test_the_mattes_knob_pairs_a_channel_of_the_plate_with_a_style_matte(shot, gui, server, monkeypatch, tmp_path):
    """One pair a line: the plate's alpha (a channel the node's plate EXRs carry) takes the look of the style
    matte's region; the trained model records the matte. A pair missing its style matte is one clear line."""
    from shotstyle.nodes.nuke import node as ssnode
    from shotstyle.server.engine.modelheader import read_metadata
    _, group = shot
    use_server(monkeypatch, server, group)
    group["model"].setValue("nuke_matted")
    group["loss"].setValue("auto")                        # mattes guide the per-pixel target
    group["mattes"].setValue("subject=channel:A")
    press_and_wait(gui, group, "train")
    assert group["status"].value().startswith("error: Mattes: matte 'subject=channel:A': write NAME=PLATE:STYLE")
    style_matte = write_image(tmp_path / "subject.png", np.ones((PLATE_SIZE[1], PLATE_SIZE[0], 3)), ["R", "G", "B"],
                              "uint8")
    group["mattes"].setValue("subject=channel:A:{}\n".format(style_matte))
    press_and_wait(gui, group, "train")
    assert group["status"].value().startswith("trained model nuke_matted"), group["status"].value()
    assert read_metadata(ssnode.model_file(group, "nuke_matted"))["target"]["mattes"] == ["subject"]


def test_cancelled_training_in_the_gui_runs_on_a_worker_thread(shot, gui, server, monkeypatch):
    _, group = shot
    use_server(monkeypatch, server, group)
    group["model"].setValue("nuke_cancelled")
    group["steps"].setValue(500)
    gui.cancel_after_progress[0] = 0              # the artist presses Cancel on the progress bar at once
    press_and_wait(gui, group, "train")
    assert group["status"].value().startswith("training cancelled"), group["status"].value()
    assert group["training_frame"].value() == -1


def test_connect_runs_off_the_main_thread_and_reuses_one_connection(shot, gui, server, monkeypatch):
    from shotstyle.plugin import client
    _, group = shot
    use_server(monkeypatch, server, group)
    made = []
    real_init = client.Client.__init__

    def counting_init(self, *args, **kwargs):
        made.append(args)
        real_init(self, *args, **kwargs)
    monkeypatch.setattr(client.Client, "__init__", counting_init)
    press_and_wait(gui, group, "connect")
    assert group["status"].value().startswith("connected: shotstyle"), group["status"].value()
    with Client(server.address) as direct:
        names = sorted(m["name"] for m in direct.list_models())
    assert group["model_picker"].values() == (names or ["(no models)"])
    press_and_wait(gui, group, "connect")
    assert len(made) == 2, made                   # the node's connection (once) and the direct one above
    group["server"].setValue("")
    monkeypatch.setenv("SHOTSTYLE_RUNTIME_DIR", str(server.runtime.parent / "nowhere"))
    press_and_wait(gui, group, "connect")
    assert group["status"].value().startswith("not connected") and "starts on Train" in group["status"].value()


def test_renames_and_version_ups_keep_the_cache_copies_get_their_own(shot, nuke, tmp_path):
    from shotstyle.nodes.nuke import node as ssnode
    _, group = shot
    group["model"].setValue("kept")
    results, model = ssnode.result_pattern(group), ssnode.model_file(group, "kept")
    os.makedirs(os.path.dirname(model))
    Path(model).write_bytes(b"model bytes")
    group.setName("Grade_Look")                                    # rename
    assert ssnode.result_pattern(group) == results
    nuke.scriptSave(str(tmp_path / "shot_v002.nk"))                # version-up: same folder, new name
    nuke.scriptClear()
    nuke.scriptOpen(str(tmp_path / "shot_v002.nk"))
    reopened = nuke.toNode("Grade_Look")
    assert ssnode.result_pattern(reopened) == results and ssnode.model_file(reopened, "kept") == model
    reopened.setSelected(True)
    nuke.nodeCopy(str(tmp_path / "clipboard"))
    copy = nuke.nodePaste(str(tmp_path / "clipboard"))
    assert copy is not reopened and ssnode.node_id(copy) != ssnode.node_id(reopened)
    assert ssnode.cache_dir(copy) != ssnode.cache_dir(reopened)
    assert Path(ssnode.model_file(copy, "kept")).read_bytes() == b"model bytes"   # the copy can still render
    copy_id = ssnode.node_id(copy)
    nuke.scriptSave(str(tmp_path / "shot_v003.nk"))
    nuke.scriptClear()
    nuke.scriptOpen(str(tmp_path / "shot_v003.nk"))
    assert ssnode.node_id(nuke.toNode(copy.name())) == copy_id    # ids are stable across loads


def test_plates_render_in_consecutive_runs():
    from shotstyle.nodes.hostbridge import frame_runs
    assert frame_runs([1005, 1001, 1002, 1003, 1010, 1012, 1011]) == [(1001, 1003), (1005, 1005), (1010, 1012)]
