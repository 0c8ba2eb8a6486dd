"""A small stand-in for Fusion's scripting objects (``fusion``, ``bmd``, ``comp``) for testing the ShotStyle script.

It behaves like Fusion / Resolve's Fusion page for every call the script makes (the names in
nodes/resolve/fusiontypes.pyi): UIManager widgets with Fusion's properties, a UIDispatcher
whose ``RunLoop`` plays queued interactions, a composition of tools whose inputs connect,
Loaders that read EXR sequences and Savers that ``Render`` real EXRs through OpenImageIO, and
a Resolve object whose Media Pool records ``ImportMedia``.

``script_globals()`` returns what Fusion gives a script: ``fusion``, ``fu``, ``bmd``, ``comp``.
"""

from __future__ import annotations

import re
from typing import Any, Callable, Dict, List, Optional

import OpenImageIO as oiio


# ======================================================================= UIManager
class Widget:
    def __init__(self, kind: str, props: Optional[Dict[str, Any]] = None, children: Optional[list] = None) -> None:
        self.__dict__["kind"] = kind
        self.__dict__["props"] = dict(props or {})
        self.__dict__["children"] = list(children or [])
        self.__dict__["items"] = []

    def __getattr__(self, name: str) -> Any:
        props = self.__dict__["props"]
        if name in props:
            return props[name]
        defaults = {"Text": "", "Value": 0, "Checked": False, "CurrentIndex": -1}
        if name == "CurrentText":
            index = props.get("CurrentIndex", 0 if self.items else -1)
            return self.items[index] if 0 <= index < len(self.items) else ""
        if name in defaults:
            return defaults[name]
        raise AttributeError("{} widget has no property {}".format(self.kind, name))

    def __setattr__(self, name: str, value: Any) -> None:
        if name == "CurrentIndex" and not 0 <= value < len(self.items):
            raise ValueError("CurrentIndex {} out of range".format(value))
        self.props[name] = value

    def AddItems(self, items: List[str]) -> None:
        self.items.extend(items)
        if self.props.get("CurrentIndex", -1) < 0 and self.items:
            self.props["CurrentIndex"] = 0

    def AddItem(self, item: str) -> None:
        self.AddItems([item])


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
                        "VGap", "HGap", "Slider", "TextEdit"):
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
    def __init__(self, props: Dict[str, Any], layout: Widget) -> None:
        self.props = props
        self.layout = layout
        self.On = _Events()
        self.shown = False

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

    def Hide(self) -> None:
        self.shown = False

    # stand-in only: what a user's click does
    def click(self, widget_id: str) -> None:
        self.On[widget_id].handlers["Clicked"]({"who": widget_id})


class UIDispatcher:
    def __init__(self, ui: UIManager) -> None:
        self.ui = ui
        self.windows: List[Window] = []
        self.looping = False

    def AddWindow(self, props: Dict[str, Any], layout: Widget) -> Window:
        window = Window(props, layout)
        self.windows.append(window)
        return window

    def RunLoop(self) -> None:
        """Plays the interactions queued with ``interact`` against the window, then returns."""
        self.looping = True
        while interactions and self.looping:
            interactions.pop(0)(self.windows[-1])
        self.looping = False

    def ExitLoop(self) -> None:
        self.looping = False


interactions: List[Callable[[Window], None]] = []


def interact(action: Callable[[Window], None]) -> None:
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


