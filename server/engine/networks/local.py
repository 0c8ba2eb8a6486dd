"""The local term's limits: what a network may add to the global grade, and what it may not.

A style model is a grade first (engine/grade.py): one colour map for the whole shot. The
network on top proposes a local change of the graded frame; this module limits it, per pixel.
There are two rules, chosen per model (the networks' `along_grade` argument, kept in the file):

- `targeted` (models trained on per-pixel keyframe targets, engine/target.py; the default since
  issue 19): any colour, softly limited to ±`bound` per channel, where `bound` is what the
  keyframe targets needed (recorded in the model). Nothing here stops a shape being invented:
  the target does — it is a locally affine function of the plate, region by region, so what the
  network learns to reproduce has no edge the plate does not have.
- `honest` (models trained with a distribution loss, the rule before issue 19): the change kept
  honest in the working space (ACEScct, a log encoding, so a change common to all
three channels is a change of exposure and the channels' differences are the colour):

- exposure: the change common to the three channels, limited softly to ±`bound` (ACEScct
  units; 0.057 is one stop). A local relight — a lit window, a darker corner — within that.
- colour: only along the line the grade itself moved this pixel's colour (graded − plate, its
  channel differences), between `1 − TINT_REACH` and `1 + TINT_REACH` times the grade's own
  colour change, and by no more than `bound` (its length in ACEScct). The correspondence
  chose that direction: toward the style colours this plate
  colour corresponds to. So the local term may grade a region a little more or a little less
  than the global map does, but it cannot give a pixel a hue that neither its plate colour nor
  its corresponding style colours have, and where the grade leaves a colour alone (a neutral
  road that takes only the style's grey balance) it can add almost no tint at all.

Why so strict (measured on the walk clip, keyframe 30, 256 px, 100 steps; issue 10): with a free
±0.15 residual per channel, both networks trained with the look loss filled the limit (99th
percentile of |change| = the bound, on the keyframe and on unseen frames alike) with invented
shapes — a near-black blob at the frame's edge, olive clouds in a plain sky, a yellow halo round
the walker; colour coherence 4.1 against 0.13 for the grade alone, warp error 1.19× the plate's.
Limiting colour to the grade's direction removed the new hues; the exposure budget was still
spent on shapes wherever it was allowed: at ±0.03 (half a stop) a dark vignette on the road's
corners (hrnet-fast) or a dark halo beside the walker (hrnet), ΔE up to 5–9 from the grade. A
distribution loss can always be lowered a little by painting some pixels a colour they do not
correspond to, so the default budget is small: ±0.005 (a tenth of a stop, and as much again
of colour along the grade's direction), where the term's change averages about 0.1 ΔE on the
walk clip (at most a deepening of shadows in the bushes, no shape a viewer can find) and the LUT
alone carries over 90% of the effect. The `targeted` rule's larger budget is safe only because its
loss asks each pixel for its own target.
"""

from __future__ import annotations

import torch
from torch import Tensor

# Largest local change of exposure (ACEScct units: 0.005 is about a tenth of a stop).
DEFAULT_BOUND = 0.005
# How far the local term may scale the grade's own colour change at a pixel (0.25: from 0.75
# to 1.25 times it).
TINT_REACH = 0.25
# Colour changes of the grade below this size (ACEScct, channel differences) count as none,
# so the local term adds no tint where the grade adds none.
TINT_FLOOR = 0.01


def honest(plate: Tensor, graded: Tensor, proposed: Tensor, bound: float) -> Tensor:
    """The graded frame plus the honest part of `proposed − graded` (see the module docstring).

    N×3×H×W working-space tensors; `bound` > 0 (the registry's rule: no local term is the `grade` network).
    The networks propose their change in units of `bound` (raw output × bound): with a small
    budget and the change in working-space units, a few optimiser steps drove the soft limit
    into saturation, where neither the loss's size penalty nor anything else has a gradient —
    hrnet then sat at the limit over the whole frame (the LUT carried only 76% of the effect)."""
    change = proposed - graded
    exposure = change.mean(dim=1, keepdim=True)
    tint = change - exposure
    direction = graded - plate
    direction = direction - direction.mean(dim=1, keepdim=True)
    size = (direction ** 2).sum(dim=1, keepdim=True)
    along = (tint * direction).sum(dim=1, keepdim=True) / (size + TINT_FLOOR ** 2)
    # A share of the grade's colour change, and never more than `bound` in any channel's offset.
    reach = torch.minimum(torch.full_like(size, TINT_REACH), bound / size.sqrt().clamp(min=TINT_FLOOR))
    return graded + bound * torch.tanh(exposure / bound) + reach * torch.tanh(along / reach) * direction


def targeted(graded: Tensor, proposed: Tensor, bound: float, in_place: bool = False) -> Tensor:
    """The graded frame plus `proposed − graded`, softly limited to ±`bound` per channel
    (`bound` > 0). ``in_place`` (no autograd): the same steps, written over `proposed`."""
    if in_place:
        return proposed.sub_(graded).div_(bound).tanh_().mul_(bound).add_(graded)
    return graded + bound * torch.tanh((proposed - graded) / bound)


def limited(plate: Tensor, graded: Tensor, proposed: Tensor, bound: float, along_grade: bool,
            in_place: bool = False) -> Tensor:
    """The local change under the model's rule: `honest` when `along_grade`, else `targeted`
    (``in_place``: it may be written over `proposed`, where no gradient is kept)."""
    return honest(plate, graded, proposed, bound) if along_grade else targeted(graded, proposed, bound, in_place)
