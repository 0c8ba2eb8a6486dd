"""Differentiable colour maths for the losses and the grade: working space (ACEScct) to linear
Rec.709, to a display-referred sRGB image for VGG, to CIELAB (and back) for the look loss and
the colour correspondence, and the CIEDE2000 colour difference.

These are closed-form torch versions of the transforms (not OpenColorIO), because a loss
needs gradients. They are exact for ACEScct → linear AP1 → linear Rec.709 (Bradford D60→D65,
the ACES "ACEScg to sRGB/Rec.709" matrix); the display step is an approximation, see
`working_to_display`.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

_ACESCCT_A = 10.5402377416545
_ACESCCT_B = 0.0729055341958355
_ACESCCT_BREAK = 0.155251141552511
_AP1_TO_REC709 = torch.tensor([[1.7050509, -0.6217921, -0.0832588],
                               [-0.1302564, 1.1408047, -0.0105483],
                               [-0.0240033, -0.1289690, 1.1529723]])
_REC709_TO_XYZ_D65 = torch.tensor([[0.4124564, 0.3575761, 0.1804375],
                                   [0.2126729, 0.7151522, 0.0721750],
                                   [0.0193339, 0.1191920, 0.9503041]])
_D65_WHITE = torch.tensor([0.95047, 1.0, 1.08883])
_XYZ_TO_AP1 = torch.linalg.inv(_REC709_TO_XYZ_D65.double() @ _AP1_TO_REC709.double()).float()
# Highlights above this linear value roll off smoothly towards 1.0 instead of clipping,
# so the VGG input keeps a (small) gradient in over-exposed areas.
_ROLLOFF_START = 0.8
# Softplus sharpness of the black floor in `working_to_lab`: lifts 0.0 to 0.00035 (L* 0.3).
_BLACK_FLOOR_SHARPNESS = 2000.0


def _apply_matrix(image: torch.Tensor, matrix: torch.Tensor) -> torch.Tensor:
    return torch.einsum("ij,njhw->nihw", matrix.to(image), image)


def acescct_to_linear(image: torch.Tensor) -> torch.Tensor:
    """ACEScct code values → linear AP1 (ACEScg), both branches of the ACES curve."""
    toe = (image - _ACESCCT_B) / _ACESCCT_A
    log = torch.exp2(image.clamp(max=15.0) * 17.52 - 9.72)
    return torch.where(image <= _ACESCCT_BREAK, toe, log)


def linear_to_acescct(linear: torch.Tensor) -> torch.Tensor:
    """The inverse of `acescct_to_linear` (used to build test images and the look loss's targets)."""
    toe = linear * _ACESCCT_A + _ACESCCT_B
    log = (torch.log2(linear.clamp(min=2 ** -16)) + 9.72) / 17.52
    return torch.where(linear <= 0.0078125, toe, log)


def working_to_rec709(image: torch.Tensor) -> torch.Tensor:
    """N×3×H×W ACEScct → linear Rec.709/sRGB primaries, D65 (values may leave [0, 1])."""
    return _apply_matrix(acescct_to_linear(image), _AP1_TO_REC709)


def _roll_off(linear: torch.Tensor) -> torch.Tensor:
    span = 1.0 - _ROLLOFF_START
    rolled = _ROLLOFF_START + span * torch.tanh((linear - _ROLLOFF_START) / span)
    return torch.where(linear > _ROLLOFF_START, rolled, linear)


def working_to_display(image: torch.Tensor) -> torch.Tensor:
    """N×3×H×W ACEScct → display-referred sRGB in [0, 1], what ImageNet VGG expects.

    Approximation: no view transform (no ACES RRT/ODT tone curve); linear Rec.709 is
    clamped at 0, highlights above 0.8 roll off with tanh towards 1.0 instead of clipping,
    then the sRGB transfer function is applied. For sRGB-sourced images this is the exact
    inverse of the colour stage's sRGB → ACEScct below the roll-off."""
    linear = _roll_off(working_to_rec709(image).clamp(min=0.0))
    return torch.where(linear <= 0.0031308, linear * 12.92,
                       1.055 * linear.clamp(min=0.0031308) ** (1 / 2.4) - 0.055)


def display_to_working(image: torch.Tensor) -> torch.Tensor:
    """sRGB [0, 1] → ACEScct, the exact inverse of `working_to_display` below the roll-off."""
    linear = torch.where(image <= 0.04045, image / 12.92, ((image.clamp(min=0.04045) + 0.055) / 1.055) ** 2.4)
    return linear_to_acescct(_apply_matrix(linear, torch.linalg.inv(_AP1_TO_REC709)))


def _lab_f(t: torch.Tensor) -> torch.Tensor:
    # Sign-preserving cube root with CIELAB's linear toe: defined (and smooth) for the
    # negative values that out-of-gamut working-space colours produce.
    delta = 6.0 / 29.0
    toe = t / (3 * delta ** 2) + 4.0 / 29.0
    return torch.where(t > delta ** 3, t.clamp(min=delta ** 3) ** (1.0 / 3.0), toe)


def working_to_lab(image: torch.Tensor, display: bool = False, floor: bool = True) -> torch.Tensor:
    """N×3×H×W ACEScct → CIELAB (D65), L in [0, 100] for diffuse white (more for highlights).

    Negative linear Rec.709 values (below black, or outside the Rec.709 gamut) are floored
    smoothly at 0 (softplus), as a display would clip them: a loss in this space sees detail
    crushed into black as lost, yet still gets a gradient to bring it back. `display=True`
    also rolls highlights off towards 1.0 as `working_to_display` does: what a viewer sees.
    `floor=False` (with display=False) is the exact, invertible conversion `lab_to_working`
    undoes: what colour transforms (the grade) work in."""
    linear = working_to_rec709(image)
    if floor:
        linear = F.softplus(linear, beta=_BLACK_FLOOR_SHARPNESS)
    if display:
        linear = _roll_off(linear)
    xyz = _apply_matrix(linear, _REC709_TO_XYZ_D65)
    f = _lab_f(xyz / _D65_WHITE.to(xyz).view(1, 3, 1, 1))
    return torch.stack([116 * f[:, 1] - 16, 500 * (f[:, 0] - f[:, 1]), 200 * (f[:, 1] - f[:, 2])], dim=1)


def _lab_f_inverse(f: torch.Tensor) -> torch.Tensor:
    delta = 6.0 / 29.0
    return torch.where(f > delta, f.clamp(min=delta) ** 3, 3 * delta ** 2 * (f - 4.0 / 29.0))


def lab_to_working(lab: torch.Tensor) -> torch.Tensor:
    """N×3×H×W CIELAB → ACEScct: the exact inverse of `working_to_lab(…, floor=False)`."""
    fy = (lab[:, 0] + 16) / 116
    f = torch.stack([fy + lab[:, 1] / 500, fy, fy - lab[:, 2] / 200], dim=1)
    xyz = _lab_f_inverse(f) * _D65_WHITE.to(lab).view(1, 3, 1, 1)
    return linear_to_acescct_exact(_apply_matrix(xyz, _XYZ_TO_AP1))


def linear_to_acescct_exact(linear: torch.Tensor) -> torch.Tensor:
    """ACEScg → ACEScct for any value: the toe is linear below 0.0078125, so negative values
    (out of gamut, below black) stay invertible (`linear_to_acescct` floors its log branch only)."""
    toe = linear * _ACESCCT_A + _ACESCCT_B
    log = (torch.log2(linear.clamp(min=0.0078125)) + 9.72) / 17.52
    return torch.where(linear <= 0.0078125, toe, log)


def delta_e_2000(lab1: torch.Tensor, lab2: torch.Tensor) -> torch.Tensor:
    """CIEDE2000 colour difference (Sharma, Wu & Dalal 2005) between CIELAB colours along dim 1."""
    l1, a1, b1 = lab1.unbind(1)
    l2, a2, b2 = lab2.unbind(1)
    c_mean = (torch.hypot(a1, b1) + torch.hypot(a2, b2)) / 2
    g = 0.5 * (1 - torch.sqrt(c_mean ** 7 / (c_mean ** 7 + 25.0 ** 7)))
    a1p, a2p = (1 + g) * a1, (1 + g) * a2
    c1p, c2p = torch.hypot(a1p, b1), torch.hypot(a2p, b2)
    h1p = torch.remainder(torch.atan2(b1, a1p), 2 * math.pi)
    h2p = torch.remainder(torch.atan2(b2, a2p), 2 * math.pi)
    chromatic = (c1p * c2p) != 0
    dh = h2p - h1p
    dh = torch.where(dh > math.pi, dh - 2 * math.pi, torch.where(dh < -math.pi, dh + 2 * math.pi, dh))
    dh = torch.where(chromatic, dh, torch.zeros_like(dh))
    d_l, d_c = l2 - l1, c2p - c1p
    d_h = 2 * torch.sqrt(c1p * c2p) * torch.sin(dh / 2)
    l_mean, cp_mean = (l1 + l2) / 2, (c1p + c2p) / 2
    h_sum = h1p + h2p
    h_mean = torch.where(~chromatic, h_sum,
                         torch.where((h1p - h2p).abs() <= math.pi, h_sum / 2,
                                     torch.where(h_sum < 2 * math.pi, (h_sum + 2 * math.pi) / 2,
                                                 (h_sum - 2 * math.pi) / 2)))
    t = (1 - 0.17 * torch.cos(h_mean - math.radians(30)) + 0.24 * torch.cos(2 * h_mean)
         + 0.32 * torch.cos(3 * h_mean + math.radians(6)) - 0.20 * torch.cos(4 * h_mean - math.radians(63)))
    s_l = 1 + 0.015 * (l_mean - 50) ** 2 / torch.sqrt(20 + (l_mean - 50) ** 2)
    s_c = 1 + 0.045 * cp_mean
    s_h = 1 + 0.015 * cp_mean * t
    rotation = -torch.sin(2 * math.radians(30) * torch.exp(-((torch.rad2deg(h_mean) - 275) / 25) ** 2)) * \
        2 * torch.sqrt(cp_mean ** 7 / (cp_mean ** 7 + 25.0 ** 7))
    return torch.sqrt((d_l / s_l) ** 2 + (d_c / s_c) ** 2 + (d_h / s_h) ** 2
                      + rotation * (d_c / s_c) * (d_h / s_h))
