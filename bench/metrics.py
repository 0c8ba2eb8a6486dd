"""Look metrics for bench/quality.py: style match, structure kept, temporal stability.

Measurement code, deliberately independent of the product: it works on display-referred
sRGB images (H×W×3 float in [0, 1]) with plain numpy/OpenCV, so a change in the engine's
colour maths can never flatter its own score.
"""

from __future__ import annotations

import cv2
import numpy as np

_SRGB_TO_XYZ = np.array([[0.4124564, 0.3575761, 0.1804375],
                         [0.2126729, 0.7151522, 0.0721750],
                         [0.0193339, 0.1191920, 0.9503041]])
_D65 = np.array([0.95047, 1.0, 1.08883])
_SWD_PROJECTIONS = 64
_SWD_QUANTILES = 512


def srgb_to_linear(rgb: np.ndarray) -> np.ndarray:
    rgb = np.clip(rgb, 0.0, 1.0)
    return np.where(rgb <= 0.04045, rgb / 12.92, ((rgb + 0.055) / 1.055) ** 2.4)


def linear_to_srgb(lin: np.ndarray) -> np.ndarray:
    lin = np.clip(lin, 0.0, 1.0)
    return np.where(lin <= 0.0031308, lin * 12.92, 1.055 * lin ** (1 / 2.4) - 0.055)


def srgb_to_lab(rgb: np.ndarray) -> np.ndarray:
    """CIELAB (D65) of an sRGB image, L in [0, 100]."""
    xyz = srgb_to_linear(rgb) @ _SRGB_TO_XYZ.T / _D65
    f = np.where(xyz > (6 / 29) ** 3, np.cbrt(xyz), xyz / (3 * (6 / 29) ** 2) + 4 / 29)
    return np.stack([116 * f[..., 1] - 16, 500 * (f[..., 0] - f[..., 1]),
                     200 * (f[..., 1] - f[..., 2])], axis=-1)


def lab_to_srgb(lab: np.ndarray) -> np.ndarray:
    fy = (lab[..., 0] + 16) / 116
    f = np.stack([fy + lab[..., 1] / 500, fy, fy - lab[..., 2] / 200], axis=-1)
    xyz = np.where(f > 6 / 29, f ** 3, 3 * (6 / 29) ** 2 * (f - 4 / 29)) * _D65
    return linear_to_srgb(xyz @ np.linalg.inv(_SRGB_TO_XYZ).T)


def luminance(rgb: np.ndarray) -> np.ndarray:
    return srgb_to_lab(rgb)[..., 0]


def style_swd(output: np.ndarray, style: np.ndarray) -> float:
    """Sliced Wasserstein-1 distance between the two images' CIELAB colour distributions.

    Fixed projections (seed 0) and a fixed quantile grid, so the number is comparable
    between runs and between images of different sizes."""
    a = srgb_to_lab(output).reshape(-1, 3)
    b = srgb_to_lab(style).reshape(-1, 3)
    directions = np.random.default_rng(0).normal(size=(3, _SWD_PROJECTIONS))
    directions /= np.linalg.norm(directions, axis=0, keepdims=True)
    q = (np.arange(_SWD_QUANTILES) + 0.5) / _SWD_QUANTILES
    qa = np.quantile(a @ directions, q, axis=0)
    qb = np.quantile(b @ directions, q, axis=0)
    return float(np.abs(qa - qb).mean())


def histogram_distance(output: np.ndarray, style: np.ndarray, bins: int = 64) -> float:
    """1 − histogram intersection per sRGB channel, averaged (0 = identical histograms)."""
    distances = []
    for c in range(3):
        ha, _ = np.histogram(output[..., c], bins=bins, range=(0.0, 1.0))
        hb, _ = np.histogram(style[..., c], bins=bins, range=(0.0, 1.0))
        distances.append(1.0 - np.minimum(ha / ha.sum(), hb / hb.sum()).sum())
    return float(np.mean(distances))


def _normalised(x: np.ndarray) -> np.ndarray:
    return (x - x.mean()) / (x.std() + 1e-6)


