"""`shotstyle demo`: the product's main job end to end, on the built-in real shot or your own.

Starts (or reuses) the local server, trains a model on the shot's first frame with the style
frame while streaming progress, stylizes every frame through the server, and writes the
stylized EXRs, a before/after contact sheet (PNG) and an animated before/after preview (GIF).
Without ``--plate``/``--style`` it uses the built-in example (`shotstyle.examples`): twelve
frames of real footage and the style image the research project demonstrated on it. It works
offline: the default loss's ImageNet features (EfficientNet-Lite0) install with shotstyle.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Any, Dict, List, Tuple

import numpy as np

from shotstyle.cli.connection import add_key_options, connect, keys_from, server_address, server_line
from shotstyle.cli.review import display_rgb, write_png
import shotstyle.examples as examples
from shotstyle.plugin import codec
from shotstyle.plugin import params as effect_params
from shotstyle.plugin.client import Client, ServerError, follow
from shotstyle.plugin.errors import SetupError
from shotstyle.plugin.exitcodes import ExitCode
from shotstyle.plugin.protocol import EVENT_DONE
from shotstyle.plugin.sequences import SequencePattern, is_pattern

CONTACT_SHEET_ROWS = 4
GAP = 4                    # white pixels between the pictures of the sheet and of the animation
OWN_SHOT_FPS = 24          # the animation's frame rate for a shot given with --plate


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--plate", default=None, help="your shot: a sequence pattern (shot.####.exr) or one image; "
                                                      "default: the built-in walk clip")
    parser.add_argument("--style", default=None, help="your style frame; default: the built-in one")
    parser.add_argument("--frames", default=None, help="frame range of --plate (default: every frame on disk)")
    parser.add_argument("-o", "--output", default="shotstyle-demo", help="output folder (default ./shotstyle-demo)")
    parser.add_argument("--server", default=None, type=server_address,
                        help="server address (default: the local server, started if needed)")
    add_key_options(parser)
    parser.add_argument("--steps", type=int, default=80, help="training steps (default 80)")
    parser.add_argument("--resolution", type=int, default=96, help="training resolution, long side (default 96)")
    parser.add_argument("--strength", type=float, default=0.5, help="content/style balance 0..1 (default 0.5)")
    parser.add_argument("--loss", choices=effect_params.choices("loss"), default="auto",
                        help=effect_params.help_of("loss"))
    parser.add_argument("--name", default="demo", help="model name in the server's store (default demo)")


def _plate_frames(plate: str, frames: Any) -> List[Tuple[int, str]]:
    if not is_pattern(plate):
        return [(1, plate)]
    from shotstyle.media.reading import sequence_paths

    return sequence_paths(plate, frames)


def _display(frame: Any) -> np.ndarray:
    """RGB of a Frame as display values (`review.display_rgb`)."""
    return display_rgb(frame.rgb(), frame.colourspace or "ACEScg")


def side_by_side(before: np.ndarray, after: np.ndarray) -> np.ndarray:
    """Before | after with a white gap, as one H×W×3 picture."""
    return np.concatenate([before, np.ones((before.shape[0], GAP, 3), np.float32), after], 1)


def write_contact_sheet(pairs: List[Tuple[np.ndarray, np.ndarray]], path: str) -> None:
    """Before | after rows (display RGB 0..1), one per sampled frame, as an 8-bit sRGB PNG."""
    rows = [side_by_side(before, after) for before, after in pairs]
    width = max(r.shape[1] for r in rows)
    padded = [np.pad(r, ((0, GAP), (0, width - r.shape[1]), (0, 0)), constant_values=1.0) for r in rows]
    write_png(np.concatenate(padded, 0)[:-GAP], path)


def write_animation(pictures: List[np.ndarray], path: str, fps: int) -> None:
    """An endlessly looping animated GIF of equally sized display RGB pictures (0..1), written atomically."""
    import OpenImageIO as oiio

    height, width = pictures[0].shape[:2]
    spec = oiio.ImageSpec(width, height, 3, "uint8")
    spec.attribute("FramesPerSecond", oiio.TypeDesc("rational2i"), (fps, 1))
    spec.attribute("gif:LoopCount", 0)
    temporary = os.path.join(os.path.dirname(os.path.abspath(path)), f".{os.path.basename(path)}.{os.getpid()}.tmp")
    out = oiio.ImageOutput.create("gif")
    if out is None:
        raise OSError(f"{path}: this OpenImageIO cannot write GIF: {oiio.geterror()}")
    try:
        written = out.open(temporary, [spec] * len(pictures))
        for index, picture in enumerate(pictures):
            written = written and (index == 0 or out.open(temporary, spec, "AppendSubimage"))
            written = written and out.write_image(np.ascontiguousarray(picture, np.float32))
        if not (out.close() and written):
            raise OSError(f"{path}: writing the animation failed: {out.geterror()}")
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)


def _train(client: Client, keyframe: Tuple[int, str], style: str, args: argparse.Namespace, loss: str) -> str | None:
    """Train the demo model on the server with a progress bar; its hash, or None if it was cancelled.

    A failed training raises ServerError with the job's error code."""
    from shotstyle.cli.train import ProgressBar

    params: Dict[str, Any] = {"steps": args.steps, "resolution": args.resolution, "strength": args.strength,
                              "loss": loss, "preview_every": 0}
    number, path = keyframe
    print(f"training '{args.name}' on frame {number} ({args.steps} steps at {args.resolution} px, loss {loss})")
    job = client.train([codec.encode_file(path, frame=number)], codec.encode_file(style), args.name, params)
    bar = ProgressBar(command="shotstyle demo")
    final = follow(job, on_progress=lambda e: bar.update(e["step"], e["steps"], e["losses"], e["steps_per_s"],
                                                         e["eta_s"]))
    if final["type"] != EVENT_DONE:
        bar.note("training was cancelled")
        return None
    bar.note(f"model '{final['model']}' trained (hash {final['hash'][:12]})")
    return str(final["hash"])


