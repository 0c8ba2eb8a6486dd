"""A stand-in for Fusion's scripting objects (``fusion``, ``bmd``, ``comp``) for testing the ShotStyle script.

It behaves like Fusion / Resolve's Fusion page for every call the script makes (the names in
nodes/resolve/fusiontypes.pyi), including the ways the real application surprises a script.
Each behaviour carries its source where it is defined:

* ``comp.Lock()`` puts the comp in batch mode: no dialogs. Outside it, adding a Loader or Saver
  opens a file browser, a modal dialog that blocks the script (recorded in ``comp.dialogs``).
* ``AddTool(id, -32768, -32768)`` places the tool "as if clicked in the toolbar": next to the
  active tool and connected to it; explicit positions place it there, unconnected.
* ``comp.Render`` ends with a modal "Render completed!" dialog unless its ``RenderFlags`` carry
  the quiet flag (524288).
* Setting a Loader's ``Clip`` resets its ranges (GlobalIn to the comp's global start, GlobalOut
  to GlobalIn + length - 1, trims and holds to zero); ``GlobalIn`` cannot pass ``GlobalOut`` (or
  the reverse), and moving one alone changes the clip's length, which Fusion absorbs by
  trimming or holding frames rather than moving the clip.
* A Loader outputs no image outside GlobalIn..GlobalOut.
* ``MediaPool.ImportMedia`` returns the items it made: an empty list when nothing could be
  imported.
* UIManager windows get events only while the dispatcher loop runs; ``ui.Timer`` widgets fire
  ``Timeout`` events at their interval; a handler that does not return blocks the dialog
  (``UIDispatcher.longest_handler_s`` records the longest one).

``script_globals()`` returns what Fusion gives a script: ``fusion``, ``fu``, ``bmd``, ``comp``.
Differences on purpose: Savers and Loaders read and write EXRs through OpenImageIO; Fusion
calls from a thread other than the one running the dispatcher raise (a conservative
assumption: Fusion documents no thread safety for its scripting objects).
"""

from __future__ import annotations

import glob
import os
import re
import threading
import time
from typing import Any, Callable, Dict, List, Optional, Tuple

import OpenImageIO as oiio

AUTO_POSITION = -32768
# ynput/ayon-fusion client/ayon_fusion/plugins/publish/extract_render_local.py: "Fusion render
# flag to avoid Render Completed dialog to pop up after render" (REQF_Quiet), with the
# WeSuckLess thread it comes from.
REQF_QUIET = 524288


def _fusion_thread() -> None:
    if threading.current_thread() is not threading.main_thread():
        raise RuntimeError("stand-in Fusion: scripting call from a worker thread ({})".format(
            threading.current_thread().name))


# ======================================================================= UIManager
class Widget:
    def __init__(self, kind: str, props: Optional[Dict[str, Any]] = None, children: Optional[list] = None) -> None:
        self.__dict__["kind"] = kind
        self.__dict__["props"] = dict(props or {})
        self.__dict__["children"] = list(children or [])
        self.__dict__["items"] = []
        self.__dict__["active"] = False
        self.__dict__["last_fired"] = 0.0

    def __getattr__(self, name: str) -> Any:
        props = self.__dict__["props"]
        if name in props:
            return props[name]
        defaults = {"Text": "", "Value": 0, "Checked": False, "CurrentIndex": -1, "Enabled": True}
        if name == "CurrentText":
            index = props.get("CurrentIndex", 0 if self.items else -1)
            return self.items[index] if 0 <= index < len(self.items) else ""
        if name in defaults:
            return defaults[name]
        raise AttributeError("{} widget has no property {}".format(self.kind, name))

    def __setattr__(self, name: str, value: Any) -> None:
        # Widgets are Qt widgets: "QWidget and all its subclasses, are not reentrant. They can only
        # be used from within the main thread" (doc.qt.io/qt-5/threads-reentrancy.html).
        _fusion_thread()
        if name == "CurrentIndex" and not 0 <= value < len(self.items):
            raise ValueError("CurrentIndex {} out of range".format(value))
        self.props[name] = value

    def AddItems(self, items: List[str]) -> None:
        self.items.extend(items)
        if self.props.get("CurrentIndex", -1) < 0 and self.items:
            self.props["CurrentIndex"] = 0

    def AddItem(self, item: str) -> None:
        self.AddItems([item])

    # Timer (github.com/EmberLightVFX/Fusion-Script-Docs docs/UITimer.md: a Qt QTimer with
    # Interval, SingleShot, Start(), Stop(); it sends Timeout events to the window).
    def Start(self) -> None:
        self.__dict__["active"] = True
        self.__dict__["last_fired"] = time.monotonic()

    def Stop(self) -> None:
        self.__dict__["active"] = False


