"""A style model's grade as a colourist's LUT: an Iridas/Resolve `.cube` or an Academy/ASC
Common LUT Format `.clf` file (chosen by the name's extension), an OCIO look that applies it,
and how much of the model's effect the LUT alone reproduces.

The grade (engine/grade.py) is a 3D lattice over ACEScct [0, 1], applied with trilinear
interpolation, so it exports as it is: the `.cube` holds the lattice (red fastest) at the
model's size, or resampled to another size. Resampling a trilinear lattice to 2·(S−1)+1 nodes
(33 → 65) reproduces it exactly; other sizes are trilinear samples of it. Input and output are
ACEScct, the engine's working space: the log encoding is the "shaper" that spreads scene-linear
ACEScg plates (−0.0069 … 222) evenly over the cube. Hosts apply it inside an ACEScct
conversion — the OCIO look's `process_space: ACEScct` does exactly that. Outside the domain a
.cube clamps, whereas the model continues with slope 1; the two differ only for scene-linear
values above 222 or below −0.0069.

Both files are meant for **trilinear** interpolation, the render's: a tetrahedral apply of the
same lattice differs from the render by a few hundredths in linear light where the grade bends,
so both say so (the .cube in its header; the .clf in its LUT3D's `interpolation`, which OCIO
honours). The .cube's input and output are ACEScct; the .clf carries its shaper: scene-linear
ACEScg in and out, through the ACEScct log curve (a CLF `Log` node in camera style, exactly
OCIO's ACEScct) on both sides of the lattice.

The report compares, on keyframes, the LUT alone against the full model (grade + local
term) in CIEDE2000 on display-referred colour (what a viewer sees): its mean and 95th
percentile, and the full model's own change from the plate. `reproduced` = 1 − mean(LUT vs
full) / mean(full vs plate): the share of the effect the LUT carries.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass
from xml.sax.saxutils import escape
from typing import Any, Sequence

import numpy as np
import torch
from torch import Tensor

from shotstyle.server.engine.colourmath import delta_e_2000, working_to_lab
from shotstyle.server.engine.grade import lattice_colours, sample_lattice
from shotstyle.server.engine.networks.base import grade_of
from shotstyle.server.engine.inference import Stylizer
from shotstyle.server.engine.modelfile import StyleModel, sha256_of
from shotstyle.server.errors import ModelFileError

CUBE_SIZES = (17, 33, 65)
WORKING_SPACE = "ACEScct"
SCENE_LINEAR_SPACE = "ACEScg"
INTERPOLATION = "trilinear"
LUT_FORMATS = (".cube", ".clf")
# ACEScct as a CLF camera-style log (base 2; S-2014-003): log = (log2(lin) + 9.72) / 17.52
# above the break, a straight line below it.
ACESCCT_LOG_PARAMS = ('base="2" linSideSlope="1" linSideOffset="0" logSideSlope="{:.10g}" logSideOffset="{:.10g}" '
                      'linSideBreak="0.0078125"').format(1 / 17.52, 9.72 / 17.52)


def resampled(lut: Tensor, size: int) -> Tensor:
    """The 3×S×S×S lattice evaluated (trilinearly) at the nodes of a `size`³ lattice."""
    if size == lut.shape[-1]:
        return lut
    nodes = lattice_colours(size, lut.device)
    return sample_lattice(lut.float(), nodes).reshape(3, size, size, size)


def _lattice_values(lut: Tensor, size: int) -> Tensor:
    """3×size×size×size (indexed [channel, blue, green, red]) at an allowed size."""
    if size not in CUBE_SIZES:
        raise ValueError(f"cube size {size}: use one of {', '.join(map(str, CUBE_SIZES))}")
    return resampled(lut.detach().float().cpu(), size)


def _rows(values: np.ndarray) -> str:
    return "\n".join(f"{r:.6f} {g:.6f} {b:.6f}" for r, g, b in values)


def cube_text(lut: Tensor, size: int, title: str, notes: Sequence[str] = ()) -> str:
    """The Iridas/Resolve .cube file of the lattice at `size` nodes per axis."""
    values = _lattice_values(lut, size)
    rows = values.reshape(3, -1).T.numpy()          # (b, g, r) order flattened: red fastest
    header = [f'TITLE "{title}"'] + [f"# {line}" for line in notes] + [
        f"# Input: {WORKING_SPACE} (ACES log, AP1 primaries), domain 0..1 on each axis; "
        f"output: {WORKING_SPACE}.",
        f"# Scene-linear {SCENE_LINEAR_SPACE} plates: convert to {WORKING_SPACE}, apply, convert back.",
        f"# Interpolation: {INTERPOLATION} (the render's; tetrahedral differs by up to a few hundredths linear).",
        f"LUT_3D_SIZE {size}",
        "DOMAIN_MIN 0.0 0.0 0.0",
        "DOMAIN_MAX 1.0 1.0 1.0",
    ]
    return "\n".join(header) + "\n" + _rows(rows) + "\n"


def clf_text(lut: Tensor, size: int, title: str, notes: Sequence[str] = ()) -> str:
    """The CLF (v3) file: scene-linear ACEScg in and out, the lattice between two ACEScct log nodes."""
    values = _lattice_values(lut, size)
    rows = values.permute(3, 2, 1, 0).reshape(-1, 3).numpy()   # CLF order: blue fastest
    description = "\n".join(f"    <Description>{escape(line)}</Description>" for line in [title, *notes])
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<ProcessList compCLFversion="3" id="{escape(title)}" name="{escape(title)}">
{description}
    <InputDescriptor>{SCENE_LINEAR_SPACE} (scene-linear, AP1 primaries)</InputDescriptor>
    <OutputDescriptor>{SCENE_LINEAR_SPACE} (scene-linear, AP1 primaries)</OutputDescriptor>
    <Log inBitDepth="32f" outBitDepth="32f" style="cameraLinToLog" name="shaper: {SCENE_LINEAR_SPACE} to {WORKING_SPACE}">
        <LogParams {ACESCCT_LOG_PARAMS}/>
    </Log>
    <LUT3D inBitDepth="32f" outBitDepth="32f" interpolation="{INTERPOLATION}" name="grade, {WORKING_SPACE} in and out">
        <Array dim="{size} {size} {size} 3">
{_rows(rows)}
        </Array>
    </LUT3D>
    <Log inBitDepth="32f" outBitDepth="32f" style="cameraLogToLin" name="shaper: {WORKING_SPACE} to {SCENE_LINEAR_SPACE}">
        <LogParams {ACESCCT_LOG_PARAMS}/>
    </Log>
</ProcessList>
"""


