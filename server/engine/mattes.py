"""The artist's mattes: named plate regions paired with style regions, hard constraints on where
a look goes.

A matte pairs what the artist marked on the keyframe(s) (a matte channel of the keyframe EXR,
such as `matte.sky` or a cryptomatte's extracted matte, or a matte image) with a matte of the
style image: "this region of the shot takes the look of that region of the style". The keyframe
target (engine/target.py) then moves matted pixels only towards their style matte's colours,
whatever the semantic features would have suggested: the way colourists work with windows and
keys, and what Deep Photo Style Transfer's segmentation masks do.

A *label image* (one flat colour per region, e.g. the masks drawn for the photo-style-transfer
pairs) is one accepted form: `label_mattes` turns a plate label image and a style label image
into one matte per flat colour present in both.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from shotstyle.server.errors import TrainingInputError

# A region must cover at least this share of both images to become a matte from a label image.
MIN_LABEL_SHARE = 0.03
# Flat colours of a label image are told apart after rounding to this many levels per channel.
LABEL_LEVELS = 8


@dataclass
class Matte:
    """One named matte: `plate` holds an H×W float 0..1 matte per keyframe (each the size of its
    keyframe), `style` one for the style image (its size)."""
    name: str
    plate: list[np.ndarray]
    style: np.ndarray
    # Where the plate mattes (one per keyframe), then the style matte came from, for messages; empty when unknown.
    sources: list[str | None] = field(default_factory=list)


def check_mattes(mattes: list[Matte], keyframes: list[np.ndarray], style: np.ndarray) -> None:
    """TrainingInputError naming the matte and what is wrong, unless every matte fits its images."""
    names = [matte.name for matte in mattes]
    for name in names:
        if names.count(name) > 1:
            raise TrainingInputError(f"matte {name!r} is given twice: give each matte one name")
    for matte in mattes:
        if len(matte.plate) != len(keyframes):
            raise TrainingInputError(f"matte {matte.name!r}: {len(matte.plate)} plate matte(s) for "
                                     f"{len(keyframes)} keyframe(s): give one per keyframe")
        sources = matte.sources if len(matte.sources) == len(matte.plate) + 1 else [None] * (len(matte.plate) + 1)
        whats = [f"its plate matte for keyframe {i + 1}" for i in range(len(matte.plate))] + ["its style matte"]
        whats = [what + (f" ({source})" if source else "") for what, source in zip(whats, sources)]
        for image, reference, what in zip(matte.plate + [matte.style], keyframes + [style], whats):
            if not isinstance(image, np.ndarray) or image.ndim != 2:
                raise TrainingInputError(f"matte {matte.name!r}: {what} must be one channel (H×W), "
                                         f"got shape {getattr(image, 'shape', type(image).__name__)}")
            if image.shape != reference.shape[:2]:
                raise TrainingInputError(f"matte {matte.name!r}: {what} is {image.shape[1]}×{image.shape[0]}, "
                                         f"its image {reference.shape[1]}×{reference.shape[0]}: "
                                         "a matte must be the size of the image it marks")
            if not np.isfinite(image).all():
                raise TrainingInputError(f"matte {matte.name!r}: {what} holds NaN or Inf values")
        if not (matte.style > 0.5).any():
            raise TrainingInputError(f"matte {matte.name!r}: the style matte is empty; mark the style "
                                     "region this plate region should look like")


def matte_tensor(images: list[np.ndarray], size: tuple[int, ...], device: torch.device) -> torch.Tensor | None:
    """1×M×h×w tensor of mattes (0..1) resized (area average) to `size` (h, w); None for no mattes."""
    if not images:
        return None
    stacked = torch.from_numpy(np.stack([np.clip(m, 0, 1) for m in images]).astype(np.float32))[None]
    return F.interpolate(stacked, size=size, mode="area" if stacked.shape[-1] >= size[1] else "bilinear").to(device)


def label_mattes(plate_labels: list[np.ndarray], style_labels: np.ndarray) -> list[Matte]:
    """One matte per flat colour present (≥ MIN_LABEL_SHARE) in every plate label image and in the
    style label image (H×W×3 arrays, any numeric range; colours are rounded to LABEL_LEVELS
    levels, so anti-aliased edges join their nearest region). Named by the colour, e.g. "ff0000"."""
    def quantised(image: np.ndarray) -> np.ndarray:
        scale = 255.0 if image.dtype == np.uint8 else max(float(np.nanmax(image)), 1e-6)
        levels = np.clip(np.round(image[..., :3].astype(np.float64) / scale * (LABEL_LEVELS - 1)), 0, LABEL_LEVELS - 1)
        return (levels[..., 0] * LABEL_LEVELS + levels[..., 1]) * LABEL_LEVELS + levels[..., 2]

    plates = [quantised(p) for p in plate_labels]
    style = quantised(style_labels)
    mattes = []
    for code in np.unique(style):
        if (style == code).mean() < MIN_LABEL_SHARE or any((p == code).mean() < MIN_LABEL_SHARE for p in plates):
            continue
        r, g, b = (int(code) // LABEL_LEVELS ** 2, int(code) // LABEL_LEVELS % LABEL_LEVELS, int(code) % LABEL_LEVELS)
        name = "".join(f"{round(v * 255 / (LABEL_LEVELS - 1)):02x}" for v in (r, g, b))
        mattes.append(Matte(name, [(p == code).astype(np.float32) for p in plates], (style == code).astype(np.float32)))
    return mattes
