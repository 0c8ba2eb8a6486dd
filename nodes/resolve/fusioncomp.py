"""What the ShotStyle script does to a Fusion composition: find plates, write them as EXR, wire results in.

Frames travel as EXR: a temporary Saver (OpenEXR, half float) connected to the chosen
Loader/MediaIn renders the needed frames into the cache folder, named by comp frame; the
stylized EXRs come back into a Loader, wired in place of the plate either directly or through
a Merge whose Blend is the mix. Fusion's ways are respected: tools are made inside
``comp.Lock()`` (no file browser pops up) at explicit positions (no automatic connection to the
artist's selected tool), renders pass the quiet flag (no "Render completed" dialog), and a
Loader's ranges are set in the order Fusion needs: its clip first (which resets the ranges),
then GlobalIn/GlobalOut moved together, its trims and holds put back after each step, so the
result lines up frame for frame with the plate and an artist's trims survive a re-run.
Python 3.7; stdlib only.
"""

import contextlib
import os
from typing import TYPE_CHECKING, Dict, Iterator, List, Optional, Tuple

from shotstyle.nodes.hostbridge import frame_runs
from shotstyle.plugin.errors import ClientError

if TYPE_CHECKING:
    from shotstyle.nodes.resolve.fusiontypes import Comp, Tool

PLATE_TOOL_TYPES = ("Loader", "MediaIn")
EXR_HALF = 1                  # Saver input OpenEXRFormat.Depth: 1 = half float, 2 = float
REQF_QUIET = 524288           # Render flag: no "Render completed" / "Render failed" dialog
LOADER_TRIMS = ("ClipTimeStart", "ClipTimeEnd", "HoldFirstFrame", "HoldLastFrame")


class FusionCompError(ClientError):
    """The comp cannot be used as asked; the message names the tool/folder and what to do."""


def plate_tools(comp: "Comp") -> List["Tool"]:
    """The comp's Loader and MediaIn tools, in the comp's order."""
    tools = []  # type: List[Tool]
    for tool_type in PLATE_TOOL_TYPES:
        listed = comp.GetToolList(False, tool_type)
        tools.extend(listed[key] for key in sorted(listed))
    return tools


def find_plate(comp: "Comp", name: str) -> "Tool":
    tool = comp.FindTool(name)
    if tool is None:
        raise FusionCompError("the comp has no tool named {!r}; pick a Loader or MediaIn".format(name))
    return tool


def render_range(comp: "Comp") -> Tuple[int, int]:
    attrs = comp.GetAttrs()
    return int(attrs["COMPN_RenderStart"]), int(attrs["COMPN_RenderEnd"])


def cache_dir(comp: "Comp", tool: "Tool", explicit: str = "") -> str:
    """``explicit``, else ``shotstyle_cache/<comp>/<tool>`` beside the saved comp, else in the home folder."""
    if explicit:
        return explicit
    attrs = comp.GetAttrs()
    comp_file = str(attrs.get("COMPS_FileName") or "")
    comp_name = os.path.splitext(os.path.basename(comp_file or str(attrs.get("COMPS_Name") or "comp")))[0]
    base = os.path.dirname(comp_file) if comp_file else os.path.expanduser("~")
    return os.path.join(base, "shotstyle_cache", comp_name, tool.Name)


def frame_path(folder: str, stem: str, frame: int) -> str:
    return os.path.join(folder, "{}.{:04d}.exr".format(stem, frame))


@contextlib.contextmanager
def locked(comp: "Comp", undo: Optional[str] = None) -> Iterator[None]:
    """The comp in batch mode (no dialogs, no re-renders) for the block, optionally as one undo step."""
    comp.Lock()
    if undo:
        comp.StartUndo(undo)
    try:
        yield
    finally:
        if undo:
            comp.EndUndo(True)
        comp.Unlock()


def position_near(comp: "Comp", tool: "Tool", dx: int, dy: int) -> Tuple[int, int]:
    """A flow position ``dx``/``dy`` from ``tool`` (from its own if the flow knows it)."""
    flow = comp.CurrentFrame.FlowView if comp.CurrentFrame is not None else None
    where = flow.GetPosTable(tool) if flow is not None else None
    x, y = (int(where[1.0]), int(where[2.0])) if where else (0, 0)
    return x + dx, y + dy


