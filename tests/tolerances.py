"""How far apart two code paths computing the same numbers may be, derived from rounding.

Two paths that do the same arithmetic in another order (another kernel, batch size, tile or
vector width: what changes from one CPU to another) round differently. A sum of n terms in any
order is within n·u·Σ|terms| of the exact sum (u = eps/2 the unit roundoff; Higham, *Accuracy
and Stability of Numerical Algorithms*, §3.1), so two orders differ by at most n·eps·Σ|terms|.
A test states the magnitude of the values involved and n, the number of rounded operations a
value passes through; nothing here is tuned on one machine.
"""

from __future__ import annotations

import numpy as np
import torch

EPS32 = float(np.finfo(np.float32).eps)   # 2**-23
EPS16 = float(np.finfo(np.float16).eps)   # 2**-10: one rounding to half (an EXR's pixels)


def rounding_tolerance(magnitude: float, steps: int, eps: float = EPS32) -> float:
    """The most two paths may differ: `steps` roundings of values up to `magnitude`."""
    return steps * eps * magnitude


def half_rounding(values: np.ndarray) -> np.ndarray:
    """The most one rounding to half float (an EXR's pixels) moves each value: half the spacing of
    halves there, at most EPS16/2·|value| for normal halves, 2**-25 below 2**-14 (subnormals, spaced
    2**-24)."""
    return np.maximum(np.abs(values) * (EPS16 / 2), 2.0 ** -25)


# ACEScct → linear is 2**(17.52·cct − 9.72): an error δ in a code value (absolute, or relative to
# a code value below 1: linear up to 222) becomes at most ln(2)·17.52·δ ≈ 12.1·δ relative in linear;
# the linear toe (below 0.0078) is flatter.
LOG_DECODE_GAIN = 13


def accumulation_steps(network: torch.nn.Module) -> int:
    """The rounded additions a network's output passes through, at most: every convolution's
    output is one sum over its fan-in (input channels / groups × kernel area), and the
    longest path from input to output goes through at most all of them."""
    return sum(layer.weight[0].numel() for layer in network.modules()
               if isinstance(layer, (torch.nn.Conv2d, torch.nn.Linear)))
