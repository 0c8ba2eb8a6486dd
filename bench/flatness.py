"""No invented shapes (issue 19): where the plate is flat, the output must stay flat, and three
negative controls (a blob, a vignette, a halo) that this check must catch.

Flat areas: plate pixels whose 15×15 window (at 256 px, scaled with the image) has a CIELAB
spread (RMS ΔE about the window mean) of at most 1 ΔE. Each flat pixel whose surrounding window
(an eighth of the long side) is at least a quarter flat is measured: the output's spread over the
window's flat pixels, against the spread of a reference there. The reference is the grade the
output implies: one global smooth colour map (a cubic polynomial in plate Lab, least squares
over the whole image) from the plate to the output, so what no colour map can make (a shape
placed somewhere) stands out. `flat_ratio` is the 99th percentile of the ratio (reference spread
floored at FLOOR ΔE); the check passes at ≤ LIMIT.

Why cubic: a pure colour map cannot invent a shape, yet with a quadratic reference the
closed-form grade's own lattice failed the check where it steepens a smooth gradient (pair 1: a
lavender sky turned into a steep red one, 1.74; pair 3, 1.58; 4 of the 22 measurable unseen
Deep Photo Style Transfer pairs). With the cubic (20 terms) at 256 px the grade fails on 1 of 5
shared pairs (pair 3, 1.67) and 1 of 22 unseen, and the three controls injected into Reinhard's
output fail as often as before (unseen: blob, vignette and halo pass on 3, 3 and 8 of 22 with
either reference; shared: 1, 2 and 4 of 5 with the quadratic, 1, 2 and 3 with the cubic).
"""

from __future__ import annotations

from itertools import combinations_with_replacement

import cv2
import numpy as np

import metrics

WINDOW = 15            # at 256 px; scaled with the image
FLAT_DE = 1.0
MIN_FLAT = 0.01        # share of the image that must be flat for the check to apply
MIN_WINDOW_FLAT = 0.25  # share of a measuring window that must be flat
FLOOR = 0.5      # ΔE: a reference spread below this counts as this (noise-level tiles)
LIMIT = 1.5


def _window(image: np.ndarray) -> int:
    return max(7, WINDOW * max(image.shape[:2]) // 256) | 1


def _local_spread(lab: np.ndarray, size: int) -> np.ndarray:
    mean = cv2.blur(lab.astype(np.float32), (size, size))
    square = cv2.blur((lab * lab).astype(np.float32), (size, size))
    return np.sqrt(np.maximum(square - mean * mean, 0).sum(-1))


def flat_mask(plate: np.ndarray) -> np.ndarray:
    """Plate pixels whose WINDOW×WINDOW neighbourhood is flat within FLAT_DE."""
    return _local_spread(metrics.srgb_to_lab(plate), _window(plate)) <= FLAT_DE


def implied_grade(output_lab: np.ndarray, plate_lab: np.ndarray) -> np.ndarray:
    """The output's colours as one global cubic function of the plate's (least squares)."""
    x = plate_lab.reshape(-1, 3) / 100.0
    terms = [np.ones(len(x))] + [np.prod(x[:, list(powers)], axis=1)
                                 for degree in (1, 2, 3) for powers in combinations_with_replacement(range(3), degree)]
    design = np.stack(terms, axis=1)
    coefficients, *_ = np.linalg.lstsq(design, output_lab.reshape(-1, 3), rcond=None)
    return (design @ coefficients).reshape(output_lab.shape)


def _masked_spread(lab: np.ndarray, weight: np.ndarray, size: int) -> np.ndarray:
    """Per pixel: the RMS ΔE about the mean of the weighted pixels in its size×size window."""
    def blur(x):
        return cv2.blur(x.astype(np.float32), (size, size))
    count = np.maximum(blur(weight), 1e-6)[..., None]
    mean = blur(lab * weight[..., None]) / count
    square = blur(lab * lab * weight[..., None]) / count
    return np.sqrt(np.maximum(square - mean * mean, 0).sum(-1))


def flat_ratio(output: np.ndarray, plate: np.ndarray) -> float:
    """The output's ΔE spread over the implied grade's in the plate's flat area (99th percentile
    over flat pixels; NaN where under MIN_FLAT of the image is flat)."""
    flat = flat_mask(plate)
    size = max(flat.shape) // 8 | 1
    weight = flat.astype(np.float32)
    measured = flat & (cv2.blur(weight, (size, size)) >= MIN_WINDOW_FLAT)
    if measured.mean() < MIN_FLAT:
        return float("nan")
    plate_lab, output_lab = metrics.srgb_to_lab(plate), metrics.srgb_to_lab(output)
    reference = implied_grade(output_lab, plate_lab)
    ratio = _masked_spread(output_lab, weight, size) / np.maximum(_masked_spread(reference, weight, size), FLOOR)
    return float(np.quantile(ratio[measured], 0.99))


def _with_lab_offset(image: np.ndarray, offset: np.ndarray) -> np.ndarray:
    return np.clip(metrics.lab_to_srgb(metrics.srgb_to_lab(image) + offset), 0, 1).astype(np.float32)


def blob(image: np.ndarray, plate: np.ndarray) -> np.ndarray:
    """A Gaussian colour bump (peak ≈ 12 ΔE, σ a sixteenth of the long side) at the point
    deepest inside the plate's flat area."""
    depth = cv2.distanceTransform(flat_mask(plate).astype(np.uint8), cv2.DIST_L2, 5)
    cy, cx = np.unravel_index(depth.argmax(), depth.shape)
    y, x = np.mgrid[:image.shape[0], :image.shape[1]]
    sigma = max(image.shape[:2]) / 16
    bump = np.exp(-((y - cy) ** 2 + (x - cx) ** 2) / (2 * sigma ** 2))
    return _with_lab_offset(image, bump[..., None] * np.array([5.0, 8.0, -8.0]))


def vignette(image: np.ndarray, plate: np.ndarray) -> np.ndarray:
    """Corners darkened by 20 L*, falling off with the squared distance from the centre."""
    h, w = image.shape[:2]
    y, x = np.mgrid[:h, :w]
    r2 = ((y - (h - 1) / 2) ** 2 + (x - (w - 1) / 2) ** 2) / (((h - 1) / 2) ** 2 + ((w - 1) / 2) ** 2)
    return _with_lab_offset(image, (-25.0 * r2)[..., None] * np.array([1.0, 0.0, 0.0]))


def halo(image: np.ndarray, plate: np.ndarray) -> np.ndarray:
    """A bright glow (+12 L* at the edge, decaying over a 24th of the long side) along the
    plate's strong edges (Canny on L*)."""
    lightness = np.clip(metrics.luminance(plate) * 2.55, 0, 255).astype(np.uint8)
    edges = cv2.Canny(lightness, 100, 200) > 0
    distance = cv2.distanceTransform((~edges).astype(np.uint8), cv2.DIST_L2, 5)
    glow = 15.0 * np.exp(-distance / (max(image.shape[:2]) / 24))
    return _with_lab_offset(image, glow[..., None] * np.array([1.0, 0.0, 0.0]))


CONTROLS = {"control: blob": blob, "control: vignette": vignette, "control: halo": halo}
