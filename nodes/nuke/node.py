"""The ShotStyle node: a Group whose knobs come from the effect description, and its inner graph.

Inside the group::

    plate (Input 0) ──> PlateWrite (Write: EXR half, all channels)        frames sent to the server
        └──> Unstylized (Text2 warning: viewer only) ──┐
    Result (Read: stylized EXRs, missing = error) ──────┼──> Choose (Switch) ──> Output
    Preview (Read: keyframe preview) ───────────────────┘
    style (Input 1) ──> StyleWrite       preview (Input 2) ──> PreviewWrite     (training frames)

``Choose`` picks, in the Viewer, the stylized result when its file exists, else the plate with
a "not stylized yet" warning, and the training preview at the keyframe while a training runs.
In a render (``nuke.executing()``, or any terminal session) it always reads the result, so a
frame that was not prepared is an error, never the plate. The Result Read's file is an
expression of the node's knobs, so results of other settings (model, mix...) are never shown.

Results and the model copy live in the node's cache folder, named by a hidden id that survives
renames and script version-ups (see ``cache_dir``).
"""

import json
import os
import shutil
import tempfile
import uuid
from typing import Any, Dict, List, Optional, Tuple

import nuke

from shotstyle.nodes.hostbridge import RENDER_GROUPS, render_key, safe_name, values_for
from shotstyle.nodes.nuke import knobs
from shotstyle.plugin import __version__, params
from shotstyle.plugin.errors import ClientError
from shotstyle.plugin.sequences import SequencePattern

MARK_KNOB = "shotstyle_version"
ID_KNOB = "shotstyle_id"
DESCRIPTION_KNOB = "shotstyle_description"
STATUS_KNOB = "status"
PICKER_KNOB = "model_picker"
RANGE_KNOB = "stylize_frames"
CACHE_KNOB = "cache_dir"
WARN_KNOB = "warn_unstylized"
TRAINING_KNOB = "training_frame"      # keyframe whose preview is shown while training, -1 when idle
CONNECT_BUTTON = "connect"
NO_MODELS = "(no models)"
NODE_COLOUR = 0x8C5AC8FF              # tile_color: 0xRRGGBBAA
PLATE_INPUT, STYLE_INPUT, PREVIEW_INPUT = 0, 1, 2
INPUT_NAMES = ("plate", "style", "preview")
PLATE_WRITE, STYLE_WRITE, PREVIEW_WRITE = "PlateWrite", "StyleWrite", "PreviewWrite"
RESULT_READ, PREVIEW_READ, WARNING_TEXT, CHOOSER = "Result", "Preview", "Unstylized", "Choose"
SHOW_PLATE, SHOW_RESULT, SHOW_PREVIEW = 0, 1, 2
_THIS_MODULE = "__import__('shotstyle.nodes.nuke.node', fromlist=['node'])"
CHOOSER_EXPRESSION = "[python {%s.shown_input(nuke.thisParent())}]" % _THIS_MODULE
RESULT_FILE = "[python {%s.result_pattern(nuke.thisParent())}]" % _THIS_MODULE
RESULT_FIRST = "[python {%s.input_range(nuke.thisParent())[0]}]" % _THIS_MODULE
RESULT_LAST = "[python {%s.input_range(nuke.thisParent())[1]}]" % _THIS_MODULE
# The node's own callback knobs: a machine without shotstyle still opens the script.
KNOB_CHANGED_SCRIPT = ("try:\n    import shotstyle.nodes.nuke.node as _ss\nexcept ImportError:\n    _ss = None\n"
                       "if _ss:\n    _ss.knob_changed(nuke.thisNode(), nuke.thisKnob())")
ON_CREATE_SCRIPT = ("try:\n    import shotstyle.nodes.nuke.node as _ss\nexcept ImportError:\n    _ss = None\n"
                    "if _ss:\n    _ss.on_create(nuke.thisNode())")


class ShotStyleNodeError(ClientError):
    """The node cannot do what was asked; the message tells the artist what to change."""


# ------------------------------------------------------------------ creation
def create(description: Optional[Dict[str, Any]] = None) -> nuke.Group:
    """Create a ShotStyle node (connected to the selected node) and open its panel."""
    group = nuke.createNode("Group", inpanel=False)
    if not isinstance(group, nuke.Group):
        raise ShotStyleNodeError("Nuke created a {} instead of a Group".format(group.Class()))
    build(group, description or params.describe())
    if nuke.GUI:
        group.showControlPanel()
    return group


