"""A stand-in for Foundry's ``nuke`` Python module, for testing the ShotStyle node without Nuke.

It behaves like the real module for every call the node makes (same names and signatures as
the published ``types-nuke`` stubs), including the ways real Nuke refuses or surprises a
plug-in. Each behaviour below carries, where it is defined, the source it was taken from:

* ``execute`` renders Write nodes frame by frame through the node graph and writes real EXRs
  with OpenImageIO; render callbacks fire like Nuke's; a render cannot start while another one
  runs ("I'm already executing something else") and nodes cannot be created inside one;
  ``executing()`` is true while it runs.
* ``executeInMainThread`` queues the call for the GUI's main thread and returns at once;
  ``executeInMainThreadWithResult`` blocks until the main thread has run it (tests pump the
  queue with ``main_loop``).
* ``knobChanged`` fires for user edits (``user_edit``), not for ``setValue`` from Python.
* Enumeration knobs (Write ``file_type``/``datatype``/``compression``, Read ``on_error``/
  ``before``/``after``) refuse values they do not list; a Write's EXR knobs exist only once
  its ``file_type`` is exr.
* Read nodes honour their frame range, ``before``/``after`` and ``on_error`` (missing frames).
* File knobs evaluate embedded ``[python {...}]`` TCL when the file is used.
* A node's ``onCreate`` knob runs when a script is opened or nodes are pasted.

Differences on purpose: Text2 does not draw text (it records its message in the image's
metadata under ``nuke/warning`` so tests can see it); scripts are saved as pickles of the node
tree, not ``.nk`` text; in terminal sessions (``GUI`` false) ``executeInMainThread`` runs the
call at once. ``tests/hosts/nuke_cli.py`` is the matching stand-in for the ``nuke`` executable.
"""

from __future__ import annotations

import os
import pickle
import queue
import re
import sys
import threading
from typing import Any, Callable, Dict, List, Optional, Tuple

import OpenImageIO as oiio

GUI = False
INTERACTIVE = False
NUKE_VERSION_MAJOR = 15
STARTLINE, INVISIBLE, READ_ONLY, ENDLINE = 0x1000, 0x400, 0x10000000, 0x2000
TABBEGINGROUP, TABENDGROUP, TABBEGINCLOSEDGROUP = 1, -1, 2
REPLACE = 1
# What real Nuke says when a render is started (or a node made) while a render runs. Public
# tools report it for nuke.execute() inside render and knobChanged callbacks: the comment at
# the top of callbacks.py in github.com/Likhith-24/Nuke-Sam3-Gizmo, and a Write "Render Local"
# tool that had to move nuke.executeMultiple() out of a callback for the same error.
ALREADY_EXECUTING = "I'm already executing something else"

# What tests look at afterwards.
messages: List[str] = []
printed: List[str] = []
progress_tasks: List["ProgressTask"] = []
cancel_after_progress: List[Optional[int]] = [None]   # ProgressTask.isCancelled() turns true after N updates
plugin_paths: List[str] = []
panels_shown: List[str] = []                          # nodes whose control panel was opened
browsers_shown: List[Tuple[str, str, str]] = []       # getFilename's (message, pattern, default)
files_chosen: List[str] = []                          # what the artist picks in the next browsers (none: cancel)
render_edits: List[str] = []                          # knobs set while a render ran (instrumentation)
_callbacks: Dict[str, List[Tuple[Callable, tuple, dict, str]]] = {}
_executing = [0]


class CancelledError(Exception):
    pass


# ======================================================================= knobs
class Knob:
    default: Any = ""

    def __init__(self, name: str, label: Optional[str] = None, *args: Any, **kwargs: Any) -> None:
        self._name = name
        self._label = label if label is not None else name
        self._value: Any = self.default
        self._expression: Optional[str] = None
        self._flags = 0
        self._tooltip = ""
        self._node: Optional["Node"] = None
        self._visible = True

    def Class(self) -> str:
        return type(self).__name__

    def name(self) -> str:
        return self._name

    def label(self) -> str:
        return self._label

    def node(self) -> "Node":
        assert self._node is not None, "knob not on a node"
        return self._node

    def setFlag(self, flag: int) -> None:
        self._flags |= flag

    def clearFlag(self, flag: int) -> None:
        self._flags &= ~flag

    def getFlag(self, flag: int) -> bool:
        return bool(self._flags & flag)

    def setTooltip(self, tooltip: str) -> None:
        self._tooltip = tooltip

    def tooltip(self) -> str:
        return self._tooltip

    def setVisible(self, visible: bool) -> None:
        self._visible = visible

    def visible(self) -> bool:
        return self._visible

    def setEnabled(self, enabled: bool) -> None:
        pass

    def _coerce(self, value: Any) -> Any:
        return value

    def setValue(self, value: Any, *args: Any) -> Any:
        # No knobChanged here: Nuke 13-16 document knobChanged as "code to execute when the
        # user changes a knob" (learn.foundry.com/nuke/developers/132/pythondevguide/
        # _autosummary/nuke.addKnobChanged.html; the NDK's knob_changed() likewise fires on
        # "user interaction events"). Tests simulate the user with user_edit().
        self._value = self._coerce(value)
        self._expression = None
        if _executing[0]:
            render_edits.append("{}.{}".format(self._node.fullName() if self._node else "?", self._name))
        return True

    def setExpression(self, expression: str, *args: Any) -> bool:
        self._expression = expression
        return True

    def hasExpression(self, *args: Any) -> bool:
        return self._expression is not None

    def value(self, *args: Any) -> Any:
        if self._expression is not None:
            return self._coerce(_evaluate(self._expression, self))
        return self._value

    getValue = value


