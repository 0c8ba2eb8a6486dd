"""The OpenColorIO stage: frame colour space <-> the network's working space, and back.

Working space: **ACEScct** (ACES log encoding on AP1 primaries), taken from OCIO's built-in
ACES config (``ocio://default``, the cg-config) unless SHOTSTYLE_OCIO (else $OCIO) names
another config. OCIO builds the whole transform, e.g. for EXRs in ACEScg::

    ACEScg --(MatrixTransform AP1->AP0, AP0->AP1)--> --(LogCameraTransform)--> ACEScct
    ACEScct = (log2(x) + 9.72) / 17.52            for x >  0.0078125
    ACEScct = 10.5402377416545 * x + 0.0729055341958355   for x <= 0.0078125  (linear toe)

Both pieces are invertible and OCIO clamps neither, so scene-linear highlights far above 1.0
(up to float32's 3.4e38) and negative (out-of-gamut) values survive the round trip
(relative error ~1e-5 from float32 arithmetic). Two limits of float32, handled here:

* the linear toe overflows float32 for x < -3.2e37, so linear values below
  `NEGATIVE_LIMIT` (-3.0e37) are raised to it before the transform (no real plate holds them);
* the toe's offset (0.0729) quantises tiny linear values: |x| < 1e-6 come back within ~1e-9
  absolute, not 1e-3 relative.

Non-finite values never reach the network: `NONFINITE_RULE` is applied before the transform
and the number of replaced values is returned (and reported by callers). `from_working` also
replaces non-finite network output (NaN -> 0, ±Inf -> ±float32 max) so nothing non-finite is
written.

Colour space names are anything the config knows (names or aliases, e.g. "ACEScg",
"lin_rec709", "sRGB - Texture"); "sRGB" means the config's sRGB texture space.
"""

from __future__ import annotations

import functools
import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import PyOpenColorIO as ocio

from shotstyle.server.errors import ColourError
from shotstyle.server.frameio import HALF_MAX

WORKING_SPACE_NAMES = ("ACEScct", "ACES - ACEScct", "acescct_ap1")
DEFAULT_CONFIG = "ocio://default"
STRIP_MIN_PIXELS = 1 << 18   # below this, one call beats splitting across threads
NEGATIVE_LIMIT = -3.0e37
NONFINITE_RULE = "NaN -> 0, +Inf -> 65504, -Inf -> -65504 (replaced in scene-linear/input space, before the transform)"
# Shorthands artists type, mapped to the names the ACES configs use.
_SHORTHANDS = {"srgb": "sRGB - Texture", "linear": "ACEScg"}


def config_uri() -> str:
    """The OCIO config in use: SHOTSTYLE_OCIO, else $OCIO, else OCIO's built-in ACES config."""
    return os.environ.get("SHOTSTYLE_OCIO") or os.environ.get("OCIO") or DEFAULT_CONFIG


@functools.lru_cache(maxsize=4)
def _config(uri: str) -> ocio.Config:
    try:
        return ocio.Config.CreateFromFile(uri)
    except Exception as error:  # OCIO raises its own Exception type for every failure
        raise ColourError(
            f"OpenColorIO config {uri!r} cannot be loaded ({error}); fix SHOTSTYLE_OCIO / OCIO or unset them "
            f"to use the built-in {DEFAULT_CONFIG}"
        ) from None


def config() -> ocio.Config:
    """The loaded OCIO config (see `config_uri`)."""
    return _config(config_uri())


def describe_config() -> str:
    """One line naming the config in use, for `shotstyle doctor` and model metadata."""
    return f"{config_uri()} ({config().getName()}), working space {working_space()}"


def _resolve(cfg: ocio.Config, name: str) -> str:
    colourspace = cfg.getColorSpace(name) or cfg.getColorSpace(_SHORTHANDS.get(name.lower(), name))
    if colourspace is None:
        raise ColourError(
            f"colour space {name!r} is not in the OCIO config {config_uri()}; "
            f"choose one of: {', '.join(available_colourspaces())}"
        )
    return colourspace.getName()


def working_space() -> str:
    """The config's name for ACEScct, the network's working space."""
    cfg = config()
    for name in WORKING_SPACE_NAMES:
        if cfg.getColorSpace(name) is not None:
            return cfg.getColorSpace(name).getName()
    raise ColourError(f"the OCIO config {config_uri()} has no ACEScct colour space; use an ACES config")


@functools.lru_cache(maxsize=32)
def _processor(uri: str, source: str, destination: str) -> ocio.CPUProcessor:
    cfg = _config(uri)
    try:
        return cfg.getProcessor(_resolve(cfg, source), _resolve(cfg, destination)).getDefaultCPUProcessor()
    except ColourError:
        raise
    except Exception as error:
        raise ColourError(f"OpenColorIO cannot convert {source!r} to {destination!r}: {error}") from None


@functools.lru_cache(maxsize=1)
def _strip_pool() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=os.cpu_count() or 1, thread_name_prefix="ocio")


def _apply(rgb: np.ndarray, source: str, destination: str, copy: bool = True) -> np.ndarray:
    """Apply the transform in place on a float32 copy (or on ``rgb`` itself when ``copy`` is False).

    OCIO's applyRGB releases the GIL but uses one core, so large frames go in row strips
    across the cores (2x faster at 1920x1080 on 2 cores).
    """
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ColourError(f"expected an H×W×3 RGB image, got shape {rgb.shape}")
    pixels = np.array(rgb, dtype=np.float32, order="C", copy=copy)
    processor = _processor(config_uri(), source, destination)
    workers = os.cpu_count() or 1
    if workers > 1 and pixels.shape[0] * pixels.shape[1] >= STRIP_MIN_PIXELS:
        list(_strip_pool().map(processor.applyRGB, np.array_split(pixels, workers, axis=0)))
    else:
        processor.applyRGB(pixels)
    return pixels


def replace_nonfinite(rgb: np.ndarray) -> tuple[np.ndarray, int]:
    """A float32 copy of ``rgb`` with `NONFINITE_RULE` applied, and how many values it replaced."""
    pixels = np.array(rgb, dtype=np.float32, copy=True)
    bad = ~np.isfinite(pixels)
    count = int(np.count_nonzero(bad))
    if count:
        np.nan_to_num(pixels, copy=False, nan=0.0, posinf=HALF_MAX, neginf=-HALF_MAX)
    return pixels, count


def to_working(rgb: np.ndarray, colourspace: str) -> tuple[np.ndarray, int]:
    """H×W×3 RGB in ``colourspace`` -> H×W×3 float32 ACEScct, and the count of non-finite values replaced."""
    pixels, replaced = replace_nonfinite(rgb)
    np.maximum(pixels, NEGATIVE_LIMIT, out=pixels)
    return _apply(pixels, colourspace, working_space(), copy=False), replaced


def from_working(rgb: np.ndarray, colourspace: str) -> np.ndarray:
    """H×W×3 ACEScct (e.g. network output) -> H×W×3 float32 in ``colourspace``; always finite."""
    pixels = _apply(rgb, working_space(), colourspace)
    limit = float(np.finfo(np.float32).max)
    return np.nan_to_num(pixels, copy=False, nan=0.0, posinf=limit, neginf=-limit)


def available_colourspaces() -> list[str]:
    """Names of the colour spaces of the config in use."""
    return [cs.getName() for cs in config().getColorSpaces()]
