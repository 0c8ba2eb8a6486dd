"""The `look` loss: a photoreal re-grade that needs no downloaded weights.

Style: the output's CIELAB colour distribution must match the style image's at several
scales (sliced Wasserstein distances on pixel colours of the image and of blurred copies,
plus small colour patches of the coarse copies). Content: the plate's structure and tonal
order survive (the mean/scale-normalised luminance and its gradients follow the plate's).
Structure is judged on the luminance a viewer sees (highlights rolled off, blacks floored),
so detail pushed into clipped whites or crushed blacks counts as lost.
Photorealism, two regularisers: smoothness — the colour *change* (output − plate, CIELAB)
varies slowly except across the plate's own edges (no noise, no blotchy casts); consistency
— the output stays close to one global colour map of the plate (a 2nd-order polynomial in
CIELAB), so equal plate colours get equal new colours (no halos beside edges). All spatial
operations pad by reflection (no bright/dark frame border).

Determinism: the random projections are drawn per step from a generator seeded with
(seed, step), so a run is repeatable and every step sees fresh directions.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .colourmath import working_to_lab

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

DEFAULT_CONTENT_WEIGHT = 3.0
DEFAULT_STYLE_WEIGHT = 1.5
DEFAULT_SMOOTH_WEIGHT = 4.0
DEFAULT_CONSISTENCY_WEIGHT = 0.5
# Pixels (a fixed random subset per keyframe) on which the global colour map is fitted.
_CONSISTENCY_SAMPLES = 1 << 13


def _pool(image: torch.Tensor, factor: int) -> torch.Tensor:
    return image if factor == 1 else F.avg_pool2d(image, factor, ceil_mode=True)


def _colour_samples(lab: torch.Tensor, factor: int) -> torch.Tensor:
    """Rows of CIELAB colours of the image pooled by `factor` (M×3)."""
    return _pool(lab, factor).permute(0, 2, 3, 1).reshape(-1, 3)


def _patch_samples(lab: torch.Tensor, factor: int) -> torch.Tensor:
    """Rows of flattened colour patches (M×27) of the image pooled by `factor`, reflection padded."""
    pad = _PATCH_SIZE // 2
    pooled = F.pad(_pool(lab, factor), (pad, pad, pad, pad), mode="reflect")
    patches = F.unfold(pooled, _PATCH_SIZE)
    return patches.transpose(1, 2).reshape(-1, patches.shape[1])


def _subset(samples: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    if samples.shape[0] <= _MAX_SAMPLES:
        return samples
    rows = torch.randperm(samples.shape[0], generator=generator)[:_MAX_SAMPLES]
    return samples[rows.to(samples.device)]


def sliced_wasserstein(samples: torch.Tensor, target_sorted_source: torch.Tensor,
                       generator: torch.Generator, projections: int = _PROJECTIONS) -> torch.Tensor:
    """Mean squared sliced Wasserstein-2 distance between two sample sets (rows).

    Different sample counts are handled by reading the target's sorted projections at the
    samples' quantile positions."""
    samples = _subset(samples, generator)
    target_sorted_source = _subset(target_sorted_source, generator)
    directions = torch.randn(samples.shape[1], projections, generator=generator).to(samples)
    directions = directions / directions.norm(dim=0, keepdim=True)
    projected = torch.sort(samples @ directions, dim=0).values
    target = torch.sort(target_sorted_source @ directions, dim=0).values
    n, m = projected.shape[0], target.shape[0]
    at = ((torch.arange(n, device=samples.device) + 0.5) * (m / n)).long().clamp(max=m - 1)
    return ((projected - target[at]) ** 2).mean()


def _normalised_luminance(lab: torch.Tensor) -> torch.Tensor:
    lum = lab[:, :1]
    return (lum - lum.mean()) / (lum.std() + 1e-3)


def _colour_features(lab: torch.Tensor) -> torch.Tensor:
    """Rows of second-order polynomial features of CIELAB colours (M×10)."""
    l, a, b = lab.unbind(dim=1)
    return torch.stack([torch.ones_like(l), l, a, b, l * l, a * a, b * b, l * a, l * b, a * b], dim=1)


