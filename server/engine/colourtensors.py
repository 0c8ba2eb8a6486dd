"""Colour transforms on torch tensors, on any device: what the frame pipeline uses.

`to_working_tensor` and `from_working_tensor` are `colour.to_working` and `colour.from_working`
for …×3 tensors. `TensorTransform` evaluates OpenColorIO's optimised processor op by op in
torch float32 (matrices, log-camera / log-affine / log curves, gamma and moncurve exponents,
ranges: ACEScg <-> ACEScct is a single log-camera op; sRGB, the linear and gamma-encoded spaces
of the built-in config are a few more). That is exact where a baked 3D LUT could not be:
scene-linear values run from -65504 to far above 1.0. Each transform is checked against
OCIO's CPU processor when it is built, on values spanning that range (`PROBE_TOLERANCE`); a
chain holding an op not implemented here, or one that misses the check, runs through OCIO's
CPU processor instead (correct, only slower on a GPU).

Apart from `colour` so that what needs only OCIO (a render's resume check, `info`) never
imports torch.
"""

from __future__ import annotations

import functools
import math
from typing import Any, Callable

import numpy as np
import PyOpenColorIO as ocio
import torch
from torch import Tensor

from shotstyle.server.engine.colour import (NEGATIVE_LIMIT, apply, config_at, config_uri, cpu_processor,
                                            space_transform, working_space)
from shotstyle.media.frame import HALF_MAX


def to_working_tensor(rgb: Tensor, colourspace: str, in_torch: bool = True) -> Tensor:
    """…×3 float32 RGB in ``colourspace`` (channels last, any device) -> ACEScct.

    `NONFINITE_RULE` and `NEGATIVE_LIMIT` first. ``in_torch``: evaluate the transform with torch
    ops where it can (see `TensorTransform`); False: OCIO's CPU processor. The input is left
    unchanged; the caller counts non-finite values if it reports them."""
    pixels = torch.nan_to_num(rgb.float(), nan=0.0, posinf=HALF_MAX, neginf=-HALF_MAX).clamp_(min=NEGATIVE_LIMIT)
    return tensor_transform(colourspace, working_space(), in_torch)(pixels, consume=True)


def from_working_tensor(rgb: Tensor, colourspace: str, in_torch: bool = True) -> Tensor:
    """…×3 ACEScct -> float32 RGB in ``colourspace``, always finite (NaN -> 0, ±Inf -> ±float32 max)."""
    pixels = tensor_transform(working_space(), colourspace, in_torch)(rgb)
    limit = float(np.finfo(np.float32).max)
    return torch.nan_to_num_(pixels, nan=0.0, posinf=limit, neginf=-limit)


# --- The transforms as torch ops ---------------------------------------------------------------

# A torch transform may differ from OCIO's CPU result by at most this much, relative to
# max(1, |OCIO's value|), on every probe value (the bound for device colour: 1e-3).
PROBE_TOLERANCE = 1e-3
Op = Callable[[Tensor, Callable[[Any], Tensor]], Tensor]


def tensor_transform(source: str, destination: str, in_torch: bool = True) -> "TensorTransform":
    """The transform ``source`` -> ``destination`` of the config in use, on tensors."""
    return _tensor_transform(config_uri(), source, destination, in_torch)


@functools.lru_cache(maxsize=32)
def _tensor_transform(uri: str, source: str, destination: str, in_torch: bool) -> "TensorTransform":
    return TensorTransform(uri, source, destination, in_torch)


