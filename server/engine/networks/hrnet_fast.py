"""`hrnet-fast`: HRNet on a low-resolution copy, carried back as a per-pixel colour transform.

How a frame goes through (all steps differentiable, so training learns the whole path):
1. Grade it: the model's global colour map (a 3D LUT, engine/grade.py) gives every plate
   colour its new colour, the same in every pixel and frame. This is most of the look.
2. Downscale the graded frame (area average) so its long side is `low_res` pixels.
3. Run a slim HRNet on it: a locally changed low-resolution frame (residual on its input).
   Models trained on per-pixel targets (`semantic` > 0) also give it what is where: the
   plate's ImageNet features (engine/semantic.py, EfficientNet-Lite0 at the same low
   resolution), projected by a learnt 1×1 convolution to `semantic` channels. That is how a
   sky is told from a road of the same colour on a frame the model never saw.
4. Fit, at low resolution, a local affine colour transform per pixel — a 3×3 matrix plus an
   offset (3×4 numbers) mapping graded colour to changed colour in a (2·radius+1)² window:
   a colour guided filter (He et al.) in the fast, low-resolution form of Wu et al. 2018.
   The fit is regularised towards the identity matrix rather than towards zero, so in flat
   regions the transform becomes "graded + offset" and keeps the plate's grain and detail.
5. Smooth the coefficients (box filter), upsample them bilinearly to full resolution, apply
   them to the full-resolution graded frame, and limit the local change by the model's rule
   (networks/local.py): the local term is edge-aware (it follows the plate's edges) and
   bounded.

The full-resolution work (steps 1 and 5) is a few multiply-adds per pixel, done in horizontal
strips so memory stays bounded at any frame size; the strips are exact (no seams), since each
output row depends only on its own plate row and the coefficient rows around it.
"""

from __future__ import annotations

from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from shotstyle.server.engine.grade import DEFAULT_SIZE, LatticeGrade
from shotstyle.server.engine.networks.hrnet import HRNet
from shotstyle.server.engine import semantic as semantic_features
from shotstyle.server.engine.networks.base import StyleNetwork
from shotstyle.server.engine.networks.local import DEFAULT_BOUND, limited

# Long side of the copy the inner HRNet sees, unless a model was trained at a smaller size.
DEFAULT_LOW_RES = 320
# Semantic feature channels a target-trained model gives its inner HRNet.
SEMANTIC_CHANNELS = 8
# Full-resolution pixels handled per strip in step 5: its 12 upsampled coefficients (3 MB of
# float32) and 3-channel temporaries stay in a core's 2 MiB L2 and the shared cache, so each of
# the strip's elementwise passes finds its inputs there (on this project's 2-core CPU: 10% less
# CPU time than 1 << 17 strips, half that of 1 << 20; same results bit for bit).
STRIP_PIXELS = 1 << 16


