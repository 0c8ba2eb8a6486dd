"""`hrnet`: the research note's high-resolution stylization network.

A style model is a grade first: `grade` (a 3D LUT, see engine/grade.py) maps every plate colour
to its new colour, the same everywhere; the network then proposes a local residual r for what
one colour map cannot do (a lit window at night), limited by the model's local rule
(networks/local.py: ±`bound` per channel for models trained on per-pixel targets, or the
`honest` rule — exposure and colour only along the grade's own change — with `along_grade`).

The network: three parallel branches at full, 1/2 and 1/4 resolution, built from residual
bottleneck blocks (1×1 reduce, 3×3, 1×1 expand, each with instance norm + ReLU). After every
stage the branches exchange information (strided 3×3 convs downwards, 1×1 conv + bilinear
upsampling upwards); at the end all branches are fused at full resolution and decoded to a
3-channel residual. The decoder starts at zero and the grade as the identity, so an untrained
model is exactly the identity.

Every 3×3 convolution pads by reflection: zero padding makes the network see a black frame
border, which it learns to "correct" into bright edge artefacts.

Input and output are N×3×H×W in the working colour space (ACEScct); any H, W works (the
frame is reflect-padded to a multiple of 4 and cropped back).

Tiled inference: instance norm normalises by statistics of the whole input, so a tile
normalised by its own statistics would not match its neighbours. `norm_statistics` records
every norm layer's statistics on a (downscaled) whole frame and `frozen_norms` makes the
tiles use them, which keeps tiles seamless.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterable, Iterator, Sequence, cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from shotstyle.server.engine.grade import DEFAULT_SIZE, LatticeGrade
from shotstyle.server.engine.networks.base import NormStats, StyleNetwork
from shotstyle.server.engine.networks.local import DEFAULT_BOUND, limited

# Two stride-2 steps from full resolution to the 1/4 branch; the 1/4 branch needs ≥ 2 pixels
# for reflection padding.
SIZE_MULTIPLE = 4
MIN_SIZE = 8


class InstanceNorm(nn.InstanceNorm2d):
    """Instance norm (affine) that can record its statistics or use frozen ones."""

    def __init__(self, channels: int):
        super().__init__(channels, affine=True)
        self.recorded: tuple[Tensor, Tensor] | None = None
        self.frozen: tuple[Tensor, Tensor] | None = None
        self.recording = False

    def forward(self, x: Tensor) -> Tensor:
        if self.recording:
            var, mean = torch.var_mean(x.float(), dim=(2, 3), keepdim=True, correction=0)
            self.recorded = (mean, var)
        if self.frozen is None:
            return super().forward(x)
        mean, var = self.frozen
        scale = torch.rsqrt(var + self.eps) * self.weight.view(1, -1, 1, 1)
        return ((x - mean) * scale + self.bias.view(1, -1, 1, 1)).to(x.dtype)


def conv3x3(in_channels: int, out_channels: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1,
                     padding_mode="reflect", bias=False)


def conv1x1(in_channels: int, out_channels: int) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, 1, bias=False)


class Bottleneck(nn.Module):
    """Residual bottleneck block: 1×1 reduce, 3×3, 1×1 expand, instance norm + ReLU."""

    def __init__(self, channels: int, reduction: int = 2):
        super().__init__()
        mid = max(channels // reduction, 4)
        self.reduce = conv1x1(channels, mid)
        self.norm1 = InstanceNorm(mid)
        self.conv = conv3x3(mid, mid)
        self.norm2 = InstanceNorm(mid)
        self.expand = conv1x1(mid, channels)
        self.norm3 = InstanceNorm(channels)

    def forward(self, x: Tensor) -> Tensor:
        out = F.relu(self.norm1(self.reduce(x)))
        out = F.relu(self.norm2(self.conv(out)))
        out = self.norm3(self.expand(out))
        return F.relu(x + out)


def downsample(in_channels: int, out_channels: int, steps: int) -> nn.Sequential:
    """`steps` strided 3×3 convs (each halving the size); ReLU between, none after the last."""
    layers: list[nn.Module] = []
    for step in range(steps):
        last = step == steps - 1
        layers += [conv3x3(in_channels, out_channels if last else in_channels, stride=2),
                   InstanceNorm(out_channels if last else in_channels)]
        if not last:
            layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


class Exchange(nn.Module):
    """Every branch receives the sum of all branches, resampled to its resolution."""

    def __init__(self, widths: Sequence[int]):
        super().__init__()
        self.paths = nn.ModuleList()
        for target, target_width in enumerate(widths):
            row = nn.ModuleList()
            for source, source_width in enumerate(widths):
                if source == target:
                    row.append(nn.Identity())
                elif source > target:  # lower resolution: project, then upsample in forward
                    row.append(nn.Sequential(conv1x1(source_width, target_width),
                                             InstanceNorm(target_width)))
                else:
                    row.append(downsample(source_width, target_width, target - source))
            self.paths.append(row)

    def forward(self, branches: list[Tensor]) -> list[Tensor]:
        fused = []
        for target, row in enumerate(cast(Iterable[nn.ModuleList], self.paths)):
            size = branches[target].shape[-2:]
            total = branches[target]
            for source, path in enumerate(row):
                if source == target:
                    continue
                out = path(branches[source])
                if source > target:
                    out = F.interpolate(out, size=size, mode="bilinear", align_corners=False)
                total = total + out
            fused.append(F.relu(total))
        return fused


class Stage(nn.Module):
    """`blocks` bottlenecks on each branch, then an exchange between the branches."""

    def __init__(self, widths: Sequence[int], blocks: int):
        super().__init__()
        self.branches = nn.ModuleList(
            nn.Sequential(*(Bottleneck(width) for _ in range(blocks))) for width in widths)
        self.exchange = Exchange(widths) if len(widths) > 1 else None

    def forward(self, branches: list[Tensor]) -> list[Tensor]:
        branches = [branch(x) for branch, x in zip(self.branches, branches)]
        return self.exchange(branches) if self.exchange is not None else branches


class HRNet(StyleNetwork):
    """Full / half / quarter resolution branches fused into a residual RGB change.

    Args:
        width: channels of the full-resolution branch; the 1/2 and 1/4 branches get 2× and 4×.
        blocks: bottleneck blocks per branch in each of the three stages.
        grade_size: nodes per axis of the global grade's lattice; 0 = no grade and no bound
            (the plain network, as `hrnet-fast` uses inside).
        bound: largest local change (see the module doc).
        along_grade: the local rule (networks/local.py): True = `honest` (models made before
            per-pixel targets), False = `targeted`.
        in_channels: input channels of the plain network (3, or more when `hrnet-fast` gives
            it semantic features beside the colour); the residual is always 3 channels.
    """

    tiles = True

    def __init__(self, width: int = 16, blocks: int = 2, grade_size: int = DEFAULT_SIZE,
                 bound: float = DEFAULT_BOUND, along_grade: bool = True, in_channels: int = 3):
        super().__init__()
        self.grade = LatticeGrade(grade_size) if grade_size else None
        self.bound = bound
        self.along_grade = along_grade
        widths = (width, 2 * width, 4 * width)
        self.stem = nn.Sequential(conv3x3(in_channels, width), InstanceNorm(width), nn.ReLU(inplace=True))
        self.stage1 = Stage(widths[:1], blocks)
        self.to_half = nn.Sequential(downsample(widths[0], widths[1], 1), nn.ReLU(inplace=True))
        self.stage2 = Stage(widths[:2], blocks)
        self.to_quarter = nn.Sequential(downsample(widths[1], widths[2], 1), nn.ReLU(inplace=True))
        self.stage3 = Stage(widths, blocks)
        # A 1×1 conv on the concatenated branches equals the sum of per-branch 1×1 convs;
        # projecting before upsampling keeps the full-resolution memory to `width` channels.
        self.fuse = nn.ModuleList(conv1x1(w, width) for w in widths)
        self.fuse_norm = InstanceNorm(width)
        self.decode = nn.Conv2d(width, 3, 3, padding=1, padding_mode="reflect")
        for parameter in self.decode.parameters():
            nn.init.zeros_(parameter)

    def forward(self, x: Tensor) -> Tensor:
        if self.grade is None:
            return x + self.change(x)
        graded = self.grade(x)
        return limited(x, graded, graded + self.bound * self.change(graded), self.bound, self.along_grade)

    def change(self, x: Tensor) -> Tensor:
        """The network's residual for `x`."""
        height, width = x.shape[-2:]
        padded = pad_to_multiple(x)
        branches = self.stage1([self.stem(padded)])
        branches = self.stage2([branches[0], self.to_half(branches[0])])
        branches = self.stage3([*branches, self.to_quarter(branches[1])])
        size = branches[0].shape[-2:]
        fused = self.fuse[0](branches[0])
        for project, branch in zip(self.fuse[1:], branches[1:]):
            fused = fused + F.interpolate(project(branch), size=size, mode="bilinear",
                                          align_corners=False)
        residual = self.decode(F.relu(self.fuse_norm(fused)))
        return residual[..., :height, :width]

    def norms(self) -> list[InstanceNorm]:
        return [m for m in self.modules() if isinstance(m, InstanceNorm)]

    @torch.no_grad()
    def norm_statistics(self, x: Tensor) -> NormStats:
        """Every norm layer's (mean, var) on `x`, e.g. a downscaled copy of a whole frame."""
        norms = self.norms()
        for norm in norms:
            norm.recording = True
        try:
            self(x)
            return [norm.recorded for norm in norms]  # type: ignore[misc]
        finally:
            for norm in norms:
                norm.recording, norm.recorded = False, None

    @contextmanager
    def frozen_norms(self, stats: NormStats) -> Iterator[None]:
        """Inside the block, norm layers use `stats` instead of their input's statistics."""
        norms = self.norms()
        for norm, frozen in zip(norms, stats, strict=True):
            norm.frozen = frozen
        try:
            yield
        finally:
            for norm in norms:
                norm.frozen = None


def pad_to_multiple(x: Tensor) -> Tensor:
    """Pad bottom/right to a multiple of SIZE_MULTIPLE (and at least MIN_SIZE) by reflection."""
    height, width = x.shape[-2:]
    target_h = max(-(-height // SIZE_MULTIPLE) * SIZE_MULTIPLE, MIN_SIZE)
    target_w = max(-(-width // SIZE_MULTIPLE) * SIZE_MULTIPLE, MIN_SIZE)
    pad = (0, target_w - width, 0, target_h - height)
    if pad == (0, 0, 0, 0):
        return x
    # Reflection needs the pad to be smaller than the size; tiny inputs repeat their edge.
    mode = "reflect" if max(pad) < min(height, width) else "replicate"
    return F.pad(x, pad, mode=mode)

