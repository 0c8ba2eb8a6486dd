"""The grade on host arrays at a 3D LUT's speed, through OpenColorIO's optimised CPU processor.

OCIO's Lut3DTransform with INTERP_LINEAR is trilinear interpolation over [0, 1]³: the grade's
own lookup (engine/grade.py), equal to torch's grid_sample within float32 rounding, at a
fraction of its cost. One processor also holds the colour conversions around the lattice
(source space → ACEScct → lattice → destination space), so a grade-only frame is one pass.

Beyond the domain the grade goes on with slope 1, which no LUT does. The pixels outside (rare:
scene-linear above 222 or below −0.0069) are found before the pass, by the frame's minimum and
maximum where the source maps to ACEScct channel by channel and increasingly (ACEScct itself,
ACEScg; a source that mixes channels on the way is converted to ACEScct first), and are
computed again after it, exactly: their conversion, the clamped lookup plus what the clamp
took off, the conversion out.
"""

from __future__ import annotations

import functools

import numpy as np
import PyOpenColorIO as ocio

from shotstyle.server.engine.colour import (apply, canonical, config_at, config_uri, run_processor, space_transform,
                                            working_space)

# The lattice's domain on every axis (ACEScct): OCIO's Lut3DTransform spans exactly this.
DOMAIN = (0.0, 1.0)


def lattice_transform(lattice: np.ndarray) -> ocio.Lut3DTransform:
    """A 3×S×S×S lattice, lut[channel, b, g, r], as OCIO's trilinear Lut3DTransform (blue fastest)."""
    transform = ocio.Lut3DTransform()
    transform.setGridSize(lattice.shape[-1])
    transform.setInterpolation(ocio.INTERP_LINEAR)
    transform.setData(np.ascontiguousarray(lattice.transpose(3, 2, 1, 0), dtype=np.float32).reshape(-1))
    return transform


def host_grade(lattice: np.ndarray, source: str, destination: str) -> "HostGrade":
    """The grade `lattice` from colour space `source` to `destination` (built once per lattice)."""
    data = np.ascontiguousarray(lattice, dtype=np.float32)
    return _host_grade(data.tobytes(), data.shape[-1], canonical(source), canonical(destination), config_uri())


@functools.lru_cache(maxsize=8)
def _host_grade(data: bytes, size: int, source: str, destination: str, uri: str) -> "HostGrade":
    return HostGrade(np.frombuffer(data, np.float32).reshape(3, size, size, size), source, destination, uri)


class HostGrade:
    """source → ACEScct → the lattice (slope 1 beyond it) → destination, in place on float32 frames."""

    def __init__(self, lattice: np.ndarray, source: str, destination: str, uri: str):
        cfg = config_at(uri)
        work = working_space()
        lookup = lattice_transform(lattice)
        self._lookup = cfg.getProcessor(lookup).getDefaultCPUProcessor()
        self._to_work = None if source == work else \
            cfg.getProcessor(space_transform(cfg, source, work)).getDefaultCPUProcessor()
        self._from_work = None if destination == work else \
            cfg.getProcessor(space_transform(cfg, work, destination)).getDefaultCPUProcessor()
        bounds = None if self._to_work is None else _channelwise_bounds(source, work, uri)
        # Convert first where the source's own values cannot say which pixels leave the domain.
        self._front = self._to_work if bounds is None else None
        self._bounds = DOMAIN if bounds is None else bounds
        chain = ocio.GroupTransform()
        if self._to_work is not None and self._front is None:
            chain.appendTransform(space_transform(cfg, source, work))
        chain.appendTransform(lookup)
        if self._from_work is not None:
            chain.appendTransform(space_transform(cfg, work, destination))
        self._chain = cfg.getProcessor(chain).getDefaultCPUProcessor()

    def apply(self, pixels: np.ndarray, planar: bool = False) -> None:
        """Grade float32 C-ordered H×W×3 pixels (3×H×W planes when ``planar``) in place."""
        if self._front is not None:
            run_processor(self._front, pixels, planar)
        low, high = self._bounds
        outside = colours = kept = None
        if pixels.min() < low or pixels.max() > high:
            colours = np.moveaxis(pixels, 0, -1) if planar else pixels
            outside = ((colours < low) | (colours > high)).any(axis=-1)
            kept = colours[outside]
        run_processor(self._chain, pixels, planar)
        if outside is not None and colours is not None and kept is not None:
            colours[outside] = self._exact(kept)

    def _exact(self, colours: np.ndarray) -> np.ndarray:
        """N×3 colours (in the space `apply` checked) through the whole grade, slope 1 beyond the domain."""
        working = np.ascontiguousarray(colours, dtype=np.float32).reshape(-1, 1, 3)
        if self._front is None and self._to_work is not None:
            self._to_work.applyRGB(working)
        inside = np.clip(working, *DOMAIN)
        graded = inside.copy()
        self._lookup.applyRGB(graded)
        graded += working - inside
        if self._from_work is not None:
            self._from_work.applyRGB(graded)
        return graded.reshape(-1, 3)


def _channelwise_bounds(source: str, work: str, uri: str) -> tuple[float, float] | None:
    """The source values the lattice's domain starts and ends at, when ``source`` maps to the
    working space channel by channel, the same increasing curve on every channel (so a pixel
    is inside the domain exactly when its source values lie between them); else None."""
    values = np.linspace(-0.25, 1.25, 61, dtype=np.float32)
    grey = np.repeat(values[:, None], 3, axis=1)
    shuffled = np.stack([values, values[::-1], np.roll(values, 17)], axis=1)
    back_grey = apply(grey[:, None], work, source, uri=uri)[:, 0]
    back = apply(shuffled[:, None], work, source, uri=uri)[:, 0]
    curve = back_grey[:, 0]
    same_curve = np.allclose(back_grey, curve[:, None], rtol=1e-6, atol=0)
    channelwise = np.allclose(back, np.stack([curve, curve[::-1], np.roll(curve, 17)], axis=1), rtol=1e-6, atol=0)
    if not (same_curve and channelwise and np.all(np.diff(curve) > 0)):
        return None
    ends = apply(np.array([[[DOMAIN[0]] * 3, [DOMAIN[1]] * 3]], dtype=np.float32), work, source, uri=uri)
    return float(ends[0, 0, 0]), float(ends[0, 1, 0])
