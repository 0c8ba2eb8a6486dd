"""Running a trained style model on frames: device, precision, memory bounds and the mix knob.

`Stylizer` takes and returns H×W×3 float32 arrays in the working colour space. Memory stays
bounded at any frame size:
- `hrnet` works at full resolution, so frames above `tile_pixels` are cut into overlapping
  tiles that are cross-faded together. Its instance norms take their statistics from the
  whole frame seen at the model's training resolution (HRNet.norm_statistics on a copy whose
  long side is metadata["resolution"], 512 by default; the frame itself when smaller). Every
  tile is normalised the same way, so tiles are seamless and tiled equals untiled up to the
  cross-faded tile borders; and a 4K render is normalised like the training previews the
  artist approved (instance-norm networks otherwise change their look with resolution).
- `hrnet-fast` sees the whole frame at low resolution and applies its colour transform at full
  resolution in exact strips (see networks/hrnet_fast.py): it never needs tiling.
- `grade` (the grade alone) on a CPU runs no torch at all: `grade_on_host` applies its lattice
  with OpenColorIO, the mix folded into the lattice and, in the frame pipeline, the colour
  conversions around it in the same pass (engine/gradehost.py).

How the device is driven (layout, batching) is the `Execution` (see device.py): a CUDA GPU
runs channels-last with same-size frames batched, a CPU one NCHW frame at a time on all cores
(deterministic), and a CPU asked to take the GPU's path runs the GPU's code. Precision is
IEEE float32 everywhere, so results agree across devices (device.py says why). Each Stylizer
runs its own copy of the network on its device: a model shared by several devices or threads
is never moved or changed under another one.

`tensors` is the network on device tensors (what the frame pipeline calls between its colour
stages); `batch` and `__call__` take and return arrays.
"""

from __future__ import annotations

import copy
import math
from typing import Any, Hashable, Sequence

import numpy as np
import torch
from torch import Tensor

from shotstyle.plugin import params
from shotstyle.server.engine.colour import working_space
from shotstyle.server.engine.device import Execution, Transfers, configure_threads, execution_for, pick_device
from shotstyle.server.engine.grade import identity_lattice
from shotstyle.server.engine.networks.base import grade_of
from shotstyle.server.engine.gradehost import host_grade
from shotstyle.server.engine.modelfile import StyleModel
from shotstyle.server.engine.networks.grade_only import GradeOnly
from shotstyle.server.engine.networks.hrnet import SIZE_MULTIPLE
from shotstyle.server.engine.networks.hrnet_fast import downscale
from shotstyle.server.errors import InferenceError

# Pixels per network call: `hrnet` needs ≈ 700 bytes per pixel in float32 (measured), so
# ~2 MP keeps a CPU process under 2 GB and still runs 1920×1080 untiled.
CPU_TILE_PIXELS = 1 << 21
# GPU memory budgeted per pixel of `hrnet` in float32: the issue measured a 28.5 GiB peak for a
# 3840×2160 frame under bfloat16 autocast (3.6 KB/pixel); float32 activations take twice that.
GPU_BYTES_PER_PIXEL = 8192
# Tile overlap in pixels: wider than the region that differs between a tile and the full frame.
TILE_OVERLAP = 64
# Long side of the copy `hrnet` takes its norm statistics from, when the model does not say.
DEFAULT_STATS_SIDE = 512