def structure_ssim(output: np.ndarray, content: np.ndarray) -> float:
    """SSIM of the two luminances after removing each one's mean and scale.

    Gaussian window σ=1.5; z-scored inputs, stabilising constants for a data range of 4σ.
    A global tone change scores 1; lost or invented edges and detail lower it."""
    x = _normalised(luminance(output))
    y = _normalised(luminance(content))
    c1, c2 = (0.01 * 4) ** 2, (0.03 * 4) ** 2

    def blur(img):
        return cv2.GaussianBlur(img, (11, 11), 1.5, borderType=cv2.BORDER_REFLECT)

    mx, my = blur(x), blur(y)
    vx, vy, cxy = blur(x * x) - mx * mx, blur(y * y) - my * my, blur(x * y) - mx * my
    ssim = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2))
    return float(ssim.mean())


def gradient_correlation(output: np.ndarray, content: np.ndarray) -> float:
    """Pearson correlation of the Sobel gradient magnitudes of the two luminances."""
    def magnitude(rgb):
        lum = luminance(rgb).astype(np.float32)
        gx = cv2.Sobel(lum, cv2.CV_32F, 1, 0, ksize=3)
        gy = cv2.Sobel(lum, cv2.CV_32F, 0, 1, ksize=3)
        return np.hypot(gx, gy).ravel()
    return float(np.corrcoef(magnitude(output), magnitude(content))[0, 1])


def reinhard(content: np.ndarray, style: np.ndarray) -> np.ndarray:
    """Reinhard et al. colour transfer: per-channel mean/std matching in CIELAB."""
    c, s = srgb_to_lab(content), srgb_to_lab(style)
    cm, cs = c.reshape(-1, 3).mean(0), c.reshape(-1, 3).std(0) + 1e-6
    sm, ss = s.reshape(-1, 3).mean(0), s.reshape(-1, 3).std(0)
    return lab_to_srgb((c - cm) / cs * ss + sm).astype(np.float32)


