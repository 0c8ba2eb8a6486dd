"""The `shotstyle render` command: arguments, the frames asked for, and the run that ties the parts together.

`run` checks the arguments and the model file's header (no torch), removes what killed runs
left of these frames (temporary files, claims), skips what is complete, builds a `Backend`,
then lets it render what the `Scheduler` hands out while the `Writer` saves; the exit status
comes from the frames' fate (`Progress.exit_code`), or says that every server was lost (5) or
that the output cannot be written (7).
"""

from __future__ import annotations

import argparse
import os
import re
from typing import Optional

from shotstyle.cli.connection import add_key_options, addresses, keys_from, server_list
from shotstyle.cli.render.backend import Backend
from shotstyle.cli.render.claims import Claims
from shotstyle.cli.render.outputs import Outputs, file_format
from shotstyle.cli.render.progress import Progress
from shotstyle.cli.render.scheduler import Scheduler
from shotstyle.cli.render.writer import Writer
from shotstyle.cli.verbosity import NORMAL
from shotstyle.plugin import params
from shotstyle.plugin.errors import SetupError
from shotstyle.plugin.exitcodes import ExitCode
from shotstyle.plugin.sequences import (STILL_FRAME, SequencePattern, StillImage, parse_frame_range,
                                        refuse_overwriting, sequence_or_still)
from shotstyle.media.writing import exr_compression
from shotstyle.plugin.userconfig import CurveKeys
from shotstyle.server.engine.modelheader import read_metadata, recorded_hash
from shotstyle.server.errors import FrameIOError, ModelFileError, ShotstyleError, exit_code

SERVER_IN_FLIGHT = 4
FRAMES_VALUE = re.compile(r"^-\d[\d,x\s-]*$")   # what a negative frame or range looks like on the command line


def frame_flags(frame_args: params.FrameArgs) -> list[str]:
    """The flags of `configure` that give a render these FrameArgs (--mix, --colourspace,
    --out-colourspace): how the commands that start renders (submit, nuke-prerender) pass them."""
    flags = ["--mix", repr(frame_args.mix)]
    if frame_args.colourspace is not None:
        flags += ["--colourspace", frame_args.colourspace]
    if frame_args.out_colourspace is not None:
        flags += ["--out-colourspace", frame_args.out_colourspace]
    return flags