class String_Knob(Knob):
    def _coerce(self, value: Any) -> Any:
        return "" if value is None else str(value)


class EvalString_Knob(String_Knob):
    def evaluate(self) -> str:
        """The value with embedded TCL ``[python {...}]`` evaluated, as Nuke does when the file is used."""
        return _evaluate_tcl(str(self.value()), self)


class File_Knob(EvalString_Knob):
    pass


class Multiline_Eval_String_Knob(EvalString_Knob):
    pass


class PythonKnob(String_Knob):
    pass


class Text_Knob(Knob):
    def __init__(self, name: str, label: Optional[str] = None, text: str = "", *args: Any) -> None:
        super().__init__(name, label)
        self._value = text


class Tab_Knob(Knob):
    def __init__(self, name: str, label: Optional[str] = None, flags: int = 0) -> None:
        super().__init__(name, label)
        self.group_flag = flags


class Array_Knob(Knob):
    default: Any = 0.0

    def setRange(self, low: float, high: float) -> None:
        self.range = (low, high)

    def _coerce(self, value: Any) -> Any:
        return float(value)


class Int_Knob(Array_Knob):
    default = 0

    def _coerce(self, value: Any) -> Any:
        return int(value)


class Double_Knob(Array_Knob):
    pass


class Boolean_Knob(Array_Knob):
    default = False

    def _coerce(self, value: Any) -> Any:
        return bool(value)


class Disable_Knob(Boolean_Knob):
    pass


class Unsigned_Knob(Array_Knob):
    default = 0


class ColorChip_Knob(Unsigned_Knob):
    def _coerce(self, value: Any) -> Any:
        return int(value)


class Enumeration_Knob(Unsigned_Knob):
    def __init__(self, name: str, label: Optional[str] = None, values: Optional[List[str]] = None) -> None:
        super().__init__(name, label)
        self._values = list(values or [])
        self._value = 0

    def values(self) -> List[str]:
        return list(self._values)

    def setValues(self, values: List[str]) -> None:
        self._values = list(values)
        self._value = 0

    def numValues(self) -> int:
        return len(self._values)

    def enumName(self, n: int) -> str:
        return self._values[n]

    def _coerce(self, value: Any) -> Any:
        # Enumeration knobs take one of their items (by name or index) and nothing else: tools
        # that set Read/Write enumerations check knob.values() first because an unknown name
        # is an error (the enum helper in a public Nuke render-QC tool; Enumeration_Knob
        # "manages a set of keywords", learn.foundry.com/nuke/developers/120/pythonreference/
        # nuke.Enumeration_Knob-class.html).
        if isinstance(value, str):
            if value not in self._values:
                raise ValueError("Bad value for {}: {!r} (one of {})".format(self._name, value, self._values))
            return self._values.index(value)
        if not 0 <= int(value) < max(1, len(self._values)):
            raise ValueError("Bad value for {}: index {} of {} items".format(self._name, value, len(self._values)))
        return int(value)

    def value(self, *args: Any) -> Any:
        return self._values[int(super().value())] if self._values else ""


class ChannelMask_Knob(String_Knob):
    pass


class Script_Knob(String_Knob):
    def __init__(self, name: str, label: Optional[str] = None, command: str = "") -> None:
        super().__init__(name, label)
        self._value = command

    def command(self) -> str:
        return self._value

    def setCommand(self, command: str) -> None:
        self._value = command

    def execute(self) -> None:
        _run_python(self._value, self.node(), self)


class PyScript_Knob(Script_Knob):
    pass


# ======================================================================= expressions
_this_nodes: List["Node"] = []
_this_knobs: List[Knob] = []