class UIManager:
    def _group(self, kind: str, *args: Any) -> Widget:
        props, children = ({}, args[0]) if len(args) == 1 else (args[0], args[1])
        return Widget(kind, props, children)

    def VGroup(self, *args: Any) -> Widget:
        return self._group("VGroup", *args)

    def HGroup(self, *args: Any) -> Widget:
        return self._group("HGroup", *args)

    def __getattr__(self, kind: str) -> Callable[..., Widget]:
        if kind not in ("Label", "LineEdit", "SpinBox", "DoubleSpinBox", "CheckBox", "ComboBox", "Button",
                        "VGap", "HGap", "Slider", "TextEdit", "Timer"):
            raise AttributeError("UIManager has no widget {}".format(kind))
        return lambda props=None, *rest: Widget(kind, props if isinstance(props, dict) else {})


class _Slot:
    def __init__(self) -> None:
        self.__dict__["handlers"] = {}

    def __setattr__(self, event: str, handler: Callable) -> None:
        self.handlers[event] = handler


class _Events:
    def __init__(self) -> None:
        self.__dict__["slots"] = {}

    def __getattr__(self, widget_id: str) -> _Slot:
        return self.slots.setdefault(widget_id, _Slot())

    def __getitem__(self, widget_id: str) -> _Slot:
        return self.__getattr__(widget_id)


class Window:
    def __init__(self, props: Dict[str, Any], layout: Widget, dispatcher: "UIDispatcher") -> None:
        self.props = props
        self.layout = layout
        self.On = _Events()
        self.shown = False
        self.dispatcher = dispatcher

    def GetItems(self) -> Dict[str, Widget]:
        found: Dict[str, Widget] = {}

        def walk(widget: Widget) -> None:
            if "ID" in widget.props:
                found[widget.props["ID"]] = widget
            for child in widget.children:
                walk(child)

        walk(self.layout)
        return found

    def Find(self, widget_id: str) -> Widget:
        return self.GetItems()[widget_id]

    def Show(self) -> None:
        self.shown = True

    def AddChild(self, widget: Widget) -> None:
        self.layout.children.append(widget)

    def Hide(self) -> None:
        self.shown = False

    # stand-in only: what a user's click does
    def click(self, widget_id: str) -> None:
        widget = self.GetItems().get(widget_id)
        if widget is not None and not widget.Enabled:
            raise AssertionError("{} is disabled; the artist cannot click it".format(widget_id))
        self.dispatcher.handle(self.On[widget_id].handlers["Clicked"], {"who": widget_id})


class UIDispatcher:
    def __init__(self, ui: UIManager) -> None:
        self.ui = ui
        self.windows: List[Window] = []
        self.looping = False
        self.longest_handler_s = 0.0

    def AddWindow(self, props: Dict[str, Any], layout: Widget) -> Window:
        window = Window(props, layout, self)
        self.windows.append(window)
        return window

    def handle(self, handler: Callable, event: Dict[str, Any]) -> None:
        """Run one event handler on the loop's thread, timing it: while it runs the dialog is frozen."""
        started = time.monotonic()
        try:
            handler(event)
        finally:
            self.longest_handler_s = max(self.longest_handler_s, time.monotonic() - started)

    def _fire_timers(self, window: Window) -> bool:
        fired = False
        for widget_id, widget in window.GetItems().items():
            if widget.kind != "Timer" or not widget.active:
                continue
            if time.monotonic() - widget.last_fired >= float(widget.props.get("Interval", 0)) / 1000.0:
                widget.__dict__["last_fired"] = time.monotonic()
                if widget.props.get("SingleShot"):
                    widget.Stop()
                handler = window.On[widget_id].handlers.get("Timeout")
                if handler is not None:
                    self.handle(handler, {"who": widget_id})
                    fired = True
        return fired

    def RunLoop(self, timeout: float = 120.0) -> None:
        """Plays the interactions queued with ``interact`` and fires timers until ExitLoop or nothing is left.

        An interaction that returns False is not done yet (it waits for something, e.g. a status
        text) and is tried again after the next timer events.
        """
        self.looping = True
        deadline = time.monotonic() + timeout
        window = self.windows[-1]
        while self.looping:
            if time.monotonic() > deadline:
                raise TimeoutError("stand-in RunLoop: interactions still waiting after {} s".format(timeout))
            timers_active = any(w.kind == "Timer" and w.active for w in window.GetItems().values())
            if interactions:
                if interactions[0](window) is not False:
                    interactions.pop(0)
            elif not timers_active:
                break
            if not self._fire_timers(window):
                time.sleep(0.005)
        self.looping = False

    def ExitLoop(self) -> None:
        self.looping = False


