"""`shotstyle info PATH|PATTERN [--frames R] [--verbose]`: describe image files and sequences, and
model files (``.safetensors``: how the model was made, from its header alone, `describe_model`).

By default one line per sequence or file: frames found and missing, then the first frame's
resolution, channels, compression and colour space (and how many frames differ from it, and
their NaN/Inf count). ``--verbose`` (the option every command takes, `cli.verbosity`) prints
every file's headers, like `oiiotool --info`.
Per file: resolution, data and display windows, pixel aspect, channels with their storage types,
compression, tiling, colour space, NaN/Inf count; per sequence also the frames found and missing
(with --frames, of that range; without, every gap between the first and last frame on disk, at
the sequence's own step). Decodes every file's pixels too (unless --quick) so damaged data is
found. ``--json`` prints only JSON on stdout: one object per sequence summary and per file.
Exit status (`ExitCode`): 3 naming every file it could not read and every missing frame, 2 for
a bad frame range, 0 otherwise.
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import sys
from itertools import groupby

import numpy as np

from shotstyle.media.iccprofile import ICC_ATTRIBUTE, KNOWN_IDS
from shotstyle.media.metadata import space_chromaticities
from shotstyle.media.reading import probe, read_frame
from shotstyle.plugin.exitcodes import ExitCode
from shotstyle.plugin.sequences import SequencePattern, format_frame_range, is_pattern, parse_frame_range
from shotstyle.server.engine.colour import NONFINITE_RULE, canonical
from shotstyle.server.engine.modelheader import MODEL_SUFFIX, read_metadata
from shotstyle.server.errors import ColourError, FrameIOError, ModelFileError


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("paths", nargs="+", metavar="PATH|PATTERN",
                        help="image files, sequence patterns (shot.####.exr, shot.%%04d.exr, shot.$F4.exr) or "
                             "model files (.safetensors)")
    parser.add_argument("--frames", metavar="R", help="frame range for patterns, e.g. 1001-1100, 1001-1100x2, 1,5,9-12")
    parser.add_argument("--json", action="store_true", help="print one JSON object per file instead of text")
    parser.add_argument("--quick", action="store_true",
                        help="read headers only (by default every file's pixels are decoded too, to find damaged data)")


def _window(window: tuple[int, int, int, int]) -> str:
    x, y, width, height = window
    return f"{width}x{height} at ({x},{y})"


def _channels(names: list[str], formats: list[str]) -> str:
    groups = groupby(zip(names, formats), key=lambda pair: pair[1])
    return ", ".join(f"{' '.join(name for name, _ in group)} ({kind})" for kind, group in groups)


def describe(header: dict) -> str:
    """Text block for one file's `probe` result."""
    lines = [f"{header['path']}: {header['width']}x{header['height']}, {len(header['channels'])} channels, "
             f"{header['format']}"]
    lines.append(f"    data window:    {_window(header['data_window'])}")
    lines.append(f"    display window: {_window(header['display_window'])}")
    lines.append(f"    pixel aspect:   {header['pixel_aspect']:g}")
    lines.append(f"    channels:       {_channels(header['channels'], header['channel_formats'])}")
    lines.append(f"    compression:    {header['compression'] or 'none'}")
    views = header["attributes"].get("multiView")
    if isinstance(views, (list, tuple)) and len(views) > 1:
        lines.append(f"    views:          {', '.join(map(str, views))} (default {views[0]}; shotstyle stylizes "
                     "every view that has R, G, B)")
    if header["tiled"]:
        lines.append(f"    tiled:          {header['tiled'][0]}x{header['tiled'][1]}, "
                     f"{header['miplevels']} MIP level(s) (shotstyle reads level 0)")
    profile = header.get("icc_profile")
    # OpenImageIO's own name for what a file holds ignores an embedded profile: not said where one decided.
    tagged = None if profile and profile["interop_id"] else header["file_colourspace"]
    lines.append(f"    colour space:   {_colour(header)} (default for this data)"
                 + (f"; file says {tagged}" if tagged else ""))
    if header.get("nonfinite"):
        lines.append(f"    non-finite RGB: {header['nonfinite']} NaN/Inf values (replaced before the network: "
                     f"{NONFINITE_RULE})")
    extra = {k: v for k, v in header["attributes"].items() if k not in ("compression", "PixelAspectRatio", ICC_ATTRIBUTE)}
    for name, value in sorted(extra.items()):
        text = str(value)
        lines.append(f"    {name}: {text if len(text) <= 100 else text[:97] + '...'}")
    return "\n".join(lines)