def _run_python(code: str, node: "Node", knob: Optional[Knob] = None, evaluate: bool = False) -> Any:
    _this_nodes.append(node)
    if knob is not None:
        _this_knobs.append(knob)
    try:
        namespace = {"nuke": sys.modules[__name__]}
        return eval(code, namespace) if evaluate else exec(code, namespace)
    finally:
        _this_nodes.pop()
        if knob is not None:
            _this_knobs.pop()


def _evaluate(expression: str, knob: Knob) -> Any:
    """The two expression forms the node uses: ``[python {...}]`` and ``!parent.knob`` / ``parent.knob``."""
    python = re.fullmatch(r"\[python \{(.*)\}\]", expression, re.S)
    if python:
        return _run_python(python.group(1), knob.node(), evaluate=True)
    parent_ref = re.fullmatch(r"(!?)parent\.(\w+)", expression)
    if parent_ref:
        value = knob.node().parent()[parent_ref.group(2)].value()
        return (not value) if parent_ref.group(1) else value
    raise NotImplementedError("stand-in nuke cannot evaluate expression {!r}".format(expression))


def _evaluate_tcl(text: str, knob: Knob) -> str:
    """``text`` with each ``[python {...}]`` replaced by its value (file knobs are TCL-evaluated on use)."""
    return re.sub(r"\[python \{(.*?)\}\]", lambda m: str(_run_python(m.group(1), knob.node(), evaluate=True)), text,
                  flags=re.S)


def thisNode() -> "Node":
    return _this_nodes[-1]


def thisKnob() -> Knob:
    return _this_knobs[-1]


def thisParent() -> Optional["Group"]:
    return thisNode().parent()


def thisGroup() -> "Group":
    return _context[-1]


# ======================================================================= nodes
# Write/Read knobs and their items, from the Write and Read node reference pages
# (learn.foundry.com/nuke/content/reference_guide/image_nodes/write.html and .../read.html:
# "missing frames" on_error error/black/checkerboard/nearest frame; before/after hold/loop/
# bounce/black/error) and the order pipeline tools set them in (file_type first, then the EXR
# writer's datatype/compression: pype/plugins/nuke/create/create_write_exr.py in
# github.com/ynput/OpenPype).
FILE_TYPES = ["", "cin", "dpx", "exr", "hdr", "jpeg", "mov", "null", "png", "sgi", "targa", "tiff"]
EXR_DATATYPES = ["16 bit half", "32 bit float"]
EXR_COMPRESSIONS = ["none", "Zip (1 scanline)", "Zip (16 scanlines)", "PIZ Wavelet (32 scanlines)", "RLE",
                    "B44", "B44A", "DWAA", "DWAB"]
READ_MISSING = ["error", "black", "checkerboard", "nearest frame"]
READ_OUTSIDE = ["hold", "loop", "bounce", "black", "error"]

_BUILTIN_KNOBS: Dict[str, List[Tuple[Callable[[str], Knob], str, Any]]] = {
    "*": [(String_Knob, "label", ""), (Disable_Knob, "disable", False), (ColorChip_Knob, "tile_color", 0)],
    "Group": [(PythonKnob, "knobChanged", ""), (PythonKnob, "onCreate", "")],
    "Root": [(File_Knob, "name", ""), (Int_Knob, "first_frame", 1), (Int_Knob, "last_frame", 100)],
    "Read": [(File_Knob, "file", ""), (Int_Knob, "first", 1), (Int_Knob, "last", 1), (Int_Knob, "origfirst", 1),
             (Int_Knob, "origlast", 1), (Boolean_Knob, "raw", False),
             (lambda n: Enumeration_Knob(n, n, READ_OUTSIDE), "before", "hold"),
             (lambda n: Enumeration_Knob(n, n, READ_OUTSIDE), "after", "hold"),
             (lambda n: Enumeration_Knob(n, n, READ_MISSING), "on_error", "error"),
             (PyScript_Knob, "reload", "")],
    "Write": [(File_Knob, "file", ""), (lambda n: Enumeration_Knob(n, n, FILE_TYPES), "file_type", ""),
              (ChannelMask_Knob, "channels", "rgb"), (Boolean_Knob, "raw", False)],
    "Switch": [(Double_Knob, "which", 0.0)],
    "Text2": [(String_Knob, "message", "")],
    "Input": [(Int_Knob, "number", 0)],
}
# Knobs the EXR writer adds to a Write once its file_type is exr.
_EXR_WRITE_KNOBS: List[Tuple[Callable[[str], Knob], str, Any]] = [
    (lambda n: Enumeration_Knob(n, n, EXR_DATATYPES), "datatype", "16 bit half"),
    (lambda n: Enumeration_Knob(n, n, EXR_COMPRESSIONS), "compression", "Zip (1 scanline)")]


