"""The ShotStyle node: a Group whose knobs come from the effect description, and its inner graph.

Inside the group::

    plate (Input) ──> PlateWrite (Write: EXR, 16-bit half, all channels)    frames sent to the server
        └──> Unstylized (Text2 warning) ──┐
    Result (Read: stylized EXRs, cache) ──┼──> Choose (Switch) ──> Output
    Preview (Read: keyframe preview) ─────┘

``Choose`` picks, per frame, the stylized result when its file exists, the plate with a
warning when it does not (never a black frame), and the training preview at the keyframe
while a training runs. Results live in a per-node cache folder (see ``cache_dir``), in a
sub-folder per model + render settings, so changing mix or model never shows stale frames.
"""

from __future__ import annotations

import json
import os
import tempfile
from typing import Any, Dict, List, Optional

import nuke

from shotstyle.nodes.hostbridge import RENDER_GROUPS, render_key, safe_name, values_for
from shotstyle.nodes.nuke import knobs
from shotstyle.plugin import __version__, params
from shotstyle.plugin.sequences import SequencePattern

MARK_KNOB = "shotstyle_version"
DESCRIPTION_KNOB = "shotstyle_description"
STATUS_KNOB = "status"
PICKER_KNOB = "model_picker"
RANGE_KNOB = "stylize_frames"
CACHE_KNOB = "cache_dir"
WARN_KNOB = "warn_unstylized"
TRAINING_KNOB = "training_frame"      # keyframe whose preview is shown while training, -1 when idle
CONNECT_BUTTON = "connect"
NO_MODELS = "(no models)"
PLATE_WRITE, RESULT_READ, PREVIEW_READ, WARNING_TEXT, CHOOSER = (
    "PlateWrite", "Result", "Preview", "Unstylized", "Choose")
SHOW_PLATE, SHOW_RESULT, SHOW_PREVIEW = 0, 1, 2
CHOOSER_EXPRESSION = ("[python {__import__('shotstyle.nodes.nuke.node', fromlist=['node'])"
                      ".shown_input(nuke.thisParent())}]")
KNOB_CHANGED_SCRIPT = ("import shotstyle.nodes.nuke.node as _ss\n"
                       "_ss.knob_changed(nuke.thisNode(), nuke.thisKnob())")


class ShotStyleNodeError(Exception):
    """The node cannot do what was asked; the message tells the artist what to change."""


# ------------------------------------------------------------------ creation
def create(description: Optional[Dict[str, Any]] = None) -> nuke.Group:
    """Create a ShotStyle node (connected to the selected node) built from ``description``."""
    group = nuke.createNode("Group", inpanel=False)
    if not isinstance(group, nuke.Group):
        raise ShotStyleNodeError("Nuke created a {} instead of a Group".format(group.Class()))
    build(group, description or params.describe())
    return group


def build(group: nuke.Group, description: Dict[str, Any]) -> None:
    """Turn an empty Group into a ShotStyle node: knobs from ``description`` plus the inner graph."""
    group.setName("ShotStyle1", uncollide=True)
    mark = nuke.String_Knob(MARK_KNOB, "shotstyle")
    mark.setValue(__version__)
    stored = nuke.String_Knob(DESCRIPTION_KNOB, "description")
    stored.setValue(json.dumps(description))
    training = nuke.Int_Knob(TRAINING_KNOB, "training frame")
    training.setValue(-1)
    for hidden in (mark, stored, training):
        hidden.setFlag(nuke.INVISIBLE)
    tab = nuke.Tab_Knob("shotstyle", "ShotStyle")
    status = nuke.Text_Knob(STATUS_KNOB, "Server", "not connected yet")
    connect = nuke.PyScript_Knob(CONNECT_BUTTON, "Connect / refresh", knobs.BUTTON_COMMAND.format(name=CONNECT_BUTTON))
    picker = nuke.Enumeration_Knob(PICKER_KNOB, "Models on server", [NO_MODELS])
    picker.setTooltip("Pick a trained model from the server's store; it becomes this node's model.")
    frames = nuke.String_Knob(RANGE_KNOB, "Stylize frames")
    frames.setTooltip("Frames for 'Stylize range', e.g. 1001-1100. Empty: the input's frame range.")
    cache = nuke.File_Knob(CACHE_KNOB, "Cache folder")
    cache.setTooltip("Where plates and stylized EXRs are kept. Empty: a shotstyle_cache folder beside the script.")
    warn = nuke.Boolean_Knob(WARN_KNOB, "Mark unstylized frames")
    warn.setValue(True)
    warn.setTooltip("Frames not stylized yet show the plate; with this on, a warning is drawn over them.")
    for knob in [tab, status, connect, picker] + knobs.make_knobs(description) + [frames, cache, warn,
                                                                                  mark, stored, training]:
        group.addKnob(knob)
    group["knobChanged"].setValue(KNOB_CHANGED_SCRIPT)
    _build_graph(group)
    update_result_read(group)


