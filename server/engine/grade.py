"""The global grade: a 3D colour lookup table over the working space (ACEScct), applied with
trilinear interpolation — the part of a style model that is one colour map for the whole shot.

The lattice spans ACEScct [0, 1] on every axis (scene-linear −0.0069 … 222, everything a plate
normally holds) with `size` nodes per axis; node (r, g, b) stores the output colour of that
input colour, `lut[channel, b, g, r]` (blue slowest, red fastest: the order of an Iridas/Resolve
.cube file, so the lattice exports as it is). Identical input colours get identical output
colours in every pixel of every frame, by construction. Outside the domain the grade goes on
with slope 1 (input minus its clamped value is added back), so highlights above the lattice keep
their detail instead of flattening; a .cube file clamps there instead (see `lut.py`).

Float32 throughout, on any device. On a CPU, where nothing needs a gradient, the lattice is
applied by OpenColorIO's 3D-LUT processor (engine/gradehost.py: the same trilinear lookup, about
ten times faster than grid_sample); elsewhere by grid_sample, large frames in row strips so
memory stays bounded.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from shotstyle.server.engine.colour import working_space
from shotstyle.server.engine.gradehost import DOMAIN, host_grade

DEFAULT_SIZE = 33
# Pixels per grid_sample call (≈ 50 MB of float32 temporaries).
STRIP_PIXELS = 1 << 21


def identity_lattice(size: int, device: torch.device | str = "cpu") -> Tensor:
    """3×S×S×S lattice whose node (r, g, b) holds (r, g, b): the grade that changes nothing."""
    axis = torch.linspace(DOMAIN[0], DOMAIN[1], size, device=device)
    b, g, r = torch.meshgrid(axis, axis, axis, indexing="ij")
    return torch.stack([r, g, b])


def lattice_colours(size: int, device: torch.device | str = "cpu") -> Tensor:
    """The lattice's input colours as a 1×3×S×(S·S) image (for evaluating a colour function on them)."""
    return identity_lattice(size, device).reshape(1, 3, size, size * size)


def sample_lattice(lut: Tensor, x: Tensor) -> Tensor:
    """Trilinear lookup of N×3×H×W colours in a 3×S×S×S lattice (colours clamped to the domain)."""
    n, _, height, width = x.shape
    low, high = DOMAIN
    grid = ((x.clamp(low, high) - low) / (high - low) * 2 - 1).permute(0, 2, 3, 1)[:, None]
    volume = lut[None].expand(n, -1, -1, -1, -1)
    out = F.grid_sample(volume, grid, mode="bilinear", padding_mode="border", align_corners=True)
    return out[:, :, 0]


class LatticeGrade(nn.Module):
    """The global part of a style model: a 3D LUT in ACEScct (identity until it is set)."""

    lut: Tensor

    def __init__(self, size: int = DEFAULT_SIZE):
        super().__init__()
        if size < 2:
            raise ValueError(f"grade lattice size {size}: use at least 2 nodes per axis")
        self.size = size
        self.register_buffer("lut", identity_lattice(size))

    def set(self, lut: Tensor) -> None:
        if lut.shape != self.lut.shape:
            raise ValueError(f"grade lattice of shape {tuple(lut.shape)}, expected {tuple(self.lut.shape)}")
        self.lut.copy_(lut)

    def forward(self, x: Tensor) -> Tensor:
        needs_gradient = torch.is_grad_enabled() and (x.requires_grad or self.lut.requires_grad)
        return self.on_host(x) if x.device.type == "cpu" and not needs_gradient else self.in_torch(x)

    def on_host(self, x: Tensor) -> Tensor:
        """The lookup by OpenColorIO on a CPU tensor (no gradient): float32 NCHW in either memory
        layout, each image handed to OCIO as planes or as packed RGB, read from `x` and written to
        the result without a copy."""
        source = x.detach().float()
        if not (source.is_contiguous() or source.is_contiguous(memory_format=torch.channels_last)):
            source = source.contiguous()  # a tile, a crop: OCIO reads runs of pixels
        out = torch.empty_like(source)
        space = working_space()
        grade = host_grade(self.lut.detach().cpu().float().numpy(), space, space)
        for image, result in zip(source, out):
            if image.is_contiguous():
                grade.apply(image.numpy(), planar=True, out=result.numpy())
            else:  # channels-last: H×W×3 in memory
                grade.apply(image.permute(1, 2, 0).numpy(), out=result.permute(1, 2, 0).numpy())
        return out.to(x.dtype)

    def in_torch(self, x: Tensor) -> Tensor:
        """The lookup with torch ops on any device (differentiable: what training runs)."""
        lut = self.lut.float()
        with torch.autocast(x.device.type, enabled=False):
            source = x.float()
            n, channels, height, width = source.shape
            # Strips of rows side by side in the batch: grid_sample's CPU kernel works on the
            # images of a batch in parallel, one core each (2x on 2 cores, bit-identical).
            threads = max(1, torch.get_num_threads())
            rows = max(1, min(-(-height // threads), STRIP_PIXELS // (width * threads)))
            pad = -height % rows
            padded = F.pad(source, (0, 0, 0, pad), mode="replicate") if pad else source
            strips = padded.reshape(n, channels, -1, rows, width).transpose(1, 2).reshape(-1, channels, rows, width)
            step = threads * n
            done = [sample_lattice(lut, strips[i:i + step]) for i in range(0, strips.shape[0], step)]
            inside = torch.cat(done).reshape(n, -1, channels, rows, width).transpose(1, 2)
            inside = inside.reshape(n, channels, -1, width)[:, :, :height]
            return (inside + (source - source.clamp(*DOMAIN))).to(x.dtype)