class Node:
    def __init__(self, node_class: str, parent: Optional["Group"]) -> None:
        self._class = node_class
        self._parent = parent
        self._knobs: Dict[str, Knob] = {}
        self._inputs: List[Optional[Node]] = []
        self._name = ""
        self._selected = False
        for key in ("*", node_class):
            self._add_builtins(_BUILTIN_KNOBS.get(key, []))

    def _add_builtins(self, specs: List[Tuple[Callable[[str], Knob], str, Any]]) -> None:
        for make, name, default in specs:
            if name in self._knobs:
                continue
            knob = make(name)
            knob._node = self
            if isinstance(knob, Enumeration_Knob):
                knob._value = knob._coerce(default)
            else:
                knob._value = default
            self._knobs[name] = knob

    # -- identity
    def Class(self) -> str:
        return self._class

    def name(self) -> str:
        return self._name

    def fullName(self) -> str:
        parent = self._parent
        if parent is None or isinstance(parent, Root):
            return self._name
        return parent.fullName() + "." + self._name

    def setName(self, name: str, uncollide: bool = True, updateExpressions: bool = False) -> None:
        siblings = {n.name() for n in (self._parent.nodes() if self._parent else []) if n is not self}
        if name in siblings:
            if not uncollide:
                raise ValueError("name {} already in use".format(name))
            stem = name.rstrip("0123456789")
            number = 1
            while "{}{}".format(stem, number) in siblings:
                number += 1
            name = "{}{}".format(stem, number)
        self._name = name

    def parent(self) -> Optional["Group"]:
        return self._parent

    def isSelected(self) -> bool:
        return self._selected

    def setSelected(self, selected: bool) -> None:
        self._selected = selected

    def showControlPanel(self, forceFloat: bool = False) -> None:
        panels_shown.append(self.fullName())

    # -- knobs
    def knob(self, name: Any, follow_link: bool = False) -> Optional[Knob]:
        self._sync_writer_knobs()
        return self._knobs.get(name)

    def knobs(self) -> Dict[str, Knob]:
        return dict(self._knobs)

    def allKnobs(self) -> List[Knob]:
        return list(self._knobs.values())

    def _sync_writer_knobs(self) -> None:
        if self._class == "Write" and self._knobs["file_type"].value() == "exr":
            self._add_builtins(_EXR_WRITE_KNOBS)

    def __getitem__(self, name: str) -> Knob:
        self._sync_writer_knobs()
        if name not in self._knobs:
            raise NameError("knob {} does not exist".format(name))
        return self._knobs[name]

    def addKnob(self, knob: Knob) -> None:
        if knob.name() in self._knobs:
            raise RuntimeError("{}: knob {} already exists".format(self._name, knob.name()))
        knob._node = self
        self._knobs[knob.name()] = knob

    def removeKnob(self, knob: Knob) -> None:
        del self._knobs[knob.name()]

    # -- connections
    def setInput(self, i: int, node: Optional["Node"]) -> bool:
        while len(self._inputs) <= i:
            self._inputs.append(None)
        self._inputs[i] = node
        return True

    connectInput = setInput

    def input(self, index: int) -> Optional["Node"]:
        return self._inputs[index] if index < len(self._inputs) else None

    def inputs(self) -> int:
        return len(self._inputs)

    # -- frame range / format
    def firstFrame(self) -> int:
        if self._class == "Read":
            return int(self["first"].value())
        source = self.input(0)
        return source.firstFrame() if source is not None else root().firstFrame()

    def lastFrame(self) -> int:
        if self._class == "Read":
            return int(self["last"].value())
        source = self.input(0)
        return source.lastFrame() if source is not None else root().lastFrame()

    # -- rendering (stand-in only)
    def _image(self, frame: int) -> oiio.ImageBuf:
        if self["disable"].value() and self._class not in ("Read", "Write"):
            return self._pulled(0, frame)
        render = getattr(self, "_render_" + self._class, None)
        if render is None:
            raise NotImplementedError("stand-in nuke cannot render {} nodes".format(self._class))
        return render(frame)

    def _pulled(self, index: int, frame: int) -> oiio.ImageBuf:
        source = self.input(index)
        if source is None:
            raise RuntimeError("{}: input {} is not connected".format(self.fullName(), index))
        return source._image(frame)

    def _render_Read(self, frame: int) -> oiio.ImageBuf:
        first, last = int(self["first"].value()), int(self["last"].value())
        outside = "before" if frame < first else "after" if frame > last else None
        if outside is not None:
            mode = self[outside].value()
            if mode == "error":
                raise RuntimeError("{}: frame {} is outside the frame range {}-{}".format(
                    self.fullName(), frame, first, last))
            if mode == "hold":
                frame = first if outside == "before" else last
            elif mode == "black":
                return oiio.ImageBuf(oiio.ImageSpec(1, 1, 4, "float"))
            else:   # loop / bounce: the stand-in holds the end frame
                frame = first if outside == "before" else last
        path = _frame_path(_file_of(self), frame)
        if not os.path.isfile(path):
            if self["on_error"].value() != "error":
                return oiio.ImageBuf(oiio.ImageSpec(1, 1, 4, "float"))
            raise RuntimeError("{}: Read error: {}: No such file or directory".format(self.fullName(), path))
        buf = oiio.ImageBuf(path)
        if not buf.read(force=True):   # read now: the file may be replaced later
            raise RuntimeError("{}: Read error: {}".format(self.fullName(), buf.geterror()))
        return buf

    def _render_Switch(self, frame: int) -> oiio.ImageBuf:
        which = int(_at_frame(frame, lambda: self["which"].value()))
        return self._pulled(max(0, min(which, self.inputs() - 1)), frame)

    def _render_Text2(self, frame: int) -> oiio.ImageBuf:
        buf = self._pulled(0, frame).copy()
        buf.specmod().attribute("nuke/warning", str(self["message"].value()).replace("[frame]", str(frame)))
        return buf

    def _render_Write(self, frame: int) -> oiio.ImageBuf:
        return self._pulled(0, frame)

    _render_Output = _render_Write
    _render_Dot = _render_Write

    def _render_Input(self, frame: int) -> oiio.ImageBuf:
        group = self._parent
        assert group is not None
        return group._pulled(int(self["number"].value()), frame)

    def _write(self, frame: int) -> str:
        """Render one frame of a Write node to its file, as Nuke's EXR writer would."""
        path = _frame_path(_file_of(self), frame)
        if not path:
            raise RuntimeError("{}: no filename".format(self.fullName()))
        if self["file_type"].value() != "exr":
            raise RuntimeError("{}: stand-in nuke writes EXR only, file_type is {!r}".format(
                self.fullName(), self["file_type"].value()))
        if not os.path.isdir(os.path.dirname(path)):
            raise RuntimeError("{}: Can't write {}: No such file or directory".format(self.fullName(), path))
        buf = self._pulled(0, frame)
        wanted = str(self["channels"].value())
        if wanted != "all":
            names = {"rgb": ("R", "G", "B"), "rgba": ("R", "G", "B", "A")}[wanted]
            buf = oiio.ImageBufAlgo.channels(buf, names)
        out = oiio.ImageBuf(buf.spec())
        oiio.ImageBufAlgo.copy(out, buf)
        out.set_write_format(oiio.HALF if self["datatype"].value() == "16 bit half" else oiio.FLOAT)
        if not out.write(path):
            raise RuntimeError("{}: {}".format(self.fullName(), out.geterror()))
        return path


