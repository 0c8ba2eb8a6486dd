"""What the ShotStyle node's buttons do: Connect, Train, Stylize range, Export LUT.

Frames travel as EXR: the node's inner Writes render what a server round trip needs (the plate
frames, and for training the style and preview frames when those come from the node's inputs)
with ``nuke.execute`` on Nuke's main thread, from the button, never from a render callback.
``hostbridge`` then sends the file bytes and writes the stylized EXRs into the node's cache,
where its Result Read finds them. In the GUI every server round trip runs on a worker thread
(the panel never freezes; Train and Stylize show a cancellable ``nuke.ProgressTask``) through
the node's own bridge, made once and reused; knob changes go back to the main thread. In
terminal sessions everything runs in line.
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import threading
from typing import Any, Callable, Dict, List, Optional, Tuple

import nuke

from shotstyle.nodes.hostbridge import HostBridge, HostBridgeError, bridges, frame_runs, safe_name
from shotstyle.nodes.nuke import knobs, node as ssnode
from shotstyle.plugin import codec, protocol
from shotstyle.plugin.errors import ClientError
from shotstyle.plugin.previews import PreviewFile
from shotstyle.plugin.sequences import SequencePattern, parse_frame_range


def press(group: nuke.Node, name: str) -> Optional[threading.Thread]:
    """A button of the node was pressed (knobs.BUTTON_COMMAND)."""
    buttons: Dict[str, Callable[[nuke.Node], Optional[threading.Thread]]] = {
        ssnode.CONNECT_BUTTON: connect, "train": train, "stylize_range": stylize_range, "export_lut": export_lut}
    if name not in buttons:
        nuke.message("ShotStyle: this version of the node has no action for the '{}' button; "
                     "update shotstyle on this machine".format(name))
        return None
    try:
        return buttons[name](group)
    except (ClientError, ValueError, RuntimeError, OSError) as exc:
        _report(group, str(exc))
        return None


def bridge_for(group: nuke.Node) -> HostBridge:
    """The node's bridge to its server (its ``server`` knob, or the local one; the CURVE key knobs of a node
    made before they existed count as empty), kept across actions."""
    keys = [group.knob(name) for name in ("server_key", "client_key")]
    server_key, client_key = (str(knob.value()) if knob is not None else "" for knob in keys)
    return bridges.get(ssnode.node_id(group), str(group["server"].value()), server_key, client_key)


def values(group: nuke.Node) -> Dict[str, Any]:
    return knobs.read_values(group, ssnode.description_of(group))


def connect(group: nuke.Node) -> Optional[threading.Thread]:
    """Refresh the status line, the model picker and any parameters a newer server describes."""
    bridge = bridge_for(group)
    ssnode.set_status(group, "connecting...")

    def work() -> None:
        try:
            with bridge.session("connecting"):
                status = bridge.status_line()
                if not status.startswith("connected"):
                    _in_main(ssnode.set_status, group, status)
                    return
                description, names = bridge.describe(), bridge.model_names()
        except HostBridgeError as exc:
            _report(group, str(exc))
            return
        _in_main(_connected, group, status, description, names)

    return _start(work)


def _connected(group: nuke.Node, status: str, description: Dict[str, Any], names: List[str]) -> None:
    ssnode.set_status(group, status)
    if knobs.sync_knobs(group, description):
        group[ssnode.DESCRIPTION_KNOB].setValue(json.dumps(description))
    ssnode.set_models(group, names)


# ------------------------------------------------------------------ frames
def input_frames(group: nuke.Node) -> List[int]:
    """The frames ``Stylize range`` covers: the knob's list, else the plate input's frame range."""
    text = str(group[ssnode.RANGE_KNOB].value()).strip()
    if text:
        return parse_frame_range(text)
    if group.input(ssnode.PLATE_INPUT) is None:
        raise ssnode.ShotStyleNodeError("{}: connect a plate to its input first".format(group.name()))
    first, last = ssnode.input_range(group)
    return list(range(first, last + 1))


def render_frames(group: nuke.Node, write_name: str, pattern: str, frames: List[int]) -> List[Tuple[int, str]]:
    """Render the inner Write ``write_name`` for ``frames`` into ``pattern``; (frame, path) pairs."""
    write = ssnode.inner(group, write_name)
    write["file"].setValue(pattern)
    sequence = SequencePattern(pattern)
    os.makedirs(os.path.dirname(sequence.path(frames[0])), exist_ok=True)
    for first, last in frame_runs(frames):
        nuke.execute(write, first, last)
    return [(frame, sequence.path(frame)) for frame in frames]


def write_plates(group: nuke.Node, frames: List[int]) -> List[Tuple[int, str]]:
    """The plate input at ``frames`` as EXRs in the node's cache."""
    if group.input(ssnode.PLATE_INPUT) is None:
        raise ssnode.ShotStyleNodeError("{}: connect a plate to its input first".format(group.name()))
    return render_frames(group, ssnode.PLATE_WRITE, ssnode.plate_pattern(group), frames)


