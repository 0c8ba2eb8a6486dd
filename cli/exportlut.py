"""`shotstyle export-lut`: a style model's global grade as a .cube or .clf LUT, with an OCIO look beside it.

    shotstyle export-lut shot010.safetensors -o shot010.cube [--size 33|65] [--keyframe plate.1001.exr]

Writes, by the output's extension, the Iridas/Resolve .cube (input and output ACEScct: apply
it to ACEScct images, or to scene-linear ACEScg through ACEScct — the OCIO look does that) or
the Common LUT Format .clf (ACEScg in and out, its ACEScct shaper inside), both for trilinear
interpolation, and ``NAME.ocio.yaml`` beside it (the output folder is made if missing),
then prints how much of the model's effect the LUT alone carries: ΔE2000 of the LUT against
the full model (grade + local term). By default that is the record made at training time on
the keyframes (at the training resolution); ``--keyframe`` measures on the frames given, at
their full resolution. MODEL is a model file or the name of a model in the local store. Exit status: 0, 2 (bad
arguments), 3 (a --keyframe file is missing or unreadable), 4 (the model cannot be read), 7 (the
files cannot be written).
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from shotstyle.plugin.client import write_look
from shotstyle.plugin.exitcodes import ExitCode
from shotstyle.plugin.params import DEFAULT_COLOURSPACE_SAID


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", help="model file (.safetensors), or the name of a model in the local store")
    parser.add_argument("-o", "--output", required=True,
                        help="the LUT file to write: NAME.cube (ACEScct in and out) or NAME.clf (ACEScg in and "
                             "out, its shaper inside); the OCIO look goes beside it: NAME.ocio.yaml")
    parser.add_argument("--size", type=int, choices=(33, 65), default=33,
                        help="lattice nodes per axis (default 33, the model's own; 65 resamples it exactly)")
    parser.add_argument("--keyframe", action="append", default=[], metavar="FILE",
                        help="measure the LUT against the full model on this frame (repeatable); default: "
                             "the report recorded on the training keyframes")
    parser.add_argument("--colourspace", default=None,
                        help=f"colour space of the --keyframe files (default: {DEFAULT_COLOURSPACE_SAID})")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")


def model_path(model: str) -> str:
    """MODEL as given if it is a file, else the store's file of that name."""
    if os.path.isfile(model):
        return model
    from shotstyle.server.engine.modelheader import MODEL_SUFFIX
    from shotstyle.server.store import check_name, default_models_dir

    stored = os.path.join(default_models_dir(), check_name(model) + MODEL_SUFFIX)
    if os.path.isfile(stored):
        return stored
    from shotstyle.server.errors import ModelFileError
    raise ModelFileError(f"{model}: no such model file, and no model of that name in the store "
                         f"{default_models_dir()}")


def run(args: argparse.Namespace) -> int:
    from shotstyle.server.engine.lut import export_look, lut_format
    from shotstyle.server.engine.modelfile import load_model
    from shotstyle.media.reading import read_frame
    from shotstyle.server.engine.pipeline import picture_alpha, working_rgb

    try:
        spaces = "ACEScg in and out, ACEScct shaper" if lut_format(args.output) == ".clf" else "ACEScct in and out"
    except ValueError as exc:
        print(f"shotstyle export-lut: error: -o {exc}", file=sys.stderr)
        return ExitCode.USAGE
    model = load_model(model_path(args.model))
    frames = [read_frame(path, args.colourspace) for path in args.keyframe]
    keyframes = [working_rgb(frame, args.colourspace) for frame in frames]
    look = export_look(model, os.path.basename(args.output), args.size, keyframes,
                       [picture_alpha(frame) for frame in frames])
    folder = os.path.dirname(os.path.abspath(args.output))
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as exc:
        print(f"shotstyle export-lut: error: cannot make the output folder {folder} ({exc.strerror})", file=sys.stderr)
        return ExitCode.IO_ERROR
    _, snippet = write_look(args.output, look.lut, look.ocio)
    if args.json:
        print(json.dumps({"cube": args.output, "ocio": snippet, "where": look.where, **look.report}, indent=1))
    else:
        print(f"wrote {args.output} ({args.size}³, {spaces}, trilinear) and {snippet}")
        print(look.describe())
    return ExitCode.OK