class PlateSaver:
    """A temporary Saver writing a Loader/MediaIn's frames as half-float EXRs named by comp frame."""

    def __init__(self, comp: "Comp", plate: "Tool", folder: str):
        self.comp = comp
        self.plate = plate
        self.folder = folder
        os.makedirs(folder, exist_ok=True)
        with locked(comp):
            x, y = position_near(comp, plate, 0, 2)
            self.saver = comp.AddTool("Saver", x, y)
            self.saver.ConnectInput("Input", plate)
            self.saver.SetInput("Clip", frame_path(folder, "plate", 0))   # Fusion numbers the files by comp frame
            self.saver.SetInput("OutputFormat", "OpenEXRFormat")
            self.saver.SetInput("OpenEXRFormat.Depth", EXR_HALF)
            for channel in ("Red", "Green", "Blue", "Alpha"):   # alpha travels too: the server passes it through
                self.saver.SetInput("OpenEXRFormat.{}Enable".format(channel), 1)

    def render(self, frames: List[int]) -> List[Tuple[int, str]]:
        """Render ``frames`` (quietly, in consecutive runs); (frame, path) pairs."""
        for first, last in frame_runs(frames):
            with locked(self.comp):
                done = self.comp.Render({"Start": first, "End": last, "Tool": self.saver, "Wait": True,
                                         "RenderFlags": REQF_QUIET})
            if not done:
                raise FusionCompError("Fusion could not render {} frames {}-{} to {}; check the tool renders in the "
                                      "viewer".format(self.plate.Name, first, last, self.folder))
        written = [(frame, frame_path(self.folder, "plate", frame)) for frame in frames]
        missing = [frame for frame, path in written if not os.path.isfile(path)]
        if missing:
            raise FusionCompError("the Saver wrote no EXR for frames {} of {} in {}".format(
                missing, self.plate.Name, self.folder))
        return written

    def close(self) -> None:
        with locked(self.comp):
            self.saver.Delete()


def write_plates(comp: "Comp", plate: "Tool", frames: List[int], folder: str) -> List[Tuple[int, str]]:
    """Render ``plate`` at ``frames`` to half-float EXRs in ``folder`` with a temporary Saver."""
    saver = PlateSaver(comp, plate, folder)
    try:
        return saver.render(frames)
    finally:
        saver.close()


def _clip_length(loader: "Tool") -> int:
    lengths = loader.GetAttrs().get("TOOLIT_Clip_Length") or {}
    return int(list(lengths.values())[0]) if lengths else 0


def point_loader(loader: "Tool", first_file: str, first_frame: int) -> None:
    """Show the sequence starting at ``first_file`` from comp frame ``first_frame``, keeping the Loader's trims.

    Setting the clip resets the Loader's ranges (when its length changes) and moving GlobalIn
    alone would make Fusion trim or hold frames instead of moving the clip, so: the clip first,
    then the trims put back (cut to the new length), then GlobalIn and GlobalOut moved by the
    same amount (the end that moves away first: neither may pass the other), the trims put
    back again.
    """
    trims = {name: int(loader.GetInput(name) or 0) for name in LOADER_TRIMS}
    old_length = _clip_length(loader)
    trim_end = old_length - 1 - trims["ClipTimeEnd"] if old_length else 0
    loader.SetInput("Clip", first_file)
    last = _clip_length(loader) - 1
    trims["ClipTimeStart"] = min(trims["ClipTimeStart"], max(0, last))
    trims["ClipTimeEnd"] = max(trims["ClipTimeStart"], last - max(0, trim_end))

    def put_back() -> None:
        for name, value in trims.items():
            loader.SetInput(name, value)

    put_back()
    shift = first_frame - int(loader.GetInput("GlobalIn"))
    for name in (("GlobalOut", "GlobalIn") if shift > 0 else ("GlobalIn", "GlobalOut")):
        loader.SetInput(name, int(loader.GetInput(name)) + shift)
    put_back()


def wire_result(comp: "Comp", plate: "Tool", first_result: str, first_frame: int, merge: bool,
                mix: float) -> Dict[str, "Tool"]:
    """Point the plate's result Loader (made the first time) at the stylized sequence, in place of the plate.

    ``merge``: a Merge (plate as background, result as foreground, Blend = ``mix``) replaces
    the plate's outgoing connections; otherwise the Loader replaces them directly.
    Returns the tools added, by role ("loader", and "merge" when used).
    """
    with locked(comp, "ShotStyle result"):
        existing = comp.FindTool(result_name(plate))
        if existing is not None:          # run again: point the Loader made last time at the new frames
            point_loader(existing, first_result, first_frame)
            return {"loader": existing}
        downstream = list(plate.Output.GetConnectedInputs().values())
        x, y = position_near(comp, plate, 0, 1)
        loader = comp.AddTool("Loader", x, y)
        point_loader(loader, first_result, first_frame)
        loader.SetAttrs({"TOOLS_Name": result_name(plate)})
        added = {"loader": loader}
        output = loader.Output
        if merge:
            blend = comp.AddTool("Merge", x + 1, y)
            blend.ConnectInput("Background", plate)
            blend.ConnectInput("Foreground", loader)
            blend.SetInput("Blend", mix)
            added["merge"] = blend
            output = blend.Output
        for connected in downstream:
            connected.ConnectTo(output)
    return added


def result_name(plate: "Tool") -> str:
    return plate.Name + "_ShotStyle"
