"""`shotstyle train`: train a style model on one or more keyframes, here or on a server.

``--in-process`` runs the engine's trainer in this process; otherwise the keyframes and style
image are sent to a server (``--server ADDR``, or the local server, started if absent), its
progress events drive the same progress bar, and the finished model is downloaded to ``-o``.
The bar shows step, each loss term, steps/s and ETA (redrawn in place on a terminal, one line
every few percent in a farm log).

Ctrl-C cancels: in-process the current weights are saved to ``-o`` as a checkpoint; through a
server the job is cancelled and its checkpoint downloaded. A server that stops (SIGTERM,
shutdown) sends the checkpoint with its last event, so it is written to ``-o`` even if the
server is gone a moment later; a server that is lost (killed, hung, unreachable) is reported as
"server lost" within seconds, and a restarted one that no longer knows the job says so.
``--init MODEL`` continues a model, in-process or on a server (the model travels with the
request): the rest of an interrupted run by default, ``--steps`` as the new total, or
``--more-steps N``; its network and loss are kept (`server.engine.resume`). Before training,
one line says where it runs (the server, found or started, and its device), the network and the
loss chosen and why (``--arch grade``: the closed-form grade alone, no steps), resolution, steps
and mattes. ``--matte``/``--labels`` (plugin.mattes) travel with the request to a server.
Exit status: `plugin.exitcodes.ExitCode` (0 ok, 2 usage, 3 missing or unreadable input,
4 model error or missing VGG-19 weights, 5 server unreachable or lost, 6 training failed or
stopped by the server, 7 ``-o`` cannot be written, 130 cancelled); a failure gives the same
status in-process and through a server.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Optional, TextIO

from shotstyle.cli.connection import add_key_options, connect, keys_from, server_address, server_line
from shotstyle.cli.verbosity import ERRORS, NORMAL, VERBOSE, shows
from shotstyle.plugin import params as effect_params
from shotstyle.plugin.client import Client, Job, follow
from shotstyle.plugin.errors import ClientError, ServerError, SetupError
from shotstyle.plugin.exitcodes import ExitCode
from shotstyle.plugin.files import write_atomic
from shotstyle.plugin.mattes import LABELS, parse as parse_mattes
from shotstyle.plugin.previews import PreviewFile
from shotstyle.plugin.protocol import CANCEL_BY_SERVER, EVENT_DONE, EVENT_PREVIEW

if TYPE_CHECKING:
    import numpy as np

    from shotstyle.server.engine.training import TrainEvent

BAR_WIDTH = 24
# Options the effect's parameter set carries (named alike in TrainConfig); the others exist only in-process.
SERVER_PARAMS = ("strength", "steps", "resolution", "loss", "arch", "seed", "early_stop", "adaptive_content")
GRADE = "grade"  # the architecture that is the closed-form grade alone (engine/networks/grade_only.py)


def configure(parser: argparse.ArgumentParser) -> None:
    default = effect_params.defaults()  # the effect's one set of defaults, shared with the server and nodes
    parser.add_argument("--content", action="append", required=True, metavar="KEYFRAME",
                        help="a keyframe of the shot (repeat for several)")
    parser.add_argument("--style", required=True, help="the style image whose look the shot should take")
    parser.add_argument("-o", "--output", required=True, metavar="MODEL", help="model file to write (.safetensors)")
    parser.add_argument("--loss", choices=effect_params.choices("loss"),
                        help=f"{effect_params.help_of('loss')} (default {default['loss']}; with --init the model's own)")
    parser.add_argument("--vgg", metavar="PATH|random", help="VGG-19 weights file, or 'random' (tests only)")
    parser.add_argument("--arch", choices=effect_params.choices("arch"),
                        help=f"the network (default {default['arch']}; with --init the model's own)")
    parser.add_argument("--strength", type=float, default=default["strength"],
                        help="0 keeps the plate, 1 pushes to the style")
    parser.add_argument("--steps", type=int, help=f"training steps (default {default['steps']}); with --init the "
                                                  "total, counting the steps the model has had")
    parser.add_argument("--more-steps", type=int, metavar="N", help="with --init: train N steps more")
    parser.add_argument("--resolution", type=int, default=default["resolution"], help="training long side in pixels")
    parser.add_argument("--lr", type=float, help="learning rate (in-process only; default: the trainer's)")
    parser.add_argument("--seed", type=int, default=default["seed"])
    parser.add_argument("--preview", metavar="FRAME",
                        help="an extra frame (not trained on) to preview the look on: its result is written to "
                             "MODEL.preview.png as training goes (every --preview-every steps, and at the end)")
    parser.add_argument("--preview-every", type=int, default=default["preview_every"], metavar="N",
                        help="write the --preview frame's result every N steps (0: at the end only)")
    parser.add_argument("--init", metavar="MODEL", help="continue this model: the rest of an interrupted run "
                                                        "(a Ctrl-C checkpoint), or --steps/--more-steps further")
    parser.add_argument("--early-stop", action="store_true", help="stop when the loss plateaus")
    parser.add_argument("--adaptive-content", action="store_true", help="adapt the content weight while training")
    parser.add_argument("--colourspace",
                        help=f"colour space of the keyframes' RGB (default: {effect_params.DEFAULT_COLOURSPACE_SAID})")
    parser.add_argument("--matte", action="append", default=[], metavar="NAME=PLATE_MATTE:STYLE_MATTE",
                        help="this plate region takes the look of that style region (repeat for several): "
                             "PLATE_MATTE is channel:CHANNEL (that channel of every --content keyframe, e.g. "
                             "channel:matte.sky), crypto:LAYER/NAME (the matte of NAME, or of the manifest's names a "
                             "pattern such as window_* matches, in every keyframe's cryptomatte layer, e.g. "
                             "crypto:CryptoObject/sky_geo; stored as 32-bit float) or matte "
                             "image files, one per keyframe, separated by ','; "
                             "STYLE_MATTE a matte image of --style. An image's matte is its alpha if it has one, "
                             "else its first channel; each must be the size of its image")
    parser.add_argument("--labels", metavar="PLATE_LABELS:STYLE_LABELS",
                        help="label images (one flat colour per region; PLATE_LABELS one per keyframe, separated "
                             "by ','): each colour present in all of them becomes a matte")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--server", metavar="ADDR", type=server_address,
                       help="train on this server (host:port, :port, port, tcp://..., ipc://...; default: the "
                            "local server, started if absent)")
    where.add_argument("--in-process", action="store_true", help="train here, without a server")
    add_key_options(parser)


class ProgressBar:
    """Training progress: step, losses, steps/s, ETA; in place on a terminal, sparse lines in a log (every
    step with -v, none with -q); and the command's notes (`note`), errors said even with -q."""

    def __init__(self, stream: Optional[TextIO] = None, command: str = "shotstyle train"):
        self.stream = stream or sys.stderr
        self.command = command  # what notes start with
        self.interactive = self.stream.isatty()
        self._last_percent = -1
        self._last_step = -1
        self._drawn = False

    def update(self, step: int, steps: int, losses: dict[str, float], steps_per_s: float, eta_s: float) -> None:
        percent = 100 * step // max(steps, 1)
        if not shows(NORMAL) or not self.interactive and (
                step == self._last_step
                or percent // 5 == self._last_percent // 5 and step != steps and not shows(VERBOSE)):
            return
        self._last_percent, self._last_step = percent, step
        filled = BAR_WIDTH * step // max(steps, 1)
        terms = " ".join(f"{name}={value:.4g}" for name, value in losses.items())
        line = (f"step {step}/{steps} [{'#' * filled}{'.' * (BAR_WIDTH - filled)}] {percent:3d}% "
                f"{terms} | {steps_per_s:.2f} steps/s ETA {_clock(eta_s)}")
        if self.interactive:
            self.stream.write("\r\x1b[K" + line)
            self._drawn = True
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def note(self, message: str, level: int = NORMAL) -> None:
        """Say ``message`` if ``level`` is shown (ERRORS: an error or failure, said even with -q)."""
        if not shows(level):
            return
        if self._drawn:
            self.stream.write("\n")
            self._drawn = False
        self.stream.write(f"{self.command}: {message}\n")
        self.stream.flush()


def _clock(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}" if seconds >= 3600 \
        else f"{seconds // 60}:{seconds % 60:02d}"


def run(args: argparse.Namespace) -> int:
    bar = ProgressBar()
    problem = _check_args(args) or _plan_steps(args, bar)
    if problem is not None:
        bar.note(problem[1], ERRORS)
        return int(problem[0])
    for note in _reading_notes(args):
        bar.note(note)
    started = time.perf_counter()
    previews = Previews(args, bar)
    code = _train_in_process(args, bar, previews) if args.in_process else _train_on_server(args, bar, previews)
    if code == ExitCode.OK:
        bar.note(f"model written to {args.output} in {time.perf_counter() - started:.1f} s")
    previews.say_where()
    return int(code)


def _reading_notes(args: argparse.Namespace) -> list[str]:
    """What reading the images does that their pixels alone do not show: a note for each keyframe
    (without --colourspace) and the style whose default colour space is in doubt
    (`reading.colour_doubt`), and for a style that its orientation tag turns upright
    (media/orientation.py)."""
    from shotstyle.media.orientation import turn_said
    from shotstyle.media.reading import colour_doubt, probe
    from shotstyle.server.errors import FrameIOError
    paths = ([] if args.colourspace else list(args.content)) + [args.style]
    notes = []
    for path in paths:
        try:
            header = probe(path)
        except FrameIOError:
            continue  # reading it says what is wrong
        turn = turn_said(header["attributes"])
        if path == args.style and turn is not None:
            notes.append(f"{path}: taken upright, {turn}, as its orientation tag says (as viewers show it)")
        doubt = colour_doubt(header)
        if doubt is not None:
            notes.append(f"{path}: {doubt}, which may shift the look's colours: convert it to sRGB or Display P3 first"
                         + ("" if path == args.style else ", or give --colourspace"))
    return notes


def preview_path(output: str) -> str:
    """Where `train --preview` writes its frame's result: beside the model, ``NAME.preview.png``."""
    return os.path.splitext(output)[0] + ".preview.png"


class Previews:
    """Writes the --preview frame's result (display-encoded PNG) whenever a preview arrives, by the
    hosts' preview path (`plugin.previews`)."""

    def __init__(self, args: argparse.Namespace, bar: ProgressBar):
        path = preview_path(args.output)
        self.file = PreviewFile(lambda step: path) if args.preview else None
        self.bar = bar

    def write(self, step: int, picture: Callable[[], np.ndarray]) -> None:
        """The result at ``step``; ``picture()`` gives its display RGB (made only when it is written)."""
        if self.file is None:
            return
        from shotstyle.cli.review import write_png

        first = self.file.step is None
        try:
            path = self.file.write(step, lambda where: write_png(picture(), where))
        except OSError as exc:
            self.bar.note(f"the preview cannot be written to {self.file.where(step)} ({exc.strerror or exc})",
                          ERRORS)
            self.file = None
            return
        if first:
            self.bar.note(f"preview of the --preview frame (step {step}) written to {path}")

    def say_where(self) -> None:
        if self.file is not None and self.file.step is not None:
            self.bar.note(f"preview of the --preview frame at step {self.file.step}: {self.file.path}")


def _effect_values(args: argparse.Namespace) -> dict[str, Any]:
    """The effect's training parameters as given to this command (a server is sent them)."""
    return {**{name: getattr(args, name) for name in SERVER_PARAMS}, "preview_every": args.preview_every}


def _check_args(args: argparse.Namespace) -> Optional[tuple[ExitCode, str]]:
    try:
        effect_params.validate({name: getattr(args, name) for name in SERVER_PARAMS
                                if getattr(args, name) is not None})
        args.keys = keys_from(args)
    except ValueError as exc:
        return ExitCode.USAGE, str(exc)
    except SetupError as exc:
        return exc.exit_code, str(exc)
    if args.more_steps is not None and args.init is None:
        return ExitCode.USAGE, "--more-steps continues a model: give it with --init MODEL"
    if args.preview_every < 0:
        return ExitCode.USAGE, f"--preview-every {args.preview_every}: give 0 (at the end only) or a number of steps"
    if args.lr is not None and args.lr <= 0:
        return ExitCode.USAGE, f"--lr {args.lr}: the learning rate must be positive"
    try:
        args.mattes = parse_mattes(";".join(args.matte + ([f"{LABELS}={args.labels}"] if args.labels else [])))
        args.mattes.check(len(args.content))
    except ValueError as exc:
        return ExitCode.USAGE, f"--matte/--labels: {exc}"
    for label, path in [*(("--content", p) for p in args.content), ("--style", args.style),
                        ("--preview", args.preview), *(("--matte/--labels", p) for p in args.mattes.images())]:
        if path is not None and not os.path.isfile(path):
            return ExitCode.MISSING_INPUT, f"{label} {path}: no such file"
    if args.init is not None and not os.path.isfile(args.init):
        return ExitCode.MODEL_ERROR, f"--init {args.init}: no such model file"
    if not args.in_process:
        local_only = [flag for flag, used in (("--lr", args.lr is not None), ("--vgg", args.vgg is not None)) if used]
        if local_only:
            return ExitCode.USAGE, (f"{', '.join(local_only)} only work with --in-process (a server chooses its "
                                    "own learning rate and VGG-19 weights)")
    folder = os.path.dirname(os.path.abspath(args.output))
    if not os.path.isdir(folder):
        return ExitCode.USAGE, f"-o {args.output}: the folder {folder} does not exist"
    try:  # found now, not after minutes of training: a folder this user cannot write into
        tempfile.TemporaryFile(dir=folder).close()
    except OSError as exc:
        return ExitCode.IO_ERROR, f"-o {args.output}: cannot write into the folder {folder} ({exc.strerror or exc})"
    return None


def _plan_steps(args: argparse.Namespace, bar: ProgressBar) -> Optional[tuple[ExitCode, str]]:
    """Fill in steps, network and loss: the defaults, or with --init the model's own and the steps still to run."""
    from shotstyle.server.engine.modelheader import read_metadata
    from shotstyle.server.engine.resume import check_same_network, steps_to_run, trained_steps
    from shotstyle.server.errors import ModelFileError, TrainingInputError

    default = effect_params.defaults()
    if args.init is None:
        args.steps = default["steps"] if args.steps is None else args.steps
        args.arch_why = "as asked" if args.arch else "the default"
        args.arch, args.loss = args.arch or default["arch"], args.loss or default["loss"]
        return _grade_without_mattes(args)
    try:
        metadata = read_metadata(args.init)
        check_same_network(metadata, args.init, args.arch, args.loss)
        args.steps = steps_to_run(metadata, args.init, args.steps, args.more_steps)
    except ModelFileError as exc:
        return ExitCode.MODEL_ERROR, f"--init {exc}"
    except TrainingInputError as exc:
        return ExitCode.USAGE, str(exc)
    args.arch, args.arch_why = metadata.get("architecture") or default["arch"], "the model's own"
    args.loss = metadata.get("loss") or default["loss"]
    done = trained_steps(metadata)
    bar.note(f"continuing {args.init} ({args.arch}, loss {args.loss}) from step {done}: {args.steps} more, "
             f"{done + args.steps} in all")
    return _grade_without_mattes(args)


def _grade_without_mattes(args: argparse.Namespace) -> Optional[tuple[ExitCode, str]]:
    if args.arch == GRADE and args.mattes:
        return ExitCode.USAGE, ("--matte/--labels guide where a network puts the look; the grade alone is one "
                                "global colour map: leave them out or choose another --arch")
    return None


# ---------------------------------------------------------------- in-process


def _train_in_process(args: argparse.Namespace, bar: ProgressBar, previews: Previews) -> int:
    from shotstyle.cli.review import display_rgb
    from shotstyle.media.orientation import upright
    from shotstyle.media.reading import read_frame
    from shotstyle.server.engine.colour import WORKING_SPACE_NAMES
    from shotstyle.server.engine.device import pick_device
    from shotstyle.server.engine.losses import resolve_loss_name
    from shotstyle.server.engine.modelfile import load_model, save_model
    from shotstyle.server.engine.pipeline import load_working, picture_alpha, working_rgb
    from shotstyle.server.engine.training import config_from_params, train
    from shotstyle.server.errors import ShotstyleError, TrainingCancelled, exit_code
    from shotstyle.server.matteimages import MATTE_COLOURSPACE, engine_mattes
    try:
        plates = [read_frame(path, args.colourspace) for path in args.content]
        keyframes = [working_rgb(plate, args.colourspace) for plate in plates]
        style_frame = upright(read_frame(args.style))
        style = working_rgb(style_frame)
        matte_frames = args.mattes.map(lambda path: read_frame(path, MATTE_COLOURSPACE))
        mattes = engine_mattes(matte_frames, plates, style_frame)
        preview = load_working(args.preview, args.colourspace) if args.preview else None
        init = load_model(args.init) if args.init else None
        loss_note = resolve_loss_name(args.loss, args.vgg)[1]
    except ShotstyleError as exc:
        bar.note(str(exc), ERRORS)
        return exit_code(exc)
    config = config_from_params(_effect_values(args), vgg=args.vgg, lr=args.lr)
    bar.note(f"in-process on {pick_device(None)}; {_plan_line(args, loss_note)}")
    cancelled = threading.Event()
    previous = signal.signal(signal.SIGINT, lambda *_: cancelled.set())

    def on_event(event: TrainEvent) -> None:  # previews carry the same step and losses
        if event.kind in ("progress", "preview"):
            bar.update(event.step, event.steps, event.losses, event.steps_per_s, event.eta_s)
        extra = event.preview_extra
        if event.kind == "preview" and extra is not None:
            previews.write(event.step, lambda: display_rgb(extra, WORKING_SPACE_NAMES[0]))

    try:
        model = train(keyframes, style, config, preview_frame=preview, on_event=on_event,
                      should_cancel=cancelled.is_set, init=init,
                      checkpoint=lambda m: save_model(m, args.output), mattes=mattes,
                      alphas=[picture_alpha(plate) for plate in plates], style_alpha=picture_alpha(style_frame))
        save_model(model, args.output)
    except TrainingCancelled:
        bar.note(f"cancelled; the current weights are saved in {args.output} (continue with --init)", ERRORS)
        return ExitCode.CANCELLED
    except ShotstyleError as exc:
        bar.note(f"training failed: {exc}", ERRORS)
        return exit_code(exc)
    except OSError as exc:
        bar.note(_unwritable(args.output, exc), ERRORS)
        return ExitCode.IO_ERROR
    finally:
        signal.signal(signal.SIGINT, previous)
    return ExitCode.OK


def _plan_line(args: argparse.Namespace, loss_note: str) -> str:
    """What the training will be: network and loss (and why), resolution, steps, mattes."""
    if args.arch == GRADE:
        return (f"network {GRADE} ({args.arch_why}): the closed-form grade alone, no loss and no training steps; "
                f"fitted at {args.resolution} px")
    names = [pair.name for pair in args.mattes.pairs] + (["the label images' colours"] if args.mattes.labels else [])
    return (f"network {args.arch} ({args.arch_why}); {loss_note}; {args.resolution} px, {args.steps} steps"
            + (f"; mattes: {', '.join(names)}" if names else ""))


def _unwritable(output: str, exc: OSError) -> str:
    return f"-o {output}: cannot write the model file ({exc.strerror or exc})"


# ---------------------------------------------------------------- through a server


def _train_on_server(args: argparse.Namespace, bar: ProgressBar, previews: Previews) -> int:
    from shotstyle.plugin.codec import encode_file
    try:
        keyframes = [encode_file(path) for path in args.content]
        style = encode_file(args.style)
        mattes = args.mattes.map(encode_file)
        preview = encode_file(args.preview) if args.preview else None
        init = Path(args.init).read_bytes() if args.init else None  # the model travels with the request
        client = connect(args.server, args.keys)
    except ClientError as exc:
        bar.note(str(exc), ERRORS)
        return exc.exit_code
    except OSError as exc:
        bar.note(f"{exc.filename}: cannot read it ({exc.strerror})", ERRORS)
        return ExitCode.MODEL_ERROR if exc.filename == args.init else ExitCode.MISSING_INPUT
    capabilities = client.hello().get("capabilities", {})
    loss_note = capabilities.get("loss_note", "") if args.loss == "auto" else f"loss {args.loss!r} as asked"
    bar.note(f"{server_line(client)}; {_plan_line(args, loss_note)}")
    params = _effect_values(args)
    if args.colourspace:
        params["colourspace"] = args.colourspace
    name = "train-" + "".join(c if c.isalnum() or c in "-_" else "-" for c in
                              os.path.basename(args.output).split(".")[0])[:40] + f"-{os.getpid()}"
    try:
        # The model is this command's alone (-o): the server's store never holds it, so a client that is gone
        # before the end (killed, or exit 5 after a timeout) leaves nothing there.
        job = client.train(keyframes, style, name, params, preview, init, mattes, keep=False)
        return _follow(client, job, args.output, bar, previews)
    except ClientError as exc:
        bar.note(f"server {client.address}: {exc}", ERRORS)
        return exc.exit_code
    except OSError as exc:
        bar.note(_unwritable(args.output, exc), ERRORS)
        return ExitCode.IO_ERROR
    finally:
        client.close()


def _follow(client: Client, job: Job, output: str, bar: ProgressBar, previews: Previews) -> int:
    """Stream the job's events into the bar; on done (or cancel with a checkpoint) download the model."""
    from shotstyle.cli.review import frame_display

    interrupted = threading.Event()
    previous = signal.signal(signal.SIGINT, lambda *_: interrupted.set())

    def should_cancel() -> bool:
        if interrupted.is_set():
            bar.note("cancelling the server job...")
        return interrupted.is_set()

    def on_progress(event: dict[str, Any]) -> None:
        bar.update(event["step"], event["steps"], event.get("losses", {}), event.get("steps_per_s", 0.0),
                   event.get("eta_s", 0.0))
        extra = event.get("extra")   # the --preview frame's result, encoded like it was sent
        if event.get("type") == EVENT_PREVIEW and extra is not None:
            previews.write(int(event["step"]), lambda: frame_display(extra))

    try:
        final = follow(job, on_progress=on_progress, should_cancel=should_cancel)
    except ServerError as exc:
        if exc.model_file is not None:  # trained, but the server could not keep it: the copy here is the model
            write_atomic(output, exc.model_file)
            bar.note(f"the trained model is saved in {output}", ERRORS)
        raise
    finally:
        signal.signal(signal.SIGINT, previous)
    if final.get("model"):  # the file came with the event (else, from an older server, fetch it)
        if final.get("model_file") is not None:
            write_atomic(output, final["model_file"])
        else:
            client.get_model(final["model"], output)
    if final["type"] == EVENT_DONE:
        return ExitCode.OK
    kept = f"the checkpoint (step {final.get('step', '?')}) is saved in {output}; continue with " \
        f"--init {output}" if final.get("model") else "no checkpoint had been made yet"
    if final.get("reason") == CANCEL_BY_SERVER:
        bar.note(f"the server {client.address} stopped (shut down or terminated) before training finished; {kept}", ERRORS)
        return ExitCode.FAILED
    bar.note(f"cancelled; {kept}", ERRORS)
    return ExitCode.CANCELLED