class TensorTransform:
    """One colour transform on …×3 float32 tensors (channels last) on any device.

    `in_torch`: OCIO's optimised op chain evaluated with torch ops on the tensor's own device
    when every op is implemented here and the result agrees with OCIO's CPU processor within
    `PROBE_TOLERANCE` on colours of the source space (`_probe`); `self.in_torch` says whether
    that worked, `self.why` why not. Otherwise OCIO's CPU processor runs on a host copy.
    """

    def __init__(self, uri: str, source: str, destination: str, in_torch: bool = True):
        self._uri, self._source, self._destination = uri, source, destination
        cpu_processor(uri, source, destination)  # unknown names fail here, with the config's list
        self._ops: list[Op] | None = None
        self._constants: dict[tuple[torch.device, int], Tensor] = {}
        self.why = "OCIO's CPU processor asked for"
        if in_torch:
            self._ops, self.why = self._build_ops()
        self.in_torch = self._ops is not None

    def __call__(self, rgb: Tensor, consume: bool = False) -> Tensor:
        """The transformed colours as a new tensor on ``rgb``'s device (``consume``: the
        caller's ``rgb`` may be overwritten and returned, saving a copy)."""
        if self._ops is None:
            host = rgb.detach().to("cpu", torch.float32, memory_format=torch.contiguous_format,
                                   copy=not consume)
            apply(host.numpy().reshape(-1, 1, 3), self._source, self._destination, copy=False, uri=self._uri)
            return host.to(rgb.device)
        if not self._ops:
            return rgb.to(torch.float32, copy=not consume)
        x = rgb.float()
        for op in self._ops:
            x = op(x, lambda values: self._constant(values, x.device))
        return x

    def _constant(self, values: Any, device: torch.device) -> Tensor:
        """A tensor of ``values`` on ``device``, made once (no host-to-device copy per frame)."""
        key = (device, id(values))
        if key not in self._constants:
            self._constants[key] = torch.as_tensor(values, dtype=torch.float32).to(device)
        return self._constants[key]

    def _build_ops(self) -> tuple[list[Op] | None, str]:
        optimised = self._processor_group()
        ops = []
        for transform in optimised:
            op = _torch_op(transform)
            if op is None:
                return None, f"OCIO op {transform.__class__.__name__} has no torch version here"
            ops.append(op)
        probe = self._probe()
        expected = self._ocio(probe)
        got = _run_ops(ops, probe, torch.float32)
        # Where a matrix cancels large channels, float32 cannot be trusted to 1e-3, and OCIO's
        # CPU processor (fast approximations of log, exp and pow) is often the further off.
        # There ("ill-conditioned": a relative input error of 2^-16 moves the float64 result by
        # more than a tenth of the tolerance) the ops are held to their float64 result instead.
        # A wrong formula still shows: on the well-conditioned values, held to OCIO's result.
        exact = _run_ops(ops, probe, torch.float64)
        uncertainty = np.zeros(probe.shape)
        for channel in range(3):
            nudge = np.ones(3)
            nudge[channel] += 2.0 ** -16
            uncertainty += np.nan_to_num(np.abs(_run_ops(ops, probe * nudge, torch.float64) - exact))
        with np.errstate(invalid="ignore"):
            scale = PROBE_TOLERANCE * np.maximum(1.0, np.abs(expected))
            direct = np.abs(got - expected) <= scale + uncertainty
            ill = uncertainty > 0.1 * scale
            near_exact = np.abs(got - exact) <= PROBE_TOLERANCE * np.maximum(1.0, np.abs(exact)) + uncertainty
            finite = np.isfinite(expected) & np.isfinite(got)
            same = ~np.isfinite(expected) & ~np.isfinite(got) & (np.isnan(expected) == np.isnan(got))
        if not (finite | same).all():
            return None, "torch ops and OCIO's CPU processor disagree on which values are finite"
        wrong = finite & ~(direct | (ill & near_exact))
        if wrong.any():
            worst = (np.abs(got - expected) / np.maximum(1.0, np.abs(expected)))[wrong].max()
            return None, f"torch ops differ from OCIO's CPU result by up to {worst:.2g}"
        return ops, "torch ops, checked against OCIO's CPU processor"

    def _ocio(self, rgb: np.ndarray) -> np.ndarray:
        """N×3 colours through OCIO's CPU processor (a new array)."""
        out = rgb.copy()
        apply(out.reshape(-1, 1, 3), self._source, self._destination, copy=False, uri=self._uri)
        return out

    def _probe(self) -> np.ndarray:
        """Colours in the source space: a cube around [0, 1] (display-referred images) and
        `probe_values` (scene-linear) converted into the source space by OCIO."""
        cube = np.linspace(-0.25, 1.25, 13, dtype=np.float32)
        grid = np.stack(np.meshgrid(cube, cube, cube, indexing="ij"), -1).reshape(-1, 1, 3)
        scene = probe_values().reshape(-1, 1, 3).copy()
        cfg = config_at(self._uri)
        linear = cfg.getColorSpace(ocio.ROLE_SCENE_LINEAR)
        apply(scene, linear.getName() if linear is not None else "ACEScg", self._source, copy=False,
               uri=self._uri)
        return np.ascontiguousarray(np.concatenate([grid, scene]).reshape(-1, 3))

    def _processor_group(self) -> Any:
        cfg = config_at(self._uri)
        processor = cfg.getProcessor(space_transform(cfg, self._source, self._destination))
        return processor.getOptimizedProcessor(ocio.OPTIMIZATION_DEFAULT).createGroupTransform()


