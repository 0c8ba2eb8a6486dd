"""Frame-level stylization: Frame → colour → network → colour → Frame.

What server jobs, `shotstyle render --in-process` and the benchmarks call. Only R, G, B
change (of every view, in a stereo EXR: each view is one network input); alpha, every other
channel, the windows and the metadata pass through bit-exact, except the header's colour tags
(`colour.colour_tags`), which name the space the result is in, and an embedded ICC profile, which
goes when the result is in another space. That is the frame's own colour
space unless another is asked for (`out_colourspace`); then the pixels the network leaves alone
(alpha 0, or all of them at mix 0) are converted too.

Alpha: RGB is stylized un-premultiplied (divided by alpha where alpha > 0) and premultiplied
again afterwards, so edges of a CG element keep their coverage. Pixels with alpha ≤ 0 keep
their RGB exactly (an empty background stays empty; additive glows with zero alpha are not
re-coloured). A frame whose alpha is zero everywhere is treated as having no alpha: some
writers store an unused, empty alpha channel on plates.

Three stages, so a renderer can keep several frames in flight and the device busy:

    prepare(frame, stylizer, mix)  host, any thread: each view's R, G, B (and alpha) gathered into a
                                   staging tensor in the frame's own pixel type (a half raw
                                   buffer stays half: half <-> float happens on the device),
                                   page-locked on CUDA
    infer(stylizer, pending, mix)  the device's thread: upload, type to float32, un-premultiply,
                                   colour in, network, mix, colour out, premultiply, back to the
                                   pixel type, read-back started; nothing waits for the device
    finish(pending, result, tags)  host, any thread: wait for that frame's read-backs, put RGB
                                   back into the frame

Where the colour transform is OpenColorIO's CPU processor (a CPU's execution: see
device.Execution), un-premultiply and colour in run in `prepare` and colour out and
premultiply in `finish` instead: host work on host threads, overlapping the network. A
grade-only model there is done whole in `prepare`: colour in, the grade, the mix and colour out
are one OpenColorIO pass (Stylizer.grade_on_host), and `infer` has nothing left to do.

On the host the colour stages work on planes (3×H×W and 1×H×W alpha, `host_planes`): OCIO
converts the planes in place, the network runs on them as an NCHW frame and colour out converts
the result's planes in place, so each step between is a plain pass over contiguous values and
no frame is copied between layouts. The same steps on H×W×3 and H×W×1 arrays, channel next to
channel, run element by element (a 1080p frame's colour in and out cost as much as the
network), and `hrnet-fast` on packed RGB takes 11% longer (its per-pixel strips and area
downscales read strided channels); results are the same bit for bit.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
from torch import Tensor

from shotstyle.media.frame import HALF_MAX, Frame, View
from shotstyle.media.iccprofile import ICC_ATTRIBUTE
from shotstyle.media.metadata import MIX_ATTRIBUTE, MODEL_ATTRIBUTE
from shotstyle.media.reading import read_frame
from shotstyle.server.engine.colour import (canonical, colour_tags, config_uri, cpu_processor, finite_output,
                                            input_rule, run_processor, working_space)
from shotstyle.server.engine.colourtensors import from_working_tensor, tensor_transform, to_working_tensor
from shotstyle.server.engine.device import Download
from shotstyle.server.engine.inference import Stylizer, check_mix, mix_tensors, stack
from shotstyle.server.errors import ColourError

TORCH_TYPES = {np.dtype(np.float32): torch.float32, np.dtype(np.float16): torch.float16}


def frame_colourspace(frame: Frame, colourspace: str | None) -> str:
    chosen = colourspace or frame.colourspace
    if not chosen:
        raise ColourError(f"{frame.source or 'frame'}: no colour space given or recorded for its "
                          "RGB; pass one (e.g. ACEScg for scene-linear EXRs, sRGB for 8-bit images)")
    return chosen


def colour_channels(view: View) -> list[int]:
    """Indices of a view's R, G, B and, if it has one, alpha: what the stages work on."""
    return [*view.rgb, *([] if view.alpha is None else [view.alpha])]


