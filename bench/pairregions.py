"""Region metrics for the shared pairs (issue 19): did the look land in the right regions?

Each pair has hand-drawn masks (`pairs/seg/inN.png`, `tarN.png`, Deep Photo Style Transfer's):
flat colours marking corresponding regions of plate and style. Every mask pixel is snapped to
the nearest of the nine mask colours and the label image resized (nearest neighbour) to the
image it goes with. A class counts when it covers ≥ 3% of both images. Then, on display sRGB
through CIELAB (D65):

- region ΔE: per class, ΔE76 between the output's mean inside the plate's region and the
  style's mean inside the style's region, weighted by plate area;
- region accuracy (pairs with ≥ 2 classes, else NaN): the share of plate area whose class mean
  lands nearest its own class's style mean;
- region-wrong: some class over 5% of the image moved ≥ 5 ΔE further from its style class
  than the plate was.

`score_pair` adds style SWD and structure SSIM (bench/metrics.py); `pair_mattes` turns a
pair's label images into the named mattes `train(..., mattes=...)` takes.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

import metrics

try:
    from shotstyle.server.engine.mattes import Matte
except ImportError:  # until the engine has mattes: the same shape, so the real one takes over
    @dataclass
    class Matte:
        name: str
        plate: list[np.ndarray]
        style: np.ndarray

MASK_COLOURS = {"black": (0, 0, 0), "white": (255, 255, 255), "red": (255, 0, 0), "yellow": (255, 255, 0),
                "green": (0, 255, 0), "blue": (0, 0, 255), "cyan": (0, 255, 255), "magenta": (255, 0, 255),
                "grey": (128, 128, 128)}
CLASS_NAMES = list(MASK_COLOURS)
MIN_SHARE = 0.03      # a class counts when it covers this share of both images
WRONG_SHARE = 0.05    # region-wrong looks at classes over this share of the plate
WRONG_DE = 5.0        # ... moved at least this much further from their style class


def snap_labels(mask_rgb: np.ndarray) -> np.ndarray:
    """Class index (into CLASS_NAMES) of every pixel of an RGB (or grey) uint8 mask."""
    if mask_rgb.ndim == 2:
        mask_rgb = np.repeat(mask_rgb[..., None], 3, axis=-1)
    palette = np.array(list(MASK_COLOURS.values()), np.float32)
    distances = ((mask_rgb[..., None, :3].astype(np.float32) - palette) ** 2).sum(-1)
    return distances.argmin(-1).astype(np.uint8)


def load_labels(path: Path, shape: tuple[int, ...]) -> np.ndarray:
    """A mask file as class labels the size (height, width) of the image it goes with."""
    mask = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if mask is None:
        raise FileNotFoundError(path)
    if mask.ndim == 3:
        mask = cv2.cvtColor(mask[..., :3], cv2.COLOR_BGR2RGB)
    labels = snap_labels(mask)
    return cv2.resize(labels, (shape[1], shape[0]), interpolation=cv2.INTER_NEAREST)


def pair_labels(pairs: Path, pair: str, plate_shape, style_shape) -> tuple[np.ndarray, np.ndarray] | None:
    """(plate labels, style labels) of pair `pair` in the pairs folder, or None without masks."""
    plate, style = pairs / "seg" / f"in{pair}.png", pairs / "seg" / f"tar{pair}.png"
    if not (plate.exists() and style.exists()):
        return None
    return load_labels(plate, plate_shape), load_labels(style, style_shape)


def shared_classes(plate_labels: np.ndarray, style_labels: np.ndarray) -> list[int]:
    """Classes covering at least MIN_SHARE of both label images."""
    def shares(labels):
        return np.bincount(labels.ravel(), minlength=len(CLASS_NAMES)) / labels.size
    return [int(c) for c in np.nonzero((shares(plate_labels) >= MIN_SHARE) & (shares(style_labels) >= MIN_SHARE))[0]]


def class_means(image: np.ndarray, labels: np.ndarray, classes: list[int]) -> np.ndarray:
    """Mean CIELAB of a display sRGB image inside each class (one row per class)."""
    lab = metrics.srgb_to_lab(image)
    return np.array([lab[labels == c].mean(axis=0) for c in classes])


def region_scores(output: np.ndarray, plate: np.ndarray, style: np.ndarray,
                  plate_labels: np.ndarray, style_labels: np.ndarray) -> dict[str, float]:
    """region_de, region_acc (NaN under 2 classes), region_wrong (0/1) and the class count."""
    classes = shared_classes(plate_labels, style_labels)
    if not classes:
        return {"region_de": float("nan"), "region_acc": float("nan"), "region_wrong": 0.0, "region_classes": 0.0}
    area = np.array([(plate_labels == c).mean() for c in classes])
    style_means = class_means(style, style_labels, classes)
    out_means, plate_means = class_means(output, plate_labels, classes), class_means(plate, plate_labels, classes)
    out_de = np.linalg.norm(out_means - style_means, axis=1)
    plate_de = np.linalg.norm(plate_means - style_means, axis=1)
    nearest = np.linalg.norm(out_means[:, None] - style_means[None], axis=-1).argmin(axis=1)
    accuracy = area[nearest == np.arange(len(classes))].sum() / area.sum() if len(classes) >= 2 else float("nan")
    wrong = np.any((area > WRONG_SHARE) & (out_de - plate_de >= WRONG_DE))
    return {"region_de": float((out_de * area).sum() / area.sum()), "region_acc": float(accuracy),
            "region_wrong": float(wrong), "region_classes": float(len(classes))}


def score_pair(output: np.ndarray, plate: np.ndarray, style: np.ndarray,
               plate_labels: np.ndarray, style_labels: np.ndarray) -> dict[str, float]:
    """Issue 19's table row for one output: style_swd, ssim and the region scores."""
    return {"style_swd": metrics.style_swd(output, style), "ssim": metrics.structure_ssim(output, plate),
            **region_scores(output, plate, style, plate_labels, style_labels)}


def pair_mattes(plate_labels: np.ndarray, style_labels: np.ndarray) -> list[Matte]:
    """One Matte per shared class, named by its colour: the plate side (one keyframe) and the
    style side as float32 0/1 images the size of their labels."""
    return [Matte(CLASS_NAMES[c], [(plate_labels == c).astype(np.float32)], (style_labels == c).astype(np.float32))
            for c in shared_classes(plate_labels, style_labels)]
