"""The ShotStyle Fusion script (Workspace > Scripts > Comp > ShotStyle in Resolve; Script menu in Fusion Studio).

``main(globals())`` is what the launcher install.py puts in Fusion's ``Scripts/Comp`` folder
calls, with the globals Fusion gives scripts (``fusion``/``fu``, ``bmd``, ``comp``). It opens
the dialog built from the server's effect description. Train renders the keyframe(s) of the
chosen Loader/MediaIn to EXR and trains on the server; Stylize renders the comp's render range
a few frames at a time while the server stylizes the frames already written, then wires a
Loader with the result into the comp (in Resolve the sequence also goes into the Media Pool).
Export LUT writes the model's grade as a .cube (ACEScct in and out) and an OCIO look into the
plate's cache folder (``luts``) and shows the path and how much of the look the LUT carries.

The dialog never blocks: a button's *action* (connect, train, stylize, export a LUT; not to be
confused with the server's training job) does its Fusion work (rendering plates, wiring the
result) in short steps on a UI timer, on the thread that runs the dialog, and its server round
trips on a worker thread that touches nothing of Fusion's; the status line shows progress and
Cancel stops the action. Python 3.7; stdlib, pyzmq and shotstyle.plugin only.
"""

import os
import queue
import threading
from typing import TYPE_CHECKING, Any, Callable, Dict, Iterator, List, Optional

from shotstyle.nodes.hostbridge import (RENDER_GROUPS, FrameJob, HostBridge, HostBridgeError, bridges, render_key,
                                       safe_name, values_for)
from shotstyle.nodes.resolve import dialog, fusioncomp
from shotstyle.plugin import codec, protocol
from shotstyle.plugin.errors import ClientError
from shotstyle.plugin.previews import PreviewFile
from shotstyle.plugin.sequences import parse_frame_range

if TYPE_CHECKING:
    from fusionscript import Resolve
    from shotstyle.nodes.resolve.fusiontypes import Bmd, Comp, Fusion, Tool

WINDOW_ID = "ShotStyle"
PLATES_PER_STEP = 8           # plate frames rendered per timer step: the dialog stays responsive
GIL_SHARE_S = 0.02            # each step waits this long on the worker, so it runs even if the UI loop holds the GIL
ERRORS = (ClientError, ValueError, OSError)


class Worker:
    """A server round trip on its own thread; the dialog reads its messages and outcome on timer steps."""

    def __init__(self, work: Callable[["Worker"], Any]):
        self.messages = queue.Queue()  # type: queue.Queue
        self.cancelled = threading.Event()
        self.result = None  # type: Any
        self.error = None  # type: Optional[Exception]

        def run() -> None:
            try:
                self.result = work(self)
            except (HostBridgeError, OSError) as exc:
                self.error = exc

        self.thread = threading.Thread(target=run, name="shotstyle", daemon=True)
        self.thread.start()

    def say(self, text: str) -> None:
        self.messages.put(text)

    def latest(self) -> Optional[str]:
        """The newest message since the last call (None when there is none)."""
        text = None
        while not self.messages.empty():
            text = self.messages.get_nowait()
        return text

    def done(self) -> bool:
        self.thread.join(GIL_SHARE_S)
        return not self.thread.is_alive()


class RoundTripAction:
    """One server round trip on a worker; the status line says what came of it (`said`)."""

    def __init__(self, dialog_: "ShotStyleDialog", starting: str, work: Callable[[Worker], Any]):
        self.dialog = dialog_
        dialog_.status(starting)
        self.worker = Worker(work)

    def step(self) -> bool:
        if not self.worker.done():
            return False
        error = self.worker.error
        self.dialog.status("error: {}".format(error) if error is not None else self.said(self.worker.result))
        return True

    def said(self, result: Any) -> str:
        return str(result)

    def cancel(self) -> None:
        self.worker.cancelled.set()


class ConnectAction(RoundTripAction):
    """Ask the server for its status (the dialog's status line)."""

    def __init__(self, dialog_: "ShotStyleDialog"):
        bridge = dialog_.bridge()

        def work(worker: Worker) -> str:
            with bridge.session("connecting"):
                return bridge.status_line()
        super().__init__(dialog_, "connecting...", work)