def _input_frame(group: nuke.Node, index: int, write_name: str, frame: int) -> Optional[str]:
    """The node's input ``index`` rendered at ``frame`` (held at its ends), or None when unconnected."""
    source = group.input(index)
    if source is None:
        return None
    held = min(max(frame, source.firstFrame()), source.lastFrame())
    return render_frames(group, write_name, ssnode.training_pattern(group, write_name), [held])[0][1]


def style_frame(group: nuke.Node, frame: int) -> str:
    """The style frame: the node's style input at ``frame``, else its Style file."""
    path = _input_frame(group, ssnode.STYLE_INPUT, ssnode.STYLE_WRITE, frame)
    path = path or knobs.read_clip_files(group, ssnode.description_of(group)).get("style")
    if not path:
        raise ssnode.ShotStyleNodeError("{}: connect a style frame to its 'style' input, or choose a Style file "
                                        "first".format(group.name()))
    return path


def preview_frame(group: nuke.Node, frame: int) -> Optional[Tuple[int, str]]:
    """The optional preview frame (its input, else its file), tagged with the first keyframe."""
    path = _input_frame(group, ssnode.PREVIEW_INPUT, ssnode.PREVIEW_WRITE, frame)
    path = path or knobs.read_clip_files(group, ssnode.description_of(group)).get("preview")
    return (frame, path) if path else None


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
    """Train on the listed keyframes (or the current frame) with the style frame; preview as it goes."""
    description = ssnode.description_of(group)
    current = values(group)
    keyframes = parse_frame_range(current["keyframes"]) if current.get("keyframes") else [nuke.frame()]
    style = style_frame(group, keyframes[0])
    preview = preview_frame(group, keyframes[0])
    plates = write_plates(group, keyframes)
    name = str(current.get("model") or "").strip() or safe_name(
        "{}_{}".format(os.path.splitext(os.path.basename(str(nuke.root()["name"].value())))[0] or "untitled",
                       group.name()))
    group[ssnode.TRAINING_KNOB].setValue(keyframes[0])
    # Everything the worker thread needs from knobs is read here, on the main thread.
    previews = PreviewFile(ssnode.preview_template(group).format)
    model_path = ssnode.model_file(group, name)
    bridge = bridge_for(group)

    def show_preview(step: int, image: codec.EncodedFrame) -> None:
        _in_main(_point_preview, group, previews.write(step, lambda path: codec.write_file(image, path)))

    def work() -> None:
        task = nuke.ProgressTask("ShotStyle: training {}".format(name))
        try:
            with bridge.session("training {}".format(name)):
                final = bridge.train(plates, style, name, current, description, preview=preview,
                                     on_progress=lambda event: _progress(task, event),
                                     on_preview=show_preview, should_cancel=lambda: bool(task.isCancelled()))
                model = str(final.get("model") or name)
                if final.get("type") == protocol.EVENT_DONE:
                    bridge.fetch_model(model, model_path)   # kept beside the script for farm renders
                    names = bridge.model_names()
            if final.get("type") == protocol.EVENT_DONE:
                _in_main(_trained, group, model, names)
            else:
                _in_main(ssnode.set_status, group, "training cancelled" + (
                    "; checkpoint kept as model " + model if final.get("model") else ""))
        except (HostBridgeError, OSError) as exc:
            _report(group, str(exc))
        finally:
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
    _reload_results(group)
    ssnode.set_status(group, "trained model {}; press Stylize range (or render) to apply it".format(model))