def positive_int(text: str) -> int:
    """argparse ``type`` of a count (threads, frames in flight): a whole number of 1 or more."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a count: give a whole number of 1 or more")
    return value


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, help="trained model file (.safetensors)")
    parser.add_argument("--in", dest="input", required=True, metavar="PATTERN",
                        help="input sequence, e.g. 'plate.####.exr', 'plate.%%04d.exr', 'plate.$F4.exr', or one "
                             "image (a still: no --frames)")
    parser.add_argument("--out", dest="output", required=True, metavar="PATTERN",
                        help="output sequence: EXR (other types only with --allow-display-output); for a still, "
                             "one file of any type")
    # A range of negative frames (-3--1) is a value, not an option: argparse takes only plain negative
    # numbers for values unless told otherwise.
    parser._negative_number_matcher = FRAMES_VALUE
    parser.add_argument("--frames", nargs="+", metavar="RANGE",
                        help="'1001-1100', '1001-1100x2', '1,5,9-12', or a start/end pair '1001 1100'")
    parser.add_argument("--start", type=int, help="first frame (with --end)")
    parser.add_argument("--end", type=int, help="last frame (with --start)")
    parser.add_argument("--within", metavar="RANGE", help="only frames also in this range (a shot's full list)")
    parser.add_argument("--mix", type=float, default=1.0, help="0 = plate, 1 = full effect")
    parser.add_argument("--colourspace",
                        help=f"colour space of the input RGB (default: {params.DEFAULT_COLOURSPACE_SAID})")
    parser.add_argument("--out-colourspace", metavar="COLOURSPACE",
                        help="colour space of the output RGB (default for EXR: the input's when it is scene-linear, "
                             "else the config's scene-linear space, ACEScg; other types: sRGB)")
    parser.add_argument("--compression", help="EXR compression of the output (zip, piz, dwaa...; default the input's)")
    parser.add_argument("--allow-display-output", action="store_true",
                        help="allow a non-EXR output (JPEG, PNG, TIFF...): display-encoded, for reviews")
    again = parser.add_mutually_exclusive_group()
    again.add_argument("--force", action="store_true", help="render every frame again, even those complete")
    again.add_argument("--no-overwrite", action="store_true",
                       help="refuse to replace outputs made with another model, mix, colour or input")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--server", metavar="ADDR[,ADDR2...]", type=server_list,
                       help="render servers (host:port, :port, port, tcp://..., ipc://...); frames are spread over all")
    where.add_argument("--in-process", action="store_true", help="render here without a server")
    add_key_options(parser)
    parser.add_argument("--in-flight", type=positive_int, default=SERVER_IN_FLIGHT, help="frames in flight per server")
    parser.add_argument("--threads", type=positive_int, help="--in-process CPU threads (default: all cores); give each of "
                        "several renders on one machine its share")
    parser.add_argument("--json-progress", action="store_true", help="one JSON object per line instead of text")
    parser.add_argument("--verify-pixels", action="store_true",
                        help="decode existing outputs fully before skipping them, and compare inputs by content "
                             "(sha256) rather than size and modification time")


def frames_from_args(args: argparse.Namespace) -> list[int]:
    """The frame numbers asked for, in order; ValueError with a message for the user."""
    if args.frames and (args.start is not None or args.end is not None):
        raise ValueError("give either --frames or --start/--end, not both")
    if args.frames:
        values = args.frames
        if len(values) == 2 and all(_is_int(v) for v in values):
            frames = parse_frame_range(f"{values[0]}-{values[1]}")
        elif len(values) == 1:
            frames = parse_frame_range(values[0])
        else:
            raise ValueError(f"--frames {' '.join(values)}: give one range ('1001-1100') or a start/end pair")
    elif args.start is not None and args.end is not None:
        frames = parse_frame_range(f"{args.start}-{args.end}")
    else:
        raise ValueError("say which frames: --frames 1001-1100, --frames 1001 1100 or --start 1001 --end 1100")
    if args.within:
        allowed = set(parse_frame_range(args.within))
        frames = [f for f in frames if f in allowed]
    return frames


def _patterns(args: argparse.Namespace) -> tuple[SequencePattern, SequencePattern]:
    """--in and --out: two sequence patterns, or a still image (one file, no frame range) and its output."""
    source, target = sequence_or_still(args.input), sequence_or_still(args.output)
    if isinstance(source, StillImage) and (args.frames or args.start is not None or args.end is not None):
        raise ValueError(f"--in {args.input} is one image (no frame token such as '####'): drop --frames/--start/"
                         "--end, or give a sequence pattern")
    if isinstance(target, StillImage) and not isinstance(source, StillImage):
        raise ValueError(f"--out {args.output} is one file but --in {args.input} is a sequence: put the frame "
                         "number in the output as '####', '%04d' or '$F4'")
    return source, target


def _is_int(text: str) -> bool:
    try:
        int(text)
    except ValueError:
        return False
    return True


def run(args: argparse.Namespace) -> int:
    """Render the frames ``args`` ask for; the exit status (`ExitCode`) as an int."""
    progress = Progress(0, args.json_progress)
    try:
        input_pattern, output_pattern = _patterns(args)
        still = isinstance(input_pattern, StillImage)
        frames = [STILL_FRAME] if still else frames_from_args(args)
        params.check("mix", args.mix, lambda message: ValueError(f"--mix: {message}"))
        if file_format(output_pattern) != "exr" and not args.allow_display_output and not still:
            raise ValueError(f"--out {args.output}: farm renders write EXR (scene-linear, with the render's identity "
                             "for resuming); give --allow-display-output to write display-encoded "
                             f"{file_format(output_pattern) or 'extension-less'} files anyway")
        if args.compression and file_format(output_pattern) == "exr":
            exr_compression(f"--compression {args.compression}", args.compression)
        refuse_overwriting(output_pattern, [input_pattern.path(f) for f in frames] + [args.model], frames)
        keys = keys_from(args)
    except (ValueError, SetupError, FrameIOError) as exc:
        progress.log(str(exc))
        return _finish(progress, ExitCode.USAGE)
    progress.total = len(frames)
    try:
        model_hash = recorded_hash(read_metadata(args.model), args.model)
    except ModelFileError as exc:
        progress.log(f"model {exc}")
        return _finish(progress, ExitCode.MODEL_ERROR)
    missing = set(input_pattern.missing(frames))
    present = [f for f in frames if f not in missing]
    if frames and not present:
        progress.log(f"input {args.input}: none of the {len(frames)} frames exist "
                     f"(first: {input_pattern.path(frames[0])})")
        return _finish(progress, ExitCode.MISSING_INPUT)
    try:
        outputs = _outputs(args, input_pattern, output_pattern, model_hash, present, progress)
    except ShotstyleError as exc:
        progress.log(str(exc))
        return _finish(progress, exit_code(exc))
    claims = Claims(output_pattern, progress.log)
    try:
        _remove_leftovers(outputs, claims, frames, progress)
        todo, refused = [], []
        outputs.begin(frames)
        for frame in frames:  # the cheap pass: a complete folder costs no model load and no server
            complete, why = outputs.check(frame)
            if complete:
                progress.frame(frame, "skipped", output_pattern.path(frame))
                continue
            if why and args.no_overwrite:
                refused.append(f"{frame} ({why})")
            elif why:
                progress.stale(frame, why)
            todo.append(frame)
        if refused:
            progress.log(f"--no-overwrite: {len(refused)} output(s) were made differently and would be replaced: "
                         f"{', '.join(refused[:10])}{' ...' if len(refused) > 10 else ''}; nothing rendered. Render "
                         "into another folder, or drop --no-overwrite to replace them")
            return _finish(progress, ExitCode.USAGE)
        if not todo:
            return _finish(progress, ExitCode.OK)
        folder = os.path.dirname(os.path.abspath(output_pattern.path(todo[0])))
        try:
            os.makedirs(folder, exist_ok=True)
        except OSError as exc:
            progress.log(f"output {args.output}: cannot make the folder {folder} ({exc.strerror})")
            return _finish(progress, ExitCode.IO_ERROR)
        return _render(args, model_hash, todo, outputs, claims, progress, keys)
    finally:
        claims.close()


def _render(args: argparse.Namespace, model_hash: str, todo: list[int], outputs: Outputs, claims: Claims,
            progress: Progress, keys: Optional[CurveKeys]) -> int:
    try:
        backend = _backend(args, model_hash, outputs.args, keys, progress)
        if backend.model_hash != model_hash:
            backend.close()
            raise SetupError(ExitCode.MODEL_ERROR, f"model {args.model}: its weights hash to "
                             f"{backend.model_hash[:12]}, its header records {model_hash[:12]}")
    except SetupError as exc:
        progress.log(str(exc))
        return _finish(progress, exc.exit_code)
    progress.log(f"{backend.describe()}; {args.input} ({outputs.args.colourspace or 'colour space by file'}) -> "
                 f"{args.output} ({outputs.out_colourspace}), mix {args.mix:g}", NORMAL)
    scheduler = Scheduler(todo, outputs, claims, progress)
    writer = Writer(outputs, claims, progress, scheduler.stop)
    stopped: Optional[ExitCode] = None
    interrupted = False
    try:
        backend.render(scheduler, outputs, writer)
        while scheduler.error is None and scheduler.wait_for_others():
            backend.render(scheduler, outputs, writer)
    except SetupError as exc:  # e.g. every server was lost
        progress.log(str(exc))
        stopped = exc.exit_code
    except KeyboardInterrupt:
        interrupted = True
        scheduler.stop()
        raise
    finally:
        writer.close()
        if not interrupted:  # else its threads may still be inside a request: closing a ZeroMQ
            backend.close()  # socket under a thread is undefined; the process's end closes it
    if scheduler.error is not None:  # e.g. the output folder is not writable: no frame can be claimed
        progress.log(f"output {args.output}: cannot write into {outputs.output.folder or '.'} "
                     f"({scheduler.error.strerror or scheduler.error})")
        stopped = ExitCode.IO_ERROR
    tally = progress.tally
    accounted = {*tally.rendered, *tally.skipped, *tally.missing, *tally.failed, *tally.unwritable}
    for frame in todo:  # never report success for a frame nobody wrote
        if frame not in accounted:
            progress.frame(frame, "failed", outputs.output.path(frame), error="not rendered (see the errors above)")
    return _finish(progress, stopped if stopped is not None else progress.exit_code())


def _outputs(args: argparse.Namespace, source: SequencePattern, target: SequencePattern, model_hash: str,
             present: list[int], progress: Progress) -> Outputs:
    """The render's outputs with its colour spaces resolved (ColourError: a name the config lacks, or a
    first frame whose chromaticities describe no colour space).

    The output's default space follows the input's (`colour.output_colourspace`), read from the
    first input frame: a sequence's frames share their type. A ``--colourspace`` whose primaries
    are not the ones that frame's header names is followed, and said once; so is what of that
    frame's file an output does not keep (MIP levels, a thumbnail).
    """
    from shotstyle.media.metadata import CHROMATICITIES_ATTRIBUTE, header_chromaticities
    from shotstyle.media.reading import colour_doubt, probe
    from shotstyle.server.engine.colour import canonical, output_colourspace, primaries_disagree, scene_linear_space
    from shotstyle.server.errors import ColourError, FrameIOError

    given = canonical(args.colourspace) if args.colourspace else None
    first = None
    for frame in present:
        try:
            header = probe(source.path(frame))
        except FrameIOError:
            continue  # that frame fails on its own; the others decide
        try:
            first = canonical(header["colourspace"])
        except ColourError as exc:
            if given is None:
                raise ColourError(f"{source.path(frame)}: {exc}") from None
        if header["not_kept"] and file_format(target) == "exr":
            progress.log(f"note: {source.path(frame)}: the outputs keep its tiling but not "
                         f"{' and '.join(header['not_kept'])} (shotstyle writes one image per frame)", NORMAL)
        doubt = colour_doubt(header) if given is None else None
        if doubt is not None:
            progress.log(f"warning: {source.path(frame)}: {doubt}: give --colourspace if that is not what it holds")
        chromaticities = header_chromaticities(header["attributes"])
        if given is not None and primaries_disagree(given, chromaticities):
            progress.log(f"warning: {source.path(frame)}: its header's {CHROMATICITIES_ATTRIBUTE} "
                         f"({' '.join(f'{v:g}' for v in chromaticities or ())}) are not the primaries of "
                         f"--colourspace {given}; following --colourspace")
        break
    out_colourspace = output_colourspace(given or first or scene_linear_space(), file_format(target),
                                         args.out_colourspace)
    return Outputs(source, target, model_hash, params.FrameArgs(args.mix, given, out_colourspace), args.compression,
                   args.verify_pixels, args.force)


def _remove_leftovers(outputs: Outputs, claims: Claims, frames: list[int], progress: Progress) -> None:
    """Remove the temporary files and stale claims killed runs left for ``frames`` (each under its claim,
    so a live process's work is never touched)."""
    for frame, paths in outputs.leftovers(frames).items():
        if not claims.try_claim(frame):  # a live process works on it: its files are its own
            continue
        try:
            for path in paths:
                try:
                    os.remove(path)
                    progress.log(f"removed {path}, left by a render that was stopped", NORMAL)
                except FileNotFoundError:
                    pass
        finally:
            claims.release(frame)


def _backend(args: argparse.Namespace, model_hash: str, frame_args: params.FrameArgs, keys: Optional[CurveKeys],
             progress: Progress) -> Backend:
    """The backend the arguments ask for (its module imported only then: in-process costs torch)."""
    if args.in_process:
        from shotstyle.cli.render.inprocess import InProcess
        return InProcess(args.model, frame_args, args.threads)
    from shotstyle.cli.render.servers import Servers
    return Servers(addresses(args), args.model, model_hash, frame_args, args.in_flight, keys, progress.log)


def _finish(progress: Progress, code: ExitCode) -> int:
    progress.summary(code)
    return int(code)