def _run_ops(ops: list[Op], rgb: np.ndarray, dtype: torch.dtype) -> np.ndarray:
    x = torch.from_numpy(rgb).to(dtype)
    for op in ops:
        x = op(x, lambda values: torch.as_tensor(values, dtype=dtype))
    return x.numpy()


@functools.lru_cache(maxsize=1)
def probe_values() -> np.ndarray:
    """N×3 float32 scene-linear colours spanning what frames hold: greys from -65504 to 65504
    (log-spaced, dense around 0 and 1), colours of every such brightness with channels from
    -0.5× to 1.5× it (saturated and out of gamut), and fixed random colours."""
    magnitudes = np.geomspace(1e-6, HALF_MAX, 61)
    ramp = np.concatenate([-magnitudes[::-4], [0.0], np.linspace(0.0, 1.0, 33)[1:], magnitudes])
    grey = np.repeat(ramp[:, None], 3, axis=1)
    rng = np.random.default_rng(0)
    chroma = rng.uniform(-0.5, 1.5, (len(magnitudes), 64, 3))
    colours = (magnitudes[:, None, None] * chroma).reshape(-1, 3)
    random = np.concatenate([rng.uniform(-0.2, 1.5, (2048, 3)), rng.lognormal(0.0, 4.0, (2048, 3))])
    return np.ascontiguousarray(np.concatenate([grey, colours, random]), dtype=np.float32)


def _rgb(values: Any) -> list[float]:
    return [float(v) for v in list(values)[:3]]


def _inverse(transform: Any) -> bool:
    return bool(transform.getDirection() == ocio.TRANSFORM_DIR_INVERSE)


def _torch_op(transform: Any) -> Op | None:
    """The torch version of one OCIO op (as OCIO's processor exposes it), or None (LUTs, fixed
    functions, grading ops...: those chains run through OCIO's CPU processor)."""
    builder = _OP_BUILDERS.get(type(transform).__name__)
    return None if builder is None else builder(transform, _inverse(transform))


def _matrix_op(transform: Any, inverse: bool) -> Op:
    m: np.ndarray = np.array(transform.getMatrix(), dtype=np.float64).reshape(4, 4)
    m[:3, 3] = _rgb(transform.getOffset())
    if inverse:
        m = np.linalg.inv(m)
    matrix, offset = m[:3, :3].T.tolist(), m[:3, 3].tolist()
    return lambda x, c: torch.addmm(c(offset), x.reshape(-1, 3), c(matrix)).view(x.shape)


def _log_camera_op(transform: Any, inverse: bool) -> Op:
    base = transform.getBase()
    log_slope = np.array(_rgb(transform.getLogSideSlopeValue()))
    log_offset = np.array(_rgb(transform.getLogSideOffsetValue()))
    lin_slope = np.array(_rgb(transform.getLinSideSlopeValue()))
    lin_offset = np.array(_rgb(transform.getLinSideOffsetValue()))
    lin_break = np.array(_rgb(transform.getLinSideBreakValue()))
    at_break = lin_slope * lin_break + lin_offset
    log_break = log_slope * np.log(at_break) / math.log(base) + log_offset
    if transform.isLinearSlopeValueSet():
        toe_slope = np.array(_rgb(transform.getLinearSlopeValue()))
    else:  # the toe continues the curve's tangent at the break
        toe_slope = log_slope * lin_slope / (at_break * math.log(base))
    toe_offset = log_break - toe_slope * lin_break
    # Natural log/exp with the base folded into the slopes (log2 is several times slower on CPUs).
    k = (log_slope / math.log(base)).tolist()
    a, b, lb = lin_slope.tolist(), lin_offset.tolist(), lin_break.tolist()
    lo, ts, to, yb = log_offset.tolist(), toe_slope.tolist(), toe_offset.tolist(), log_break.tolist()
    if not inverse:
        return lambda x, c: torch.where(x > c(lb), torch.log(torch.clamp(x * c(a) + c(b), min=1e-30)) * c(k) + c(lo),
                                        x * c(ts) + c(to))
    return lambda x, c: torch.where(x > c(yb), (torch.exp((x - c(lo)) / c(k)) - c(b)) / c(a),
                                    (x - c(to)) / c(ts))


def _log_affine_op(transform: Any, inverse: bool) -> Op:
    base = transform.getBase()
    k = (np.array(_rgb(transform.getLogSideSlopeValue())) / math.log(base)).tolist()
    lo = _rgb(transform.getLogSideOffsetValue())
    a, b = _rgb(transform.getLinSideSlopeValue()), _rgb(transform.getLinSideOffsetValue())
    if not inverse:
        return lambda x, c: torch.log(torch.clamp(x * c(a) + c(b), min=np.finfo(np.float32).tiny)) * c(k) + c(lo)
    return lambda x, c: (torch.exp((x - c(lo)) / c(k)) - c(b)) / c(a)