def lut_format(name: str) -> str:
    """The LUT format a file name asks for (its extension), or ValueError naming the choices."""
    extension = os.path.splitext(name)[1].lower()
    if extension not in LUT_FORMATS:
        raise ValueError(f"{name}: name the LUT file .cube (Iridas/Resolve, ACEScct in and out) or .clf "
                         f"(Common LUT Format, {SCENE_LINEAR_SPACE} in and out)")
    return extension


def ocio_snippet(cube_name: str, look_name: str, description: str) -> str:
    """An OCIO v2 look applying the LUT file (a .cube in ACEScct; a .clf, which carries its
    shaper, in ACEScg), plus the equivalent transform chain for scene-linear ACEScg, to paste
    into a config (ACES cg/studio configs name both spaces)."""
    if lut_format(cube_name) == ".clf":
        return f"""# OCIO v2: paste the entry below under `looks:` in your config, with {cube_name}
# in a folder on the config's search_path. The CLF holds its ACEScct shaper: it takes and
# gives scene-linear {SCENE_LINEAR_SPACE}.
looks:
  - !<Look>
    name: {look_name}
    process_space: {SCENE_LINEAR_SPACE}
    description: "{description}"
    transform: !<FileTransform> {{src: {cube_name}, interpolation: linear}}
"""
    return f"""# OCIO v2: paste the entry below under `looks:` in your config, with {cube_name}
# in a folder on the config's search_path. Use it as a look (e.g. a display view's looks,
# Nuke's OCIOLookTransform, `ociolookconvert`).
looks:
  - !<Look>
    name: {look_name}
    process_space: {WORKING_SPACE}
    description: "{description}"
    transform: !<FileTransform> {{src: {cube_name}, interpolation: linear}}

# The same as one transform on scene-linear {SCENE_LINEAR_SPACE} (e.g. a colour space's
# from_scene_reference, or a GroupTransform in a host):
# !<GroupTransform>
#   children:
#     - !<ColorSpaceTransform> {{src: {SCENE_LINEAR_SPACE}, dst: {WORKING_SPACE}}}
#     - !<FileTransform> {{src: {cube_name}, interpolation: linear}}
#     - !<ColorSpaceTransform> {{src: {WORKING_SPACE}, dst: {SCENE_LINEAR_SPACE}}}
"""


def _as_tensor(image: Tensor | np.ndarray) -> Tensor:
    if isinstance(image, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32)).permute(2, 0, 1)[None]
    return image.detach().float().cpu()


REPORT_KEYS = ("lut_vs_full_mean", "lut_vs_full_p95", "full_vs_plate_mean", "full_vs_plate_p95", "reproduced")


