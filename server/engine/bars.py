"""Letterbox and pillarbox bars: black borders that are not picture.

A keyframe delivered as 2.39:1 inside a 16:9 frame, or a style frame grabbed from a film, has
black bars at two opposite edges. Learnt from as picture, they are a large share of the image's
blacks: they move every tonal rank (so the picture's grade changes), and the style's bars are
counterparts the plate's shadows can be sent to. Training therefore fits the grade and makes
the keyframe targets from the pictures inside them (`picture_box`); the network still learns on
the whole keyframe, the bars' target being their grade, because every frame of the shot has
the bars when it is rendered (learnt without them, pair 1's sea came out dark rather than red
on the letterboxed frames).

Bars are found from the edges inwards: whole rows (columns) of which at least DARK_SHARE of
the pixels are at most BAR_LEVEL in every channel, at *both* opposite edges, each at least
MIN_BAR of the frame, of nearly one size (BALANCE: bars are centred), and each ending at once
(EDGE_SHARE): the picture's first line, or the one after it (a downscaled edge is a blend), is
mostly not dark. A night sky black to the top edge has no twin at the bottom; an object shot on
black (a perfume bottle, a face, fire, a lit house at night: the Deep Photo Style Transfer pairs
have several) fades into its background line by line and leaves unequal margins: both stay
picture. Together the bars must leave at least MIN_PICTURE of the frame, so an image that is
nearly all black is not cut down to a sliver.
"""

from __future__ import annotations

from torch import Tensor

from shotstyle.server.engine.colourmath import acescct_to_linear

# Scene-linear level of a bar's pixels: black, its grain, and a video-range black (16/255) read
# as full range (0.0052).
BAR_LEVEL = 0.006
# Share of a row's pixels that must be that dark (burnt-in subtitles in a bar leave most of it black).
DARK_SHARE = 0.9
# Each bar's least size, a share of the frame's height (width), and at least 2 rows (columns).
MIN_BAR = 0.02
# Two bars differ by at most this share of the larger (and 2 lines).
BALANCE = 0.1
# The picture's first line (or the next) has at most this share of dark pixels.
EDGE_SHARE = 0.5
# The least share of the frame left as picture.
MIN_PICTURE = 0.5


def _bars(dark_share: Tensor, least_picture: int) -> tuple[int, int]:
    """(leading, trailing) counts of bar lines, given each line's share of dark pixels; (0, 0)
    unless both ends have one and they leave `least_picture` lines (see the module doc)."""
    share = dark_share.tolist()
    size = len(share)
    bar = [value >= DARK_SHARE for value in share]
    leading = bar.index(False) if False in bar else size
    trailing = bar[::-1].index(False) if False in bar else size
    picture = size - leading - trailing
    if min(leading, trailing) < max(2, MIN_BAR * size) or picture < max(MIN_PICTURE * size, least_picture):
        return 0, 0
    if abs(leading - trailing) > max(2, BALANCE * max(leading, trailing)):
        return 0, 0
    first = share[leading:leading + 2]
    last = share[size - trailing - 2:size - trailing]
    if min(first) > EDGE_SHARE or min(last) > EDGE_SHARE:
        return 0, 0
    return leading, trailing


def picture_box(image: Tensor, least_picture: int = 1) -> tuple[slice, slice]:
    """(rows, columns) of the picture inside the letterbox and pillarbox bars of a 1×3×H×W
    working-space (ACEScct) image (the whole image when it has none, or when they would leave
    fewer than `least_picture` rows or columns)."""
    dark = acescct_to_linear(image[0]).abs().amax(dim=0) <= BAR_LEVEL
    top, bottom = _bars(dark.float().mean(dim=1), least_picture)
    rows = slice(top, dark.shape[0] - bottom)
    left, right = _bars(dark[rows].float().mean(dim=0), least_picture)
    return rows, slice(left, dark.shape[1] - right)