def _flow(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    grey = [cv2.cvtColor((np.clip(x, 0, 1) * 255).astype(np.uint8), cv2.COLOR_RGB2GRAY) for x in (a, b)]
    return dis.calc(grey[0], grey[1], None)


def _warp(img: np.ndarray, flow: np.ndarray) -> np.ndarray:
    h, w = flow.shape[:2]
    gx, gy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    return cv2.remap(img.astype(np.float32), gx + flow[..., 0], gy + flow[..., 1],
                     cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def flow_and_mask(plate_a: np.ndarray, plate_b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Forward flow a→b on the plates and the mask of pixels that pass the forward-backward check."""
    forward, backward = _flow(plate_a, plate_b), _flow(plate_b, plate_a)
    back_at_target = _warp(backward, forward)
    mismatch = np.sum((forward + back_at_target) ** 2, axis=-1)
    bound = 0.01 * (np.sum(forward ** 2, -1) + np.sum(back_at_target ** 2, -1)) + 0.5
    return forward, mismatch < bound


def warping_error(frames: list[np.ndarray], flows: list[tuple[np.ndarray, np.ndarray]]) -> float:
    """Mean squared difference between each frame and the next one warped back onto it,
    over non-occluded pixels (flows from flow_and_mask on the plates)."""
    errors = []
    for (a, b), (flow, mask) in zip(zip(frames, frames[1:]), flows):
        diff = np.sum((a - _warp(b, flow)) ** 2, axis=-1)
        errors.append(diff[mask].mean())
    return float(np.mean(errors))


def colour_coherence(output: np.ndarray, plate: np.ndarray, bin_size: float = 4.0, min_pixels: int = 24) -> float:
    """How much the output's colour varies among plate pixels of nearly the same colour, beyond
    a smooth function of that colour (CIELAB units; a pure grade scores about 0).

    Plate pixels are binned by CIELAB colour (cubes of `bin_size`); in every bin with at least
    `min_pixels` pixels the output colour is fitted as an affine function of the plate colour
    (what any smooth colour map is, that locally), and the residual is what no colour map
    explains: blotches, halos, a region of one colour split into two. The result is the RMS
    residual over all binned pixels."""
    source = srgb_to_lab(plate).reshape(-1, 3)
    target = srgb_to_lab(output).reshape(-1, 3)
    keys = np.floor(source / bin_size).astype(np.int64)
    _, labels, counts = np.unique(keys, axis=0, return_inverse=True, return_counts=True)
    labels = labels.ravel()
    squared, total = 0.0, 0
    for label in np.nonzero(counts >= min_pixels)[0]:
        rows = labels == label
        design = np.c_[source[rows], np.ones(rows.sum())]
        coefficients, *_ = np.linalg.lstsq(design, target[rows], rcond=None)
        squared += float(((target[rows] - design @ coefficients) ** 2).sum())
        total += int(rows.sum())
    return float(np.sqrt(squared / max(total, 1)))


def neutral_tint(image: np.ndarray, near: float = 5.0) -> np.ndarray:
    """An image's grey balance (a*, b*): the mean chroma of its near-neutral pixels (chroma below
    `near`, L* 15–95), or of its least saturated 5% when fewer than 1% are near-neutral."""
    lab = srgb_to_lab(image).reshape(-1, 3)
    lab = lab[(lab[:, 0] > 15) & (lab[:, 0] < 95)]
    chroma = np.hypot(lab[:, 1], lab[:, 2])
    grey = chroma < near
    if grey.mean() < 0.01:
        grey = chroma <= np.quantile(chroma, 0.05)
    return lab[grey, 1:].mean(axis=0)


def neutral_drift(output: np.ndarray, plate: np.ndarray, style: np.ndarray, near: float = 5.0) -> float:
    """Chroma added to the plate's near-neutral pixels beyond the style's own grey balance
    (CIELAB units, mean over those pixels; 0 = greys took the style's tint and nothing else).

    Near-neutral: plate chroma below `near`, L* 15–95. Each such pixel may keep its own small
    chroma around the style's tint; only the excess counts."""
    plate_lab, out_lab = srgb_to_lab(plate).reshape(-1, 3), srgb_to_lab(output).reshape(-1, 3)
    plate_chroma = np.hypot(plate_lab[:, 1], plate_lab[:, 2])
    grey = (plate_chroma < near) & (plate_lab[:, 0] > 15) & (plate_lab[:, 0] < 95)
    if not grey.any():
        return 0.0
    away = np.linalg.norm(out_lab[grey, 1:] - neutral_tint(style, near), axis=1)
    return float(np.maximum(away - plate_chroma[grey], 0.0).mean())


def delta_e_2000(a: np.ndarray, b: np.ndarray) -> float:
    """Mean CIEDE2000 difference (Sharma, Wu & Dalal 2005) between two sRGB images."""
    l1, a1, b1 = np.moveaxis(srgb_to_lab(a).reshape(-1, 3), 1, 0)
    l2, a2, b2 = np.moveaxis(srgb_to_lab(b).reshape(-1, 3), 1, 0)
    c_bar = (np.hypot(a1, b1) + np.hypot(a2, b2)) / 2
    g = 0.5 * (1 - np.sqrt(c_bar ** 7 / (c_bar ** 7 + 25.0 ** 7)))
    a1p, a2p = (1 + g) * a1, (1 + g) * a2
    c1, c2 = np.hypot(a1p, b1), np.hypot(a2p, b2)
    h1, h2 = np.arctan2(b1, a1p) % (2 * np.pi), np.arctan2(b2, a2p) % (2 * np.pi)
    chromatic = c1 * c2 != 0
    dh = np.where(chromatic, (h2 - h1 + np.pi) % (2 * np.pi) - np.pi, 0.0)
    d_big_h = 2 * np.sqrt(c1 * c2) * np.sin(dh / 2)
    l_bar, c_bar2 = (l1 + l2) / 2, (c1 + c2) / 2
    h_bar = np.where(~chromatic, h1 + h2, np.where(np.abs(h1 - h2) <= np.pi, (h1 + h2) / 2,
                                                   np.where(h1 + h2 < 2 * np.pi, (h1 + h2) / 2 + np.pi,
                                                            (h1 + h2) / 2 - np.pi)))
    t = (1 - 0.17 * np.cos(h_bar - np.radians(30)) + 0.24 * np.cos(2 * h_bar)
         + 0.32 * np.cos(3 * h_bar + np.radians(6)) - 0.20 * np.cos(4 * h_bar - np.radians(63)))
    s_l = 1 + 0.015 * (l_bar - 50) ** 2 / np.sqrt(20 + (l_bar - 50) ** 2)
    s_c, s_h = 1 + 0.045 * c_bar2, 1 + 0.015 * c_bar2 * t
    r_t = -np.sin(np.radians(60) * np.exp(-((np.degrees(h_bar) - 275) / 25) ** 2)) * \
        2 * np.sqrt(c_bar2 ** 7 / (c_bar2 ** 7 + 25.0 ** 7))
    d_l, d_c = (l2 - l1) / s_l, (c2 - c1) / s_c
    d_h = d_big_h / s_h
    return float(np.sqrt(d_l ** 2 + d_c ** 2 + d_h ** 2 + r_t * d_c * d_h).mean())
