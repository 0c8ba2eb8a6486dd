"""The `target` loss: the network learns to reproduce each keyframe's per-pixel target.

The keyframe targets (engine/target.py) already say what every pixel should become — the
region-wise look on top of the grade, locally affine in the plate — so training is a
regression, not a search through a distribution (which, given spatial freedom, spends it on
invented shapes). Terms, on the output against the target of the same crop:

- colour: a robust (Charbonnier) CIELAB distance per pixel (ΔE-like units / 10);
- gradient: the output's CIELAB gradients against the target's (the plate's edges, as the target
  moves them: no more, no fewer);
- content: the plate's structure as ImageNet features see it — VGG-19's relu2_1 and relu3_1
  where its weights are found (losses/vgg.py `VGGStructure`, the research note's perceptual
  network), else EfficientNet-Lite0's early blocks (engine/semantic.py, installed with
  shotstyle) — of the output against the plate's, normalised per position, so a colour change
  costs nothing and a lost or invented edge or texture does.

Each step trains on a random crop (a share of the frame, anywhere) and a random mirror of one
keyframe with its target (`augment`), so the network learns what a region is from its content,
not where it sits in the keyframe: it meets the rest of the shot in other places.

Determinism: crops and mirrors are drawn from a generator seeded with (seed, step).
"""

from __future__ import annotations


from typing import Callable

import torch
import torch.nn.functional as F

from shotstyle.server.engine import semantic
from shotstyle.server.engine.colourmath import working_to_lab
from shotstyle.server.engine.losses.vgg import VGGStructure

# CIELAB units are divided by this so the terms are O(1).
_LAB_SCALE = 10.0
_CHARBONNIER = 0.05
# Crops cover this share of the frame's side, at least (a uniform draw up to the whole side).
CROP_SHARE = 0.6
# Crops narrower than this many pixels are not made (the frame is used whole).
MIN_CROP = 48

DEFAULT_CONTENT_WEIGHT = 0.5
DEFAULT_STYLE_WEIGHT = 1.0     # the colour and gradient terms (the artist's strength scales it)
# The gradient term's weight relative to the colour term: 4 keeps the plate's edges sharper than 2
# (at 256 px, 100 steps: structure SSIM 0.835 -> 0.865 on the shared pairs, the walk clip's ridge
# halo 1.7 -> 1.2) with region ΔE and accuracy no worse; 6 and 10 gave no further gain.
GRADIENT_SHARE = 4.0


def _gradients(image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return image[..., :, 1:] - image[..., :, :-1], image[..., 1:, :] - image[..., :-1, :]


class TargetLoss(torch.nn.Module):
    """Regression to per-pixel keyframe targets; see the module doc. Call as
    `loss(output, plate, target)` on a crop from `augment(index, step)`."""

    name = "target"
    resolution_note = ""  # set by build_loss: how the name was chosen

    def __init__(self, keyframes: list[torch.Tensor], targets: list[torch.Tensor], *,
                 content_weight: float = DEFAULT_CONTENT_WEIGHT, style_weight: float = DEFAULT_STYLE_WEIGHT,
                 seed: int = 0, vgg_structure: VGGStructure | None = None) -> None:
        """`vgg_structure`: VGG-19's content features where its weights were found; None uses
        EfficientNet-Lite0's."""
        super().__init__()
        if len(keyframes) != len(targets):
            raise ValueError(f"{len(keyframes)} keyframes but {len(targets)} targets")
        self.weights = {"content": content_weight, "style": style_weight}
        self.seed = seed
        self.keyframes = keyframes
        self.targets = targets
        self.vgg_structure = vgg_structure
        self.structure: Callable[[torch.Tensor], list[torch.Tensor]] = vgg_structure or semantic.structure

    @property
    def metadata(self) -> dict:
        return {"loss": self.name, "weights": dict(self.weights),
                "vgg_source": self.vgg_structure.source if self.vgg_structure else None,
                "content_features": "VGG-19 relu2_1, relu3_1" if self.vgg_structure else f"{semantic.NAME}, early blocks"}

    def augment(self, index: int, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(plate, target) of keyframe `index`: a random crop, mirrored at random."""
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + step * 101 + index)
        plate, target = self.keyframes[index], self.targets[index]
        height, width = plate.shape[-2:]
        draws = torch.rand(5, generator=generator).tolist()
        crop_h = min(height, max(MIN_CROP, round(height * (CROP_SHARE + (1 - CROP_SHARE) * draws[0]))))
        crop_w = min(width, max(MIN_CROP, round(width * (CROP_SHARE + (1 - CROP_SHARE) * draws[1]))))
        top, left = round((height - crop_h) * draws[2]), round((width - crop_w) * draws[3])
        rows, columns = slice(top, top + crop_h), slice(left, left + crop_w)
        plate, target = plate[..., rows, columns], target[..., rows, columns]
        if draws[4] < 0.5:
            plate, target = plate.flip(-1), target.flip(-1)
        return plate, target

    def forward(self, output: torch.Tensor, plate: torch.Tensor, target: torch.Tensor) -> dict[str, torch.Tensor]:
        lab = working_to_lab(output) / _LAB_SCALE
        wanted = working_to_lab(target) / _LAB_SCALE
        colour = torch.sqrt((lab - wanted) ** 2 + _CHARBONNIER ** 2).mean() - _CHARBONNIER
        gradient = torch.stack([(a - b).abs().mean() for a, b in zip(_gradients(lab), _gradients(wanted))]).sum()
        content = torch.stack([F.mse_loss(a, b) for a, b in zip(self.structure(output),
                                                               self.structure(plate))]).sum()
        terms = {
            "content": self.weights["content"] * content,
            "style": self.weights["style"] * (colour + GRADIENT_SHARE * gradient),
        }
        terms["total"] = torch.stack(list(terms.values())).sum()
        return terms