interactions: List[Callable[[Window], Any]] = []


def interact(action: Callable[[Window], Any]) -> None:
    interactions.append(action)


# ======================================================================= comp and tools
class ToolOutput:
    def __init__(self, tool: "Tool") -> None:
        self.tool = tool

    def GetTool(self) -> "Tool":
        return self.tool

    def GetConnectedInputs(self) -> Dict[float, "ToolInput"]:
        connected = [ToolInput(other, name) for other in self.tool.comp.tools.values()
                     for name, source in other.connections.items() if source is self.tool]
        return {float(i + 1): inp for i, inp in enumerate(connected)}


class ToolInput:
    def __init__(self, tool: "Tool", name: str) -> None:
        self.tool = tool
        self.Name = name

    def GetTool(self) -> "Tool":
        return self.tool

    def ConnectTo(self, output: Optional[ToolOutput]) -> bool:
        self.tool.ConnectInput(self.Name, output)
        return True

    def GetConnectedOutput(self) -> Optional[ToolOutput]:
        source = self.tool.connections.get(self.Name)
        return None if source is None else source.Output


_MAIN_INPUT = {"Saver": "Input", "Merge": "Background", "MediaOut": "Input", "BrightnessContrast": "Input"}
_LOADER_RANGE = ("GlobalIn", "GlobalOut", "ClipTimeStart", "ClipTimeEnd", "HoldFirstFrame", "HoldLastFrame")


def _sequence_length(first_file: str) -> int:
    """Consecutive files on disk from ``first_file`` on (what a Loader calls the clip's length)."""
    match = re.search(r"(\d+)(\.\w+)$", first_file)
    if not match or not os.path.isfile(first_file):
        return 0
    head, digits, tail = first_file[:match.start(1)], match.group(1), match.group(2)
    length = 0
    while os.path.isfile(head + str(int(digits) + length).zfill(len(digits)) + tail):
        length += 1
    return length