def brief(header: dict) -> str:
    """One line for a file's `probe` result: resolution, channels, compression, colour space."""
    return (f"{header['width']}x{header['height']}, {_channels(header['channels'], header['channel_formats'])}, "
            f"{header['compression'] or 'no'} compression, {_colour(header)}")


def _colour(header: dict) -> str:
    """The colour space a file's RGB is read in by default, and the chromaticities or the embedded ICC
    profile that decided it (or that could not)."""
    values = header.get("chromaticities")
    profile = header.get("icc_profile")
    if values is not None:
        pairs = " ".join(f"{name} {x:g},{y:g}" for name, x, y in zip("RGBW", values[0::2], values[1::2]))
        return f"{header['colourspace']} (its chromaticities: {pairs})"
    if profile is None:
        return str(header["colourspace"])
    if profile["primaries"] is None:
        return (f"{header['colourspace']} (its {profile['said']} is not one shotstyle can read: {profile['why']}; "
                "give the colour space, or convert the file to sRGB)")
    if header.get("icc_decoded"):
        return f"{header['colourspace']} (its {profile['said']}: decoded by its own curves to linear light on its primaries)"
    return f"{header['colourspace']} (its {profile['said']})"


def _short(digest: object) -> str:
    return f"{str(digest)[:12]}…"


def describe_model(path: str, metadata: dict) -> str:
    """Text block for a model file's header (`modelheader.read_metadata`): how it was made, what it
    learnt from, and how much of its effect its exported LUT carries."""
    loss = metadata.get("loss")
    lines = [f"{path}: shotstyle model, {metadata['architecture']} network, "
             + (f"loss {loss}" if loss else "no loss (the grade alone)")
             + (f", trained at {metadata['resolution']} px" if metadata.get("resolution") else "")]
    steps = f"{metadata.get('steps_trained', 0)} trained of {metadata.get('steps_total', 0)} asked"
    if "optimiser" in metadata:
        steps += " (a checkpoint: continue it with train --init)"
    lines.append(f"    steps:          {steps}")
    lines.append(f"    look:           strength {metadata.get('strength')}; {metadata.get('loss_note', '')}".rstrip("; "))
    keyframes = metadata.get("keyframe_sha256") or []
    lines.append(f"    learnt from:    {len(keyframes)} keyframe(s) (sha256 {', '.join(map(_short, keyframes))}), "
                 f"style sha256 {_short(metadata.get('style_sha256'))}")
    mattes = (metadata.get("target") or {}).get("mattes")
    if mattes:
        lines.append(f"    mattes:         {', '.join(mattes)}")
    share = metadata.get("picture_share")
    if share:
        lines.append(f"    picture:        keyframes {', '.join(f'{v:.0%}' for v in share['keyframes'])}, style "
                     f"{share['style']:.0%} (the rest transparent: not learnt from)")
    grade, report = metadata.get("grade") or {}, metadata.get("lut_report")
    text = f"{grade.get('size')}³ lattice, amount {grade.get('amount')}"
    if report:
        text += (f"; its LUT (export-lut) carries {report['reproduced']:.0%} of the keyframe's effect (it is "
                 f"ΔE {report['lut_vs_full_mean']} from the model's render, of an effect of ΔE {report['full_vs_plate_mean']})")
    lines.append(f"    grade:          {text}")
    if metadata.get("local_bound"):
        lines.append(f"    local term:     at most {metadata['local_bound']} (ACEScct) beyond the grade")
    lines.append(f"    made by:        shotstyle {metadata.get('shotstyle_version')} (model format "
                 f"{metadata.get('format_version')}); checksum {_short(metadata.get('checksum'))}")
    return "\n".join(lines)


def _json_value(value: object) -> object:
    """A header value JSON has no type for: an array's values (an ICC profile's bytes), else its text."""
    return value.tolist() if isinstance(value, np.ndarray) else str(value)


def _readable_space(path: str, name: str) -> str:
    """The config's name for a file's default colour space; FrameIOError naming the file where its
    header's chromaticities or ICC profile describe none the config has (the file cannot be read as
    it says)."""
    if space_chromaticities(name) is None and name not in KNOWN_IDS:
        return name  # a name the file recorded, or the rule's: as it is
    try:
        return canonical(name)
    except ColourError as error:
        raise FrameIOError(f"{path}: {error}") from None