class Group(Node):
    def __init__(self, node_class: str, parent: Optional["Group"]) -> None:
        super().__init__(node_class, parent)
        self._children: List[Node] = []

    def begin(self) -> "Group":
        _context.append(self)
        return self

    def end(self) -> None:
        assert _context[-1] is self, "end() of a group that is not current"
        _context.pop()

    def __enter__(self) -> "Group":
        return self.begin()

    def __exit__(self, *exc: Any) -> None:
        self.end()

    def nodes(self) -> List[Node]:
        return list(self._children)

    def node(self, s: str) -> Optional[Node]:
        head, _, rest = s.partition(".")
        for child in self._children:
            if child.name() == head:
                if not rest:
                    return child
                return child.node(rest) if isinstance(child, Group) else None
        return None

    def _render_Group(self, frame: int) -> oiio.ImageBuf:
        outputs = [n for n in self._children if n.Class() == "Output"]
        if not outputs:
            raise RuntimeError("{}: group has no Output node".format(self.fullName()))
        return outputs[0]._pulled(0, frame)


class Root(Group):
    def name(self) -> str:
        return "Root"

    def firstFrame(self) -> int:
        return int(self["first_frame"].value())

    def lastFrame(self) -> int:
        return int(self["last_frame"].value())


class Format:
    def __init__(self, width: int, height: int, pixel_aspect: float = 1.0) -> None:
        self._width, self._height, self._aspect = width, height, pixel_aspect

    def width(self) -> int:
        return self._width

    def height(self) -> int:
        return self._height

    def pixelAspect(self) -> float:
        return self._aspect


_root = Root("Root", None)
_context: List[Group] = [_root]


def root() -> Root:
    return _root