def unpremultiply(rgb: Tensor, alpha: Tensor | None) -> tuple[Tensor, Tensor | None]:
    """N×H×W×3 straight colour and the N×H×W×1 mask of pixels it was divided at (None: none).

    No host synchronisation: the "frame without any coverage" rule is a per-frame mask."""
    if alpha is None:
        return rgb, None
    covered = alpha > 0
    return rgb / torch.where(covered, alpha, 1.0), covered  # x / 1 is x exactly (the choice made on alpha alone)


def premultiply(stylized: Tensor, rgb: Tensor, alpha: Tensor | None, covered: Tensor | None) -> Tensor:
    """Stylized straight colour back to premultiplied; uncovered pixels keep their original RGB,
    except in frames with no covered pixel at all (their alpha is unused: every pixel is stylized)."""
    if alpha is None or covered is None:
        return stylized
    unused = ~covered.flatten(1).any(1).view(-1, *([1] * (covered.dim() - 1)))
    # The choices made on alpha alone: x · 1 is x exactly, and in an unused frame nothing is covered.
    return torch.where(covered | unused, stylized * torch.where(covered, alpha, 1.0), rgb)


def working_rgb(frame: Frame, colourspace: str | None = None) -> np.ndarray:
    """A frame's RGB (un-premultiplied) → H×W×3 float32 in the working space (ACEScct)."""
    space = frame_colourspace(frame, colourspace)
    staged = torch.from_numpy(np.take(frame.pixels, colour_channels(frame.views()[0]), axis=2))
    return host_colour_in(staged, space, space)[0]


def picture_alpha(frame: Frame) -> np.ndarray | None:
    """A keyframe's or style image's alpha (its first view's), H×W float32 within 0..1, where it
    says that some pixels are not picture (a CG element on a transparent background, a cut-out
    photograph); None where every pixel is: no alpha, an alpha of 1 everywhere, or an unused one
    (0 everywhere, as above)."""
    index = frame.views()[0].alpha
    if index is None:
        return None
    alpha = np.nan_to_num(frame.pixels[:, :, index].astype(np.float32), nan=0.0).clip(0.0, 1.0)
    return alpha if bool((alpha < 1).any()) and bool((alpha > 0).any()) else None


def load_working(path: str, colourspace: str | None = None) -> np.ndarray:
    """Any image file (keyframe, style image) → H×W×3 float32 in the working space (ACEScct)."""
    return working_rgb(read_frame(path, colourspace), colourspace)


def stylize_frame(stylizer: Stylizer, frame: Frame, mix: float = 1.0, colourspace: str | None = None,
                  out_colourspace: str | None = None) -> Frame:
    """`frame` with its RGB stylized (`mix` 0 = unchanged, bit-exact), tagged with the model.

    ``out_colourspace``: the space the result is in (None: the frame's own).
    """
    return stylize_frames(stylizer, [frame], mix, colourspace, out_colourspace)[0]


def stylize_frames(stylizer: Stylizer, frames: list[Frame], mix: float = 1.0, colourspace: str | None = None,
                   out_colourspace: str | None = None) -> list[Frame]:
    """Several frames at once (batched where the execution batches): prepare -> infer -> finish."""
    pending = [prepare(frame, stylizer, mix, colourspace, out_colourspace) for frame in frames]
    tags = model_tags(stylizer, mix)
    return [finish(p, out, tags) for p, out in zip(pending, infer(stylizer, pending, mix))]


@dataclass
class Plate:
    """What colour out needs of a view besides the stylized colour: its RGB and alpha as they
    came (float32; N×H×W×3 and N×H×W×1 on a device, 1×3×H×W and 1×1×H×W planes on the host), the
    mask of pixels un-premultiplied (None: no alpha), the view's colour space and the one the
    result goes to."""

    rgb: Tensor
    alpha: Tensor | None
    covered: Tensor | None
    space: str
    out_space: str


def colour_in(x: Tensor, space: str, out_space: str) -> tuple[Tensor, Plate]:
    """N×H×W×C staged views (R, G, B[, A] in `space`) on the device → N×H×W×3 working-space RGB,
    straight (torch ops: a device's colour in; `host_colour_in` is the host's)."""
    rgb = x[..., :3].float()
    alpha = x[..., 3:].float() if x.shape[-1] == 4 else None
    straight, covered = unpremultiply(rgb, alpha)
    return to_working_tensor(straight, space), Plate(rgb, alpha, covered, space, out_space)