def build(group: nuke.Group, description: Dict[str, Any]) -> None:
    """Turn an empty Group into a ShotStyle node: knobs from ``description`` plus the inner graph."""
    group.setName("ShotStyle1", uncollide=True)
    mark = nuke.String_Knob(MARK_KNOB, "shotstyle")
    mark.setValue(__version__)
    identity = nuke.String_Knob(ID_KNOB, "id")
    identity.setValue(uuid.uuid4().hex)
    stored = nuke.String_Knob(DESCRIPTION_KNOB, "description")
    stored.setValue(json.dumps(description))
    training = nuke.Int_Knob(TRAINING_KNOB, "training frame")
    training.setValue(-1)
    hidden = [mark, identity, stored, training]
    for knob in hidden:
        knob.setFlag(nuke.INVISIBLE)
    for knob in knobs.make_knobs(description, _node_knobs()) + hidden:
        group.addKnob(knob)
    group["knobChanged"].setValue(KNOB_CHANGED_SCRIPT)
    group["onCreate"].setValue(ON_CREATE_SCRIPT)
    group["tile_color"].setValue(NODE_COLOUR)
    _build_graph(group)


def _node_knobs() -> Dict[str, nuke.Knob]:
    """The node's own knobs (not from the description), by name, for knobs.make_knobs to place."""
    status = nuke.Text_Knob(STATUS_KNOB, "Server", "not connected yet")
    connect = nuke.PyScript_Knob(CONNECT_BUTTON, "Connect / refresh", knobs.BUTTON_COMMAND.format(name=CONNECT_BUTTON))
    picker = nuke.Enumeration_Knob(PICKER_KNOB, "Trained styles", [NO_MODELS])
    picker.setTooltip("The models on the server: picking one makes it this node's model.")
    frames = nuke.String_Knob(RANGE_KNOB, "Stylize frames")
    frames.setTooltip("Frames for 'Stylize range', e.g. 1001-1100. Empty: the plate input's frame range.")
    cache = nuke.File_Knob(CACHE_KNOB, "Cache folder")
    cache.setTooltip("Where plates and stylized EXRs are kept. Empty: shotstyle_cache beside the script.")
    warn = nuke.Boolean_Knob(WARN_KNOB, "Mark unstylized frames in the Viewer")
    warn.setValue(True)
    warn.setTooltip("In the Viewer, frames not stylized yet show the plate with a warning drawn over it. "
                    "Renders never show the plate: a frame not stylized is an error.")
    return {k.name(): k for k in (status, connect, picker, frames, cache, warn)}


def _build_graph(group: nuke.Group) -> None:
    with group:
        plate, style, preview_in = (nuke.nodes.Input(name=name) for name in INPUT_NAMES)
        for source, write_name in ((plate, PLATE_WRITE), (style, STYLE_WRITE), (preview_in, PREVIEW_WRITE)):
            write = nuke.nodes.Write(name=write_name)
            write.setInput(0, source)
            write["file_type"].setValue("exr")        # first: the EXR knobs exist once the type is exr
            write["datatype"].setValue("16 bit half")
            write["channels"].setValue("all")
            write["raw"].setValue(True)                # the data as it is: the server manages colour
        warning = nuke.nodes.Text2(name=WARNING_TEXT)
        warning.setInput(0, plate)
        warning["message"].setValue("ShotStyle: frame [frame] is not stylized yet - showing the plate")
        warning["disable"].setExpression("!parent.{}".format(WARN_KNOB))
        result = nuke.nodes.Read(name=RESULT_READ)
        result["file"].setValue(RESULT_FILE)
        result["first"].setExpression(RESULT_FIRST)
        result["last"].setExpression(RESULT_LAST)
        for knob_name in ("before", "after", "on_error"):
            result[knob_name].setValue("error")        # a render never gets a held or black frame
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


# ------------------------------------------------------------------ identity and cache folder
def node_id(node: nuke.Node) -> str:
    """The node's stable id: it names the cache folder, so renames and version-ups keep the results."""
    value = str(node[ID_KNOB].value()) if node.knob(ID_KNOB) is not None else ""
    if not value:
        raise ShotStyleNodeError("{} has no id: it was made by an older shotstyle; delete it and create a new "
                                 "ShotStyle node".format(node.name()))
    return value


def cache_root(node: nuke.Node) -> str:
    """The folder holding the cache folders of every ShotStyle node of the script."""
    script = str(nuke.root()["name"].value())
    return os.path.join(os.path.dirname(script) if script else tempfile.gettempdir(), "shotstyle_cache")


def cache_dir(node: nuke.Node) -> str:
    """The node's cache folder: the knob's, else ``<script dir>/shotstyle_cache/<node id>``."""
    explicit = str(node[CACHE_KNOB].value()).strip()
    return explicit or os.path.join(cache_root(node), node_id(node))


