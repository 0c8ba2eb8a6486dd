"""RGB primaries as colour science: xy chromaticities → RGB-to-XYZ matrices, Bradford adaptation of
the white, and the primaries the Color Interop Forum's colour space ids name. An EXR's header
(`chromaticities`) and an embedded ICC profile (media/iccprofile.py) describe a frame's RGB in these
terms; the engine's OCIO transforms (server/engine/colour.py) build their matrices from them."""

from __future__ import annotations

import numpy as np

from shotstyle.server.errors import ColourError


# xy chromaticities (red, green, blue, white) of the primaries a Color Interop Forum id names
# (the middle part of e.g. srgb_p3d65_scene).
INTEROP_PRIMARIES = {
    "ap1": (0.713, 0.293, 0.165, 0.830, 0.128, 0.044, 0.32168, 0.33767),
    "ap0": (0.7347, 0.2653, 0.0, 1.0, 0.0001, -0.077, 0.32168, 0.33767),
    "rec709": (0.64, 0.33, 0.30, 0.60, 0.15, 0.06, 0.3127, 0.3290),
    "p3d65": (0.680, 0.320, 0.265, 0.690, 0.150, 0.060, 0.3127, 0.3290),
    "rec2020": (0.708, 0.292, 0.170, 0.797, 0.131, 0.046, 0.3127, 0.3290),
    "adobergb": (0.64, 0.33, 0.21, 0.71, 0.15, 0.06, 0.3127, 0.3290),
}
# Above this condition number the chromaticities' RGB -> XYZ matrix is taken as describing no space
# (primaries on one line, a white on a primary): its inverse would amplify float32 rounding beyond use.
MAX_CONDITION = 1e6
# Bradford cone responses (Lam 1985): the chromatic adaptation of the ACES configs' RGB matrices
# and the one ICC profiles' `chad` tags hold.
BRADFORD = np.array([[0.8951, 0.2664, -0.1614], [-0.7502, 1.7135, 0.0367], [0.0389, -0.0685, 1.0296]])


def rgb_to_xyz(chromaticities: tuple[float, ...]) -> np.ndarray:
    """3×3 float64 matrix from linear RGB on these primaries (xy of red, green, blue, white) to CIE XYZ,
    white at Y = 1; ColourError where they describe no colour space."""
    values = np.asarray(chromaticities, dtype=np.float64).reshape(4, 2)
    shown = " ".join(f"{v:g}" for v in values.reshape(-1))
    why = ""
    if not np.all(np.isfinite(values)):
        why = "values that are not finite"
    elif values[3, 1] <= 0:
        why = "a white point with y <= 0"
    else:
        xyz = np.column_stack([values, 1.0 - values.sum(axis=1)])  # chromaticity (x, y, z) of each; no y divides
        primaries = xyz[:3].T
        white = xyz[3] / xyz[3, 1]
        try:
            scale = np.linalg.solve(primaries, white)
        except np.linalg.LinAlgError:
            scale = np.zeros(3)
        matrix = primaries * scale
        if not np.all(scale > 0) or not np.isfinite(np.linalg.cond(matrix)) \
                or np.linalg.cond(matrix) > MAX_CONDITION:
            why = "primaries on one line, or a white point outside them"
        else:
            return matrix
    raise ColourError(f"chromaticities {shown} (the EXR header's red, green, blue and white xy) describe no RGB "
                      f"colour space: {why}; fix or remove the file's chromaticities attribute, or say what the "
                      "RGB is (--colourspace)")


def adaptation(source_white: np.ndarray, destination_white: np.ndarray) -> np.ndarray:
    """3×3 float64 Bradford adaptation of CIE XYZ from one white (XYZ) to another."""
    cones = BRADFORD @ source_white, BRADFORD @ destination_white
    return np.asarray(np.linalg.inv(BRADFORD) @ np.diag(cones[1] / cones[0]) @ BRADFORD)


def chromaticities_matrix(source: tuple[float, ...], destination: tuple[float, ...]) -> np.ndarray:
    """3×3 float64 matrix from linear RGB on primaries ``source`` to linear RGB on ``destination`` (each as
    `rgb_to_xyz` takes them), the white adapted by Bradford: what OCIO's ACES configs use (their
    Rec.709 -> ACEScg matrix is this one to 3e-8)."""
    into_xyz, out_of_xyz = rgb_to_xyz(source), rgb_to_xyz(destination)
    white_adaptation = adaptation(into_xyz.sum(axis=1), out_of_xyz.sum(axis=1))
    return np.asarray(np.linalg.inv(out_of_xyz) @ white_adaptation @ into_xyz)


def xy_of(xyz: np.ndarray) -> np.ndarray:
    """The xy chromaticity of each column of a 3×N XYZ array (2×N)."""
    return np.asarray(xyz[:2] / xyz.sum(axis=0))