def colour_out(stylized: Tensor, plate: Plate, dtype: torch.dtype) -> tuple[Tensor, Tensor | None]:
    """N×H×W×3 stylized working-space RGB → premultiplied RGB in `plate.out_space` and `dtype`;
    for half, also how many values of each item were beyond its range (clamped, not made infinite)."""
    out = premultiplied(from_working_tensor(stylized, plate.out_space), plate,
                        lambda rgb: tensor_transform(plate.space, plate.out_space)(rgb, consume=True))
    return out.to(dtype).contiguous(), half_range(out) if dtype == torch.float16 else None


def premultiplied(rgb: Tensor, plate: Plate, convert: Callable[[Tensor], Tensor]) -> Tensor:
    """Stylized straight RGB in `plate.out_space` (any layout `plate` has too) → premultiplied;
    `convert` takes the plate's RGB to the result's space (for the pixels premultiply leaves)."""
    kept = plate.rgb  # the pixels premultiply leaves as they came, in the result's space
    if plate.alpha is not None and plate.out_space != plate.space:
        kept = convert(torch.nan_to_num(plate.rgb, nan=0.0, posinf=HALF_MAX, neginf=-HALF_MAX))
    return premultiply(rgb, kept, plate.alpha, plate.covered)


def half_range(out: Tensor) -> Tensor:
    """`out` clamped in place to half's range, and how many finite values of each item were
    beyond it (clamped, not made infinite)."""
    clamped = ((out.abs() > HALF_MAX) & out.isfinite()).flatten(1).sum(1)
    out.clamp_(-HALF_MAX, HALF_MAX)
    return clamped


def host_planes(staged: Tensor) -> tuple[Tensor, Tensor | None]:
    """A staged H×W×C view on the host (R, G, B[, A] in its pixel type) as float32 planes, one
    copy: 1×3×H×W RGB and 1×1×H×W alpha (None: no alpha, or an alpha of 1 everywhere, as plates
    often carry: dividing and multiplying by 1 change nothing, so the stages skip both)."""
    planes = staged.permute(2, 0, 1)[None].to(torch.float32, memory_format=torch.contiguous_format, copy=True)
    alpha = planes[:, 3:] if planes.shape[1] == 4 else None
    return planes[:, :3], None if alpha is None or bool((alpha == 1).all()) else alpha


def host_colour_in(staged: Tensor, space: str, out_space: str, planar: bool = False) -> tuple[np.ndarray, Plate]:
    """`colour_in` on the host: a staged H×W×C view → H×W×3 float32 working-space RGB (straight,
    colour.input_rule, OCIO reading planes) and its planar `Plate`. The RGB is packed, or with
    ``planar`` a view of 3×H×W planes (the straight planes themselves, converted in place): the
    network's frame in the frame pipeline, which it runs as NCHW, as the module docstring says."""
    rgb, alpha = host_planes(staged)
    straight, covered = unpremultiply(rgb, alpha)
    # In place: `straight` is `rgb` only without alpha, where colour out never reads `rgb`.
    pixels = straight[0].contiguous().numpy()
    input_rule(pixels)
    processor = cpu_processor(config_uri(), space, working_space())
    if planar:
        run_processor(processor, pixels, planar=True)
        working = pixels.transpose(1, 2, 0)
    else:
        working = np.empty((*pixels.shape[1:], 3), np.float32)
        run_processor(processor, pixels, planar=True, out=working, out_planar=False)
    return working, Plate(rgb, alpha, covered, space, out_space)


def host_colour_out(stylized: np.ndarray, plate: Plate, dtype: torch.dtype) -> tuple[np.ndarray, Tensor | None]:
    """`colour_out` on the host, for an H×W×3 float32 working-space frame and a `host_colour_in`
    plate. A frame that is a view of 3×H×W planes (the network's result in the frame pipeline) is
    converted in place; packed RGB is copied to planes first."""
    planes = np.ascontiguousarray(stylized.transpose(2, 0, 1))
    run_processor(cpu_processor(config_uri(), working_space(), plate.out_space), planes, planar=True)
    return host_pixel_type(torch.from_numpy(finite_output(planes))[None], plate, dtype)


