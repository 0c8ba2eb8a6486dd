"""The ShotStyle Fusion script, driven through the stand-in Fusion objects against a real server.

The dialog comes from the description; Train renders the keyframe with a Saver and trains;
Stylize renders the range, writes complete EXRs and wires a Loader in place of the plate
(through a Merge with the mix, or directly), and imports the sequence into Resolve's Media Pool.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fusionhost import close, fill, fu, idle, status  # noqa: F401
from hostdata import (DATA_WINDOW, FRAMES, TRAIN_SETTINGS, channel_names, host_server, read,  # noqa: F401
                      write_plate, write_style, write_tiny_model)
from shotstyle.nodes.resolve import dialog, script
from shotstyle.plugin import params
from shotstyle.plugin.client import Client
from testfiles import PLATE_SIZE, write_image
from tolerances import half_rounding, rounding_tolerance


@pytest.fixture(scope="module")
def server(host_server, tmp_path_factory):
    """The real server, holding an untrained tiny model, "resolve_tiny", for the stylize tests."""
    with Client(host_server.address) as client:
        client.put_model(write_tiny_model(tmp_path_factory.mktemp("tiny") / "tiny.safetensors"), "resolve_tiny")
    return host_server


@pytest.fixture
def comp(fu, tmp_path):
    """A saved comp: Loader1 (the plate, frames 1-3) -> MediaOut1."""
    comp = fu.Comp(file_name=str(tmp_path / "shot.comp"), name="shot", render_range=(FRAMES[0], FRAMES[-1]))
    comp.Lock()
    plate = comp.AddTool("Loader", 0, 0)
    out = comp.AddTool("MediaOut", 4, 0)
    comp.Unlock()
    plate.SetInput("Clip", write_plate(tmp_path / "plate").replace("####", "0001"))
    out.ConnectInput("Input", plate)
    return comp


def test_dialog_is_built_from_the_description(fu, comp):
    fu.interact(idle)
    fu.interact(close)
    shown = script.main(fu.script_globals(comp))
    items = shown.window.GetItems()
    widgets = {"int": "SpinBox", "float": "DoubleSpinBox", "bool": "CheckBox", "choice": "ComboBox",
               "button": "Button", "string": "LineEdit", "frames": "LineEdit", "mattes": "LineEdit"}
    values = dialog.read_values(items, shown.description)
    for param in params.describe()["params"]:
        widget = items[param["name"]]
        assert widget.kind == widgets[param["kind"]], param["name"]
        assert widget.ToolTip == param["help"]
        if param["kind"] == "choice":
            assert widget.items == param["choices"]
        if param["kind"] != "button":
            assert values[param["name"]] == param["default"], param["name"]
        else:
            assert "Clicked" in shown.window.On[param["name"]].handlers
    assert items[dialog.PLATE_PICKER].items == ["Loader1"]
    assert items["style_file"].kind == "LineEdit" and "Clicked" in shown.window.On["style_file_browse"].handlers
    assert items[dialog.STATUS].Text.startswith("not connected")
    assert items[dialog.CANCEL].kind == "Button" and not items[dialog.CANCEL].Enabled
    # A parameter added to the description gets its widget with no code change.
    description = params.describe()
    description["params"].append({"name": "grain", "kind": "int", "default": 3, "label": "Grain", "help": "grain",
                                  "group": "Render", "min": 0, "max": 10, "choices": []})
    window = fu.UIDispatcher(fu.UIManager()).AddWindow({}, dialog.layout(fu.UIManager(), description))
    assert window.GetItems()["grain"].kind == "SpinBox"
    assert dialog.read_values(window.GetItems(), description)["grain"] == 3


def test_browse_fills_the_style_field(fu, comp):
    globals_ = fu.script_globals(comp)
    globals_["fusion"].requested_file = "/shots/style.png"
    fu.interact(lambda window: window.click("style_file_browse"))
    fu.interact(close)
    shown = script.main(globals_)
    assert shown.items["style_file"].Text == "/shots/style.png"


def test_train_renders_the_keyframe_and_trains(fu, comp, server, monkeypatch, tmp_path):
    monkeypatch.setenv("SHOTSTYLE_RUNTIME_DIR", str(server.runtime))
    comp.CurrentTime = 2.0
    style = write_style(tmp_path / "style.png")
    fu.interact(idle)
    fu.interact(lambda window: fill(window, server=server.address, style_file=style, model="resolve_look",
                                    **TRAIN_SETTINGS))
    fu.interact(lambda window: window.click("train"))
    fu.interact(idle)
    trained = []
    fu.interact(lambda window: trained.append(window.GetItems()[dialog.STATUS].Text))
    fu.interact(lambda window: window.click("export_lut"))   # the look as a LUT, into the plate's cache
    fu.interact(idle)
    fu.interact(close)
    shown = script.main(fu.script_globals(comp))
    assert trained == ["trained model resolve_look"], trained
    luts = tmp_path / "shotstyle_cache" / "shot" / "Loader1" / "luts"
    assert shown.items[dialog.STATUS].Text.startswith("wrote {} and {}. LUT alone vs full model".format(
        luts / "resolve_look.cube", luts / "resolve_look.ocio.yaml")), shown.items[dialog.STATUS].Text
    assert "LUT_3D_SIZE 33" in (luts / "resolve_look.cube").read_text().splitlines()
    assert comp.renders == [{"Start": 2, "End": 2, "Tool": comp.renders[0]["Tool"], "Wait": True,
                             "RenderFlags": fu.REQF_QUIET}]                       # the keyframe only, quietly
    assert comp.FindTool("Saver1") is None                                          # temporary Saver removed
    preview = tmp_path / "shotstyle_cache" / "shot" / "Loader1" / "preview" / "keyframe.exr"
    assert channel_names(read(str(preview))[1])[:3] == ["R", "G", "B"]            # the keyframe's preview
    with Client(server.address) as client:
        assert "resolve_look" in [m["name"] for m in client.list_models()]


@pytest.mark.parametrize("wiring, in_resolve", [(0, True), (1, False)], ids=["merge-resolve", "replace-fusion"])
def test_stylize_and_wire_the_result_in(fu, comp, server, monkeypatch, wiring, in_resolve):
    monkeypatch.setenv("SHOTSTYLE_RUNTIME_DIR", str(server.runtime))
    globals_ = fu.script_globals(comp, in_resolve=in_resolve)
    fu.interact(idle)
    fu.interact(lambda window: fill(window, server=server.address, model="resolve_tiny", mix=0.5, wiring=wiring))
    fu.interact(lambda window: window.click("stylize_range"))
    fu.interact(idle)
    fu.interact(close)
    shown = script.main(globals_)

    assert shown.items[dialog.STATUS].Text.startswith("stylized 3 frames with resolve_tiny"), \
        shown.items[dialog.STATUS].Text
    plate, out = comp.FindTool("Loader1"), comp.FindTool("MediaOut1")
    loader = comp.FindTool("Loader1_ShotStyle")
    assert loader is not None and comp.FindTool("Saver1") is None
    result_first = Path(loader.GetInput("Clip"))
    for frame in FRAMES:
        result, spec = read(str(result_first.with_name("shotstyle.{:04d}.exr".format(frame))))
        source, source_spec = read(plate.GetInput("Clip").replace("0001", "{:04d}".format(frame)))
        assert channel_names(spec) == channel_names(source_spec)
        assert (spec.x, spec.y, spec.width, spec.height, spec.full_width, spec.full_height) == \
               (source_spec.x, source_spec.y, source_spec.width, source_spec.height,
                source_spec.full_width, source_spec.full_height)
        assert np.array_equal(result[..., 3:], source[..., 3:])
        assert not np.allclose(result[..., :3], source[..., :3], atol=1e-3)
        assert spec.get_string_attribute("shotstyle/model")                     # made by the server's model
        shown_pixels = out.image(frame).get_pixels()
        if wiring == 0:                                      # Merge: plate under the result, Blend = mix
            merge = comp.FindTool("Merge1")
            assert out.connections["Input"] is merge and merge.connections["Background"] is plate
            assert merge.connections["Foreground"] is loader and merge.GetInput("Blend") == 0.5
            expected = 0.5 * result + 0.5 * source
            # The Merge works on the half frames: each times 0.5 (exact but for subnormal halves, which
            # round), the sum rounded to half; the float32 sum here rounds twice.
            tolerance = 3 * half_rounding(expected) + rounding_tolerance(np.abs(expected), 2)
            assert np.all(np.abs(shown_pixels - expected) <= tolerance)
        else:                                                # replacement: the Loader feeds the comp
            assert out.connections["Input"] is loader and comp.FindTool("Merge1") is None
            assert np.array_equal(shown_pixels, result)
    if in_resolve:                                           # Resolve: the sequence also lands in the Media Pool
        assert globals_["bmd"].resolve.media_pool.imported == [
            {"FilePath": str(result_first.with_name("shotstyle.%04d.exr")),
             "StartIndex": FRAMES[0], "EndIndex": FRAMES[-1]}]
    else:                                                    # Fusion Studio has no Resolve object
        assert globals_["bmd"].scriptapp("Resolve") is None


def test_the_mattes_field_sends_label_images_with_the_training(fu, comp, server, monkeypatch, tmp_path):
    """labels=PLATE:STYLE in the Mattes field: each flat colour in both label images guides the look."""
    from shotstyle.server.engine.modelheader import read_metadata
    monkeypatch.setenv("SHOTSTYLE_RUNTIME_DIR", str(server.runtime))

    def labels(name: str, height: int, width: int) -> str:   # red above, blue below
        red = (np.arange(height) < height // 2)[:, None, None] * np.ones((height, width, 1))
        return write_image(tmp_path / name, np.concatenate([red, 0 * red, 1 - red], axis=2), ["R", "G", "B"],
                           "uint8")

    plate_labels = labels("plate_labels.png", DATA_WINDOW[3], DATA_WINDOW[2])   # the keyframe's pixels
    style_labels = labels("style_labels.png", PLATE_SIZE[1], PLATE_SIZE[0])
    fu.interact(idle)
    fu.interact(lambda window: fill(window, server=server.address, style_file=write_style(tmp_path / "style.png"),
                                    model="resolve_labelled", mattes="labels={}:{}".format(plate_labels, style_labels),
                                    **dict(TRAIN_SETTINGS, loss="auto")))
    fu.interact(lambda window: window.click("train"))
    fu.interact(idle)
    fu.interact(close)
    shown = script.main(fu.script_globals(comp))
    assert shown.items[dialog.STATUS].Text == "trained model resolve_labelled", shown.items[dialog.STATUS].Text
    with Client(server.address) as client:
        client.get_model("resolve_labelled", str(tmp_path / "labelled.safetensors"))
    assert read_metadata(str(tmp_path / "labelled.safetensors"))["target"]["mattes"] == ["0000ff", "ff0000"]


def test_stylize_without_a_model_says_so(fu, comp):
    fu.interact(idle)
    fu.interact(lambda window: window.click("stylize_range"))
    fu.interact(close)
    shown = script.main(fu.script_globals(comp, in_resolve=False))
    assert "no model" in shown.items[dialog.STATUS].Text
    assert comp.FindTool("Loader1_ShotStyle") is None
