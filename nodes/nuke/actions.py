"""What the ShotStyle node's buttons do: connect, Train, Stylize range (and the farm's per-frame stylize).

Frames travel as EXR: the node's inner PlateWrite renders the needed input frames to the cache
(``nuke.execute``, on Nuke's main thread), ``hostbridge`` sends the file bytes and writes the
stylized EXRs back, and the inner Result Read shows them. In the GUI the server round trips
run on a worker thread with a ``nuke.ProgressTask`` (cancellable) and knob updates go back to
the main thread; in terminal sessions (``nuke -t``/``-x``) everything runs in line.
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import threading
from typing import Any, Callable, Dict, List, Optional, Tuple

import nuke

from shotstyle.nodes.hostbridge import HostBridge, HostBridgeError, frame_runs, safe_name
from shotstyle.nodes.nuke import knobs, node as ssnode
from shotstyle.plugin import codec
from shotstyle.plugin.sequences import SequencePattern, parse_frame_range


def press(group: nuke.Node, name: str) -> Optional[threading.Thread]:
    """A button of the node was pressed (knobs.BUTTON_COMMAND)."""
    buttons: Dict[str, Callable[[nuke.Node], Optional[threading.Thread]]] = {
        ssnode.CONNECT_BUTTON: connect, "train": train, "stylize_range": stylize_range}
    if name not in buttons:
        nuke.message("ShotStyle: this version of the node has no action for the '{}' button; "
                     "update shotstyle on this machine".format(name))
        return None
    try:
        return buttons[name](group)
    except (HostBridgeError, ssnode.ShotStyleNodeError, ValueError) as exc:
        _report(group, str(exc))
        return None


def bridge_for(group: nuke.Node, farm: bool = False, autostart: bool = True, timeout: float = 30.0) -> HostBridge:
    """The node's server: its ``server`` knob, or the local one (always the local one on the farm)."""
    address = "" if farm else str(group["server"].value())
    return HostBridge(address, autostart=autostart, timeout=timeout)


def values(group: nuke.Node) -> Dict[str, Any]:
    return knobs.read_values(group, ssnode.description_of(group))


def connect(group: nuke.Node) -> None:
    """Refresh the status line, the model picker and any parameters a newer server describes."""
    bridge = bridge_for(group, autostart=False, timeout=5.0)   # runs on the main thread: answer soon
    try:
        status = bridge.status_line()
        ssnode.set_status(group, status)
        if not status.startswith("connected"):
            return None
        description = bridge.describe()
        added = knobs.sync_knobs(group, description)
        if added:
            group[ssnode.DESCRIPTION_KNOB].setValue(json.dumps(description))
        ssnode.set_models(group, bridge.model_names())
    finally:
        bridge.close()
    return None


# ------------------------------------------------------------------ frames
def input_frames(group: nuke.Node) -> List[int]:
    """The frames ``Stylize range`` covers: the knob's list, else the input's frame range."""
    text = str(group[ssnode.RANGE_KNOB].value()).strip()
    if text:
        return parse_frame_range(text)
    source = group.input(0)
    if source is None:
        raise ssnode.ShotStyleNodeError("{}: connect a plate to its input first".format(group.name()))
    return list(range(source.firstFrame(), source.lastFrame() + 1))


def write_plates(group: nuke.Node, frames: List[int]) -> List[Tuple[int, str]]:
    """Render the node's input for ``frames`` to EXR with the inner PlateWrite; (frame, path) pairs."""
    if group.input(0) is None:
        raise ssnode.ShotStyleNodeError("{}: connect a plate to its input first".format(group.name()))
    ssnode.update_result_read(group)
    write = ssnode.inner(group, ssnode.PLATE_WRITE)
    pattern = SequencePattern(ssnode.plate_pattern(group))
    os.makedirs(os.path.dirname(pattern.path(frames[0])), exist_ok=True)
    from shotstyle.nodes.nuke import callbacks   # our own render callbacks must not react to this render
    with callbacks.internal_render():
        for first, last in frame_runs(frames):
            nuke.execute(write, first, last)
    return [(frame, pattern.path(frame)) for frame in frames]


def _in_main(function: Callable[..., Any], *args: Any) -> None:
    """Run ``function`` on Nuke's main thread (knob changes must happen there)."""
    if nuke.GUI and threading.current_thread() is not threading.main_thread():
        nuke.executeInMainThread(function, args=args)
    else:
        function(*args)


def _start(work: Callable[[], None]) -> Optional[threading.Thread]:
    """Run the server part in a worker thread in the GUI, in line otherwise."""
    if not nuke.GUI:
        work()
        return None
    thread = threading.Thread(target=work, name="shotstyle", daemon=True)
    thread.start()
    return thread


def _report(group: nuke.Node, message: str) -> None:
    _in_main(ssnode.set_status, group, "error: " + message)
    if nuke.GUI:
        _in_main(nuke.message, "ShotStyle: " + message)
    else:
        nuke.tprint("ShotStyle {}: {}".format(group.name(), message))