def host_pixel_type(planes: Tensor, plate: Plate, dtype: torch.dtype) -> tuple[np.ndarray, Tensor | None]:
    """`colour_out`'s last steps on 1×3×H×W host planes (straight, in the result's space):
    premultiplied, within half's range, then H×W×3 in `dtype` (the type and the layout in one copy)."""
    def convert(rgb: Tensor) -> Tensor:
        pixels = rgb[0].contiguous().numpy()
        run_processor(cpu_processor(config_uri(), plate.space, plate.out_space), pixels, planar=True)
        return torch.from_numpy(pixels)[None]

    out = premultiplied(planes, plate, convert)
    clamped = None
    if dtype == torch.float16:
        low, high = torch.aminmax(out)  # one read; NaN where any value is NaN
        clamped = torch.zeros(1, dtype=torch.long) if -HALF_MAX <= low and high <= HALF_MAX else half_range(out)
    return torch.empty((*out.shape[2:], 3), dtype=dtype).copy_(out[0].permute(1, 2, 0)).numpy(), clamped


@dataclass
class Staged:
    """One view between the stages."""

    view: View
    tensor: Tensor | None       # H×W×C for the device: R, G, B[, A] as stored, or with `plate`
                                # the working-space RGB; None when the view passes through
    plate: Plate | None = None  # colour in already done on the host (OCIO's CPU processor)
    done: "Readback | None" = None  # the whole result, made on the host (a grade-only model)


@dataclass
class PendingFrame:
    """A frame between the stages: each of its views (one for most images)."""

    frame: Frame
    space: str
    out_space: str              # the result's colour space (`space` unless another was asked for)
    views: list[Staged]


def prepare(frame: Frame, stylizer: Stylizer, mix: float = 1.0, colourspace: str | None = None,
            out_colourspace: str | None = None) -> PendingFrame:
    """Stage each view's colour channels for the device (see the module docstring)."""
    space = frame_colourspace(frame, colourspace)
    out_space = space if out_colourspace is None or canonical(out_colourspace) == canonical(space) \
        else canonical(out_colourspace)
    if check_mix(mix) == 0 and out_space == space:  # bit-exact pass-through
        return PendingFrame(frame, space, out_space, [Staged(view, None) for view in frame.views()])
    return PendingFrame(frame, space, out_space,
                        [_stage(frame, view, stylizer, space, out_space, mix) for view in frame.views()])


def _stage(frame: Frame, view: View, stylizer: Stylizer, space: str, out_space: str, mix: float) -> Staged:
    channels = colour_channels(view)
    pixels = frame.pixels
    if pixels.dtype not in TORCH_TYPES:
        pixels = pixels.astype(np.float32)
    if channels == list(range(pixels.shape[2])) and not stylizer.execution.pinned:
        staged = torch.from_numpy(np.ascontiguousarray(pixels))  # already laid out as needed
    else:
        staged = stylizer.transfers.host_buffer((*pixels.shape[:2], len(channels)), TORCH_TYPES[pixels.dtype])
        np.take(pixels, channels, axis=2, out=staged.numpy())
    if stylizer.execution.torch_colour:
        return Staged(view, staged)
    if stylizer.host_lattice is not None:
        return Staged(view, None, done=_graded_on_host(stylizer, staged, space, out_space, mix))
    working, plate = host_colour_in(staged, space, out_space, planar=True)
    return Staged(view, torch.from_numpy(working), plate)


def _graded_on_host(stylizer: Stylizer, staged: Tensor, space: str, out_space: str, mix: float) -> "Readback":
    """A grade-only model's result for one staged view: un-premultiply, then colour in, grade, mix
    and colour out in one OpenColorIO pass, then premultiply and the pixel type (`host_colour_in`
    and `host_colour_out`, with the grade between them folded into their conversions)."""
    rgb, alpha = host_planes(staged)
    straight, covered = unpremultiply(rgb, alpha)
    graded = np.empty((3, *staged.shape[:2]), np.float32)
    stylizer.grade_on_host(straight[0].contiguous().numpy(), space, out_space, mix, out=graded, planar=True)
    out, clamped = host_pixel_type(torch.from_numpy(graded)[None], Plate(rgb, alpha, covered, space, out_space),
                                   staged.dtype)
    return Readback(Download(torch.from_numpy(out), None), None if clamped is None else Download(clamped, None))


