"""The ShotStyle Fusion script (Workspace > Scripts > Comp > ShotStyle in Resolve; Script menu in Fusion Studio).

``main(globals())`` is what the launcher install.py puts in Fusion's ``Scripts/Comp`` folder
calls, with the globals Fusion gives scripts (``fusion``/``fu``, ``bmd``, ``comp``). It opens
the dialog built from the server's effect description; Train renders the keyframe of the
chosen Loader/MediaIn to EXR and trains on the server with progress in the status line;
Stylize renders the comp's render range, has the server stylize it, and wires a Loader with
the result into the comp (in Resolve the sequence also goes into the Media Pool).
Python 3.6 syntax; stdlib, pyzmq and shotstyle.plugin only.
"""

import os
from typing import TYPE_CHECKING, Any, Callable, Dict, Optional

from shotstyle.nodes.hostbridge import (RENDER_GROUPS, HostBridge, HostBridgeError, render_key, safe_name,
                                       values_for)
from shotstyle.nodes.resolve import dialog, fusioncomp
from shotstyle.plugin import codec
from shotstyle.plugin.sequences import parse_frame_range

if TYPE_CHECKING:
    from fusionscript import Resolve
    from shotstyle.nodes.resolve.fusiontypes import Bmd, Comp, Fusion, Tool

WINDOW_ID = "ShotStyle"


