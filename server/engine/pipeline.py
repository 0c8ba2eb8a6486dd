"""Frame-level stylization: Frame → colour → network → colour → Frame.

What server jobs, `shotstyle render --in-process` and the benchmarks call. Only R, G, B
change; alpha, every other channel, the windows and the metadata pass through bit-exact.

Alpha: RGB is stylized un-premultiplied (divided by alpha where alpha > 0) and premultiplied
again afterwards, so edges of a CG element keep their coverage. Pixels with alpha ≤ 0 keep
their RGB exactly (an empty background stays empty; additive glows with zero alpha are not
re-coloured). A frame whose alpha is zero everywhere is treated as having no alpha: some
writers store an unused, empty alpha channel on plates.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from shotstyle.server.engine.colour import from_working, to_working
from shotstyle.server.engine.inference import Stylizer
from shotstyle.server.errors import ColourError
from shotstyle.server.frameio import Frame, read_image

MODEL_ATTRIBUTE = "shotstyle/model"
MIX_ATTRIBUTE = "shotstyle/mix"


@dataclass
class Prepared:
    """A frame's RGB ready for the colour stage: straight (un-premultiplied) colour + coverage."""

    straight: np.ndarray                 # H×W×3 float32
    alpha: np.ndarray | None             # H×W×1 where it premultiplies, else None
    covered: np.ndarray | None           # H×W×1 bool: alpha > 0


def unpremultiply(frame: Frame) -> Prepared:
    rgb = frame.rgb()
    index = frame.alpha_index()
    if index is None:
        return Prepared(rgb, None, None)
    alpha = frame.pixels[:, :, index:index + 1]
    covered = alpha > 0
    if not covered.any():
        return Prepared(rgb, None, None)
    straight = np.divide(rgb, alpha, out=rgb.copy(), where=covered)
    return Prepared(straight, alpha, covered)


def premultiply(prepared: Prepared, rgb: np.ndarray, original: np.ndarray) -> np.ndarray:
    """Stylized straight `rgb` back to premultiplied; uncovered pixels keep `original`."""
    if prepared.alpha is None or prepared.covered is None:
        return rgb
    return np.where(prepared.covered, rgb * prepared.alpha, original)


def frame_colourspace(frame: Frame, colourspace: str | None) -> str:
    chosen = colourspace or frame.colourspace
    if not chosen:
        raise ColourError(f"{frame.source or 'frame'}: no colour space given or recorded for its "
                          "RGB; pass one (e.g. ACEScg for scene-linear EXRs, sRGB for 8-bit images)")
    return chosen


def load_working(path: str, colourspace: str | None = None) -> np.ndarray:
    """Any image file (keyframe, style image) → H×W×3 float32 in the working space (ACEScct)."""
    frame = read_image(path, colourspace)
    working, _ = to_working(unpremultiply(frame).straight, frame_colourspace(frame, colourspace))
    return working


def stylize_frame(stylizer: Stylizer, frame: Frame, mix: float = 1.0,
                  colourspace: str | None = None) -> Frame:
    """`frame` with its RGB stylized (`mix` 0 = unchanged, bit-exact), tagged with the model."""
    return stylize_frames(stylizer, [frame], mix, colourspace)[0]


def stylize_frames(stylizer: Stylizer, frames: list[Frame], mix: float = 1.0,
                   colourspace: str | None = None) -> list[Frame]:
    """Several frames at once (batched on GPUs); see `stylize_frame`."""
    tags = {MODEL_ATTRIBUTE: stylizer.model_hash, MIX_ATTRIBUTE: float(mix)}
    if mix == 0:
        return [tagged(frame.with_rgb(frame.rgb()), tags) for frame in frames]
    spaces = [frame_colourspace(frame, colourspace) for frame in frames]
    prepared = [unpremultiply(frame) for frame in frames]
    working = [to_working(p.straight, space)[0] for p, space in zip(prepared, spaces)]
    stylized = stylizer.batch(working, mix)
    results = []
    for frame, p, space, out in zip(frames, prepared, spaces, stylized):
        rgb = premultiply(p, from_working(out, space), frame.rgb())
        results.append(tagged(frame.with_rgb(rgb), tags))
    return results


def tagged(frame: Frame, tags: dict) -> Frame:
    frame.attributes.update(tags)
    return frame