def _build_graph(group: nuke.Group) -> None:
    with group:
        plate = nuke.nodes.Input(name="plate")
        write = nuke.nodes.Write(name=PLATE_WRITE)
        write.setInput(0, plate)
        write["file_type"].setValue("exr")
        write["datatype"].setValue("16 bit half")
        write["channels"].setValue("all")
        write["raw"].setValue(True)          # the plate's data as it is: the server manages colour
        write["file"].setValue(plate_pattern(group))
        warning = nuke.nodes.Text2(name=WARNING_TEXT)
        warning.setInput(0, plate)
        warning["message"].setValue("ShotStyle: frame [frame] is not stylized yet - showing the plate")
        warning["disable"].setExpression("!parent.{}".format(WARN_KNOB))
        result = nuke.nodes.Read(name=RESULT_READ)
        result["raw"].setValue(True)
        preview = nuke.nodes.Read(name=PREVIEW_READ)
        preview["raw"].setValue(True)
        chooser = nuke.nodes.Switch(name=CHOOSER)
        for index, source in ((SHOW_PLATE, warning), (SHOW_RESULT, result), (SHOW_PREVIEW, preview)):
            chooser.setInput(index, source)
        chooser["which"].setExpression(CHOOSER_EXPRESSION)
        output = nuke.nodes.Output()
        output.setInput(0, chooser)


def is_shotstyle(node: Optional[nuke.Node]) -> bool:
    return node is not None and node.knob(MARK_KNOB) is not None


def description_of(node: nuke.Node) -> Dict[str, Any]:
    """The description the node was built from (saved with the script)."""
    return json.loads(str(node[DESCRIPTION_KNOB].value()))


def inner(node: nuke.Node, name: str) -> nuke.Node:
    """One node of the inner graph; a clear error when someone deleted it."""
    found = node.node(name) if isinstance(node, nuke.Group) else None
    if found is None:
        raise ShotStyleNodeError("{}: its inner node {} is missing; delete the node and create a new "
                                 "ShotStyle node".format(node.name(), name))
    return found


# ------------------------------------------------------------------ cache folder
def cache_dir(node: nuke.Node) -> str:
    """The node's cache folder: the knob's, else ``<script dir>/shotstyle_cache/<script>/<node>``."""
    explicit = str(node[CACHE_KNOB].value()).strip()
    if explicit:
        return explicit
    script = str(nuke.root()["name"].value())
    if script:
        base = os.path.join(os.path.dirname(script), "shotstyle_cache",
                            os.path.splitext(os.path.basename(script))[0])
    else:
        base = os.path.join(tempfile.gettempdir(), "shotstyle_cache", "untitled")
    return os.path.join(base, node.name())


def plate_pattern(node: nuke.Node) -> str:
    return os.path.join(cache_dir(node), "plate", node.name() + ".####.exr")


def results_root(node: nuke.Node) -> str:
    return os.path.join(cache_dir(node), "results")


def result_pattern(node: nuke.Node) -> str:
    """Sequence pattern of the stylized EXRs for the node's current model and render settings."""
    description = description_of(node)
    values = knobs.read_values(node, description)
    key = render_key(str(values.get("model", "")), values_for(RENDER_GROUPS, values, description))
    return os.path.join(results_root(node), key, node.name() + ".####.exr")


def preview_template(node: nuke.Node) -> str:
    """Path of the training preview with ``{}`` for the step: a new name per step makes Nuke re-read it."""
    return os.path.join(cache_dir(node), "preview", node.name() + ".step{:06d}.exr")


def model_file(node: nuke.Node, model: str) -> str:
    """Where the node keeps a copy of its model, so farm servers that lack it get it uploaded."""
    return os.path.join(cache_dir(node), "models", safe_name(model) + ".safetensors")


# ------------------------------------------------------------------ keeping the graph current
def update_result_read(node: nuke.Node) -> None:
    """Point the Result Read at the current settings' folder and the frames present there."""
    pattern = result_pattern(node)
    read = inner(node, RESULT_READ)
    if str(read["file"].value()) != pattern:
        read["file"].setValue(pattern)
    frames = SequencePattern(pattern).scan()
    if frames:
        for knob_name, value in (("first", frames[0]), ("last", frames[-1]),
                                 ("origfirst", frames[0]), ("origlast", frames[-1])):
            read[knob_name].setValue(value)
    write = inner(node, PLATE_WRITE)
    if str(write["file"].value()) != plate_pattern(node):
        write["file"].setValue(plate_pattern(node))


def shown_input(node: nuke.Node) -> int:
    """Which Choose input shows at the current frame (the Switch's expression calls this)."""
    frame = nuke.frame()
    if int(node[TRAINING_KNOB].value()) == frame and str(inner(node, PREVIEW_READ)["file"].value()):
        return SHOW_PREVIEW
    path = nuke.filename(inner(node, RESULT_READ), nuke.REPLACE)
    return SHOW_RESULT if path and os.path.isfile(path) else SHOW_PLATE


def set_status(node: nuke.Node, text: str) -> None:
    node[STATUS_KNOB].setValue(text)


def set_models(node: nuke.Node, names: List[str]) -> None:
    """Fill the model picker, selecting the node's current model when the server has it."""
    picker = node[PICKER_KNOB]
    if isinstance(picker, nuke.Enumeration_Knob):
        picker.setValues(names or [NO_MODELS])
        current = str(node["model"].value())
        if current in names:
            picker.setValue(current)


def knob_changed(node: nuke.Node, knob: nuke.Knob) -> None:
    """Group's knobChanged: the picker sets the model; render settings re-point the Result Read."""
    if knob.name() == PICKER_KNOB and str(knob.value()) != NO_MODELS:
        node["model"].setValue(str(knob.value()))
    if knob.name() in ("model", PICKER_KNOB, CACHE_KNOB, "name") or knob.name() in [
            p["name"] for p in description_of(node)["params"]]:
        update_result_read(node)
