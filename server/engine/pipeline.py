"""Frame-level stylization: Frame → colour → network → colour → Frame.

What server jobs, `shotstyle render --in-process` and the benchmarks call. Only R, G, B
change (of every view, in a stereo EXR); alpha, every other channel, the windows and the
metadata pass through bit-exact.

Alpha: RGB is stylized un-premultiplied (divided by alpha where alpha > 0) and premultiplied
again afterwards, so edges of a CG element keep their coverage. Pixels with alpha ≤ 0 keep
their RGB exactly (an empty background stays empty; additive glows with zero alpha are not
re-coloured). A frame whose alpha is zero everywhere is treated as having no alpha: some
writers store an unused, empty alpha channel on plates.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from shotstyle.server.engine.colour import COLOUR_TAGS, canonical, convert, from_working, interop_tags, to_working
from shotstyle.server.engine.inference import Stylizer
from shotstyle.server.errors import ColourError
from shotstyle.server.frameio import MIX_ATTRIBUTE, MODEL_ATTRIBUTE, Frame, View, read_frame



@dataclass
class Prepared:
    """A frame's RGB ready for the colour stage: straight (un-premultiplied) colour + coverage."""

    straight: np.ndarray                 # H×W×3 float32
    alpha: np.ndarray | None             # H×W×1 where it premultiplies, else None
    covered: np.ndarray | None           # H×W×1 bool: alpha > 0


def unpremultiply(frame: Frame, view: View | None = None) -> Prepared:
    """The straight colour of ``view`` (default: the frame's own RGB and alpha)."""
    view = view or frame.views()[0]
    rgb = np.ascontiguousarray(frame.pixels[:, :, list(view.rgb)], dtype=np.float32)
    index = view.alpha
    if index is None:
        return Prepared(rgb, None, None)
    alpha = frame.pixels[:, :, index:index + 1]
    covered = alpha > 0
    if not covered.any():
        return Prepared(rgb, None, None)
    straight = np.divide(rgb, alpha, out=rgb.copy(), where=covered)
    return Prepared(straight, alpha, covered)


def premultiply(prepared: Prepared, rgb: np.ndarray) -> np.ndarray:
    """Stylized straight `rgb` back to premultiplied; uncovered pixels keep their original RGB.

    (`unpremultiply` left those pixels of `prepared.straight` untouched, so they are the original.)
    """
    if prepared.alpha is None or prepared.covered is None:
        return rgb
    return np.where(prepared.covered, rgb * prepared.alpha, prepared.straight)


def frame_colourspace(frame: Frame, colourspace: str | None) -> str:
    chosen = colourspace or frame.colourspace
    if not chosen:
        raise ColourError(f"{frame.source or 'frame'}: no colour space given or recorded for its "
                          "RGB; pass one (e.g. ACEScg for scene-linear EXRs, sRGB for 8-bit images)")
    return chosen


def working_rgb(frame: Frame, colourspace: str | None = None) -> np.ndarray:
    """A frame's RGB (un-premultiplied) → H×W×3 float32 in the working space (ACEScct)."""
    working, _ = to_working(unpremultiply(frame).straight, frame_colourspace(frame, colourspace))
    return working


def load_working(path: str, colourspace: str | None = None) -> np.ndarray:
    """Any image file (keyframe, style image) → H×W×3 float32 in the working space (ACEScct)."""
    return working_rgb(read_frame(path, colourspace), colourspace)


def stylize_frame(stylizer: Stylizer, frame: Frame, mix: float = 1.0,
                  colourspace: str | None = None, out_colourspace: str | None = None) -> Frame:
    """`frame` with its RGB stylized (`mix` 0 = unchanged, bit-exact), tagged with the model.

    ``out_colourspace``: the space the result is in (None: the frame's own).
    """
    return stylize_frames(stylizer, [frame], mix, colourspace, out_colourspace)[0]


