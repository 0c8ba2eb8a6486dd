"""Nuke knobs made from the effect description (``shotstyle.plugin.params.describe()``).

One knob per parameter, its class chosen by the parameter's kind, inside a collapsible group
per parameter group; optional clips (style image, preview frame) become file knobs. A node
made with an older description gets the parameters it lacks added by ``sync_knobs``, so a
parameter added to the description appears in Nuke without touching this code.
"""

from __future__ import annotations

from typing import Any, Dict, List

import nuke

# Button knobs run this with the button's parameter name; node.py dispatches it.
BUTTON_COMMAND = "import shotstyle.nodes.nuke.actions as _ss; _ss.press(nuke.thisNode(), {name!r})"
GROUP_PREFIX = "ss_group_"
# Wider ranges (seed, tile pixels) get Nuke's default slider: the range is still checked by validate().
SLIDER_SPAN = 10000


def clip_knob_name(clip: Dict[str, Any]) -> str:
    """Knob holding a clip that is not the node's input (a file path): ``style`` -> ``style_file``."""
    return clip["name"] + "_file"


def file_clips(description: Dict[str, Any]) -> List[Dict[str, Any]]:
    """Clips other than the plate: Nuke takes them as files (the plate is the node's input)."""
    return [clip for clip in description["clips"] if clip["name"] != "plate"]


def make_param_knob(param: Dict[str, Any]) -> nuke.Knob:
    """The knob for one parameter description, with its label, tooltip, range and default."""
    name, label, kind, default = param["name"], param["label"], param["kind"], param["default"]
    knob: nuke.Knob
    if kind in ("int", "float"):
        number = nuke.Int_Knob(name, label) if kind == "int" else nuke.Double_Knob(name, label)
        if param.get("min") is not None and param.get("max") is not None \
                and param["max"] - param["min"] <= SLIDER_SPAN:
            number.setRange(param["min"], param["max"])
        knob = number
    elif kind == "bool":
        knob = nuke.Boolean_Knob(name, label)
        knob.setFlag(nuke.STARTLINE)
    elif kind == "choice":
        knob = nuke.Enumeration_Knob(name, label, list(param["choices"]))
    elif kind == "button":
        knob = nuke.PyScript_Knob(name, label, BUTTON_COMMAND.format(name=name))
    else:  # "string" and "frames" (a frame list such as "1001,1010-1020") are text
        knob = nuke.String_Knob(name, label)
    if default is not None and kind != "button":
        knob.setValue(default)
    knob.setTooltip(param["help"])
    return knob


def make_clip_knob(clip: Dict[str, Any]) -> nuke.Knob:
    knob = nuke.File_Knob(clip_knob_name(clip), clip["label"])
    knob.setTooltip(clip["help"] + (" (optional)" if clip["optional"] else ""))
    return knob


def _group_knobs(group: str) -> List[nuke.Knob]:
    begin = nuke.Tab_Knob(GROUP_PREFIX + group.lower(), group, nuke.TABBEGINCLOSEDGROUP)
    end = nuke.Tab_Knob(GROUP_PREFIX + group.lower() + "_end", "", nuke.TABENDGROUP)
    return [begin, end]


def make_knobs(description: Dict[str, Any]) -> List[nuke.Knob]:
    """Every knob the description asks for, in order: clip files first, then one group per param group."""
    knobs: List[nuke.Knob] = []
    knobs.extend(make_clip_knob(clip) for clip in file_clips(description))
    groups: Dict[str, List[Dict[str, Any]]] = {}
    for param in description["params"]:
        groups.setdefault(param["group"], []).append(param)
    for group, params in groups.items():
        begin, end = _group_knobs(group)
        knobs.append(begin)
        knobs.extend(make_param_knob(param) for param in params)
        knobs.append(end)
    return knobs


def sync_knobs(node: nuke.Node, description: Dict[str, Any]) -> List[str]:
    """Add knobs for parameters/clips the node lacks (a newer server); returns their names."""
    new_knobs = [make_clip_knob(c) for c in file_clips(description) if node.knob(clip_knob_name(c)) is None]
    new_knobs += [make_param_knob(p) for p in description["params"] if node.knob(p["name"]) is None]
    for knob in new_knobs:
        node.addKnob(knob)
    return [knob.name() for knob in new_knobs]


def read_values(node: nuke.Node, description: Dict[str, Any]) -> Dict[str, Any]:
    """Current value of every (non-button) parameter knob, keyed by parameter name."""
    values: Dict[str, Any] = {}
    for param in description["params"]:
        knob = node.knob(param["name"])
        if knob is None or param["kind"] == "button":
            continue
        value = knob.value()
        if param["kind"] == "int":
            value = int(value)
        elif param["kind"] == "float":
            value = float(value)
        elif param["kind"] == "bool":
            value = bool(value)
        values[param["name"]] = value
    return values


def read_clip_files(node: nuke.Node, description: Dict[str, Any]) -> Dict[str, str]:
    """Paths in the clip file knobs (empty ones left out), keyed by clip name."""
    files = {}
    for clip in file_clips(description):
        knob = node.knob(clip_knob_name(clip))
        if knob is not None and str(knob.value()).strip():
            files[clip["name"]] = str(knob.value()).strip()
    return files