class Tool:
    def __init__(self, comp: "Comp", tool_id: str, name: str) -> None:
        self.comp = comp
        self.ID = tool_id
        self.Name = name
        self.inputs: Dict[str, Any] = {"Blend": 1.0}
        if tool_id in ("Loader", "MediaIn"):
            self.inputs.update({key: 0 for key in _LOADER_RANGE})
        self.connections: Dict[str, Optional["Tool"]] = {}
        self.Output = ToolOutput(self)
        self.position: Tuple[int, int] = (AUTO_POSITION, AUTO_POSITION)

    def GetAttrs(self, name: str = "") -> Dict[str, Any]:
        _fusion_thread()
        attrs: Dict[str, Any] = {"TOOLS_Name": self.Name, "TOOLS_RegID": self.ID}
        if self.ID in ("Loader", "MediaIn"):
            attrs["TOOLIT_Clip_Length"] = {1.0: _sequence_length(str(self.inputs.get("Clip") or ""))}
        return attrs

    def SetAttrs(self, attrs: Dict[str, Any]) -> None:
        _fusion_thread()
        if "TOOLS_Name" in attrs:
            del self.comp.tools[self.Name]
            self.Name = attrs["TOOLS_Name"]
            self.comp.tools[self.Name] = self

    def GetInput(self, name: str, time: Optional[float] = None) -> Any:
        _fusion_thread()
        return self.inputs.get(name)

    def SetInput(self, name: str, value: Any, time: Optional[float] = None) -> None:
        _fusion_thread()
        if self.ID in ("Loader", "MediaIn") and name == "Clip":
            self._set_clip(str(value))
        elif self.ID in ("Loader", "MediaIn") and name in ("GlobalIn", "GlobalOut"):
            self._set_global(name, int(value))
        else:
            self.inputs[name] = value

    def _set_clip(self, path: str) -> None:
        # ynput/ayon-fusion client/ayon_fusion/plugins/load/load_sequence.py (update()): a new
        # clip whose duration differs resets ClipTimeStart/End, GlobalIn (to the comp's global
        # in), GlobalOut (GlobalIn + length) and HoldFirst/LastFrame.
        first_clip = "Clip" not in self.inputs
        old_length = _sequence_length(str(self.inputs.get("Clip") or ""))
        self.inputs["Clip"] = path
        length = _sequence_length(path)
        if length != old_length or first_clip:
            start = int(self.comp.attrs["COMPN_GlobalStart"])
            self.inputs.update({"ClipTimeStart": 0, "ClipTimeEnd": max(0, length - 1), "GlobalIn": start,
                                "GlobalOut": start + max(0, length - 1), "HoldFirstFrame": 0, "HoldLastFrame": 0})

    def _set_global(self, name: str, value: int) -> None:
        # Same file, loader_shift(): "GlobalIn cannot be set past GlobalOut or vice versa", and
        # "Shifting global in will try to automatically compensate for the change in the
        # ClipTimeStart and HoldFirstFrame inputs"; the Resolve manual (MediaIn, Global In and
        # Out) says Fusion trims the clip when the range shrinks and holds frames when it grows.
        i = self.inputs
        if (name == "GlobalIn" and value > i["GlobalOut"]) or (name == "GlobalOut" and value < i["GlobalIn"]):
            return
        trim, hold = ("ClipTimeStart", "HoldFirstFrame") if name == "GlobalIn" else ("ClipTimeEnd", "HoldLastFrame")
        shorter = value - i[name] if name == "GlobalIn" else i[name] - value   # > 0: fewer frames shown
        i[name] = value
        if shorter > 0:
            from_hold = min(shorter, i[hold])
            i[hold] -= from_hold
            step = shorter - from_hold
            i[trim] += step if trim == "ClipTimeStart" else -step
        else:
            longer = -shorter
            limit = i["ClipTimeStart"] if trim == "ClipTimeStart" else (
                _sequence_length(str(i.get("Clip") or "")) - 1 - i["ClipTimeEnd"])
            from_trim = min(longer, max(0, limit))
            i[trim] += -from_trim if trim == "ClipTimeStart" else from_trim
            i[hold] += longer - from_trim

    def ConnectInput(self, name: str, target: Any) -> bool:
        _fusion_thread()
        self.connections[name] = target.GetTool() if isinstance(target, ToolOutput) else target
        return True

    def FindMainOutput(self, index: int) -> ToolOutput:
        return self.Output

    def FindMainInput(self, index: int) -> ToolInput:
        return ToolInput(self, _MAIN_INPUT.get(self.ID, "Input"))

    def Delete(self) -> None:
        _fusion_thread()
        for other in self.comp.tools.values():
            for name, source in list(other.connections.items()):
                if source is self:
                    other.connections[name] = None
        del self.comp.tools[self.Name]
        if self.comp.ActiveTool is self:
            self.comp.ActiveTool = None

    # -- rendering (stand-in only)
    def clip_frame_at(self, time: int) -> int:
        """Which file of the clip (0-based) a Loader shows at comp time ``time``; ValueError outside its range."""
        i = self.inputs
        if not i["GlobalIn"] <= time <= i["GlobalOut"]:
            raise ValueError("{} has no image at frame {} (its range is {}-{})".format(
                self.Name, time, i["GlobalIn"], i["GlobalOut"]))
        k = time - i["GlobalIn"]
        if k < i["HoldFirstFrame"]:
            return int(i["ClipTimeStart"])
        return int(min(i["ClipTimeStart"] + k - i["HoldFirstFrame"], i["ClipTimeEnd"]))

    def image(self, time: int) -> oiio.ImageBuf:
        if self.ID in ("Loader", "MediaIn"):
            clip = str(self.inputs.get("Clip") or "")
            match = re.search(r"(\d+)(\.\w+)$", clip)
            assert match, "Loader clip {!r} has no frame number".format(clip)
            frame = int(match.group(1)) + self.clip_frame_at(time)
            path = clip[:match.start(1)] + str(frame).zfill(len(match.group(1))) + match.group(2)
            buf = oiio.ImageBuf(path)
            if not buf.read(force=True):
                raise RuntimeError("{}: cannot read {}".format(self.Name, path))
            return buf
        if self.ID == "Merge":
            background = self._pulled("Background", time)
            foreground = self._pulled("Foreground", time)
            blend = float(self.inputs["Blend"])
            return oiio.ImageBufAlgo.add(oiio.ImageBufAlgo.mul(background, 1 - blend),
                                         oiio.ImageBufAlgo.mul(foreground, blend))
        return self._pulled(_MAIN_INPUT.get(self.ID, "Input"), time)

    def _pulled(self, name: str, time: int) -> oiio.ImageBuf:
        source = self.connections.get(name)
        if source is None:
            raise RuntimeError("{}: input {} is not connected".format(self.Name, name))
        return source.image(time)


