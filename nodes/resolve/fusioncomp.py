"""What the ShotStyle script does to a Fusion composition: find plates, write them as EXR, wire results in.

Frames travel as EXR: a temporary Saver (OpenEXR, half float) connected to the chosen
Loader/MediaIn renders the needed frames into the cache folder, named by comp frame; the
stylized EXRs come back into a new Loader, wired in place of the plate either directly or
through a Merge whose Blend is the mix. Python 3.6 syntax, stdlib only.
"""

import os
from typing import TYPE_CHECKING, Dict, List, Tuple

from shotstyle.nodes.hostbridge import frame_runs

if TYPE_CHECKING:
    from shotstyle.nodes.resolve.fusiontypes import Comp, Tool

PLATE_TOOL_TYPES = ("Loader", "MediaIn")
EXR_HALF = 1            # Saver input OpenEXRFormat.Depth: 1 = half float, 2 = float
AUTO_POSITION = -32768  # AddTool x/y: let Fusion place the tool


class FusionCompError(Exception):
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


def write_plates(comp: "Comp", plate: "Tool", frames: List[int], folder: str) -> List[Tuple[int, str]]:
    """Render ``plate`` at ``frames`` to half-float EXRs in ``folder`` with a temporary Saver."""
    os.makedirs(folder, exist_ok=True)
    saver = comp.AddTool("Saver", AUTO_POSITION, AUTO_POSITION)
    try:
        saver.ConnectInput("Input", plate)
        saver.SetInput("Clip", frame_path(folder, "plate", 0))   # Fusion numbers the files by comp frame
        saver.SetInput("OutputFormat", "OpenEXRFormat")
        saver.SetInput("OpenEXRFormat.Depth", EXR_HALF)
        for channel in ("Red", "Green", "Blue", "Alpha"):   # alpha travels too: the server passes it through
            saver.SetInput("OpenEXRFormat.{}Enable".format(channel), 1)
        for first, last in frame_runs(frames):
            if not comp.Render({"Start": first, "End": last, "Tool": saver, "Wait": True}):
                raise FusionCompError("Fusion could not render {} frames {}-{} to {}; check the tool renders "
                                      "in the viewer".format(plate.Name, first, last, folder))
    finally:
        saver.Delete()
    written = [(frame, frame_path(folder, "plate", frame)) for frame in frames]
    missing = [frame for frame, path in written if not os.path.isfile(path)]
    if missing:
        raise FusionCompError("the Saver wrote no EXR for frames {} of {} in {}".format(missing, plate.Name, folder))
    return written


def wire_result(comp: "Comp", plate: "Tool", first_result: str, first_frame: int, merge: bool,
                mix: float) -> Dict[str, "Tool"]:
    """Add a Loader for the stylized sequence and put it where the plate fed the comp.

    ``merge``: a Merge (plate as background, result as foreground, Blend = ``mix``) replaces
    the plate's outgoing connections; otherwise the Loader replaces them directly.
    Returns the tools added, by role ("loader", and "merge" when used).
    """
    existing = comp.FindTool(result_name(plate))
    if existing is not None:          # run again: point the Loader added last time at the new frames
        existing.SetInput("Clip", first_result)
        existing.SetInput("GlobalIn", first_frame)
        return {"loader": existing}
    comp.Lock()
    comp.StartUndo("ShotStyle result")
    try:
        downstream = list(plate.Output.GetConnectedInputs().values())
        loader = comp.AddTool("Loader", AUTO_POSITION, AUTO_POSITION)
        loader.SetInput("Clip", first_result)
        loader.SetInput("GlobalIn", first_frame)
        loader.SetAttrs({"TOOLS_Name": result_name(plate)})
        added = {"loader": loader}
        output = loader.Output
        if merge:
            blend = comp.AddTool("Merge", AUTO_POSITION, AUTO_POSITION)
            blend.ConnectInput("Background", plate)
            blend.ConnectInput("Foreground", loader)
            blend.SetInput("Blend", mix)
            added["merge"] = blend
            output = blend.Output
        for connected in downstream:
            connected.ConnectTo(output)
    finally:
        comp.EndUndo(True)
        comp.Unlock()
    return added


def result_name(plate: "Tool") -> str:
    return plate.Name + "_ShotStyle"
