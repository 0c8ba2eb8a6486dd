"""The ShotStyle dialog's widgets, made from the effect description with Fusion's UIManager.

Each parameter becomes a labelled widget chosen by its kind (SpinBox, DoubleSpinBox, CheckBox,
ComboBox, LineEdit, Button), under a heading per parameter group; the plate clip becomes a
picker of the comp's Loader/MediaIn tools and the other clips file fields with a Browse
button. ``read_values`` reads them back by the same description, so a parameter added to the
description appears here without touching this code. Python 3.6 syntax, stdlib only.
"""

from typing import TYPE_CHECKING, Any, Dict, List

if TYPE_CHECKING:
    from shotstyle.nodes.resolve.fusiontypes import UIManager

PLATE_PICKER = "plate_tool"
STATUS = "status"
CANCEL = "cancel"
TIMER = "tick"
TIMER_INTERVAL_MS = 100
WIRING = "wiring"
CACHE_DIR = "cache_dir"
CONNECT = "connect"
WIRING_CHOICES = ["Merge over the plate (mix)", "Replace the plate"]
SLIDER_SPAN = 10000   # wider numeric ranges get unbounded spin boxes; validate() still checks them


def clip_field(clip: Dict[str, Any]) -> str:
    """Widget id of a file clip (``style`` -> ``style_file``); its Browse button adds ``_browse``."""
    return clip["name"] + "_file"


def param_widget(ui: "UIManager", param: Dict[str, Any]) -> Any:
    """The input widget for one parameter description."""
    kind, name, default = param["kind"], param["name"], param["default"]
    props = {"ID": name, "ToolTip": param["help"]}  # type: Dict[str, Any]
    if kind in ("int", "float"):
        low, high = param.get("min"), param.get("max")
        if low is not None and high is not None and high - low <= SLIDER_SPAN:
            props.update({"Minimum": low, "Maximum": high})
        else:
            props.update({"Minimum": low if low is not None else -1e9, "Maximum": 2 ** 31 - 1})
        props["Value"] = default
        if kind == "int":
            return ui.SpinBox(props)
        props.update({"Decimals": 3, "SingleStep": 0.05})
        return ui.DoubleSpinBox(props)
    if kind == "bool":
        props.update({"Text": param["label"], "Checked": bool(default)})
        return ui.CheckBox(props)
    if kind == "choice":
        return ui.ComboBox(props)          # items are added after the window exists (fill_choices)
    if kind == "button":
        props["Text"] = param["label"]
        return ui.Button(props)
    props["Text"] = default or ""
    if kind == "frames":
        props["PlaceholderText"] = "empty: the current frame"
    elif kind == "mattes":
        props["PlaceholderText"] = "sky=sky_plate.png:sky_style.png; labels=plate_labels.png:style_labels.png"
    return ui.LineEdit(props)


def _row(ui: "UIManager", label: str, *widgets: Any) -> Any:
    return ui.HGroup([ui.Label({"Text": label, "Weight": 0.3})] + list(widgets))


def layout(ui: "UIManager", description: Dict[str, Any]) -> Any:
    """The whole dialog layout: status, the action row, then the clips and one section per group."""
    actions = [param_widget(ui, p) for p in description["params"] if p["kind"] == "button"]
    rows = [ui.Label({"ID": STATUS, "Text": "not connected yet", "WordWrap": True}),
            ui.HGroup(actions + [ui.Button({"ID": CANCEL, "Text": "Cancel", "Enabled": False})]),
            ui.Button({"ID": CONNECT, "Text": "Connect / refresh"})]
    for clip in description["clips"]:
        if clip["name"] == "plate":
            rows.append(_row(ui, clip["label"], ui.ComboBox({"ID": PLATE_PICKER, "ToolTip": clip["help"]})))
        else:
            rows.append(_row(ui, clip["label"],
                             ui.LineEdit({"ID": clip_field(clip), "ToolTip": clip["help"],
                                          "PlaceholderText": "optional" if clip["optional"] else ""}),
                             ui.Button({"ID": clip_field(clip) + "_browse", "Text": "Browse", "Weight": 0})))
    groups = []  # type: List[str]
    for param in description["params"]:
        if param["group"] not in groups:
            groups.append(param["group"])
    for group in groups:
        rows.append(ui.Label({"Text": "<b>{}</b>".format(group)}))
        for param in description["params"]:
            if param["group"] != group or param["kind"] == "button":
                continue
            widget = param_widget(ui, param)
            rows.append(widget if param["kind"] in ("button", "bool") else _row(ui, param["label"], widget))
    rows.append(_row(ui, "Result", ui.ComboBox({"ID": WIRING})))
    rows.append(_row(ui, "Cache folder", ui.LineEdit({"ID": CACHE_DIR, "PlaceholderText":
                                                      "empty: shotstyle_cache beside the comp, or in your home"})))
    return ui.VGroup(rows)


def fill_choices(items: Dict[str, Any], description: Dict[str, Any], plate_names: List[str]) -> None:
    """Fill the combo boxes (Fusion adds items to existing widgets) and select the defaults."""
    for param in description["params"]:
        if param["kind"] == "choice":
            items[param["name"]].AddItems(list(param["choices"]))
            items[param["name"]].CurrentIndex = list(param["choices"]).index(param["default"])
    items[PLATE_PICKER].AddItems(plate_names)
    items[WIRING].AddItems(WIRING_CHOICES)


def read_values(items: Dict[str, Any], description: Dict[str, Any]) -> Dict[str, Any]:
    """Every non-button parameter's value, by parameter name."""
    values = {}  # type: Dict[str, Any]
    for param in description["params"]:
        kind, widget = param["kind"], items[param["name"]]
        if kind == "button":
            continue
        if kind == "int":
            values[param["name"]] = int(widget.Value)
        elif kind == "float":
            values[param["name"]] = float(widget.Value)
        elif kind == "bool":
            values[param["name"]] = bool(widget.Checked)
        elif kind == "choice":
            values[param["name"]] = str(widget.CurrentText)
        else:
            values[param["name"]] = str(widget.Text).strip()
    return values


def read_clip_files(items: Dict[str, Any], description: Dict[str, Any]) -> Dict[str, str]:
    """Paths typed or browsed into the file clips (empty ones left out)."""
    files = {}
    for clip in description["clips"]:
        if clip["name"] != "plate" and str(items[clip_field(clip)].Text).strip():
            files[clip["name"]] = str(items[clip_field(clip)].Text).strip()
    return files


def action_ids(description: Dict[str, Any]) -> List[str]:
    """Ids of the buttons that start a job (the description's), disabled while one runs."""
    return [p["name"] for p in description["params"] if p["kind"] == "button"] + [CONNECT]


def button_ids(description: Dict[str, Any]) -> List[str]:
    """Ids of every button: the actions, the Browse buttons and Cancel."""
    return action_ids(description) + [clip_field(c) + "_browse" for c in description["clips"]
                                      if c["name"] != "plate"] + [CANCEL]