def _log_op(transform: Any, inverse: bool) -> Op:
    scale = 1.0 / math.log(transform.getBase())
    if not inverse:
        return lambda x, c: torch.log(torch.clamp(x, min=np.finfo(np.float32).tiny)) * scale
    return lambda x, c: torch.exp(x / scale)


def _signed(style: Any, function: Callable[[Tensor], Tensor], x: Tensor) -> Tensor:
    """``function`` (defined for x ≥ 0) extended to negatives by OCIO's negative style."""
    if style == ocio.NEGATIVE_MIRROR:
        return torch.sign(x) * function(x.abs())
    if style == ocio.NEGATIVE_PASS_THRU:
        return torch.where(x < 0, x, function(x.clamp(min=0)))
    return function(x.clamp(min=0))  # NEGATIVE_CLAMP


def _exponent_op(transform: Any, inverse: bool) -> Op | None:
    gamma = np.array(_rgb(transform.getValue()))
    exponent = (1.0 / gamma if inverse else gamma).tolist()
    style = transform.getNegativeStyle()
    if style == ocio.NEGATIVE_LINEAR:
        return None
    return lambda x, c: _signed(style, lambda v: torch.pow(v, c(exponent)), x)


def _exponent_with_linear_op(transform: Any, inverse: bool) -> Op | None:
    """OCIO's "moncurve": ((x + o) / (1 + o))^g above a break, a line through 0 below."""
    gamma, offset = np.array(_rgb(transform.getGamma())), np.array(_rgb(transform.getOffset()))
    style = transform.getNegativeStyle()
    if style not in (ocio.NEGATIVE_LINEAR, ocio.NEGATIVE_MIRROR):
        return None
    x_break = offset / (gamma - 1.0)                                    # encoded side
    slope = gamma * (x_break + offset) ** (gamma - 1.0) / (1.0 + offset) ** gamma
    y_break = (x_break * slope).tolist()
    g, o, s, xb = gamma.tolist(), offset.tolist(), slope.tolist(), x_break.tolist()
    ig = (1.0 / gamma).tolist()

    def decode(x: Tensor, c: Callable[[Any], Tensor]) -> Tensor:
        curve = torch.pow((x.clamp(min=0) + c(o)) / (1 + c(o)), c(g))
        return torch.where(x > c(xb), curve, x * c(s))

    def encode(y: Tensor, c: Callable[[Any], Tensor]) -> Tensor:
        curve = torch.pow(y.clamp(min=0), c(ig)) * (1 + c(o)) - c(o)
        return torch.where(y > c(y_break), curve, y / c(s))

    function = encode if inverse else decode
    if style == ocio.NEGATIVE_LINEAR:
        return function
    return lambda x, c: torch.sign(x) * function(x.abs(), c)


def _range_op(transform: Any, inverse: bool) -> Op | None:
    if inverse:
        return None
    has = (transform.hasMinInValue(), transform.hasMaxInValue(), transform.hasMinOutValue(),
           transform.hasMaxOutValue())
    clamp = transform.getStyle() == ocio.RANGE_CLAMP
    if all(has):
        low_in, high_in = transform.getMinInValue(), transform.getMaxInValue()
        low_out, high_out = transform.getMinOutValue(), transform.getMaxOutValue()
        scale = (high_out - low_out) / (high_in - low_in)
        offset = low_out - scale * low_in
        low, high = (min(low_out, high_out), max(low_out, high_out)) if clamp else (None, None)
        return lambda x, c: torch.clamp(x * scale + offset, min=low, max=high)
    if has == (True, False, True, False):
        offset = transform.getMinOutValue() - transform.getMinInValue()
        low_out = transform.getMinOutValue() if clamp else None
        return lambda x, c: torch.clamp(x + offset, min=low_out)
    if has == (False, True, False, True):
        offset = transform.getMaxOutValue() - transform.getMaxInValue()
        high_out = transform.getMaxOutValue() if clamp else None
        return lambda x, c: torch.clamp(x + offset, max=high_out)
    return None


_OP_BUILDERS: dict[str, Callable[[Any, bool], Op | None]] = {
    "MatrixTransform": _matrix_op,
    "LogCameraTransform": _log_camera_op,
    "LogAffineTransform": _log_affine_op,
    "LogTransform": _log_op,
    "ExponentTransform": _exponent_op,
    "ExponentWithLinearTransform": _exponent_with_linear_op,
    "RangeTransform": _range_op,
}