def plate_pattern(node: nuke.Node) -> str:
    return os.path.join(cache_dir(node), "plate", "plate.####.exr")


def training_pattern(node: nuke.Node, write_name: str) -> str:
    """Where StyleWrite / PreviewWrite put the frame they render for a training."""
    return os.path.join(cache_dir(node), write_name.lower().replace("write", ""), "frame.####.exr")


def results_root(node: nuke.Node) -> str:
    return os.path.join(cache_dir(node), "results")


def result_pattern(node: nuke.Node) -> str:
    """Sequence pattern of the stylized EXRs for the node's current model and render settings."""
    description = description_of(node)
    values = knobs.read_values(node, description)
    key = render_key(str(values.get("model", "")), values_for(RENDER_GROUPS, values, description))
    return os.path.join(results_root(node), key, "shotstyle.####.exr")


def preview_template(node: nuke.Node) -> str:
    """Path of the training preview with ``{}`` for the step: a new name per step makes Nuke read it afresh."""
    return os.path.join(cache_dir(node), "preview", "keyframe.step{:06d}.exr")


def model_file(node: nuke.Node, model: str) -> str:
    """Where the node keeps a copy of its model, so farm renders can send it to their server."""
    return os.path.join(cache_dir(node), "models", safe_name(model) + ".safetensors")


def lut_file(node: nuke.Node, model: str) -> str:
    """Where Export LUT offers to write the model's .cube (beside the node's model copy)."""
    return os.path.join(cache_dir(node), "luts", safe_name(model) + ".cube")


def input_range(node: nuke.Node) -> Tuple[int, int]:
    """The plate input's frame range (the script's when nothing is connected)."""
    source = node.input(PLATE_INPUT)
    if source is None:
        return nuke.root().firstFrame(), nuke.root().lastFrame()
    return source.firstFrame(), source.lastFrame()


def on_create(node: nuke.Node) -> None:
    """The node's onCreate (script load, paste): a pasted copy gets its own id and model copies.

    The new id is derived from the shared one and the copy's name, so a script saved with
    duplicates loads with the same ids every time.
    """
    if not is_shotstyle(node) or node.knob(ID_KNOB) is None:
        return
    current = str(node[ID_KNOB].value())
    others = [n for n in nuke.allNodes(recurseGroups=True) if n is not node and is_shotstyle(n)
              and n.knob(ID_KNOB) is not None and str(n[ID_KNOB].value()) == current]
    if not others:
        return
    source_models = os.path.join(cache_dir(others[0]), "models")
    node[ID_KNOB].setValue(uuid.uuid5(uuid.NAMESPACE_OID, current + "/" + node.fullName()).hex)
    if os.path.isdir(source_models) and not str(node[CACHE_KNOB].value()).strip():
        target = os.path.join(cache_dir(node), "models")
        os.makedirs(target, exist_ok=True)
        for name in os.listdir(source_models):
            shutil.copy2(os.path.join(source_models, name), os.path.join(target, name))


# ------------------------------------------------------------------ what the node shows
def shown_input(node: nuke.Node) -> int:
    """Which Choose input shows at the current frame (the Switch's expression calls this)."""
    if nuke.executing() or not nuke.GUI:
        return SHOW_RESULT            # a render: the prepared frame or an error, never the plate
    frame = nuke.frame()
    if int(node[TRAINING_KNOB].value()) == frame and str(inner(node, PREVIEW_READ)["file"].value()):
        return SHOW_PREVIEW
    path = nuke.filename(inner(node, RESULT_READ), nuke.REPLACE)
    return SHOW_RESULT if path and os.path.isfile(path) else SHOW_PLATE


def missing_frame_error(node: nuke.Node, frame: int) -> Optional[str]:
    """Why ``frame`` of ``node`` cannot render, or None when its stylized frame is there (files only)."""
    first, last = input_range(node)
    if not first <= frame <= last:
        return "{}: frame {} is outside its plate input's frame range {}-{}".format(node.fullName(), frame,
                                                                                    first, last)
    path = SequencePattern(result_pattern(node)).path(frame)
    if os.path.isfile(path):
        return None
    script = str(nuke.root()["name"].value()) or "SCRIPT.nk"
    return ("{}: frame {} is not stylized ({} does not exist); prepare the frames with `shotstyle nuke-prerender "
            "{}` (the farm pre-job) or press Stylize range before rendering".format(node.fullName(), frame,
                                                                                     path, script))


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
    """Group's knobChanged (artist edits in the panel): picking a trained style makes it the model.

    Nothing else depends on it: the Result Read follows the knobs through its expression.
    """
    if knob.name() == PICKER_KNOB and str(knob.value()) != NO_MODELS:
        node["model"].setValue(str(knob.value()))