class Stylizer:
    """Applies a StyleModel to working-space frames: `stylizer(rgb, mix)`.

    Args:
        model: the trained model; its network is copied to `device`.
        device: "cpu", "cuda", "cuda:N", "mps", or None/"auto" for the best available.
        tile_pixels: largest tile (pixels) one network call handles; default from the device.
        execution: how to drive the device (default: the device's own choices).
    """

    def __init__(self, model: StyleModel, device: str | None = None,
                 tile_pixels: int | None = None, execution: Execution | None = None):
        self.model = model
        self.model_hash = model.hash
        self.execution = execution or execution_for(pick_device(device))
        self.device = self.execution.device
        configure_threads(self.device)
        network = copy.deepcopy(model.network).to(self.device).eval()
        if self.execution.channels_last:
            network = network.to(memory_format=torch.channels_last)
        self.network = network
        self.transfers = Transfers(self.execution)
        self.tile_pixels = tile_pixels or default_tile_pixels(self.device)
        if self.tile_pixels < (2 * TILE_OVERLAP) ** 2:
            raise InferenceError(f"tile_pixels={self.tile_pixels} is too small: use at least "
                                 f"{(2 * TILE_OVERLAP) ** 2} (tiles overlap by {TILE_OVERLAP} px)")
        # Networks normalising by whole-frame statistics are tiled; others bound their own memory.
        self.tiles = network.tiles
        # A grade-only model on a CPU: its lattice, applied by OpenColorIO (None: the network runs).
        self.host_lattice = grade_of(network).lut.detach().cpu().float().numpy() \
            if isinstance(network, GradeOnly) and not self.execution.torch_colour else None
        self.stats_side = int(model.metadata.get("resolution") or DEFAULT_STATS_SIDE)

    def __call__(self, rgb: np.ndarray, mix: float = 1.0) -> np.ndarray:
        return self.batch([rgb], mix)[0]

    def batch(self, rgbs: list[np.ndarray], mix: float = 1.0) -> list[np.ndarray]:
        """Stylize several H×W×3 working-space frames; `mix` 0 returns them exactly."""
        mix = check_mix(mix)
        for rgb in rgbs:
            check_frame(rgb)
        if mix == 0:
            return [np.array(rgb, dtype=np.float32, copy=True) for rgb in rgbs]
        if self.host_lattice is not None:
            graded = [np.empty(rgb.shape, np.float32) for rgb in rgbs]
            for rgb, out in zip(rgbs, graded):
                self.grade_on_host(np.ascontiguousarray(rgb), working_space(), working_space(), mix, out)
            return graded
        results: list[np.ndarray | None] = [None] * len(rgbs)
        for indices in self.groups([rgb.shape for rgb in rgbs], [rgb.shape[0] * rgb.shape[1] for rgb in rgbs]):
            with torch.inference_mode():
                x = stack([self.transfers.upload(torch.from_numpy(rgbs[i])) for i in indices])
                y = mix_tensors(x, self.tensors(x.permute(0, 3, 1, 2)).permute(0, 2, 3, 1), mix)
                stylized = self.transfers.download(y.contiguous()).result().numpy()
            for i, out in zip(indices, stylized):
                results[i] = out
        return results  # type: ignore[return-value]

    def grade_on_host(self, pixels: np.ndarray, source: str, destination: str, mix: float,
                      out: np.ndarray | None = None, planar: bool = False) -> None:
        """A grade-only model on float32 H×W×3 `pixels` (3×H×W planes when `planar`, `out` too) in
        colour space `source`, into `destination`, written to `out` (default: in place): colour
        in's rule for non-finite values first, a finite result (gradehost.HostGrade.apply). Mixing
        in the working space is linear in the lattice, so `mix` is folded into it:
        plate + mix·(grade − plate) is the lattice identity + mix·(lut − identity)."""
        assert self.host_lattice is not None, "grade_on_host is for grade-only models on a CPU"
        lattice = self.host_lattice
        if mix != 1:
            identity = identity_lattice(lattice.shape[-1]).numpy()
            lattice = identity + np.float32(mix) * (lattice - identity)
        host_grade(lattice, source, destination).apply(pixels, planar, out=out)

    def groups(self, keys: Sequence[Hashable], pixels: Sequence[int]) -> list[list[int]]:
        """Indices of frames run together: equal `keys` (their shape, and whatever else must
        match), batched when the execution batches, as many as `tile_pixels` holds."""
        if not self.execution.batch_frames:
            return [[i] for i in range(len(keys))]
        groups: dict[Hashable, list[list[int]]] = {}
        for i, key in enumerate(keys):
            per_batch = max(1, self.tile_pixels // pixels[i])
            batches = groups.setdefault(key, [[]])
            if len(batches[-1]) == per_batch:
                batches.append([])
            batches[-1].append(i)
        return [batch for batches in groups.values() for batch in batches]

    @torch.inference_mode()
    def tensors(self, x: Tensor) -> Tensor:
        """The network on N×3×H×W working-space frames on the device (float32; NHWC memory on
        channels-last executions, or either for networks that take `any_layout`) -> N×3×H×W
        float32, in the same memory layout."""
        if not self.network.any_layout:
            x = x.contiguous(memory_format=torch.channels_last if self.execution.channels_last
                             else torch.contiguous_format)
        height, width = x.shape[-2:]
        if not self.tiles or (max(height, width) <= self.stats_side
                              and height * width <= self.tile_pixels):
            return self.network(x)
        stats = self.network.norm_statistics(downscale(x, self.stats_side))
        with self.network.frozen_norms(stats):
            return self._tiled(x) if height * width > self.tile_pixels else self.network(x)

    def _tiled(self, x: Tensor) -> Tensor:
        """Frames through the network in cross-faded tiles (norm statistics already frozen)."""
        height, width = x.shape[-2:]
        side = math.isqrt(self.tile_pixels)
        out = torch.zeros_like(x)
        for top, bottom, ramp_y in tile_spans(height, side):
            for left, right, ramp_x in tile_spans(width, side):
                tile = self.network(x[:, :, top:bottom, left:right])
                weight = ramp_y.to(x.device)[:, None] * ramp_x.to(x.device)[None, :]
                out[:, :, top:bottom, left:right] += tile * weight
        return out


def tile_spans(length: int, tile: int) -> list[tuple[int, int, Tensor]]:
    """(start, stop, weights) of evenly spread tiles covering `length`, overlapping ≥ TILE_OVERLAP.

    Starts are multiples of the network's stride (so a tile's half- and quarter-resolution
    pixels sit where the whole frame's do; the last tile may be a few pixels longer).
    Neighbours cross-fade linearly over a band in the middle of their overlap, away from the
    tile edges where a tile lacks context; the weights of all tiles sum to 1 everywhere.
    """
    if length <= tile:
        return [(0, length, torch.ones(length))]
    count = math.ceil((length - TILE_OVERLAP) / (tile - TILE_OVERLAP))
    starts = [round(i * (length - tile) / (count - 1)) // SIZE_MULTIPLE * SIZE_MULTIPLE
              for i in range(count)]
    stops = [start + tile for start in starts[:-1]] + [length]
    # Band centres are about one stride apart, so bands no wider than the stride never meet.
    band = min([TILE_OVERLAP] + [b - a for a, b in zip(starts, starts[1:])])
    fade_in = (torch.arange(band) + 0.5) / band
    spans = []
    for i, (start, stop) in enumerate(zip(starts, stops)):
        weights = torch.ones(stop - start)
        if i > 0:
            begin = (start + stops[i - 1]) // 2 - band // 2 - start
            weights[:begin] = 0
            weights[begin:begin + band] = fade_in
        if i < count - 1:
            begin = (starts[i + 1] + stop) // 2 - band // 2 - start
            weights[begin:begin + band] = fade_in.flip(0)
            weights[begin + band:] = 0
        spans.append((start, stop, weights))
    return spans


def default_tile_pixels(device: torch.device) -> int:
    if device.type == "cuda":
        total = torch.cuda.get_device_properties(device).total_memory
        return max(CPU_TILE_PIXELS, total // 2 // GPU_BYTES_PER_PIXEL)
    return CPU_TILE_PIXELS


def check_mix(mix: float) -> float:
    return float(params.check("mix", mix, InferenceError))


def check_frame(rgb: np.ndarray) -> None:
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.float32:
        raise InferenceError(f"expected an H×W×3 float32 working-space frame, got shape "
                             f"{rgb.shape} {rgb.dtype}")


def stack(tensors: list[Tensor]) -> Tensor:
    """Same-shape tensors as one batch (a single one without a copy)."""
    return tensors[0][None] if len(tensors) == 1 else torch.stack(tensors)


def mix_tensors(plate: Tensor, stylized: Tensor, mix: float) -> Tensor:
    """plate + mix · (stylized − plate), in float32 (`stylized` itself at mix 1)."""
    if mix == 1:
        return stylized
    return (stylized - plate).mul_(mix).add_(plate)