# ------------------------------------------------------------------ training
def train(group: nuke.Node) -> Optional[threading.Thread]:
    """Train on the listed keyframes (or the current frame) with the style file; preview as it goes."""
    description = ssnode.description_of(group)
    current = values(group)
    files = knobs.read_clip_files(group, description)
    if "style" not in files:
        raise ssnode.ShotStyleNodeError("{}: choose a style image in its Style knob first".format(group.name()))
    keyframes = parse_frame_range(current["keyframes"]) if current.get("keyframes") else [nuke.frame()]
    plates = write_plates(group, keyframes)
    preview = (keyframes[0], files["preview"]) if "preview" in files else None
    name = str(current.get("model") or "").strip() or safe_name(
        "{}_{}".format(os.path.splitext(os.path.basename(str(nuke.root()["name"].value())))[0] or "untitled",
                       group.name()))
    group[ssnode.TRAINING_KNOB].setValue(keyframes[0])
    # Everything the worker thread needs from knobs is read here, on the main thread.
    preview_template = ssnode.preview_template(group)
    model_path = ssnode.model_file(group, name)
    bridge = bridge_for(group)

    def show_preview(step: int, image: codec.EncodedFrame) -> None:
        path = preview_template.format(step)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        codec.write_file(image, path)
        _in_main(_point_preview, group, path)

    def work() -> None:
        task = nuke.ProgressTask("ShotStyle: training {}".format(name))
        try:
            final = bridge.train(plates, files["style"], name, current, description, preview=preview,
                                 on_progress=lambda event: _progress(task, event),
                                 on_preview=show_preview, should_cancel=lambda: bool(task.isCancelled()))
            model = str(final.get("model") or name)
            if final.get("type") == "done":
                bridge.fetch_model(model, model_path)   # the server names the model as asked
                _in_main(_trained, group, model, bridge.model_names())
            else:
                _in_main(ssnode.set_status, group, "training cancelled" + (
                    "; checkpoint kept as model " + model if final.get("model") else ""))
        except (HostBridgeError, OSError) as exc:
            _report(group, str(exc))
        finally:
            bridge.close()
            _in_main(lambda: group[ssnode.TRAINING_KNOB].setValue(-1))
            del task

    return _start(work)


def _progress(task: nuke.ProgressTask, event: Dict[str, Any]) -> None:
    steps = max(1, int(event.get("steps") or 1))
    step = int(event.get("step") or 0)
    losses = ", ".join("{} {:.4g}".format(k, v) for k, v in sorted((event.get("losses") or {}).items()))
    task.setProgress(int(100 * step / steps))
    task.setMessage("step {}/{}  {}  (about {:.0f} s left)".format(step, steps, losses, event.get("eta_s") or 0))


def _point_preview(group: nuke.Node, path: str) -> None:
    """Show a new preview file: a new file name per step makes Nuke read it afresh."""
    read = ssnode.inner(group, ssnode.PREVIEW_READ)
    old = str(read["file"].value())
    read["file"].setValue(path)
    if old and old != path and os.path.isfile(old):
        os.remove(old)


def _trained(group: nuke.Node, model: str, models: List[str]) -> None:
    # A retrained model makes every result made with its previous weights stale.
    for folder in glob.glob(os.path.join(ssnode.results_root(group), safe_name(model) + "-*")):
        shutil.rmtree(folder, ignore_errors=True)
    group["model"].setValue(model)
    ssnode.set_models(group, models)
    ssnode.update_result_read(group)
    ssnode.set_status(group, "trained model {}; press Stylize range (or render) to apply it".format(model))


# ------------------------------------------------------------------ stylizing
def stylize_range(group: nuke.Node) -> Optional[threading.Thread]:
    return stylize(group, input_frames(group))


def stylize(group: nuke.Node, frames: List[int], in_render: bool = False) -> Optional[threading.Thread]:
    """Stylize the frames of ``frames`` that have no result yet for the current settings.

    ``in_render``: called from a render callback: runs in line, raises on errors, and in a
    terminal session (farm) uses the local server, uploading the model there when it lacks it.
    """
    current = values(group)
    model = str(current.get("model") or "")
    if not model:
        raise ssnode.ShotStyleNodeError("{}: no model chosen; train one or pick one from the server".format(
            group.name()))
    results = SequencePattern(ssnode.result_pattern(group))
    pending = [frame for frame in frames if not os.path.isfile(results.path(frame))]
    if not pending:
        ssnode.update_result_read(group)
        return None
    plates = write_plates(group, pending)
    jobs = [(frame, path, results.path(frame)) for frame, path in plates]
    bridge = bridge_for(group, farm=in_render and not nuke.GUI)
    model_path = ssnode.model_file(group, model)

    def work() -> None:
        task = None if in_render else nuke.ProgressTask("ShotStyle: stylizing {} frame(s)".format(len(jobs)))
        done: List[int] = []

        def on_frame(frame: int, path: str) -> None:
            done.append(frame)
            if task is not None:
                task.setProgress(int(100 * len(done) / len(jobs)))
                task.setMessage("frame {} ({} of {})".format(frame, len(done), len(jobs)))

        try:
            if in_render:
                bridge.ensure_model(model, model_path)
            bridge.stylize_files(jobs, model, current, on_frame=on_frame,
                                 should_cancel=lambda: task is not None and bool(task.isCancelled()))
            _in_main(ssnode.set_status, group, "stylized {} frame(s) with {}".format(len(done), model))
        except (HostBridgeError, OSError) as exc:
            if in_render:
                raise
            _report(group, str(exc))
        finally:
            bridge.close()
            for _, plate in plates:
                if os.path.isfile(plate):
                    os.remove(plate)
            _in_main(ssnode.update_result_read, group)

    if in_render:
        work()
        return None
    return _start(work)
