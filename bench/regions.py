"""Fixed regions of the walk clip (../shared/data/clip, 500×281 frames), drawn once by hand on
frames 1, 30 and 60 so that they stay inside their region while the camera tracks the walker:
the asphalt road, the grass verge (left and right of the walker), the pale sky, the bushes
(left and right), and a band just above the mountain ridge with a reference band of sky
further up (a halo along the ridge shows as a difference between the two that the plate does
not have).

`masks(height, width)` scales the polygons to a resized frame; `region_table` measures each
region's mean colour, its frame-to-frame change and its colour coherence on a list of
display-referred frames.
"""

from __future__ import annotations

import cv2
import numpy as np

import metrics

FRAME_SIZE = (500, 281)  # width, height the polygons are drawn for
POLYGONS = {
    "road": [[(0, 250), (499, 250), (499, 280), (0, 280)]],
    "verge": [[(0, 226), (225, 226), (225, 238), (0, 238)], [(335, 226), (499, 226), (499, 238), (335, 238)]],
    "sky": [[(0, 0), (499, 0), (499, 12), (300, 34), (240, 58), (200, 44), (170, 38), (120, 55), (60, 80),
             (0, 94)]],
    "bushes": [[(15, 170), (130, 170), (130, 212), (15, 212)], [(335, 165), (400, 165), (400, 200), (335, 200)]],
}
RIDGE = [(0, 115), (50, 102), (75, 95), (125, 68), (150, 58), (170, 50), (200, 62), (230, 75), (250, 75),
         (280, 60), (300, 46), (325, 42), (400, 35), (450, 27), (499, 20)]
# Bands above the ridge, (nearest, farthest) pixels above it at the drawn size.
NEAR_RIDGE, FAR_RIDGE = (2, 6), (12, 24)


def _band(offsets: tuple[int, int]) -> list[list[tuple[int, int]]]:
    low, high = offsets
    return [[(x, y - low) for x, y in RIDGE] + [(x, y - high) for x, y in reversed(RIDGE)]]


def masks(height: int, width: int) -> dict[str, np.ndarray]:
    """Boolean masks of every region (plus "ridge" and "ridge_sky" bands) for a frame of this size."""
    scale = np.array([width / FRAME_SIZE[0], height / FRAME_SIZE[1]])
    shapes = {**POLYGONS, "ridge": _band(NEAR_RIDGE), "ridge_sky": _band(FAR_RIDGE)}
    found = {}
    for name, polygons in shapes.items():
        canvas = np.zeros((height, width), np.uint8)
        for polygon in polygons:
            cv2.fillPoly(canvas, [np.round(np.array(polygon) * scale).astype(np.int32)], 1)
        found[name] = canvas.astype(bool)
    return found


def _pixels(images: list[np.ndarray], inside: np.ndarray) -> np.ndarray:
    """The region's pixels of every frame as one N×1×3 image (for the colour metrics)."""
    return np.concatenate([image[inside] for image in images])[:, None, :]


def region_table(frames: list[np.ndarray], plates: list[np.ndarray]) -> dict[str, dict[str, float]]:
    """Per region: mean L*, a*, b* over all frames; the mean frame-to-frame change of the
    region's mean colour (ΔE76); and its colour coherence (metrics.colour_coherence over the
    region's pixels of all frames: a region of near-uniform plate colour split into two output
    colours, or a blotch, raises it; a pure grade scores about 0). The ridge halo is the
    coherence of the band just above the ridge together with the sky above it: a halo gives the
    band other colours than the same plate colours get higher up."""
    regions = masks(*frames[0].shape[:2])
    table = {}
    for name in POLYGONS:
        inside = regions[name]
        means = np.array([metrics.srgb_to_lab(frame[inside][:, None, :]).reshape(-1, 3).mean(axis=0)
                          for frame in frames])
        table[name] = {"L": float(means[:, 0].mean()), "a": float(means[:, 1].mean()), "b": float(means[:, 2].mean()),
                       "change": float(np.linalg.norm(np.diff(means, axis=0), axis=1).mean()),
                       "coherence": metrics.colour_coherence(_pixels(frames, inside), _pixels(plates, inside))}
    band = regions["ridge"] | regions["ridge_sky"]
    table["ridge"] = {"halo": metrics.colour_coherence(_pixels(frames, band), _pixels(plates, band))}
    return table