def effect_report(plates: list, full: list, lut_only: list,
                  covered: list[Tensor | None] | None = None) -> dict[str, float | None]:
    """ΔE2000 statistics of the LUT against the full model on the same keyframes (working-space
    images, N×3×H×W tensors or H×W×3 arrays), over the pixels whose colours are finite in all
    three (every value None when there are none) and, of a keyframe with a `covered` mask
    (N×1×H×W bool: where its alpha is above 0), over those a render stylizes."""
    lut_vs_full, full_vs_plate = [], []
    for plate, whole, graded, mask in zip(plates, full, lut_only, covered or [None] * len(plates)):
        plate_lab, whole_lab, graded_lab = (working_to_lab(_as_tensor(x), display=True)
                                            for x in (plate, whole, graded))
        keep = slice(None) if mask is None else mask.detach().cpu().flatten()
        lut_vs_full.append(delta_e_2000(graded_lab, whole_lab).flatten()[keep])
        full_vs_plate.append(delta_e_2000(whole_lab, plate_lab).flatten()[keep])
    difference, effect = torch.cat(lut_vs_full), torch.cat(full_vs_plate)
    finite = torch.isfinite(difference) & torch.isfinite(effect)
    difference, effect = difference[finite], effect[finite]
    if not difference.numel():
        return dict.fromkeys(REPORT_KEYS)
    mean_effect = float(effect.mean())
    return {
        "lut_vs_full_mean": round(float(difference.mean()), 3),
        "lut_vs_full_p95": round(float(np.quantile(difference.numpy(), 0.95)), 3),
        "full_vs_plate_mean": round(mean_effect, 3),
        "full_vs_plate_p95": round(float(np.quantile(effect.numpy(), 0.95)), 3),
        "reproduced": round(1.0 - float(difference.mean()) / mean_effect, 3) if mean_effect > 0 else 1.0,
    }


def describe_report(report: dict, where: str) -> str:
    """One paragraph for people: how much of the effect the LUT carries, and where measured (or that
    it cannot be said: a value missing or not a finite number, e.g. a report recorded by a forged file)."""
    if not all(isinstance(report.get(k), (int, float)) and math.isfinite(report[k]) for k in REPORT_KEYS):
        return (f"LUT alone vs full model on {where}: not measurable (the colours are not finite numbers there), "
                "so how much of the effect the LUT carries is unknown.")
    return (f"LUT alone vs full model on {where}: mean ΔE2000 {report['lut_vs_full_mean']:.2f}, "
            f"95th percentile {report['lut_vs_full_p95']:.2f}; the full model changes the plate by "
            f"{report['full_vs_plate_mean']:.2f} on average (95th percentile {report['full_vs_plate_p95']:.2f}). "
            f"The LUT reproduces {100 * report['reproduced']:.0f}% of the effect.")


@dataclass
class LookExport:
    """A model's grade ready to hand to a colourist: file texts, the report, and where it was measured."""

    lut: str          # the file's text, .cube or .clf
    ocio: str
    report: dict[str, Any]
    where: str

    def describe(self) -> str:
        return describe_report(self.report, self.where)


def export_look(model: StyleModel, cube_name: str, size: int | None = None,
                keyframes: list[np.ndarray] | None = None, alphas: list[np.ndarray | None] | None = None) -> LookExport:
    """The model's grade as .cube or .clf text (by `cube_name`'s extension; `size` nodes,
    default the model's own) and an OCIO look naming `cube_name`, with the report measured on
    `keyframes` (working-space arrays, at full resolution; where a render stylizes them, by their
    `alphas`, see `measure`) or, without them, the one recorded at training time."""
    grade = grade_of(model.network)
    size = size or grade.size
    short = model.hash[:12]
    report: dict[str, Any]
    if keyframes:
        report = measure(model, keyframes, alphas)
        trained = set(model.metadata.get("keyframe_sha256") or [])
        matching = sum(sha256_of(k) in trained for k in keyframes)
        where = f"{len(keyframes)} given frame(s)" + (f", {matching} of them training keyframes" if matching else "")
    else:
        recorded = model.metadata.get("lut_report")
        if not isinstance(recorded, dict):
            raise ModelFileError("the model records no keyframe report; pass keyframes to measure on")
        report = recorded
        where = f"the training keyframes at {model.metadata.get('resolution', '?')} px"
    notes = [f"shotstyle look, model {short}: the global grade of a style model (its local term is not in a LUT).",
             describe_report(report, where)]
    look_name = "shotstyle_" + re.sub(r"[^A-Za-z0-9_]", "_", os.path.splitext(cube_name)[0])
    write = clf_text if lut_format(cube_name) == ".clf" else cube_text
    return LookExport(lut=write(grade.lut, size, f"shotstyle {short}", notes),
                      ocio=ocio_snippet(cube_name, look_name, f"shotstyle look {short}: global grade"),
                      report=report, where=where)


def measure(model: StyleModel, keyframes: list[np.ndarray],
            alphas: list[np.ndarray | None] | None = None) -> dict[str, float | None]:
    """The LUT-vs-full report on working-space frames, through the same Stylizer renders use, over
    the pixels a render stylizes: of a frame with an alpha (H×W; None: opaque), those above 0."""
    stylizer = Stylizer(model, device="cpu")
    with torch.inference_mode():
        graded = [grade_of(model.network).cpu()(_as_tensor(frame)) for frame in keyframes]
    covered = None if alphas is None else [None if alpha is None else torch.from_numpy(alpha > 0)[None, None]
                                           for alpha in alphas]
    return effect_report(keyframes, [stylizer(frame) for frame in keyframes], graded, covered)
