"""The grade on host arrays at a 3D LUT's speed, through OpenColorIO's optimised CPU processor.

OCIO's Lut3DTransform with INTERP_LINEAR is trilinear interpolation over [0, 1]³: the grade's
own lookup (engine/grade.py), equal to torch's grid_sample within float32 rounding, at a
fraction of its cost. One processor also holds the colour conversions around the lattice
(source space → ACEScct → lattice → destination space), so a grade-only frame is one pass.

Beyond the domain the grade goes on with slope 1, which no LUT does. The pixels outside (rare:
scene-linear above 222 or below −0.0069) are found before the pass, by each strip's minimum and
maximum where the source maps to ACEScct channel by channel and increasingly (ACEScct itself,
ACEScg; a source that mixes channels on the way is converted to ACEScct first), and are
computed again after it, exactly: their conversion, the clamped lookup plus what the clamp
took off, the conversion out.

The same minimum and maximum say whether a strip needs colour in's rule for non-finite and huge
negative values (colour.input_rule), and the output's whether it needs making finite: a frame
that needs neither, the common case, costs one OCIO pass and two reads of each strip in cache.
"""

from __future__ import annotations

import functools

import numpy as np
import PyOpenColorIO as ocio

from shotstyle.server.engine.colour import (NEGATIVE_LIMIT, Strip, apply, apply_lines, canonical, config_at,
                                            config_uri, finite_output, in_strips, input_rule, space_transform,
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

    def apply(self, pixels: np.ndarray, planar: bool = False, out: np.ndarray | None = None,
              out_planar: bool | None = None) -> None:
        """Grade float32 C-ordered H×W×3 pixels (3×H×W planes when ``planar``) into ``out`` (as
        many pixels, planes when ``out_planar``, default as the input; default: in place), strip
        by strip across the cores. What it reads goes through colour.input_rule first, as colour
        in does (``pixels`` is left as it is when ``out`` is given), and what it writes is made
        finite, as everything leaving the working space is."""
        in_strips(pixels, planar, out, out_planar, self._strip)

    def _strip(self, source: Strip, target: Strip | None) -> None:
        """`apply` on one strip (a slice of a colour.pixel_run and whether it is planar; no target:
        in place), on this thread. The checks read the strip while it is in cache; the common case
        (finite, inside the domain) is one OCIO pass from the source to the target."""
        (run, planar), (out, out_planar) = source, target or source
        colours = run.T if planar else run          # N×3 views
        low, high = run.min(), run.max()  # NaN if any value is NaN
        if not (np.isfinite(low) and np.isfinite(high) and low >= NEGATIVE_LIMIT):
            if target is not None:
                np.copyto(out.T if out_planar else out, colours)
            input_rule(out)
            run, planar, target = out, out_planar, None
            colours, low, high = run.T if planar else run, run.min(), run.max()
        if self._front is not None:
            apply_lines(self._front, run, None if target is None else out, planar, out_planar)
            run, planar, target = out, out_planar, None
            colours, low, high = run.T if planar else run, run.min(), run.max()
        outside = kept = None
        if low < self._bounds[0] or high > self._bounds[1]:
            outside = ((colours < self._bounds[0]) | (colours > self._bounds[1])).any(axis=1)
            kept = colours[outside]
        apply_lines(self._chain, run, None if target is None else out, planar, out_planar)
        if outside is not None and kept is not None:
            (out.T if out_planar else out)[outside] = self._exact(kept)
        finite_output(out)

    def _exact(self, colours: np.ndarray) -> np.ndarray:
        """N×3 colours (in the space `_strip` checked) through the whole grade, slope 1 beyond the domain."""
        working = np.ascontiguousarray(colours, dtype=np.float32)
        if self._front is None and self._to_work is not None:
            apply_lines(self._to_work, working)
        inside = np.clip(working, *DOMAIN)
        graded = inside.copy()
        apply_lines(self._lookup, graded)
        graded += working - inside
        if self._from_work is not None:
            apply_lines(self._from_work, graded)
        return graded


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