def run(args: argparse.Namespace) -> int:
    from shotstyle.media.reading import decode_image_bytes, read_frame
    from shotstyle.server.engine.colour import output_colourspace
    from shotstyle.server.errors import FrameIOError

    started = time.perf_counter()
    output = os.path.abspath(args.output)
    if (args.plate is None) != (args.style is None):
        print("shotstyle demo: give both --plate and --style, or neither for the built-in example", file=sys.stderr)
        return ExitCode.USAGE
    built_in = args.plate is None
    plate, style = (examples.PLATE, examples.STYLE) if built_in else (args.plate, args.style)
    try:
        shot = _plate_frames(plate, args.frames)
    except (FrameIOError, ValueError) as exc:  # no frames on disk, or a bad range
        print(f"shotstyle demo: {exc}", file=sys.stderr)
        return ExitCode.USAGE if isinstance(exc, ValueError) else ExitCode.MISSING_INPUT
    if not os.path.isfile(style):
        print(f"shotstyle demo: {style}: no such file", file=sys.stderr)
        return ExitCode.MISSING_INPUT
    if built_in:
        print(f"built-in example: {len(shot)} frames of real footage ({plate}) and the style frame {style} "
              f"(MIT licence, Rong Liu 2022: {os.path.join(examples.FOLDER, 'LICENSE')})")
    os.makedirs(output, exist_ok=True)
    try:
        client = connect(args.server, keys_from(args))
    except SetupError as exc:
        print(f"shotstyle demo: {exc}", file=sys.stderr)
        return exc.exit_code
    base = os.path.basename(plate).split(".")[0] or "frame"
    stylized = SequencePattern(os.path.join(output, "stylized", f"{base}.####.exr"))
    os.makedirs(os.path.dirname(stylized.path(1)), exist_ok=True)
    previews: Dict[int, Tuple[np.ndarray, np.ndarray]] = {}
    try:
        print(server_line(client))
        if _train(client, shot[0], style, args, args.loss) is None:
            return ExitCode.CANCELLED
        model = os.path.join(output, f"{args.name}.safetensors")  # the store's copy is replaced by the next demo
        client.get_model(args.name, model)
        print(f"model: {model}")
        sources = dict(shot)
        linear = output_colourspace(read_frame(shot[0][1]).colourspace or "sRGB", "exr")  # EXRs hold scene-linear
        for result in client.stylize_stream((codec.encode_file(path, frame=n) for n, path in shot), args.name,
                                            effect_params.FrameArgs(out_colourspace=linear), in_flight=2):
            number = int(result.frame or 0)  # the client guarantees the number we sent
            codec.write_file(result, stylized.path(number))
            before, after = read_frame(sources[number]), decode_image_bytes(bytes(result.data))
            previews[number] = (_display(before), _display(after))  # each in the space its file records
            print(f"frame {number}: {stylized.path(number)}")
    except ServerError as exc:
        print(f"shotstyle demo: server {client.address}: {exc}", file=sys.stderr)
        return exc.exit_code
    finally:
        client.close()
    numbers = sorted(previews)
    sheet = os.path.join(output, "contact_sheet.png")
    write_contact_sheet([previews[n] for n in numbers[:: max(1, -(-len(numbers) // CONTACT_SHEET_ROWS))]], sheet)
    animation = os.path.join(output, "before_after.gif")
    write_animation([side_by_side(*previews[n]) for n in numbers], animation,
                    examples.FRAMES_PER_SECOND if built_in else OWN_SHOT_FPS)
    print(f"stylized {len(shot)} frames: {stylized.text}")
    print(f"before/after contact sheet (plate left, stylized right): {sheet}")
    print(f"before/after animation: {animation}")
    print(f"done in {time.perf_counter() - started:.1f} s")
    return ExitCode.OK