class FlowView:
    """github.com/EmberLightVFX/Fusion-Script-Docs docs/FlowView.md: GetPosTable, SetPos."""

    def __init__(self, comp: "Comp") -> None:
        self.comp = comp

    def GetPosTable(self, tool: Tool) -> Optional[Dict[float, float]]:
        _fusion_thread()
        x, y = tool.position
        return None if x == AUTO_POSITION else {1.0: float(x), 2.0: float(y)}

    def SetPos(self, tool: Tool, x: float, y: float) -> None:
        _fusion_thread()
        tool.position = (int(x), int(y))


class ChildFrame:
    def __init__(self, comp: "Comp") -> None:
        self.FlowView = FlowView(comp)


class Comp:
    def __init__(self, file_name: str = "", name: str = "Composition1", render_range=(1, 1),
                 global_range: Optional[Tuple[int, int]] = None) -> None:
        self.tools: Dict[str, Tool] = {}
        self.CurrentTime = float(render_range[0])
        start, end = global_range or render_range
        self.attrs = {"COMPS_FileName": file_name, "COMPS_Name": name,
                      "COMPN_RenderStart": float(render_range[0]), "COMPN_RenderEnd": float(render_range[1]),
                      "COMPN_GlobalStart": float(start), "COMPN_GlobalEnd": float(end)}
        self.locked = 0
        self.undo: List[str] = []
        self.renders: List[Dict[str, Any]] = []
        self.dialogs: List[str] = []           # modal dialogs that would have blocked the script
        self.unlocked_adds: List[str] = []     # tools added outside Lock()
        self.ActiveTool: Optional[Tool] = None
        self.CurrentFrame = ChildFrame(self)

    def GetAttrs(self, name: str = "") -> Dict[str, Any]:
        _fusion_thread()
        return dict(self.attrs)

    def AddTool(self, tool_id: str, x: int = AUTO_POSITION, y: int = AUTO_POSITION) -> Tool:
        _fusion_thread()
        number = 1
        while "{}{}".format(tool_id, number) in self.tools:
            number += 1
        tool = Tool(self, tool_id, "{}{}".format(tool_id, number))
        self.tools[tool.Name] = tool
        if not self.locked:
            self.unlocked_adds.append(tool.Name)
            if tool_id in ("Loader", "Saver"):
                # VFXPedia, Composition:Lock(): locking "ensures Fusion won't pop up a dialog to
                # ask for user input, e.g. when adding a Loader" (the file browser).
                self.dialogs.append("file browser for new {}".format(tool.Name))
        if (x, y) == (AUTO_POSITION, AUTO_POSITION):
            # Fusion 8 Scripting Guide, Composition.AddTool: -32768 adds the tool "as if you had
            # clicked on one of the toolbar icons ... positioned next to the currently selected
            # one and a connection will automatically be made if possible".
            active = self.ActiveTool
            if active is not None and active is not tool:
                tool.connections[_MAIN_INPUT.get(tool_id, "Input")] = active
                ax, ay = active.position
                tool.position = (ax + 1, ay) if ax != AUTO_POSITION else (AUTO_POSITION, AUTO_POSITION)
        else:
            tool.position = (int(x), int(y))
        return tool

    def FindTool(self, name: str) -> Optional[Tool]:
        _fusion_thread()
        return self.tools.get(name)

    def GetToolList(self, selected: bool = False, tool_type: str = "") -> Dict[float, Tool]:
        _fusion_thread()
        tools = [t for t in self.tools.values() if (not tool_type or t.ID == tool_type)
                 and (not selected or t is self.ActiveTool)]
        return {float(i + 1): tool for i, tool in enumerate(tools)}

    def SetActiveTool(self, tool: Optional[Tool]) -> None:
        self.ActiveTool = tool

    def Lock(self) -> None:
        self.locked += 1

    def Unlock(self) -> None:
        self.locked -= 1

    def StartUndo(self, name: str) -> None:
        self.undo.append(name)

    def EndUndo(self, keep: bool) -> None:
        pass

    def MapPath(self, path: str) -> str:
        return path

    def Render(self, settings: Dict[str, Any]) -> bool:
        """Renders the Saver given as "Tool" (or every Saver) for Start..End, like Fusion: one EXR per frame.

        A locked comp renders too (ayon-fusion's extract_render_local.py renders inside its
        comp_lock_and_undo_chunk), and the lock does not stop the "Render completed" dialog: the
        quiet RenderFlags do (same file).
        """
        _fusion_thread()
        self.renders.append(dict(settings))
        savers = [settings["Tool"]] if "Tool" in settings else [t for t in self.tools.values() if t.ID == "Saver"]
        ok = True
        for saver in savers:
            clip = str(saver.inputs["Clip"])
            match = re.search(r"(\d+)(\.exr)$", clip)
            assert match and saver.inputs.get("OutputFormat") == "OpenEXRFormat", saver.inputs
            for time_ in range(int(settings["Start"]), int(settings["End"]) + 1):
                path = clip[:match.start(1)] + str(time_).zfill(len(match.group(1))) + match.group(2)
                buf = saver._pulled("Input", time_).copy()
                buf.set_write_format(oiio.HALF if saver.inputs.get("OpenEXRFormat.Depth") == 1 else oiio.FLOAT)
                if not buf.write(path):
                    ok = False
        if not int(settings.get("RenderFlags", 0)) & REQF_QUIET:
            self.dialogs.append("Render completed!" if ok else "WARNING! Render did not complete!")
        return ok