def _file_of(node: Node) -> str:
    knob = node["file"]
    assert isinstance(knob, EvalString_Knob)
    return knob.evaluate()


def _new_node(node_class: str, **knob_values: Any) -> Node:
    if _executing[0]:
        # Creating nodes inside a render fails like a nested render (a public render-QC tool
        # documents this for addBeforeRender/addAfterRender and defers node creation with
        # nuke.executeDeferred).
        raise RuntimeError(ALREADY_EXECUTING)
    parent = _context[-1]
    node = (Group if node_class == "Group" else Node)(node_class, parent)
    if node_class == "Input":
        node["number"]._value = sum(1 for n in parent.nodes() if n.Class() == "Input")
    parent._children.append(node)
    node.setName(str(knob_values.pop("name", node_class + "1")))
    for key, value in knob_values.items():
        node[key].setValue(value)
    _fire("onCreate", node)
    return node


class _Constructors:
    def __getattr__(self, node_class: str) -> Callable[..., Node]:
        return lambda **knob_values: _new_node(node_class, **knob_values)


nodes = _Constructors()


def createNode(typ: str, knobs: str = "", inpanel: bool = True) -> Node:
    """Like Nuke: the new node connects to the selected node and becomes the selection."""
    selected = [n for n in _context[-1].nodes() if n.isSelected()]
    node = _new_node(typ)
    if selected:
        node.setInput(0, selected[-1])
    for other in _context[-1].nodes():
        other.setSelected(other is node)
    if inpanel and GUI:
        node.showControlPanel()
    return node


def toNode(s: str) -> Optional[Node]:
    return _context[-1].node(s)


def allNodes(filter: Optional[str] = None, group: Optional[Group] = None, recurseGroups: bool = False) -> List[Node]:
    found = []
    for node in (group or _context[-1]).nodes():
        if filter is None or node.Class() == filter:
            found.append(node)
        if recurseGroups and isinstance(node, Group):
            found.extend(allNodes(filter, node, True))
    return found


def selectedNodes(filter: Optional[str] = None) -> List[Node]:
    return [n for n in _context[-1].nodes() if n.isSelected() and (filter is None or n.Class() == filter)]


def delete(n: Node) -> None:
    parent = n.parent()
    if parent is not None:
        parent._children.remove(n)


def scriptClear() -> None:
    """Start a fresh script (tests call this between cases)."""
    global _root
    _root = Root("Root", None)
    _context[:] = [_root]
    _callbacks.clear()
    del messages[:], printed[:], progress_tasks[:], panels_shown[:], render_edits[:], browsers_shown[:], files_chosen[:]
    cancel_after_progress[0] = None
    _executing[0] = 0
    while not _main_queue.empty():
        _main_queue.get_nowait()


# ======================================================================= scripts, copy and paste
def _run_on_create(node: Node) -> None:
    """A node's own onCreate knob runs whenever the node comes into being: script load and paste
    included (the callbacks chapter of the Python developers guide lists onCreate among the
    hidden callback knobs: learn.foundry.com/nuke/developers/130/pythondevguide/callbacks.html)."""
    script = node.knob("onCreate")
    if script is not None and script.value():
        _run_python(str(script.value()), node, script)
    _fire("onCreate", node)
    if isinstance(node, Group):
        for child in node.nodes():
            _run_on_create(child)


def scriptSave(filename: Optional[str] = None) -> bool:
    """Stand-in only: the script is a pickle of the node tree (real Nuke writes .nk text)."""
    path = filename or str(_root["name"].value())
    with open(path, "wb") as handle:
        pickle.dump(_root, handle)
    _root["name"].setValue(path)
    return True


def scriptOpen(filename: Optional[str] = None) -> None:
    global _root
    with open(str(filename), "rb") as handle:
        loaded = pickle.load(handle)
    _root = loaded
    _context[:] = [_root]
    _root["name"].setValue(str(filename))
    for node in _root.nodes():
        _run_on_create(node)


def nodeCopy(s: str) -> None:
    with open(s, "wb") as handle:
        pickle.dump([n for n in _context[-1].nodes() if n.isSelected()], handle)


def nodePaste(s: str) -> Optional[Node]:
    with open(s, "rb") as handle:
        pasted: List[Node] = pickle.load(handle)
    parent = _context[-1]
    for other in parent.nodes():
        other.setSelected(False)
    for node in pasted:
        node._parent = parent
        parent._children.append(node)
        node.setName(node.name())
        node.setSelected(True)
        _run_on_create(node)
    return pasted[-1] if pasted else None


# ======================================================================= frames, files, rendering
_frame = [1]


