"""Nuke knobs made from the effect description (``shotstyle.plugin.params.describe()``).

One knob per parameter, its class chosen by the parameter's kind. What a compositor reaches
for sits on the main tab: every action button (Train, Stylize range, and any a newer server
describes, e.g. an Export LUT), the style choice (model), Mix, the keyframes and frames, the
mattes (one ``NAME=channel:CHANNEL:STYLE_MATTE`` a line: a channel of the plate input, which the
node's plate EXRs carry, paired with a matte image of the style; plugin.mattes; the plates are half
float, so a cryptomatte is extracted into a channel by Nuke's Cryptomatte node first), and
the style/preview files (the alternative to the node's style and preview inputs). Everything
else sits on a Settings tab, one group per parameter group. A node made with an older
description gets the parameters it lacks added by ``sync_knobs``, so a parameter added to the
description appears in Nuke without touching this code.
"""

from __future__ import annotations

from typing import Any, Dict, List

import nuke

# Button knobs run this with the button's parameter name; node.py dispatches it.
BUTTON_COMMAND = "import shotstyle.nodes.nuke.actions as _ss; _ss.press(nuke.thisNode(), {name!r})"
GROUP_PREFIX = "ss_group_"
MAIN_TAB, SETTINGS_TAB = "shotstyle", "ss_settings"
# Parameters on the main tab besides the buttons, in this order.
MAIN_PARAMS = ("model", "mix", "keyframes", "mattes")
# The node's own knobs (node.py makes them): where each goes.
MAIN_OWN = ("status", "model_picker", "connect", "stylize_frames")
SETTINGS_OWN = ("cache_dir", "warn_unstylized")
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
    elif kind == "mattes":  # one pair a line, e.g. sky=channel:matte.sky:/looks/dusk_sky.png
        knob = nuke.Multiline_Eval_String_Knob(name, label)
    else:  # "string" and "frames" (a frame list such as "1001,1010-1020") are text
        knob = nuke.String_Knob(name, label)
    if default is not None and kind != "button":
        knob.setValue(default)
    knob.setTooltip(param["help"])
    return knob


def make_clip_knob(clip: Dict[str, Any]) -> nuke.Knob:
    knob = nuke.File_Knob(clip_knob_name(clip), clip["label"] + " file")
    knob.setTooltip(clip["help"] + " Used when nothing is connected to the node's {} input{}.".format(
        clip["name"], " (optional)" if clip["optional"] else ""))
    return knob


def _group_knobs(group: str) -> List[nuke.Knob]:
    begin = nuke.Tab_Knob(GROUP_PREFIX + group.lower(), group, nuke.TABBEGINGROUP)
    end = nuke.Tab_Knob(GROUP_PREFIX + group.lower() + "_end", "", nuke.TABENDGROUP)
    return [begin, end]


def make_knobs(description: Dict[str, Any], own: Dict[str, nuke.Knob]) -> List[nuke.Knob]:
    """Every knob of the node, in panel order: the main tab, then the Settings tab.

    ``own`` holds the node's own knobs by name (status, model picker, Connect, ...).
    """
    by_name = {p["name"]: p for p in description["params"]}
    buttons = [make_param_knob(p) for p in description["params"] if p["kind"] == "button"]
    if buttons:
        buttons[0].setFlag(nuke.STARTLINE)
    main: List[nuke.Knob] = [nuke.Tab_Knob(MAIN_TAB, "ShotStyle"), own["status"]] + buttons
    main += [make_param_knob(by_name["model"]), own["model_picker"], own["connect"]] if "model" in by_name else []
    main += [make_param_knob(by_name[name]) for name in MAIN_PARAMS[1:] if name in by_name]
    main += [own["stylize_frames"]] + [make_clip_knob(clip) for clip in file_clips(description)]
    settings: List[nuke.Knob] = [nuke.Tab_Knob(SETTINGS_TAB, "Settings")]
    groups: Dict[str, List[Dict[str, Any]]] = {}
    for param in description["params"]:
        if param["kind"] != "button" and param["name"] not in MAIN_PARAMS:
            groups.setdefault(param["group"], []).append(param)
    for group, members in groups.items():
        begin, end = _group_knobs(group)
        settings += [begin] + [make_param_knob(param) for param in members] + [end]
    return main + settings + [own[name] for name in SETTINGS_OWN]


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