# ======================================================================= application objects
class Fusion:
    def __init__(self, comp: Comp) -> None:
        self.UIManager = UIManager()
        self.comp = comp
        self.requested_file = ""

    def GetCurrentComp(self) -> Comp:
        return self.comp

    def RequestFile(self, path: str = "") -> Optional[str]:
        return self.requested_file or None


class MediaPool:
    def __init__(self) -> None:
        self.imported: List[Any] = []

    def ImportMedia(self, items: List[Any]) -> List[Any]:
        """Returns the MediaPoolItems made (fusionscript-stubs, MediaPool.ImportMedia): none when the
        files are not there."""
        made = []
        for item in items:
            pattern = item["FilePath"]
            paths = [pattern % frame for frame in range(item["StartIndex"], item["EndIndex"] + 1)] \
                if "%" in pattern else glob.glob(pattern)
            if paths and all(os.path.isfile(p) for p in paths):
                self.imported.append(item)
                made.append(object())
        return made


class Resolve:
    def __init__(self) -> None:
        self.media_pool = MediaPool()

    def GetProjectManager(self) -> "Resolve":
        return self

    def GetCurrentProject(self) -> "Resolve":
        return self

    def GetMediaPool(self) -> MediaPool:
        return self.media_pool


class Bmd:
    def __init__(self, resolve: Optional[Resolve]) -> None:
        self.resolve = resolve

    def UIDispatcher(self, ui: UIManager) -> UIDispatcher:
        return UIDispatcher(ui)

    def scriptapp(self, name: str) -> Optional[Resolve]:
        return self.resolve if name == "Resolve" else None


def script_globals(comp: Comp, in_resolve: bool = True) -> Dict[str, Any]:
    """The globals Fusion hands a Scripts/Comp script (Resolve's Fusion page when ``in_resolve``)."""
    fusion = Fusion(comp)
    return {"fusion": fusion, "fu": fusion, "comp": comp, "bmd": Bmd(Resolve() if in_resolve else None)}