@dataclass
class Readback:
    """One view's result on its way to the host: RGB and, where colour out ran on the device
    into half floats, the count of values clamped to the half range."""

    rgb: Download
    clamped: Download | None = None


# What `infer` gives for one frame and `finish` takes: each view's read-back (None: unchanged).
Results = list[Readback | None]


def infer(stylizer: Stylizer, pending: list[PendingFrame], mix: float = 1.0) -> list[Results]:
    """The device stage for every view that needs it, same-size views batched where the
    execution batches; each result is a read-back under way."""
    todo = [(p, s) for p in pending for s in p.views if s.tensor is not None]
    keys = [(s.tensor.shape, s.tensor.dtype, p.space, p.out_space, s.plate is None)  # type: ignore[union-attr]
            for p, s in todo]
    results: dict[int, Readback] = {}
    for group in stylizer.groups(keys, [key[0][0] * key[0][1] for key in keys]):
        views = [todo[j] for j in group]
        with torch.inference_mode():
            x = stack([stylizer.transfers.upload(s.tensor) for _, s in views])  # type: ignore[arg-type]
            first, _ = views[0]
            outs, clamped = stylize_tensors(stylizer, x, first, mix)
            for index, ((_, s), out) in enumerate(zip(views, outs)):
                results[id(s)] = Readback(stylizer.transfers.download(out),
                                          None if clamped is None else stylizer.transfers.download(clamped[index]))
    return [[s.done or results.get(id(s)) for s in p.views] for p in pending]


def stylize_tensors(stylizer: Stylizer, x: Tensor, first: PendingFrame, mix: float) -> tuple[Tensor, Tensor | None]:
    """A batch on the device → N×H×W×C results to read back: with device colour, RGB in the
    result's space and the frames' pixel type (and, for half, the counts `colour_out` gives);
    where colour in was done on the host, working-space RGB in the network's memory layout."""
    torch_colour = first.views[0].plate is None
    working, plate = colour_in(x, first.space, first.out_space) if torch_colour else (x, None)
    stylized = stylizer.tensors(working.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)
    mixed = mix_tensors(working, stylized, mix)
    return colour_out(mixed, plate, x.dtype) if plate is not None else (mixed, None)


def finish(pending: PendingFrame, results: Results, tags: dict) -> Frame:
    """The frame with each view's new RGB (colour out first where it is done on the host),
    every other channel untouched; tagged with the model and, when it changed, its colour space."""
    frame = pending.frame
    dtype = TORCH_TYPES.get(frame.pixels.dtype, torch.float32)
    rgbs, clamped = [], 0
    for staged, result in zip(pending.views, results):
        if result is None:
            rgbs.append(frame.pixels[:, :, list(staged.view.rgb)])
            continue
        rgb = result.rgb.result()
        counts = result.clamped.result() if result.clamped is not None else None
        if staged.plate is not None:
            out_rgb, counts = host_colour_out(rgb.numpy(), staged.plate, dtype)
        else:
            out_rgb = rgb.numpy()
        rgbs.append(out_rgb)
        clamped += 0 if counts is None else int(counts.sum())
    out = frame.with_views(rgbs, [staged.view for staged in pending.views])
    out.clamped = clamped
    converted = pending.out_space != pending.space
    if converted:
        out.colourspace = pending.out_space
    # The header's colour tags say what the pixels are in, not what the file said (a --colourspace against
    # its chromaticities) nor the input's space; an embedded ICC profile stays only on pixels still in
    # the input's space (there is none to embed for another).
    return tagged(out, {**colour_tags(pending.out_space), **({ICC_ATTRIBUTE: None} if converted else {}), **tags})


def model_tags(stylizer: Stylizer, mix: float) -> dict:
    """The attributes every stylized frame carries: which model, at which mix."""
    return {MODEL_ATTRIBUTE: stylizer.model_hash, MIX_ATTRIBUTE: float(mix)}


def tagged(frame: Frame, tags: dict) -> Frame:
    """``frame`` with ``tags`` set in its header (a None value: that attribute removed)."""
    for name, value in tags.items():
        if value is None:
            frame.attributes.pop(name, None)
        else:
            frame.attributes[name] = value
    return frame