class ExportLutAction(RoundTripAction):
    """Write the model's grade as a .cube and its OCIO look into the plate's cache folder (``luts``)."""

    def __init__(self, dialog_: "ShotStyleDialog"):
        model = str(dialog_.values().get("model") or "").strip()
        if not model:
            raise ValueError("no model chosen; train one or type its name")
        path = os.path.join(dialog_.cache(dialog_.plate()), "luts", safe_name(model) + ".cube")
        bridge = dialog_.bridge()

        def work(worker: Worker) -> Dict[str, Any]:
            with bridge.session("exporting a LUT"):
                return bridge.export_lut(model, path)
        super().__init__(dialog_, "exporting the LUT of {}...".format(model), work)

    def said(self, result: Any) -> str:
        return "wrote {}. {}".format(" and ".join(result["paths"]), result.get("report_text", ""))


class TrainAction:
    """Render the keyframe(s) and train; progress and previews come back while the dialog runs."""

    def __init__(self, dialog_: "ShotStyleDialog"):
        self.dialog = dialog_
        values = dialog_.values()
        files = dialog.read_clip_files(dialog_.items, dialog_.description)
        if "style" not in files:
            raise ValueError("choose a style image first")
        plate = dialog_.plate()
        comp = dialog_.comp
        keyframes = parse_frame_range(values["keyframes"]) if values.get("keyframes") else [int(comp.CurrentTime)]
        folder = dialog_.cache(plate)
        plates = fusioncomp.write_plates(comp, plate, keyframes, os.path.join(folder, "plate"))
        self.name = name = values.get("model") or safe_name("{}_{}".format(
            comp.GetAttrs().get("COMPS_Name") or "comp", plate.Name))
        preview = (keyframes[0], files["preview"]) if "preview" in files else None
        preview_path = os.path.join(folder, "preview", "keyframe.exr")
        previews = PreviewFile(lambda step: preview_path)
        bridge, description = dialog_.bridge(), dialog_.description

        def on_preview(worker: Worker, step: int, image: codec.EncodedFrame) -> None:
            path = previews.write(step, lambda where: codec.write_file(image, where))
            worker.say("training: preview of step {} in {}".format(step, path))

        def work(worker: Worker) -> Dict[str, Any]:
            with bridge.session("training {}".format(name)):
                return bridge.train(plates, files["style"], name, values, description, preview=preview,
                                    on_progress=lambda event: worker.say(progress_text(event)),
                                    on_preview=lambda step, image: on_preview(worker, step, image),
                                    should_cancel=worker.cancelled.is_set)
        self.worker = Worker(work)
        dialog_.status("training {}: starting".format(name))

    def step(self) -> bool:
        message = self.worker.latest()
        if message:
            self.dialog.status(message)
        if not self.worker.done():
            return False
        if self.worker.error is not None:
            self.dialog.status("error: {}".format(self.worker.error))
            return True
        final = self.worker.result
        model = str(final.get("model") or self.name)
        if final.get("type") == protocol.EVENT_DONE:
            self.dialog.items["model"].Text = model
            self.dialog.status("trained model {}".format(model))
        else:
            self.dialog.status("training cancelled" + ("; checkpoint kept as model " + model
                                                       if final.get("model") else ""))
        return True

    def cancel(self) -> None:
        self.worker.cancelled.set()
        self.dialog.status("cancelling...")


def progress_text(event: Dict[str, Any]) -> str:
    return "training: step {}/{}, about {:.0f} s left".format(event.get("step"), event.get("steps"),
                                                               event.get("eta_s") or 0)