def _gradients(image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return image[..., :, 1:] - image[..., :, :-1], image[..., 1:, :] - image[..., :-1, :]


class LookLoss(torch.nn.Module):
    """Weights-free photoreal grade loss; call with (output, keyframe index, step)."""

    name = "look"
    resolution_note = ""  # set by build_loss: how the name was chosen

    def __init__(self, style: torch.Tensor, keyframes: list[torch.Tensor], *,
                 content_weight: float = DEFAULT_CONTENT_WEIGHT, style_weight: float = DEFAULT_STYLE_WEIGHT,
                 smooth_weight: float = DEFAULT_SMOOTH_WEIGHT,
                 consistency_weight: float = DEFAULT_CONSISTENCY_WEIGHT, seed: int = 0) -> None:
        super().__init__()
        self.weights = {"content": content_weight, "style": style_weight, "smooth": smooth_weight,
                        "consistency": consistency_weight}
        self.seed = seed
        style_lab = working_to_lab(style) / _LAB_SCALE
        self._style_colours = [_colour_samples(style_lab, f) for f in _COLOUR_SCALES]
        self._style_patches = [_patch_samples(style_lab, f) for f in _PATCH_SCALES]
        self._plates = []
        for number, keyframe in enumerate(keyframes):
            lab = working_to_lab(keyframe) / _LAB_SCALE
            colours = lab.permute(0, 2, 3, 1).reshape(-1, 3)
            rows = torch.randperm(colours.shape[0], generator=torch.Generator().manual_seed(seed + number))
            rows = rows[:_CONSISTENCY_SAMPLES].to(colours.device)
            zlum = _normalised_luminance(working_to_lab(keyframe, display=True))
            gx, gy = _gradients(lab[:, :1] * _LAB_SCALE)
            self._plates.append({
                "lab": lab,
                "zlum_gradients": _gradients(zlum),
                "zlum": zlum,
                "edge_weights": (torch.exp(-gx.abs() / _EDGE_SOFTNESS), torch.exp(-gy.abs() / _EDGE_SOFTNESS)),
                "sample_rows": rows,
                "features": _colour_features(colours[rows]),
            })

    @property
    def metadata(self) -> dict:
        return {"loss": self.name, "weights": dict(self.weights), "vgg_source": None}

    def style_term(self, lab: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        terms = [sliced_wasserstein(_colour_samples(lab, f), target, generator)
                 for f, target in zip(_COLOUR_SCALES, self._style_colours)]
        terms += [sliced_wasserstein(_patch_samples(lab, f), target, generator) / (_PATCH_SIZE ** 2)
                  for f, target in zip(_PATCH_SCALES, self._style_patches)]
        return torch.stack(terms).mean()

    def content_term(self, display_lab: torch.Tensor, plate: dict) -> torch.Tensor:
        zlum = _normalised_luminance(display_lab)
        gx, gy = _gradients(zlum)
        px, py = plate["zlum_gradients"]
        gradient_error = (gx - px).abs().mean() + (gy - py).abs().mean()
        return gradient_error + 0.1 * (zlum - plate["zlum"]).abs().mean()

    def smooth_term(self, lab: torch.Tensor, plate: dict) -> torch.Tensor:
        change = lab - plate["lab"]
        cx, cy = _gradients(change)
        wx, wy = plate["edge_weights"]
        return (wx * cx.abs()).mean() + (wy * cy.abs()).mean()

    def consistency_term(self, lab: torch.Tensor, plate: dict) -> torch.Tensor:
        """How far the output is from one global colour map of the plate (a 2nd-order
        polynomial in CIELAB, refitted each step): the same plate colour should get the same
        new colour wherever it is, or the grade shows halos and blotches."""
        features = plate["features"]
        colours = lab.permute(0, 2, 3, 1).reshape(-1, 3)[plate["sample_rows"]]
        with torch.no_grad():
            gram_matrix = features.T @ features + 1e-3 * torch.eye(features.shape[1], device=features.device)
            mapping = torch.linalg.solve(gram_matrix, features.T @ colours)
        return (colours - features @ mapping).abs().mean()

    def forward(self, output: torch.Tensor, index: int, step: int) -> dict[str, torch.Tensor]:
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + step)
        plate = self._plates[index]
        lab = working_to_lab(output) / _LAB_SCALE
        terms = {
            "content": self.weights["content"] * self.content_term(working_to_lab(output, display=True), plate),
            "style": self.weights["style"] * self.style_term(lab, generator),
            "smooth": self.weights["smooth"] * self.smooth_term(lab, plate),
            "consistency": self.weights["consistency"] * self.consistency_term(lab, plate),
        }
        terms["total"] = torch.stack(list(terms.values())).sum()
        return terms