def _reload_results(group: nuke.Node) -> None:
    """Make the Result Read look at the files again (they changed under the same name pattern)."""
    reload = ssnode.inner(group, ssnode.RESULT_READ).knob("reload")
    if isinstance(reload, nuke.Script_Knob):
        reload.execute()


# ------------------------------------------------------------------ stylizing
def _chosen_model(group: nuke.Node) -> str:
    model = str(values(group).get("model") or "")
    if not model:
        raise ssnode.ShotStyleNodeError("{}: no model chosen; train one or pick one from the server".format(
            group.name()))
    return model


def stylize_range(group: nuke.Node) -> Optional[threading.Thread]:
    return stylize(group, input_frames(group))


def stylize(group: nuke.Node, frames: List[int]) -> Optional[threading.Thread]:
    """Stylize the frames of ``frames`` that have no result yet for the current settings."""
    current = values(group)
    model = _chosen_model(group)
    results = SequencePattern(ssnode.result_pattern(group))
    pending = [frame for frame in frames if not os.path.isfile(results.path(frame))]
    if not pending:
        ssnode.set_status(group, "all {} frame(s) already stylized with {}".format(len(frames), model))
        return None
    plates = write_plates(group, pending)
    jobs = [(frame, path, results.path(frame)) for frame, path in plates]
    bridge = bridge_for(group)

    def work() -> None:
        task = nuke.ProgressTask("ShotStyle: stylizing {} frame(s)".format(len(jobs)))
        done: List[int] = []

        def on_frame(frame: int, path: str) -> None:
            done.append(frame)
            task.setProgress(int(100 * len(done) / len(jobs)))
            task.setMessage("frame {} ({} of {})".format(frame, len(done), len(jobs)))

        try:
            with bridge.session("stylizing {} frame(s)".format(len(jobs))):
                bridge.stylize_files(jobs, model, current, on_frame=on_frame,
                                     should_cancel=lambda: bool(task.isCancelled()))
            _in_main(ssnode.set_status, group, "stylized {} frame(s) with {}".format(len(done), model))
        except (HostBridgeError, OSError) as exc:
            _report(group, str(exc))
        finally:
            for _, plate in plates:
                if os.path.isfile(plate):
                    os.remove(plate)
            _in_main(_reload_results, group)
            del task

    return _start(work)


# ------------------------------------------------------------------ the look as a LUT
def export_lut(group: nuke.Node) -> Optional[threading.Thread]:
    """Write the chosen model's grade as a .cube (and an OCIO look beside it) where the artist says:
    a file browser in the GUI (offering the node's cache), the node's cache in terminal sessions."""
    model = _chosen_model(group)
    path = ssnode.lut_file(group, model)
    if nuke.GUI:
        chosen = nuke.getFilename("ShotStyle: export the look of {} as a LUT".format(model), "*.cube", path)
        if not chosen:
            return None  # the artist cancelled the browser
        path = chosen if chosen.lower().endswith(".cube") else chosen + ".cube"
    bridge = bridge_for(group)

    def work() -> None:
        try:
            with bridge.session("exporting a LUT"):
                result = bridge.export_lut(model, path)
        except (HostBridgeError, OSError) as exc:
            _report(group, str(exc))
            return
        _in_main(ssnode.set_status, group, "LUT of {} written: {}".format(model, " and ".join(result["paths"])))
        text = "ShotStyle: wrote {}\n\n{}".format("\n".join(result["paths"]), result.get("report_text", ""))
        if nuke.GUI:
            _in_main(nuke.message, text)
        else:
            nuke.tprint(text)

    return _start(work)

