"""How much work a network asks of one frame: multiply-adds of its convolutions (and matrix
products), counted, not guessed.

The count runs the network's own forward code on the meta device (shapes only: no memory, no
arithmetic) under torch's FlopCounterMode, so it follows every change to a network's layers.
Only convolutions and matrix products are counted: the rest of a frame's work (the grade's
lookup, the affine fit's running sums, the local limits) is a few operations per pixel for
every model, whatever its arguments; `radius` (running sums) and `grade_size` (one lookup per
pixel) change no per-pixel cost.

The registry (`networks.REGISTRY`) gives each architecture its work function and holds the
limit a model file may ask (`networks.check_arguments`).
"""

from __future__ import annotations

import functools
import inspect
from typing import Any, Callable, Mapping, TypeVar

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from shotstyle.server.engine import semantic
from shotstyle.server.engine.networks.hrnet import HRNet

# The side of the square frame the per-pixel counts are taken on: large enough that the borders
# and the smallest branches round away (the counts are per pixel of the input).
_PROBE_SIDE = 256
Network = TypeVar("Network", bound=nn.Module)


def _macs_per_pixel(build: Callable[[], Network], run: Callable[[Network, torch.Tensor], Any],
                    channels: int) -> float:
    with torch.device("meta"):
        network = build()
        probe = torch.empty(1, channels, _PROBE_SIDE, _PROBE_SIDE)
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        run(network, probe)
    return counter.get_total_flops() / 2 / _PROBE_SIDE ** 2   # a multiply-add is two FLOPs


@functools.lru_cache(maxsize=64)
def hrnet_per_pixel(width: int, blocks: int, in_channels: int) -> float:
    """Multiply-adds per input pixel of the plain HRNet (no grade) with these arguments."""
    return _macs_per_pixel(lambda: HRNet(width=width, blocks=blocks, grade_size=0, in_channels=in_channels),
                           lambda network, x: network.change(x), in_channels)


@functools.lru_cache(maxsize=1)
def semantic_per_pixel() -> float:
    """Multiply-adds per input pixel of the semantic features (EfficientNet-Lite0 up to its last feature block)."""
    return _macs_per_pixel(semantic.EfficientNetLite0,
                           lambda network, x: network.blocks(x, semantic.FEATURE_BLOCKS), 3)


def defaults(build: Callable[..., nn.Module], kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """``kwargs`` completed with ``build``'s defaults."""
    found = {name: p.default for name, p in inspect.signature(build).parameters.items()
             if p.default is not inspect.Parameter.empty}
    return {**found, **kwargs}


def scaled_pixels(height: int, width: int, long_side: int) -> int:
    """Pixels of a ``height``×``width`` frame scaled down so its long side is at most ``long_side``."""
    scale = min(1.0, long_side / max(height, width))
    return max(round(height * scale), 1) * max(round(width * scale), 1)


def hrnet_work(arguments: Mapping[str, Any], height: int, width: int) -> float:
    """`hrnet`: the network at full resolution."""
    return hrnet_per_pixel(arguments["width"], arguments["blocks"], 3) * height * width


def hrnet_fast_work(arguments: Mapping[str, Any], height: int, width: int) -> float:
    """`hrnet-fast`: the inner HRNet (colour + `semantic` channels) and the semantic features, both
    on the copy whose long side is `low_res`."""
    low = scaled_pixels(height, width, arguments["low_res"])
    work = hrnet_per_pixel(arguments["width"], arguments["blocks"], 3 + arguments["semantic"]) * low
    return work + (semantic_per_pixel() * low if arguments["semantic"] else 0.0)


def no_work(arguments: Mapping[str, Any], height: int, width: int) -> float:
    """`grade`: no convolution at all."""
    return 0.0
