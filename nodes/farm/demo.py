"""`shotstyle demo`: the product's main job, end to end, on a built-in example or your own shot.

Starts (or reuses) the local server, trains a model on the first frame of the shot with the
style frame while streaming progress, stylizes every frame through the server, and writes the
stylized EXRs plus a before/after contact sheet PNG. Without ``--plate``/``--style`` it makes
its own example: a short moving test shot (RGBA half EXRs, scene-linear ACEScg) and a style
frame. It works offline: without the ImageNet VGG-19 weights it trains with the weights-free
``look`` loss and says so.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Any, Dict, List, Tuple

import numpy as np

from shotstyle.plugin import codec
from shotstyle.plugin import params as effect_params
from shotstyle.plugin.client import ServerError, follow
from shotstyle.plugin.errors import SetupError
from shotstyle.plugin.exitcodes import ExitCode
from shotstyle.plugin.protocol import EVENT_DONE
from shotstyle.plugin.sequences import SequencePattern, is_pattern

DEMO_FRAMES = 8
DEMO_SIZE = (256, 144)  # width, height: small, so the default demo runs in about a minute on 2 CPU cores
CONTACT_SHEET_ROWS = 4


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--plate", default=None, help="your shot: a sequence pattern (shot.####.exr) or one image; "
                                                      "default: a generated test shot")
    parser.add_argument("--style", default=None, help="your style frame; default: a generated one")
    parser.add_argument("--frames", default=None, help="frame range of --plate (default: every frame on disk)")
    parser.add_argument("-o", "--output", default="shotstyle-demo", help="output folder (default ./shotstyle-demo)")
    parser.add_argument("--server", default=None, help="server address (default: the local server, started if "
                                                       "needed)")
    parser.add_argument("--steps", type=int, default=80, help="training steps (default 80)")
    parser.add_argument("--resolution", type=int, default=96, help="training resolution, long side (default 96)")
    parser.add_argument("--strength", type=float, default=0.5, help="content/style balance 0..1 (default 0.5)")
    parser.add_argument("--loss", choices=effect_params.choices("loss"), default="auto",
                        help="auto: VGG-19 when its ImageNet weights are installed, else look")
    parser.add_argument("--name", default="demo", help="model name in the server's store (default demo)")


def make_example(folder: str) -> Tuple[str, str]:
    """Write the built-in test shot and style frame; returns (plate pattern, style path)."""
    from shotstyle.server.frameio import Frame, write_frame

    width, height = DEMO_SIZE
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    u, v = x / (width - 1), y / (height - 1)
    plate = os.path.join(folder, "plate", "demo.####.exr")
    os.makedirs(os.path.dirname(plate), exist_ok=True)
    for index in range(DEMO_FRAMES):
        t = index / max(DEMO_FRAMES - 1, 1)
        sky = np.stack([0.25 + 0.2 * v, 0.35 + 0.2 * v, 0.6 + 0.1 * v], -1)          # cool gradient sky
        ground = np.stack([0.35 + 0.1 * u, 0.25 + 0.05 * u, 0.12 + 0.0 * u], -1)     # warm ground
        rgb = np.where((v > 0.62)[..., None], ground, sky)
        cx, cy = 0.15 + 0.7 * t, 0.55 - 0.25 * np.sin(np.pi * t)                      # a ball flying across
        ball = np.clip(1.5 - np.hypot((u - cx) * width, (v - cy) * height) / (0.12 * height) * 1.5, 0, 1)
        shade = 0.6 + 0.8 * np.clip(1 - np.hypot(u - cx + 0.02, v - cy + 0.04) * 8, 0, 1)
        rgb = rgb * (1 - ball[..., None]) + np.stack([2.0 * shade, 0.5 * shade, 0.2 * shade], -1) * ball[..., None]
        rgb = rgb * (0.9 + 0.2 * np.sin(6 * u + 4 * t))[..., None]                    # moving light
        alpha = np.clip((1 - v) * 8, 0, 1) * np.clip(u * 12, 0, 1)                     # soft matte edges
        pixels = np.concatenate([rgb * alpha[..., None], alpha[..., None]], -1).astype(np.float32)
        frame = Frame(pixels=pixels, channels=["R", "G", "B", "A"], channel_formats=["half"] * 4,
                      data_window=(0, 0, width, height), display_window=(0, 0, width, height),
                      attributes={"compression": "zip"}, colourspace="ACEScg")
        write_frame(SequencePattern(plate).path(index + 1), frame)
    noise = np.random.default_rng(7).standard_normal((height, width)).astype(np.float32) * 0.03
    style_rgb = np.stack([0.9 - 0.5 * v + noise, 0.55 + 0.2 * u - 0.2 * v + noise, 0.3 + 0.5 * v + noise], -1)
    style_rgb = np.clip(style_rgb * (0.8 + 0.4 * np.cos(3 * u)[..., None]), 0, 1)     # a teal-and-amber grade
    style = os.path.join(folder, "style.png")
    write_frame(style, Frame(pixels=style_rgb, channels=["R", "G", "B"], channel_formats=["uint8"] * 3,
                             data_window=(0, 0, width, height), display_window=(0, 0, width, height),
                             attributes={}, colourspace="sRGB"))
    return plate, style


def _plate_frames(plate: str, frames: Any) -> List[Tuple[int, str]]:
    if not is_pattern(plate):
        return [(1, plate)]
    from shotstyle.server.frameio import sequence_paths

    return sequence_paths(plate, frames)


def _display(frame: Any) -> np.ndarray:
    """RGB of a Frame for the contact sheet: sRGB display values 0..1."""
    from shotstyle.server.engine.colour import from_working, to_working

    space = frame.colourspace or "ACEScg"
    rgb = frame.rgb()
    if space.lower() not in ("srgb", "srgb - texture"):
        rgb = from_working(to_working(rgb, space)[0], "sRGB")
    return np.clip(rgb, 0, 1)


def write_contact_sheet(pairs: List[Tuple[Any, Any]], path: str) -> None:
    """Before | after rows, one per sampled frame, as an 8-bit sRGB PNG."""
    from shotstyle.server.frameio import Frame, write_frame

    gap = 4
    rows = [np.concatenate([_display(before), np.ones((before.pixels.shape[0], gap, 3), np.float32),
                            _display(after)], 1) for before, after in pairs]
    width = max(r.shape[1] for r in rows)
    padded = [np.pad(r, ((0, gap), (0, width - r.shape[1]), (0, 0)), constant_values=1.0) for r in rows]
    sheet = np.concatenate(padded, 0)[:-gap].astype(np.float32)
    h, w = sheet.shape[:2]
    write_frame(path, Frame(pixels=sheet, channels=["R", "G", "B"], channel_formats=["uint8"] * 3,
                            data_window=(0, 0, w, h), display_window=(0, 0, w, h), attributes={},
                            colourspace="sRGB"))


def run(args: argparse.Namespace) -> int:
    from shotstyle.nodes.farm.connection import connect
    from shotstyle.nodes.farm.train import ProgressBar
    from shotstyle.server.frameio import decode_image_bytes, read_frame

    started = time.perf_counter()
    output = os.path.abspath(args.output)
    os.makedirs(output, exist_ok=True)
    if (args.plate is None) != (args.style is None):
        print("shotstyle demo: give both --plate and --style, or neither for the built-in example", file=sys.stderr)
        return ExitCode.USAGE
    plate, style = (args.plate, args.style) if args.plate else make_example(output)
    if args.plate is None:
        print(f"built-in example: {DEMO_FRAMES} frames {DEMO_SIZE[0]}x{DEMO_SIZE[1]} RGBA half EXR in "
              f"{os.path.dirname(plate)}, style frame {style}")
    shot = _plate_frames(plate, args.frames)
    if not shot or not os.path.isfile(style):
        print(f"shotstyle demo: no frames found for {plate}" if not shot else f"shotstyle demo: {style}: no such file",
              file=sys.stderr)
        return ExitCode.MISSING_INPUT
    try:
        client = connect(args.server)
    except SetupError as exc:
        print(f"shotstyle demo: {exc}", file=sys.stderr)
        return exc.exit_code
    try:
        hello = client.hello()
        print(f"server {client.address} (shotstyle {hello['version']}, device {hello['device']})")
        loss = args.loss
        if loss == "auto" and not hello["capabilities"].get("vgg_weights", False):
            loss = "look"
            print("ImageNet VGG-19 weights not found: training with the weights-free 'look' loss (colour statistics). "
                  "Run `python install.py` or set SHOTSTYLE_VGG_WEIGHTS for the VGG-19 perceptual loss.")
        params: Dict[str, Any] = {"steps": args.steps, "resolution": args.resolution, "strength": args.strength,
                                  "loss": loss, "preview_every": 0}
        first_number, first_path = shot[0]
        print(f"training '{args.name}' on frame {first_number} ({args.steps} steps at {args.resolution} px, "
              f"loss {loss})")
        job = client.train([codec.encode_file(first_path, frame=first_number)], codec.encode_file(style),
                           args.name, params)
        bar = ProgressBar()
        final = follow(job, on_progress=lambda e: bar.update(e["step"], e["steps"], e["losses"], e["steps_per_s"],
                                                             e["eta_s"]))
        if final["type"] != EVENT_DONE:
            bar.note("training was cancelled")
            return ExitCode.CANCELLED
        bar.note(f"model '{final['model']}' trained (hash {final['hash'][:12]})")
        stylized_pattern = SequencePattern(os.path.join(output, "stylized", "demo.####.exr"))
        os.makedirs(os.path.dirname(stylized_pattern.path(1)), exist_ok=True)
        sources = dict(shot)
        pairs = []
        sample = set(n for n, _ in shot[:: max(1, -(-len(shot) // CONTACT_SHEET_ROWS))])
        for result in client.stylize_stream((codec.encode_file(path, frame=n) for n, path in shot), args.name,
                                            in_flight=2):
            codec.write_file(result, stylized_pattern.path(int(result.frame or 0)))
            if result.frame in sample:
                before, after = read_frame(sources[result.frame]), decode_image_bytes(bytes(result.data))
                after.colourspace = before.colourspace  # the result is in the plate's colour space
                pairs.append((result.frame, before, after))
        sheet = os.path.join(output, "contact_sheet.png")
        write_contact_sheet([(b, a) for _, b, a in sorted(pairs, key=lambda p: p[0])], sheet)
    except ServerError as exc:
        print(f"shotstyle demo: server {client.address}: {exc}", file=sys.stderr)
        return exc.exit_code
    finally:
        client.close()
    print(f"stylized {len(shot)} frames: {stylized_pattern.text}")
    print(f"before/after contact sheet: {sheet}")
    print(f"done in {time.perf_counter() - started:.1f} s")
    return ExitCode.OK
