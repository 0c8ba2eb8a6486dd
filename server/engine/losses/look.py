"""The `look` loss: trains the local term of a style model on top of its global grade.

A style model is a grade first (engine/correspondence.py fits it, engine/grade.py applies it);
the network adds a bounded local change for what one colour map cannot do. This loss judges
the final output against what the correspondence says the output should hold, not against
the whole style image:

- style: the output's colours (several scales) and small colour patches must match the
  *corresponding* distribution — the style colours the plan actually uses, with the masses it
  sends them, plus the graded plate colours for the part of the plate the plan keeps. Style
  colours no plate colour corresponds to are not asked for (partial transport), and each
  sample carries its tonal rank (the plate's rank for output pixels, the style's for style
  pixels), so shadows are matched to shadows and highlights to highlights. Sliced Wasserstein
  distances with seeded random projections.
- content: the plate's structure and tonal order survive (normalised luminance and its
  gradients follow the plate's), judged on what a viewer sees (highlights rolled off, blacks
  floored), so detail pushed into clipped whites or crushed blacks counts as lost.
- smooth: the local change (output − graded, CIELAB) varies slowly except across the plate's
  own edges (no blotches, no halos beside edges).
- local: the mean size of the local change — the grade should carry the look, the local term
  only what the grade cannot.

All spatial operations pad by reflection (no bright/dark frame border).

Determinism: the random projections and subsets are drawn per step from a generator seeded
with (seed, step), so a run is repeatable and every step sees fresh directions.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from shotstyle.server.engine.correspondence import Correspondence

from shotstyle.server.engine.colourmath import working_to_lab

# CIELAB units are divided by this so the terms are O(1).
_LAB_SCALE = 10.0
_COLOUR_SCALES = (1, 2, 4)
_PATCH_SCALES = (2, 4)
_PATCH_SIZE = 3
_PROJECTIONS = 64
# Each step compares at most this many samples per distribution (a fresh random subset,
# drawn from the step's generator): cost stays flat at high training resolutions.
_MAX_SAMPLES = 1 << 13
# Where the plate has an edge of this luminance step (CIELAB L per pixel), the smoothness
# term's weight has fallen to 1/e: colour may change across real edges.
_EDGE_SOFTNESS = 4.0

DEFAULT_CONTENT_WEIGHT = 1.0
DEFAULT_STYLE_WEIGHT = 3.0
DEFAULT_SMOOTH_WEIGHT = 4.0
# The local term's size is paid for at par with the other terms: at 0.2 it relit the whole
# frame (sky lighter, ground darker; the LUT carried only 56% of the effect on the walk keyframe).
DEFAULT_LOCAL_WEIGHT = 1.0


def _pool(image: torch.Tensor, factor: int) -> torch.Tensor:
    return image if factor == 1 else F.avg_pool2d(image, factor, ceil_mode=True)


def _rows(image: torch.Tensor) -> torch.Tensor:
    return image.permute(0, 2, 3, 1).reshape(-1, image.shape[1])


def _patch_rows(image: torch.Tensor) -> torch.Tensor:
    """Rows of flattened patches (M×C·9) of an image, reflection padded."""
    pad = _PATCH_SIZE // 2
    patches = F.unfold(F.pad(image, (pad, pad, pad, pad), mode="reflect"), _PATCH_SIZE)
    return patches.transpose(1, 2).reshape(-1, patches.shape[1])


def colour_samples(lab: torch.Tensor, condition: torch.Tensor, factor: int) -> torch.Tensor:
    """Rows (condition, L, a, b) of the images pooled by `factor`, in loss units."""
    return _rows(torch.cat([_pool(condition, factor), _pool(lab, factor)], 1))


def patch_samples(lab: torch.Tensor, condition: torch.Tensor, factor: int) -> torch.Tensor:
    """Rows (condition at its centre, 3×3 colour patch) of the images pooled by `factor`."""
    return torch.cat([_rows(_pool(condition, factor)), _patch_rows(_pool(lab, factor))], dim=1)


def _subset(samples: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    if samples.shape[0] <= _MAX_SAMPLES:
        return samples
    rows = torch.randperm(samples.shape[0], generator=generator)[:_MAX_SAMPLES]
    return samples[rows.to(samples.device)]


def sliced_wasserstein(samples: torch.Tensor, target: torch.Tensor,
                       generator: torch.Generator, projections: int = _PROJECTIONS) -> torch.Tensor:
    """Mean squared sliced Wasserstein-2 distance between two sample sets (rows).

    Different sample counts are handled by reading the target's sorted projections at the
    samples' quantile positions."""
    samples = _subset(samples, generator)
    target = _subset(target, generator)
    directions = torch.randn(samples.shape[1], projections, generator=generator).to(samples)
    directions = directions / directions.norm(dim=0, keepdim=True)
    projected = torch.sort(samples @ directions, dim=0).values
    target = torch.sort(target @ directions, dim=0).values
    n, m = projected.shape[0], target.shape[0]
    at = ((torch.arange(n, device=samples.device) + 0.5) * (m / n)).long().clamp(max=m - 1)
    return ((projected - target[at]) ** 2).mean()


def coupled_target(output_rows: torch.Tensor, destinations: torch.Tensor, kept_rows: torch.Tensor,
                   style_rows: torch.Tensor, style_membership: torch.Tensor, conditioned: int,
                   generator: torch.Generator) -> torch.Tensor:
    """Rows drawn from the plan's coupling, one per output row: the same condition columns
    (the first `conditioned`), and for colour a sample of where the plan sends that pixel — a
    style row of the destination cluster, or the pixel's own graded row when it stays."""
    chosen = torch.multinomial(destinations.cpu().double(), 1, generator=generator)[:, 0].to(kept_rows.device)
    colours = kept_rows[:, conditioned:].clone()
    for cluster in range(style_membership.shape[1]):
        rows = torch.nonzero(chosen == cluster)[:, 0]
        if len(rows) and float(style_membership[:, cluster].sum()) > 0:
            picked = torch.multinomial(style_membership[:, cluster].cpu().double(), len(rows), replacement=True,
                                       generator=generator).to(style_rows.device)
            colours[rows] = style_rows[picked, conditioned:]
    return torch.cat([output_rows[:, :conditioned], colours], dim=1)