class HRNetFast(StyleNetwork):
    """Global grade + low-resolution HRNet carried back as a bounded, edge-aware local
    affine colour transform at full resolution.

    Args:
        width, blocks: the inner HRNet's configuration (see `HRNet`).
        low_res: long side, in pixels, of the copy the HRNet sees.
        radius: window radius of the affine fit, in low-resolution pixels.
        eps: regularisation of the fit (working-space variance); larger = smoother,
            more "offset only" transforms.
        grade_size: nodes per axis of the global grade's lattice.
        bound: largest local change (see networks/local.py).
        along_grade: the local rule: True = `honest` (models made before per-pixel targets),
            False = `targeted`.
        semantic: channels of semantic features given to the inner HRNet (0 = none, as in
            models made before per-pixel targets).
    """

    grade: LatticeGrade
    # Its full-resolution steps are per pixel (the grade, the strips of step 5), and a frame is
    # handed to them as it lies in memory: an H×W×3 array seen as NCHW is channels-last.
    any_layout = True
    # At 1080p its work is about 135 ms of one core, the frame's EXR read, colour and zip write about 230.
    light = True

    def __init__(self, width: int = 8, blocks: int = 1, low_res: int = DEFAULT_LOW_RES,
                 radius: int = 2, eps: float = 1e-3, grade_size: int = DEFAULT_SIZE,
                 bound: float = DEFAULT_BOUND, along_grade: bool = True, semantic: int = 0):
        super().__init__()
        self.grade = LatticeGrade(grade_size)
        self.net = HRNet(width=width, blocks=blocks, grade_size=0, in_channels=3 + semantic)
        self.project = nn.Conv2d(semantic_features.CHANNELS, semantic, 1) if semantic else None
        self.low_res = low_res
        self.radius = radius
        self.eps = eps
        self.bound = bound
        self.along_grade = along_grade

    @classmethod
    def training_arguments(cls, resolution: int, targeted: bool) -> dict[str, Any]:
        arguments = super().training_arguments(resolution, targeted)
        # The inner network must see frames at the scale it is trained at: a model trained at
        # 96 px and run on a 320 px copy meets features it never learnt (blotches).
        if resolution < DEFAULT_LOW_RES:
            arguments["low_res"] = resolution
        if targeted:
            arguments["semantic"] = SEMANTIC_CHANNELS
        return arguments

    def inner_input(self, x: Tensor, small: Tensor) -> Tensor:
        """What the inner HRNet sees: the small graded frame, and the plate's projected features."""
        if self.project is None:
            return small
        found = semantic_features.features(downscale(x, self.low_res), self.low_res).to(small.dtype)
        projected = F.interpolate(self.project(found), size=small.shape[-2:], mode="bilinear", align_corners=False)
        return torch.cat([small, projected], dim=1)

    def forward(self, x: Tensor) -> Tensor:
        graded = self.grade(x)
        small = downscale(graded, self.low_res)
        changed = small + self.bound * self.net.change(self.inner_input(x, small))
        # The fit subtracts nearly equal moments: float32 always, even under CUDA autocast.
        with torch.autocast(x.device.type, enabled=False):
            coefficients = fit_local_affine(small.float(), changed.float(), self.radius, self.eps)
            # Without a gradient to keep, the result overwrites the graded frame it is made from
            # (one full-resolution frame fewer in memory), and each strip's limit its proposal.
            untracked = not torch.is_grad_enabled()
            return apply_affine(coefficients, graded,
                                lambda rows, proposed: limited(x[:, :, rows], graded[:, :, rows], proposed,
                                                               self.bound, self.along_grade, in_place=untracked),
                                out=graded if untracked else None)


def downscale(x: Tensor, long_side: int) -> Tensor:
    height, width = x.shape[-2:]
    scale = long_side / max(height, width)
    if scale >= 1:
        return x
    size = (max(round(height * scale), 1), max(round(width * scale), 1))
    return F.interpolate(x, size=size, mode="area")


def box(x: Tensor, radius: int) -> Tensor:
    """Mean over a (2r+1)² window; at the borders, over the pixels inside the frame.

    Running sums (cumsum) make the cost independent of the radius, forwards and backwards.
    """
    rows, row_counts = window_sums(x, radius, dim=-2)
    sums, column_counts = window_sums(rows, radius, dim=-1)
    return sums / (row_counts[:, None] * column_counts[None, :])


def window_sums(x: Tensor, radius: int, dim: int) -> tuple[Tensor, Tensor]:
    """Sums over [i − r, i + r] ∩ frame along `dim`, and how many pixels each sum covers."""
    length = x.shape[dim]
    # Running sums padded so that both ends of every window are plain slices (an index_select
    # along the last dimension costs several times the subtraction): r + 1 zeros in front, the
    # total repeated r times behind; sum i = running[min(i + r + 1, L)] − running[max(i − r, 0)].
    running = x.cumsum(dim)
    total = running.narrow(dim, length - 1, 1)
    padded = torch.cat([torch.zeros_like(total).expand(*_sized(x, dim, radius + 1)), running,
                        total.expand(*_sized(x, dim, radius))], dim)
    sums = padded.narrow(dim, 2 * radius + 1, length) - padded.narrow(dim, 0, length)
    index = torch.arange(length, device=x.device)
    counts = (index + radius + 1).clamp(max=length) - (index - radius).clamp(min=0)
    return sums, counts.to(x.dtype)


def _sized(x: Tensor, dim: int, size: int) -> list[int]:
    """`x`'s shape with `size` along `dim`."""
    shape = list(x.shape)
    shape[dim] = size
    return shape