def frame(f: Optional[int] = None) -> int:
    if f is not None:
        _frame[0] = int(f)
    return _frame[0]


def _at_frame(f: int, function: Callable[[], Any]) -> Any:
    previous = _frame[0]
    _frame[0] = f
    try:
        return function()
    finally:
        _frame[0] = previous


def _frame_path(pattern: str, f: int) -> str:
    pattern = re.sub(r"#+", lambda m: "%0{}d".format(len(m.group(0))), pattern)
    return re.sub(r"%0?(\d*)d", lambda m: str(f).zfill(int(m.group(1) or 0)), pattern)


def filename(node: Node, i: int = REPLACE) -> Optional[str]:
    knob = node.knob("file")
    if not isinstance(knob, EvalString_Knob) or not knob.value():
        return None
    path = knob.evaluate()
    return _frame_path(path, frame()) if i == REPLACE else path


def _fire(kind: str, node: Node) -> None:
    for call, args, kwargs, node_class in list(_callbacks.get(kind, [])):
        if node_class in ("*", node.Class()):
            _this_nodes.append(node)
            try:
                call(*args, **kwargs)
            finally:
                _this_nodes.pop()


def executing(f: Optional[float] = None) -> bool:
    """Whether an executable node is rendering (learn.foundry.com/nuke/developers/latest/
    pythondevguide/_autosummary/nuke.executing.html: "Returns whether an Executable Node is
    currently active or not")."""
    return bool(_executing[0])


def execute(nameOrNode: Any, start: Optional[int] = None, end: Optional[int] = None, incr: int = 1,
            views: Optional[List[str]] = None, continueOnError: bool = False) -> None:
    if _executing[0]:
        raise RuntimeError(ALREADY_EXECUTING)
    node = toNode(nameOrNode) if isinstance(nameOrNode, str) else nameOrNode
    if node is None or node.Class() != "Write":
        raise ValueError("{} is not a Write node".format(nameOrNode))
    if node["disable"].value():
        raise RuntimeError("{} is disabled".format(node.fullName()))
    first = root().firstFrame() if start is None else start
    last = root().lastFrame() if end is None else end
    _executing[0] += 1
    try:
        # An exception raised by a render callback stops the render with its message.
        _fire("beforeRender", node)
        for f in range(first, last + 1, incr):
            def one() -> None:
                _fire("beforeFrameRender", node)
                node._write(f)
                _fire("afterFrameRender", node)
            _at_frame(f, one)
        _fire("afterRender", node)
    finally:
        _executing[0] -= 1


def render_image(node: Node, f: int) -> oiio.ImageBuf:
    """Stand-in only: what ``node`` outputs at frame ``f`` in a Viewer (not a render)."""
    return _at_frame(f, lambda: node._image(f))


def _add_callback(kind: str, call: Callable, args: tuple = (), kwargs: Optional[dict] = None,
                  nodeClass: str = "Write") -> None:
    _callbacks.setdefault(kind, []).append((call, tuple(args), dict(kwargs or {}), nodeClass))


def addBeforeRender(call: Callable, args: tuple = (), kwargs: Optional[dict] = None, nodeClass: str = "Write") -> None:
    _add_callback("beforeRender", call, args, kwargs, nodeClass)


def addBeforeFrameRender(call: Callable, args: tuple = (), kwargs: Optional[dict] = None,
                         nodeClass: str = "Write") -> None:
    _add_callback("beforeFrameRender", call, args, kwargs, nodeClass)


def addAfterRender(call: Callable, args: tuple = (), kwargs: Optional[dict] = None, nodeClass: str = "Write") -> None:
    _add_callback("afterRender", call, args, kwargs, nodeClass)


def addOnCreate(call: Callable, args: tuple = (), kwargs: Optional[dict] = None, nodeClass: str = "*") -> None:
    _add_callback("onCreate", call, args, kwargs, nodeClass)


def addKnobChanged(call: Callable, args: tuple = (), kwargs: Optional[dict] = None, nodeClass: str = "*") -> None:
    _add_callback("knobChanged", call, args, kwargs, nodeClass)


def user_edit(knob: Knob, value: Any) -> None:
    """Stand-in only: the artist changes ``knob`` in its panel, which is what fires knobChanged."""
    knob.setValue(value)
    owner = knob.node()
    script = owner.knob("knobChanged")
    if script is not None and script.value():
        _run_python(str(script.value()), owner, knob)
    _this_knobs.append(knob)
    try:
        _fire("knobChanged", owner)
    finally:
        _this_knobs.pop()