def _normalised_luminance(lab: torch.Tensor) -> torch.Tensor:
    lum = lab[:, :1]
    return (lum - lum.mean()) / (lum.std() + 1e-3)


def _gradients(image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return image[..., :, 1:] - image[..., :, :-1], image[..., 1:, :] - image[..., :-1, :]


class LookLoss(torch.nn.Module):
    """Weights-free photoreal look loss for the local term; call with (output, keyframe index, step).

    `graded` holds each keyframe through the model's grade (what the output is compared with
    for the local change), `correspondence` the plate↔style correspondence the grade came from."""

    name = "look"
    resolution_note = ""  # set by build_loss: how the name was chosen

    def __init__(self, style: torch.Tensor, keyframes: list[torch.Tensor], *,
                 correspondence: Correspondence, graded: list[torch.Tensor],
                 content_weight: float = DEFAULT_CONTENT_WEIGHT, style_weight: float = DEFAULT_STYLE_WEIGHT,
                 smooth_weight: float = DEFAULT_SMOOTH_WEIGHT, local_weight: float = DEFAULT_LOCAL_WEIGHT,
                 seed: int = 0) -> None:
        super().__init__()
        self.weights = {"content": content_weight, "style": style_weight, "smooth": smooth_weight,
                        "local": local_weight}
        self.seed = seed
        generator = torch.Generator().manual_seed(seed)
        style_lab = working_to_lab(style) / _LAB_SCALE
        membership = correspondence.style_membership(style)
        # The style's own condition columns are never compared (target rows take the plate's).
        style_condition = torch.zeros_like(style_lab)
        self._plates: list[dict[str, Any]] = []
        for keyframe, graded_keyframe in zip(keyframes, graded):
            lab = working_to_lab(keyframe) / _LAB_SCALE
            graded_lab = working_to_lab(graded_keyframe) / _LAB_SCALE
            condition = correspondence.condition(keyframe)
            destinations = correspondence.destinations(condition)
            condition = condition / _LAB_SCALE
            targets = []
            for factor, samples in [(f, colour_samples) for f in _COLOUR_SCALES] + \
                                   [(f, patch_samples) for f in _PATCH_SCALES]:
                kept = samples(graded_lab, condition, factor)
                targets.append(coupled_target(
                    kept, _rows(_pool(destinations, factor)), kept,
                    samples(style_lab, style_condition, factor), _rows(_pool(membership, factor)),
                    condition.shape[1], generator))
            zlum = _normalised_luminance(working_to_lab(keyframe, display=True))
            gx, gy = _gradients(lab[:, :1] * _LAB_SCALE)
            self._plates.append({
                "condition": condition,
                "graded_lab": graded_lab,
                "targets": targets,
                "zlum_gradients": _gradients(zlum),
                "zlum": zlum,
                "edge_weights": (torch.exp(-gx.abs() / _EDGE_SOFTNESS), torch.exp(-gy.abs() / _EDGE_SOFTNESS)),
            })

    @property
    def metadata(self) -> dict:
        return {"loss": self.name, "weights": dict(self.weights), "vgg_source": None}

    def style_term(self, lab: torch.Tensor, plate: dict, generator: torch.Generator) -> torch.Tensor:
        condition, targets = plate["condition"], plate["targets"]
        terms = [sliced_wasserstein(colour_samples(lab, condition, f), target, generator)
                 for f, target in zip(_COLOUR_SCALES, targets)]
        terms += [sliced_wasserstein(patch_samples(lab, condition, f), target, generator) / (_PATCH_SIZE ** 2)
                  for f, target in zip(_PATCH_SCALES, targets[len(_COLOUR_SCALES):])]
        return torch.stack(terms).mean()

    def content_term(self, display_lab: torch.Tensor, plate: dict) -> torch.Tensor:
        zlum = _normalised_luminance(display_lab)
        gx, gy = _gradients(zlum)
        px, py = plate["zlum_gradients"]
        gradient_error = (gx - px).abs().mean() + (gy - py).abs().mean()
        return gradient_error + 0.1 * (zlum - plate["zlum"]).abs().mean()

    def smooth_term(self, change: torch.Tensor, plate: dict) -> torch.Tensor:
        cx, cy = _gradients(change)
        wx, wy = plate["edge_weights"]
        return (wx * cx.abs()).mean() + (wy * cy.abs()).mean()

    def forward(self, output: torch.Tensor, index: int, step: int,
                graded: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """The weighted terms for `output` of keyframe `index`; `graded` is the keyframe through
        the model's grade as it is now (default: as it was when the loss was made)."""
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + step)
        plate = self._plates[index]
        lab = working_to_lab(output) / _LAB_SCALE
        graded_lab = plate["graded_lab"] if graded is None else working_to_lab(graded) / _LAB_SCALE
        change = lab - graded_lab
        terms = {
            "content": self.weights["content"] * self.content_term(working_to_lab(output, display=True), plate),
            "style": self.weights["style"] * self.style_term(lab, plate, generator),
            "smooth": self.weights["smooth"] * self.smooth_term(change, plate),
            "local": self.weights["local"] * change.abs().mean(),
        }
        terms["total"] = torch.stack(list(terms.values())).sum()
        return terms