def stylize_frames(stylizer: Stylizer, frames: list[Frame], mix: float = 1.0,
                   colourspace: str | None = None, out_colourspace: str | None = None) -> list[Frame]:
    """Several frames at once (batched on GPUs): prepare -> infer -> finish."""
    pending = [prepare(frame, mix, colourspace, out_colourspace) for frame in frames]
    tags = model_tags(stylizer, mix)
    return [finish(p, out, tags) for p, out in zip(pending, infer(stylizer, pending, mix))]


# The three stages apart, so a renderer can run the colour stages on reader/writer threads
# while the network works on another frame. Each view of a stereo EXR is one network input.

@dataclass
class ViewPart:
    """One view's colour between colour-in and colour-out."""

    view: View
    prepared: Prepared
    working: np.ndarray | None           # the network's input; None when mix is 0 (pass-through)


@dataclass
class PendingFrame:
    """A frame between colour-in and colour-out: every view that has RGB (one for most images)."""

    frame: Frame
    space: str
    parts: list[ViewPart]
    out_space: str | None = None         # the result's colour space when it is not `space`


# What `infer` gives for one frame and `finish` takes: each view's network output (None: unchanged).
Stylized = list[np.ndarray | None]


def prepare(frame: Frame, mix: float = 1.0, colourspace: str | None = None,
            out_colourspace: str | None = None) -> PendingFrame:
    """Colour in: un-premultiply and convert each view's RGB to the working space."""
    space = frame_colourspace(frame, colourspace)
    out_space = None if out_colourspace is None or canonical(out_colourspace) == canonical(space) \
        else canonical(out_colourspace)
    parts = []
    for view in frame.views():
        if mix == 0 and out_space is None:   # bit-exact pass-through
            parts.append(ViewPart(view, Prepared(frame.pixels[:, :, list(view.rgb)], None, None), None))
            continue
        prepared = unpremultiply(frame, view)
        parts.append(ViewPart(view, prepared, None if mix == 0 else to_working(prepared.straight, space)[0]))
    return PendingFrame(frame, space, parts, out_space)


def infer(stylizer: Stylizer, pending: list[PendingFrame], mix: float = 1.0) -> list[Stylized]:
    """The network on every view of every frame that needs it (one batch)."""
    todo = [part.working for p in pending for part in p.parts if part.working is not None]
    results = iter(stylizer.batch(todo, mix) if todo else [])
    return [[next(results) if part.working is not None else None for part in p.parts] for p in pending]


def finish(pending: PendingFrame, stylized: Stylized, tags: dict) -> Frame:
    """Colour out: to the frame's space (or the one asked for), premultiplied, every other channel untouched.

    In another space, the pixels the network leaves alone (alpha 0, or all of them at mix 0)
    are converted too, and the header's colour tags name the new space.
    """
    frame, space, out_space = pending.frame, pending.space, pending.out_space
    rgbs = []
    for part, result in zip(pending.parts, stylized):
        if out_space is None:
            rgbs.append(part.prepared.straight if result is None
                        else premultiply(part.prepared, from_working(result, space)))
            continue
        if result is not None and part.prepared.alpha is None:  # every pixel comes from the network
            rgbs.append(from_working(result, out_space))
            continue
        plate = replace(part.prepared, straight=convert(part.prepared.straight, space, out_space))
        rgbs.append(premultiply(plate, plate.straight if result is None else from_working(result, out_space)))
    converted = frame.with_views(rgbs, [part.view for part in pending.parts])
    if out_space is None:
        return tagged(converted, tags)
    converted.colourspace = out_space
    for name in COLOUR_TAGS:  # they described the input's space
        converted.attributes.pop(name, None)
    return tagged(converted, {**interop_tags(out_space), **tags})


def model_tags(stylizer: Stylizer, mix: float) -> dict:
    """The attributes every stylized frame carries: which model, at which mix."""
    return {MODEL_ATTRIBUTE: stylizer.model_hash, MIX_ATTRIBUTE: float(mix)}


def tagged(frame: Frame, tags: dict) -> Frame:
    frame.attributes.update(tags)
    return frame
