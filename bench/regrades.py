"""Pairs the project's shared examples do not contain, for judging the look on unseen material.

Two kinds, both made here from public material in ../shared/data plus synthetic scenes:

* Known grades: the style frame is a *different* image put through a known grade (teal-orange,
  day-for-night, bleach bypass, warm fade: simple colourist moves written in CIELAB), so the
  ideal result is known — the plate through the same grade — and "ΔE to ideal" measures
  whether the look moved colours to the right places rather than matched a distribution.
* Synthetic scenes with known neutral objects: a grey road, pale sky and desaturated bushes
  under a style whose commonest colour at the road's lightness is an olive meadow (a grey
  object under a coloured style), and green trees under an autumn style.

Everything here is bench code (numpy, display-referred sRGB in [0, 1]); nothing comes from
the product.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np

import metrics


def _ramp(x: np.ndarray, low: float, high: float) -> np.ndarray:
    t = np.clip((x - low) / (high - low), 0, 1)
    return t * t * (3 - 2 * t)


def teal_orange(lab: np.ndarray) -> np.ndarray:
    lightness, a, b = lab[..., 0], lab[..., 1], lab[..., 2]
    shadows, highlights = 1 - _ramp(lightness, 15, 60), _ramp(lightness, 40, 90)
    return np.stack([lightness, 1.15 * a - 9 * shadows + 7 * highlights,
                     1.15 * b - 12 * shadows + 16 * highlights], -1)


def day_for_night(lab: np.ndarray) -> np.ndarray:
    lightness, a, b = lab[..., 0], lab[..., 1], lab[..., 2]
    night = 100 * (np.clip(lightness, 0, None) / 100) ** 1.35 * 0.6
    return np.stack([night, 0.5 * a - 2, 0.5 * b - 16 * _ramp(night, 0, 30)], -1)


def bleach_bypass(lab: np.ndarray) -> np.ndarray:
    lightness, a, b = lab[..., 0], lab[..., 1], lab[..., 2]
    contrast = 50 + 50 * np.tanh((lightness - 50) / 38) / np.tanh(50 / 38)
    return np.stack([contrast, 0.4 * a, 0.4 * b], -1)


def warm_fade(lab: np.ndarray) -> np.ndarray:
    lightness, a, b = lab[..., 0], lab[..., 1], lab[..., 2]
    return np.stack([10 + 0.85 * lightness, 1.1 * a + 4, 1.1 * b + 12], -1)


GRADES: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "teal-orange": teal_orange, "day-for-night": day_for_night, "bleach": bleach_bypass, "warm-fade": warm_fade}


def regrade(name: str, rgb: np.ndarray) -> np.ndarray:
    return np.clip(metrics.lab_to_srgb(GRADES[name](metrics.srgb_to_lab(rgb))), 0, 1).astype(np.float32)


def painted(height: int, width: int, regions, seed: int) -> np.ndarray:
    """Flat sRGB regions (later ones on top) with a little grain and a soft vertical light falloff."""
    image = np.zeros((height, width, 3))
    for rows, cols, colour in regions:
        image[rows, cols] = colour
    image *= np.linspace(1.05, 0.95, height)[:, None, None]
    image += np.random.default_rng(seed).normal(0, 0.01, image.shape)
    return np.clip(image, 0, 1).astype(np.float32)


ALL = slice(None)


def grey_road_scene() -> tuple[np.ndarray, np.ndarray]:
    """(plate, style): a grey road, pale sky, orange mountain and dark desaturated bushes; a
    meadow style whose dark tones are olive, with grey clouds, a grey yurt and a red barn."""
    plate = painted(144, 256, [(slice(0, 60), ALL, (0.86, 0.80, 0.76)), (slice(42, 84), slice(40, 220), (0.66, 0.46, 0.31)),
                               (slice(84, 114), ALL, (0.20, 0.24, 0.18)), (slice(114, 121), ALL, (0.25, 0.29, 0.19)),
                               (slice(121, 144), ALL, (0.25, 0.25, 0.255)), (slice(70, 130), slice(120, 140), (0.55, 0.22, 0.12))],
                      seed=11)
    style = painted(144, 256, [(slice(0, 60), ALL, (0.64, 0.65, 0.67)), (slice(60, 82), ALL, (0.36, 0.41, 0.46)),
                               (slice(82, 144), ALL, (0.33, 0.30, 0.08)), (slice(92, 118), slice(100, 144), (0.74, 0.73, 0.71)),
                               (slice(96, 112), slice(200, 220), (0.70, 0.10, 0.08))], seed=12)
    return plate, style


def autumn_scene() -> tuple[np.ndarray, np.ndarray]:
    """(plate, style): green trees under a blue sky; the style's trees are autumn orange."""
    plate = painted(144, 256, [(slice(0, 56), ALL, (0.45, 0.62, 0.85)), (slice(56, 144), ALL, (0.20, 0.42, 0.14)),
                               (slice(110, 144), slice(0, 90), (0.42, 0.40, 0.37))], seed=13)
    style = painted(144, 256, [(slice(0, 50), ALL, (0.50, 0.64, 0.86)), (slice(50, 144), ALL, (0.72, 0.38, 0.10)),
                               (slice(100, 144), slice(150, 256), (0.45, 0.42, 0.38))], seed=14)
    return plate, style


@dataclass
class ExtraPair:
    name: str
    plate: str          # a path under the shared data folder, or "synthetic"
    style: str
    grade: Optional[str] = None    # known grade applied to the style image (and, for the ideal, to the plate)


EXTRA_PAIRS = [
    ExtraPair("walk10-tealorange(in3)", "clip/walk.0010.jpg", "pairs/in3.png", "teal-orange"),
    ExtraPair("walk10-night(in6)", "clip/walk.0010.jpg", "pairs/in6.png", "day-for-night"),
    ExtraPair("in6-warmfade(walk45)", "pairs/in6.png", "clip/walk.0045.jpg", "warm-fade"),
    ExtraPair("in8-tealorange(in1)", "pairs/in8.png", "pairs/in1.png", "teal-orange"),
    ExtraPair("in2-bleach(in5)", "pairs/in2.png", "pairs/in5.png", "bleach"),
    ExtraPair("beachball-warmfade(in7)", "exr/Beachball/singlepart.0001.exr", "pairs/in7.png", "warm-fade"),
    ExtraPair("in5-night(walk30)", "pairs/in5.png", "clip/walk.0030.jpg", "day-for-night"),
    ExtraPair("in1-bleach(in3)", "pairs/in1.png", "pairs/in3.png", "bleach"),
    ExtraPair("synthetic grey road", "synthetic", "grey_road_scene"),
    ExtraPair("synthetic autumn", "synthetic", "autumn_scene"),
]
SCENES = {"grey_road_scene": grey_road_scene, "autumn_scene": autumn_scene}