class StylizeAction:
    """Render the plates a few frames per step while the worker stylizes those already written; wire the result."""

    def __init__(self, dialog_: "ShotStyleDialog"):
        self.dialog = dialog_
        values = dialog_.values()
        self.model = model = str(values.get("model") or "")
        if not model:
            raise ValueError("no model: train one first, or type the name of a model on the server")
        self.merge = int(dialog_.items[dialog.WIRING].CurrentIndex) == 0
        self.mix = float(values.get("mix", 1.0))
        self.plate = dialog_.plate()
        self.first, self.last = fusioncomp.render_range(dialog_.comp)
        self.todo = list(range(self.first, self.last + 1))
        folder = dialog_.cache(self.plate)
        # With a Merge the mix stays live in the comp, so the server renders the full effect.
        render_values = dict(values, mix=1.0) if self.merge else values
        self.results = os.path.join(folder, "results", render_key(model, values_for(
            RENDER_GROUPS, render_values, dialog_.description)))
        self.saver = fusioncomp.PlateSaver(dialog_.comp, self.plate, os.path.join(folder, "plate"))
        self.jobs = queue.Queue()  # type: queue.Queue
        self.plates = []  # type: List[str]
        self.done_frames = []  # type: List[int]
        bridge = dialog_.bridge()

        def sources(worker: Worker) -> Iterator[FrameJob]:
            while True:
                job = self.jobs.get()
                if job is None or worker.cancelled.is_set():
                    return
                yield job

        def work(worker: Worker) -> List[int]:
            def on_frame(frame: int, path: str) -> None:
                self.done_frames.append(frame)
                worker.say("stylized frame {} ({} of {})".format(frame, len(self.done_frames),
                                                               self.last - self.first + 1))
            with bridge.session("stylizing"):
                return bridge.stylize_files(sources(worker), model, render_values, on_frame=on_frame,
                                            should_cancel=worker.cancelled.is_set)
        self.worker = Worker(work)
        dialog_.status("stylizing frames {}-{} with {}".format(self.first, self.last, model))

    def step(self) -> bool:
        if self.todo and not self.worker.cancelled.is_set() and self.worker.thread.is_alive():
            chunk, self.todo = self.todo[:PLATES_PER_STEP], self.todo[PLATES_PER_STEP:]
            for frame, path in self.saver.render(chunk):
                self.plates.append(path)
                self.jobs.put((frame, path, fusioncomp.frame_path(self.results, "shotstyle", frame)))
            if not self.todo:
                self.jobs.put(None)
        message = self.worker.latest()
        if message:
            self.dialog.status(message)
        if not self.worker.done():
            return False
        self.saver.close()
        for path in self.plates:
            if os.path.isfile(path):
                os.remove(path)
        if self.worker.error is not None:
            self.dialog.status("error: {}".format(self.worker.error))
        elif self.worker.cancelled.is_set():
            self.dialog.status("stylizing cancelled after {} frame(s)".format(len(self.done_frames)))
        else:
            self._finish()
        return True

    def _finish(self) -> None:
        fusioncomp.wire_result(self.dialog.comp, self.plate, fusioncomp.frame_path(self.results, "shotstyle", self.first),
                               self.first, self.merge, self.mix)
        done = "stylized {} frames with {} into {}".format(len(self.done_frames), self.model, self.results)
        self.dialog.status(done + self.dialog.import_to_media_pool(self.results, self.first, self.last))

    def cancel(self) -> None:
        self.worker.cancelled.set()
        self.jobs.put(None)
        self.dialog.status("cancelling...")