class ShotStyleDialog:
    """The dialog and what its buttons do, for one composition."""

    def __init__(self, fusion: "Fusion", bmd: "Bmd", comp: "Comp", resolve: "Optional[Resolve]" = None):
        self.fusion = fusion
        self.comp = comp
        self.resolve = resolve
        self.dispatcher = bmd.UIDispatcher(fusion.UIManager)
        probe = HostBridge("", autostart=False, timeout=2.0)   # the local server's description, if one runs
        try:
            self.description = probe.describe()
        finally:
            probe.close()
        self.window = self.dispatcher.AddWindow(
            {"ID": WINDOW_ID, "WindowTitle": "ShotStyle", "Geometry": [200, 200, 460, 720]},
            dialog.layout(fusion.UIManager, self.description))
        self.items = self.window.GetItems()
        dialog.fill_choices(self.items, self.description,
                            [tool.Name for tool in fusioncomp.plate_tools(comp)])
        self.actions = {"train": self.train, "stylize_range": self.stylize,
                        dialog.CONNECT: self.connect}  # type: Dict[str, Callable[[], None]]
        for widget_id in dialog.button_ids(self.description):
            getattr(self.window.On, widget_id).Clicked = self._clicked(widget_id)
        getattr(self.window.On, WINDOW_ID).Close = lambda event: self.dispatcher.ExitLoop()

    def _clicked(self, widget_id: str) -> Callable[[Any], None]:
        def handler(event: Any) -> None:
            if widget_id.endswith("_browse"):
                self.browse(widget_id[:-len("_browse")])
                return
            action = self.actions.get(widget_id)
            if action is None:
                self.status("this version of the script has no action for '{}'; update shotstyle".format(widget_id))
                return
            try:
                action()
            except (HostBridgeError, fusioncomp.FusionCompError, ValueError, OSError) as exc:
                self.status("error: {}".format(exc))
        return handler

    # -- helpers ----------------------------------------------------------------------------
    def status(self, text: str) -> None:
        self.items[dialog.STATUS].Text = text
        print("ShotStyle: " + text)

    def values(self) -> Dict[str, Any]:
        return dialog.read_values(self.items, self.description)   # the server validates them

    def bridge(self, autostart: bool = True) -> HostBridge:
        return HostBridge(self.values().get("server", ""), autostart=autostart)

    def plate(self) -> "Tool":
        name = str(self.items[dialog.PLATE_PICKER].CurrentText)
        if not name:
            raise fusioncomp.FusionCompError("the comp has no Loader or MediaIn to stylize; add one first")
        return fusioncomp.find_plate(self.comp, name)

    def cache(self, plate: "Tool") -> str:
        return fusioncomp.cache_dir(self.comp, plate, str(self.items[dialog.CACHE_DIR].Text).strip())

    def browse(self, field: str) -> None:
        chosen = self.fusion.RequestFile(str(self.items[field].Text))
        if chosen:
            self.items[field].Text = chosen

    # -- buttons ----------------------------------------------------------------------------
    def connect(self) -> None:
        bridge = self.bridge(autostart=False)   # opening the dialog never starts a server
        try:
            self.status(bridge.status_line())
        finally:
            bridge.close()

    def train(self) -> None:
        values = self.values()
        files = dialog.read_clip_files(self.items, self.description)
        if "style" not in files:
            raise ValueError("choose a style image first")
        plate = self.plate()
        keyframes = parse_frame_range(values["keyframes"]) if values.get("keyframes") else [int(self.comp.CurrentTime)]
        folder = self.cache(plate)
        plates = fusioncomp.write_plates(self.comp, plate, keyframes, os.path.join(folder, "plate"))
        name = values.get("model") or safe_name("{}_{}".format(self.comp.GetAttrs().get("COMPS_Name") or "comp",
                                                                plate.Name))
        preview = (keyframes[0], files["preview"]) if "preview" in files else None
        bridge = self.bridge()
        try:
            final = bridge.train(plates, files["style"], name, values, self.description, preview=preview,
                                 on_progress=self._progress,
                                 on_preview=lambda step, image: self._preview(folder, step, image))
        finally:
            bridge.close()
        self.items["model"].Text = str(final.get("model") or name)
        self.status("trained model {}".format(final.get("model") or name) if final.get("type") == "done"
                    else "training cancelled")

    def _progress(self, event: Dict[str, Any]) -> None:
        self.status("training: step {}/{}, about {:.0f} s left".format(
            event.get("step"), event.get("steps"), event.get("eta_s") or 0))

    def _preview(self, folder: str, step: int, image: codec.EncodedFrame) -> None:
        path = os.path.join(folder, "preview", "keyframe.exr")
        os.makedirs(os.path.dirname(path), exist_ok=True)
        codec.write_file(image, path)
        self.status("training: preview of step {} in {}".format(step, path))

    def stylize(self) -> None:
        values = self.values()
        model = str(values.get("model") or "")
        if not model:
            raise ValueError("no model: train one first, or type the name of a model on the server")
        merge = int(self.items[dialog.WIRING].CurrentIndex) == 0
        plate = self.plate()
        first, last = fusioncomp.render_range(self.comp)
        frames = list(range(first, last + 1))
        folder = self.cache(plate)
        plates = fusioncomp.write_plates(self.comp, plate, frames, os.path.join(folder, "plate"))
        # With a Merge the mix stays live in the comp, so the server renders the full effect.
        render_values = dict(values, mix=1.0) if merge else values
        results = os.path.join(folder, "results",
                               render_key(model, values_for(RENDER_GROUPS, render_values, self.description)))
        jobs = [(frame, path, fusioncomp.frame_path(results, "shotstyle", frame)) for frame, path in plates]
        bridge = self.bridge()
        try:
            done = bridge.stylize_files(jobs, model, render_values,
                                        on_frame=lambda frame, path: self.status(
                                            "stylized frame {} ({}-{})".format(frame, first, last)))
        finally:
            bridge.close()
        for _, path in plates:
            os.remove(path)
        fusioncomp.wire_result(self.comp, plate, fusioncomp.frame_path(results, "shotstyle", first), first,
                               merge, float(values.get("mix", 1.0)))
        self._import_to_media_pool(results, first, last)
        self.status("stylized {} frames with {} into {}".format(len(done), model, results))

    def _import_to_media_pool(self, folder: str, first: int, last: int) -> None:
        if self.resolve is None:
            return
        pool = self.resolve.GetProjectManager().GetCurrentProject().GetMediaPool()
        pool.ImportMedia([{"FilePath": os.path.join(folder, "shotstyle.%04d.exr"),
                           "StartIndex": first, "EndIndex": last}])

    def run(self) -> None:
        self.window.Show()
        self.connect()
        self.dispatcher.RunLoop()
        self.window.Hide()


def main(namespace: Dict[str, Any]) -> Optional[ShotStyleDialog]:
    """Entry point from the Fusion launcher script, given the script's globals."""
    fusion = namespace.get("fusion") or namespace.get("fu")
    bmd = namespace.get("bmd")
    if fusion is None or bmd is None:
        print("ShotStyle: run this from Fusion or Resolve's Workspace > Scripts menu (no fusion/bmd here)")
        return None
    comp = namespace.get("comp") or fusion.GetCurrentComp()
    if comp is None:
        print("ShotStyle: open a composition first")
        return None
    resolve = namespace.get("resolve") or bmd.scriptapp("Resolve")
    shotstyle_dialog = ShotStyleDialog(fusion, bmd, comp, resolve)
    shotstyle_dialog.run()
    return shotstyle_dialog
