"""A still's orientation tag (EXIF / TIFF ``Orientation``, 1 to 8): how its stored pixels turn to
stand as every viewer shows them. A phone stores a portrait photograph sideways with Orientation 6
(turn 90° clockwise) and a camera held upside down with 3; OpenImageIO reads the pixels as stored
and reports the tag.

The style frame and its mattes are taken upright (`upright`): the look's correspondence finds
what each style region *is* from features of an upright picture and expects sky above ground,
and an artist paints a style matte on the image as they see it. (The shared pairs' styles read
sideways moved the default target's region ΔE from 12.5 to 16.3 and its region accuracy from
0.86 to 0.64.) Plates are stylized as they are stored, so outputs keep their geometry.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Callable

import numpy as np

from shotstyle.media.frame import Frame

# Where OpenImageIO puts the tag (from a JPEG's or PNG's EXIF block or a TIFF's own tag).
ORIENTATION_ATTRIBUTE = "Orientation"

# Orientation tag -> (how the stored H×W×C pixels turn upright, what it says in words). The tag names
# where the stored first row and column are shown (the TIFF 6.0 and EXIF Orientation tag, 274):
# 2 mirrors left-right, 3 turns 180°, 4 mirrors top-bottom, 5 transposes, 6 turns 90° clockwise,
# 7 transposes across the other diagonal, 8 turns 90° counter-clockwise.
_TURNS: dict[int, tuple[Callable[[np.ndarray], np.ndarray], str]] = {
    2: (lambda p: p[:, ::-1], "mirrored left to right"),
    3: (lambda p: p[::-1, ::-1], "turned 180°"),
    4: (lambda p: p[::-1, :], "mirrored top to bottom"),
    5: (lambda p: p.transpose(1, 0, 2), "mirrored across its diagonal"),
    6: (lambda p: np.rot90(p, -1), "turned 90° clockwise"),
    7: (lambda p: p.transpose(1, 0, 2)[::-1, ::-1], "mirrored across its other diagonal"),
    8: (lambda p: np.rot90(p, 1), "turned 90° counter-clockwise"),
}


def orientation_of(attributes: dict) -> int:
    """A header's orientation tag, 1 (as stored) where it has none or one outside 1..8."""
    value = attributes.get(ORIENTATION_ATTRIBUTE, 1)
    try:
        tag = int(value)
    except (TypeError, ValueError):
        return 1
    return tag if tag in _TURNS else 1


def turn_said(attributes: dict) -> str | None:
    """How `upright` turns a frame with these header attributes, in words; None when it does not."""
    turn = _TURNS.get(orientation_of(attributes))
    return None if turn is None else turn[1]


def upright(frame: Frame) -> Frame:
    """``frame`` as its orientation tag says it is shown (the same frame where it has none), its tag
    then 1; the windows become the turned pixels' own."""
    turn = _TURNS.get(orientation_of(frame.attributes))
    if turn is None:
        return frame
    pixels = np.ascontiguousarray(turn[0](frame.pixels))
    height, width = pixels.shape[:2]
    return replace(frame, pixels=pixels, data_window=(0, 0, width, height), display_window=(0, 0, width, height),
                   attributes={**frame.attributes, ORIENTATION_ATTRIBUTE: 1})