class ShotStyleDialog:
    """The dialog and what its buttons do, for one composition."""

    def __init__(self, fusion: "Fusion", bmd: "Bmd", comp: "Comp", resolve: "Optional[Resolve]" = None):
        self.fusion = fusion
        self.comp = comp
        self.resolve = resolve
        self.key = "fusion-dialog-{}".format(id(self))
        self.dispatcher = bmd.UIDispatcher(fusion.UIManager)
        self.description = self.bridge().describe()    # the local server's, if one runs (never starts one)
        self.window = self.dispatcher.AddWindow(
            {"ID": WINDOW_ID, "WindowTitle": "ShotStyle", "Geometry": [200, 200, 460, 760]},
            dialog.layout(fusion.UIManager, self.description))
        self.timer = self._make_timer(fusion.UIManager)
        self.items = self.window.GetItems()
        dialog.fill_choices(self.items, self.description,
                            [tool.Name for tool in fusioncomp.plate_tools(comp)])
        self.actions = {"train": TrainAction, "stylize_range": StylizeAction, "export_lut": ExportLutAction,
                        dialog.CONNECT: ConnectAction}  # type: Dict[str, Callable[[ShotStyleDialog], Any]]
        self.action = None  # type: Any
        self.closing = False
        for widget_id in dialog.button_ids(self.description):
            getattr(self.window.On, widget_id).Clicked = self._clicked(widget_id)
        getattr(self.window.On, WINDOW_ID).Close = lambda event: self.close()

    def _make_timer(self, ui: Any) -> Any:
        """The UI timer that runs actions in steps; None on a Resolve whose UIManager has none."""
        try:
            timer = ui.Timer({"ID": dialog.TIMER, "Interval": dialog.TIMER_INTERVAL_MS})
            self.window.AddChild(timer)
        except (AttributeError, TypeError):
            return None
        getattr(self.window.On, dialog.TIMER).Timeout = lambda event: self._step()
        return timer

    def _clicked(self, widget_id: str) -> Callable[[Any], None]:
        def handler(event: Any) -> None:
            if widget_id.endswith("_browse"):
                self.browse(widget_id[:-len("_browse")])
            elif widget_id == dialog.CANCEL:
                if self.action is not None:
                    self.action.cancel()
            elif widget_id in self.actions:
                self.start(self.actions[widget_id])
            else:
                self.status("this version of the script has no action for '{}'; update shotstyle".format(widget_id))
        return handler

    # -- actions ----------------------------------------------------------------------------
    def start(self, make_action: Callable[["ShotStyleDialog"], Any]) -> None:
        if self.action is not None:
            self.status("busy: wait for the running action, or Cancel it")
            return
        try:
            self.action = make_action(self)
        except ERRORS as exc:
            self.status("error: {}".format(exc))
            return
        self._buttons(running=True)
        if self.timer is None:              # no UI timer here: run the action through, the dialog waits
            while not self._step():
                pass
        else:
            self.timer.Start()

    def _step(self) -> bool:
        """One step of the running action (timer event); True when none is left running."""
        if self.action is None:
            return True
        try:
            finished = self.action.step()
        except ERRORS as exc:
            self.action.cancel()
            self.status("error: {}".format(exc))
            finished = self.action.worker.done()
        if finished:
            self.action = None
            self._buttons(running=False)
            if self.timer is not None:
                self.timer.Stop()
            if self.closing:
                self.dispatcher.ExitLoop()
        return finished

    def _buttons(self, running: bool) -> None:
        for widget_id in dialog.action_ids(self.description):
            self.items[widget_id].Enabled = not running
        self.items[dialog.CANCEL].Enabled = running

    def close(self) -> None:
        """The window's close box: a running action is cancelled first, then the dialog ends."""
        if self.action is None:
            self.dispatcher.ExitLoop()
            return
        self.closing = True
        self.action.cancel()

    # -- helpers ----------------------------------------------------------------------------
    def status(self, text: str) -> None:
        self.items[dialog.STATUS].Text = text
        print("ShotStyle: " + text)

    def values(self) -> Dict[str, Any]:
        return dialog.read_values(self.items, self.description)   # the server validates them

    def bridge(self) -> HostBridge:
        """The dialog's connection to its server (kept while the server address and keys stay the same)."""
        items = getattr(self, "items", {})  # (an older server's description has no key fields)
        values = [str(items[name].Text).strip() if name in items else "" for name in ("server", "server_key",
                                                                                       "client_key")]
        return bridges.get(self.key, *values)

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

    def import_to_media_pool(self, folder: str, first: int, last: int) -> str:
        """Add the stylized sequence to Resolve's Media Pool; a note for the status line ("" in Fusion Studio)."""
        if self.resolve is None:
            return ""
        pattern = os.path.join(folder, "shotstyle.%04d.exr")
        pool = self.resolve.GetProjectManager().GetCurrentProject().GetMediaPool()
        if not pool.ImportMedia([{"FilePath": pattern, "StartIndex": first, "EndIndex": last}]):
            return "; Resolve could not add {} ({}-{}) to the Media Pool: import it by hand".format(pattern, first, last)
        return "; added to the Media Pool"

    def run(self) -> None:
        self.window.Show()
        self.start(ConnectAction)
        self.dispatcher.RunLoop()
        self.window.Hide()
        bridges.release(self.key)


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