# ======================================================================= threads
# executeInMainThread queues the call and returns at once; executeInMainThreadWithResult waits
# for it (Foundry's own source, learn.foundry.com/nuke/developers/140/pythondevguide/_modules/
# nuke_internal/executeInMain.html: "...in Nuke's main thread and return immediately").
_main_queue: "queue.Queue[Tuple[Callable, tuple, dict, Optional[list]]]" = queue.Queue()


def executeInMainThread(call: Callable, args: Any = (), kwargs: Optional[dict] = None) -> None:
    if not isinstance(args, tuple):
        args = (args,)
    if not GUI:
        call(*args, **(kwargs or {}))
        return
    _main_queue.put((call, args, dict(kwargs or {}), None))


def executeInMainThreadWithResult(call: Callable, args: Any = (), kwargs: Optional[dict] = None) -> Any:
    if not isinstance(args, tuple):
        args = (args,)
    if not GUI:
        return call(*args, **(kwargs or {}))
    if threading.current_thread() is threading.main_thread():
        # The main thread would wait for an event only it can process.
        raise RuntimeError("executeInMainThreadWithResult called on the main thread: Nuke would deadlock")
    box: list = []
    _main_queue.put((call, args, dict(kwargs or {}), box))
    while not box:
        threading.Event().wait(0.01)
    return box[0]


def process_main_thread_queue() -> int:
    """Stand-in only: run what worker threads queued for the main thread; how many calls ran."""
    ran = 0
    while True:
        try:
            call, args, kwargs, box = _main_queue.get_nowait()
        except queue.Empty:
            return ran
        result = call(*args, **kwargs)
        ran += 1
        if box is not None:
            box.append(result)


def main_loop(until: Callable[[], bool], timeout: float = 120.0) -> None:
    """Stand-in only: Nuke's event loop, until ``until()`` is true and nothing is queued."""
    import time
    deadline = time.monotonic() + timeout
    while True:
        process_main_thread_queue()
        if until() and _main_queue.empty():
            return
        if time.monotonic() > deadline:
            raise TimeoutError("main_loop: condition not met within {} s".format(timeout))
        time.sleep(0.01)


# ======================================================================= UI
class ProgressTask:
    def __init__(self, title: str = "") -> None:
        self.title = title
        self.progress: List[int] = []
        self.messages: List[str] = []
        progress_tasks.append(self)

    def setProgress(self, percent: int) -> None:
        self.progress.append(int(percent))

    def setMessage(self, message: str) -> None:
        self.messages.append(message)

    def isCancelled(self) -> bool:
        limit = cancel_after_progress[0]
        return limit is not None and len(self.progress) >= limit


def message(prompt: str) -> None:
    messages.append(prompt)


def getFilename(message: str, pattern: str = "", default: str = "", favorites: str = "", type: str = "",
                multiple: bool = False) -> Optional[str]:
    """Nuke's file browser: the path the artist picks, None when they cancel (types-nuke _nuke.pyi:
    ``getFilename(message, pattern, default, ...) -> Optional[str]``). A modal panel: only the GUI's
    main thread can show it (Foundry's Python dev guide, "Threading": UI calls from other threads
    must go through executeInMainThread)."""
    if not GUI or threading.current_thread() is not threading.main_thread():
        raise RuntimeError("nuke.getFilename: a file browser needs the GUI's main thread")
    browsers_shown.append((message, pattern, default))
    return files_chosen.pop(0) if files_chosen else None


def warning(message: str) -> None:
    printed.append("warning: " + message)


def tprint(*args: Any, sep: str = " ", end: str = "\n", file: Any = None) -> None:
    printed.append(sep.join(str(a) for a in args))


class Menu:
    def __init__(self, name: str) -> None:
        self._name = name
        self.items: Dict[str, Any] = {}

    def name(self) -> str:
        return self._name

    def addMenu(self, name: str, icon: str = "", **kwargs: Any) -> "Menu":
        menu = self.items.get(name)
        if not isinstance(menu, Menu):
            menu = self.items[name] = Menu(name)
        menu.icon = icon
        return menu

    def addCommand(self, name: str, command: Any = None, shortcut: str = "", icon: str = "", **kwargs: Any) -> None:
        self.items[name] = {"command": command, "icon": icon}

    def findItem(self, name: str) -> Optional["Menu"]:
        item = self.items.get(name)
        return item if isinstance(item, Menu) else None


ToolBar = Menu
_menus: Dict[str, Menu] = {}


def menu(name: str) -> Menu:
    return _menus.setdefault(name, Menu(name))


def toolbar(name: str, create: bool = True) -> Optional[Menu]:
    return menu(name) if create or name in _menus else None


def pluginAddPath(args: str, addToSysPath: bool = True) -> None:
    plugin_paths.append(args)
    if addToSysPath and args not in sys.path:
        sys.path.insert(0, args)