class Tool:
    def __init__(self, comp: "Comp", tool_id: str, name: str) -> None:
        self.comp = comp
        self.ID = tool_id
        self.Name = name
        self.inputs: Dict[str, Any] = {"GlobalIn": 1, "Blend": 1.0}
        self.connections: Dict[str, Optional["Tool"]] = {}
        self.Output = ToolOutput(self)

    def GetAttrs(self, name: str = "") -> Dict[str, Any]:
        attrs = {"TOOLS_Name": self.Name, "TOOLS_RegID": self.ID}
        return attrs

    def SetAttrs(self, attrs: Dict[str, Any]) -> None:
        if "TOOLS_Name" in attrs:
            del self.comp.tools[self.Name]
            self.Name = attrs["TOOLS_Name"]
            self.comp.tools[self.Name] = self

    def GetInput(self, name: str, time: Optional[float] = None) -> Any:
        return self.inputs.get(name)

    def SetInput(self, name: str, value: Any, time: Optional[float] = None) -> None:
        self.inputs[name] = value

    def ConnectInput(self, name: str, target: Any) -> bool:
        self.connections[name] = target.GetTool() if isinstance(target, ToolOutput) else target
        return True

    def FindMainOutput(self, index: int) -> ToolOutput:
        return self.Output

    def FindMainInput(self, index: int) -> ToolInput:
        return ToolInput(self, _MAIN_INPUT.get(self.ID, "Input"))

    def Delete(self) -> None:
        for other in self.comp.tools.values():
            for name, source in list(other.connections.items()):
                if source is self:
                    other.connections[name] = None
        del self.comp.tools[self.Name]

    # -- rendering (stand-in only)
    def image(self, time: int) -> oiio.ImageBuf:
        if self.ID in ("Loader", "MediaIn"):
            clip = str(self.inputs.get("Clip") or "")
            match = re.search(r"(\d+)(\.\w+)$", clip)
            assert match, "Loader clip {!r} has no frame number".format(clip)
            frame = int(match.group(1)) + time - int(self.inputs["GlobalIn"])
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


class Comp:
    def __init__(self, file_name: str = "", name: str = "Composition1", render_range=(1, 1)) -> None:
        self.tools: Dict[str, Tool] = {}
        self.CurrentTime = float(render_range[0])
        self.attrs = {"COMPS_FileName": file_name, "COMPS_Name": name,
                      "COMPN_RenderStart": float(render_range[0]), "COMPN_RenderEnd": float(render_range[1])}
        self.locked = 0
        self.undo: List[str] = []
        self.renders: List[Dict[str, Any]] = []

    def GetAttrs(self, name: str = "") -> Dict[str, Any]:
        return dict(self.attrs)

    def AddTool(self, tool_id: str, x: int = -32768, y: int = -32768) -> Tool:
        number = 1
        while "{}{}".format(tool_id, number) in self.tools:
            number += 1
        tool = Tool(self, tool_id, "{}{}".format(tool_id, number))
        self.tools[tool.Name] = tool
        return tool

    def FindTool(self, name: str) -> Optional[Tool]:
        return self.tools.get(name)

    def GetToolList(self, selected: bool = False, tool_type: str = "") -> Dict[float, Tool]:
        tools = [t for t in self.tools.values() if not tool_type or t.ID == tool_type]
        return {float(i + 1): tool for i, tool in enumerate(tools)}

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
        """Renders the Saver given as "Tool" (or every Saver) for Start..End, like Fusion: one EXR per frame."""
        self.renders.append(dict(settings))
        savers = [settings["Tool"]] if "Tool" in settings else [t for t in self.tools.values() if t.ID == "Saver"]
        for saver in savers:
            clip = str(saver.inputs["Clip"])
            match = re.search(r"(\d+)(\.exr)$", clip)
            assert match and saver.inputs.get("OutputFormat") == "OpenEXRFormat", saver.inputs
            for time in range(int(settings["Start"]), int(settings["End"]) + 1):
                path = clip[:match.start(1)] + str(time).zfill(len(match.group(1))) + match.group(2)
                buf = saver._pulled("Input", time).copy()
                buf.set_write_format(oiio.HALF if saver.inputs.get("OpenEXRFormat.Depth") == 1 else oiio.FLOAT)
                if not buf.write(path):
                    return False
        return True


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
        self.imported.extend(items)
        return [object() for _ in items]


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