def _targets(text: str, frames: str | None) -> tuple[list[tuple[int | None, str]], list[int], dict | None]:
    """(frame, path) pairs to probe, missing frame numbers, and the sequence's summary (None for a file).

    Without ``frames`` a sequence is expected to run unbroken from its first frame on disk to its
    last, at its own step (every 2nd frame: no gaps between them), so a hole in it is reported.
    """
    if not is_pattern(text):
        return [(None, text)], [], None
    sequence = SequencePattern(text)
    present = sequence.scan()
    if frames:
        wanted = parse_frame_range(frames)
    else:
        step = functools.reduce(math.gcd, (b - a for a, b in zip(present, present[1:])), 0) or 1
        wanted = list(range(present[0], present[-1] + 1, step)) if present else []
    missing = sequence.missing(wanted)
    found = [f for f in wanted if f not in set(missing)]
    summary = {"sequence": text, "found": format_frame_range(found), "count": len(found), "expected": len(wanted),
               "missing": format_frame_range(missing)}
    return [(f, sequence.path(f)) for f in found], missing, summary


def _summary_line(summary: dict) -> str:
    return (f"{summary['sequence']}: frames found {summary['found'] or 'none'} ({summary['count']} of "
            f"{summary['expected']})" + (f", missing {summary['missing']}" if summary["missing"] else ""))


def _brief_line(text: str, summary: dict | None, first: dict | None, differ: int, nonfinite: int,
                count: int) -> str:
    """The default output: one line for a sequence (or file) from its summary and first readable frame."""
    parts = [brief(first)] if first is not None else []
    if differ:
        parts.append(f"{differ} of {count} frames differ from the first (--verbose shows each)")
    if nonfinite:
        parts.append(f"{nonfinite} NaN/Inf RGB values (replaced before the network)")
    if summary is None:
        return f"{text}: " + ("; ".join(parts) or "unreadable")
    return "; ".join([_summary_line(summary), *parts])


def run(args: argparse.Namespace) -> int:
    """Describe every path; problems go to stderr, and with --json stdout holds only JSON (one object a line)."""
    failures: list[str] = []
    code = ExitCode.OK
    for text in args.paths:
        if text.endswith(MODEL_SUFFIX) and not is_pattern(text):
            try:
                metadata = read_metadata(text)
            except ModelFileError as error:
                failures.append(str(error))
                continue
            print(json.dumps({"path": text, "model": metadata}) if args.json else describe_model(text, metadata))
            continue
        try:
            targets, missing, summary = _targets(text, args.frames)
        except ValueError as error:
            failures.append(f"{text}: {error}")
            code = ExitCode.USAGE
            continue
        if summary and (args.json or args.verbose):
            print(json.dumps(summary) if args.json else _summary_line(summary))
        if summary and not targets and not missing:
            failures.append(f"{text}: no frames of this sequence on disk")
        if missing:
            failures.append(f"{text}: frames {format_frame_range(missing)} missing")
        previous = None
        first, differ, nonfinite = None, 0, 0
        for frame, path in targets:
            try:
                header = probe(path)
                header["colourspace"] = _readable_space(path, header["colourspace"])
                if not args.quick:
                    header["nonfinite"] = read_frame(path).nonfinite
            except FrameIOError as error:
                failures.append(str(error))
                if args.json or args.verbose:
                    print(json.dumps({"path": path, "frame": frame, "error": str(error)}) if args.json
                          else f"{path}: UNREADABLE: {error}")
                continue
            if args.json:
                print(json.dumps(dict(header, frame=frame), default=_json_value))
                continue
            layout = {k: v for k, v in header.items() if k not in ("path", "nonfinite")}
            if args.verbose:
                print(f"{path}: same as previous frame" if layout == previous else describe(header))
            first = first or layout
            differ += layout != first
            nonfinite += header.get("nonfinite") or 0
            previous = layout
        if not (args.json or args.verbose):
            print(_brief_line(text, summary, first, differ, nonfinite, len(targets)))
    if failures:
        print(f"shotstyle info: {len(failures)} problem(s):", file=sys.stderr)
        for failure in failures:
            print(f"  {failure}", file=sys.stderr)
        return code or ExitCode.MISSING_INPUT
    return ExitCode.OK