def fit_local_affine(guide: Tensor, target: Tensor, radius: int, eps: float) -> Tensor:
    """Per-pixel A (3×3), b (3) minimising |A·guide + b − target|² + eps·|A − I|² per window,
    box-smoothed: N×12×h×w, channel 4·i + j holding row i of [A | b]."""
    n, _, h, w = guide.shape
    radius = min(radius, (min(h, w) - 1) // 2)
    mean_g = box(guide, radius)
    mean_t = box(target, radius)
    # Second moments of all 3×3 channel pairs in one box filter each.
    gg = box((guide[:, :, None] * guide[:, None, :]).flatten(1, 2), radius).view(n, 3, 3, h, w)
    tg = box((target[:, :, None] * guide[:, None, :]).flatten(1, 2), radius).view(n, 3, 3, h, w)
    eye = torch.eye(3, device=guide.device, dtype=guide.dtype).view(1, 3, 3, 1, 1)
    cov_gg = gg - mean_g[:, :, None] * mean_g[:, None, :] + eps * eye
    cov_tg = tg - mean_t[:, :, None] * mean_g[:, None, :] + eps * eye
    a = torch.einsum("nijhw,njkhw->nikhw", cov_tg, inverse3x3(cov_gg))   # n,3(out),3(in),h,w
    b = mean_t - torch.einsum("nijhw,njhw->nihw", a, mean_g)
    coefficients = torch.cat([a, b[:, :, None]], dim=2)                # n,3,4,h,w
    return box(coefficients.flatten(1, 2), radius)


def inverse3x3(m: Tensor) -> Tensor:
    """Inverse of per-pixel 3×3 matrices m[n, i, j, h, w] by cofactors: closed form, fast on
    millions of pixels (a batched LAPACK solve is far slower at this size, and in backward)."""
    c00 = m[:, 1, 1] * m[:, 2, 2] - m[:, 1, 2] * m[:, 2, 1]
    c01 = m[:, 1, 2] * m[:, 2, 0] - m[:, 1, 0] * m[:, 2, 2]
    c02 = m[:, 1, 0] * m[:, 2, 1] - m[:, 1, 1] * m[:, 2, 0]
    c10 = m[:, 0, 2] * m[:, 2, 1] - m[:, 0, 1] * m[:, 2, 2]
    c11 = m[:, 0, 0] * m[:, 2, 2] - m[:, 0, 2] * m[:, 2, 0]
    c12 = m[:, 0, 1] * m[:, 2, 0] - m[:, 0, 0] * m[:, 2, 1]
    c20 = m[:, 0, 1] * m[:, 1, 2] - m[:, 0, 2] * m[:, 1, 1]
    c21 = m[:, 0, 2] * m[:, 1, 0] - m[:, 0, 0] * m[:, 1, 2]
    c22 = m[:, 0, 0] * m[:, 1, 1] - m[:, 0, 1] * m[:, 1, 0]
    determinant = m[:, 0, 0] * c00 + m[:, 0, 1] * c01 + m[:, 0, 2] * c02
    adjugate = torch.stack([torch.stack([c00, c10, c20], 1),
                            torch.stack([c01, c11, c21], 1),
                            torch.stack([c02, c12, c22], 1)], 1)
    return adjugate / determinant[:, None, None]


def row_sources(h: int, height: int) -> tuple[Tensor, Tensor, Tensor]:
    """The bilinear (align_corners=False) upsampling of `h` rows to `height` rows: for each output
    row the two input rows it blends (lower, upper) and the weight of `upper`."""
    rows = torch.arange(height, dtype=torch.float64)
    source = ((rows + 0.5) * (h / height) - 0.5).clamp(min=0)
    lower = source.floor().long().clamp(max=h - 1)
    upper = (lower + 1).clamp(max=h - 1)
    return lower, upper, (source - lower).float()


def row_blends(h: int, height: int) -> list[tuple[int, int, int, int, Tensor]]:
    """`row_sources` as runs of output rows that blend the same two input rows: (first, stop,
    lower, upper, the runs' weights of `upper`)."""
    lower, upper, weight = row_sources(h, height)
    runs, first = [], 0
    for value, count in zip(*(t.tolist() for t in torch.unique_consecutive(lower, return_counts=True))):
        runs.append((first, first + count, value, int(upper[first]), weight[first:first + count]))
        first += count
    return runs


def apply_affine(coefficients: Tensor, plate: Tensor,
                 finish: Callable[[slice, Tensor], Tensor] | None = None, out: Tensor | None = None) -> Tensor:
    """Upsample the 3×4 transforms to the plate's size and apply them, strip by strip; ``finish``
    (rows, result) makes each strip's final pixels while they are in cache (a pointwise step: the
    local term's limits; without autograd it may overwrite the result it is given, a scratch
    strip), so no full-frame temporaries are made. The result goes to ``out`` (a new tensor by
    default; ``plate`` itself may be given: each strip is read before it is written).

    ``plate`` may be NCHW or channels-last in memory; the result has its layout."""
    height, width = plate.shape[-2:]
    n, channels, h, _ = coefficients.shape
    # Bilinear upsampling is separable: the columns first, on the few low-resolution rows, then
    # each full-resolution row is a blend of two of those rows, one operation for the rows that
    # blend the same two (half the time of a bilinear lookup per strip, the same values up to
    # the order of two roundings).
    columns = F.interpolate(coefficients.flatten(1, 2), size=width, mode="linear", align_corners=False)
    columns = columns.view(n, channels, h, width).to(plate.dtype)
    strip = max(1, STRIP_PIXELS // width)
    out = torch.empty_like(plate) if out is None else out
    if torch.is_grad_enabled() and (coefficients.requires_grad or plate.requires_grad):
        _apply_tracked(columns, plate, strip, finish, out)
        return out
    # Without autograd each strip's blended transforms and result go into two buffers made once,
    # and each step writes into them: a third less time than new tensors per step, the same values.
    runs = row_blends(h, height)
    blended = torch.empty((n, channels, strip, width), dtype=plate.dtype, device=plate.device)
    applied = torch.empty((n, 3, strip, width), dtype=plate.dtype, device=plate.device)
    for start in range(0, height, strip):
        stop = min(start + strip, height)
        for first, last, lower, upper, weights in runs:
            if first < stop and last > start:
                rows = slice(max(first, start), min(last, stop))
                torch.lerp(columns[:, :, lower:lower + 1], columns[:, :, upper:upper + 1],
                           weights[rows.start - first:rows.stop - first].view(1, 1, -1, 1),
                           out=blended[:, :, rows.start - start:rows.stop - start])
        m = blended[:, :, :stop - start].view(n, 3, 4, stop - start, width)    # n, out row, in column, h, w
        x = plate[:, :, start:stop]
        y = torch.addcmul(m[:, :, 3], m[:, :, 0], x[:, 0:1], out=applied[:, :, :stop - start])
        y.addcmul_(m[:, :, 1], x[:, 1:2]).addcmul_(m[:, :, 2], x[:, 2:3])
        out[:, :, start:stop] = y if finish is None else finish(slice(start, stop), y)
    return out


def _apply_tracked(columns: Tensor, plate: Tensor, strip: int, finish: Callable[[slice, Tensor], Tensor] | None,
                   out: Tensor) -> None:
    """`apply_affine`'s steps under autograd (training), into ``out``: each strip's rows gathered
    in one blend (one blend per low-resolution row would put a hundred small nodes per strip into
    the graph: a training step 15% slower), new tensors at each step."""
    n, channels, h, width = columns.shape
    height = plate.shape[-2]
    lowers, uppers, blend = (t.to(plate.device) for t in row_sources(h, height))
    blend = blend.to(plate.dtype)
    for start in range(0, height, strip):
        stop = min(start + strip, height)
        m = torch.lerp(columns.index_select(2, lowers[start:stop]), columns.index_select(2, uppers[start:stop]),
                       blend[start:stop].view(1, 1, -1, 1))
        m = m.view(n, 3, 4, stop - start, width)
        x = plate[:, :, start:stop]
        y = torch.addcmul(m[:, :, 3], m[:, :, 0], x[:, 0:1])
        y = torch.addcmul(y, m[:, :, 1], x[:, 1:2])
        y = torch.addcmul(y, m[:, :, 2], x[:, 2:3])
        out[:, :, start:stop] = y if finish is None else finish(slice(start, stop), y)
