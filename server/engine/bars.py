"""Letterbox and pillarbox bars, and borders: edges of an image that are not picture.

A keyframe delivered as 2.39:1 inside a 16:9 frame, or a style frame grabbed from a film, has
black bars at two opposite edges. A reference still taken from a look book, a web page or a
print often sits in a white, cream or grey border. Learnt from as picture, bars are a large
share of the image's blacks: they move every tonal rank (so the picture's grade changes), and
the style's bars are counterparts the plate's shadows can be sent to. A border of a light
neutral is worse: it gives a style with no greys of its own (a red sunset) a grey balance, and
a 6% white border around the shared pairs' styles moved their grades by ΔE 21-35 on average
(grey: 14-30). Training therefore fits the grade and makes the keyframe targets from the
pictures inside them (`picture_box`); the network still learns on the whole keyframe, the bars'
target being their grade, because every frame of the shot has the bars when it is rendered
(learnt without them, pair 1's sea came out dark rather than red on the letterboxed frames).

Bars are found from the edges inwards: whole rows (columns) of which at least DARK_SHARE of
the pixels are of the colour of the edge line — black: at most BAR_LEVEL in every channel;
another colour: within BORDER_TOLERANCE of it — at *both* opposite edges, of one colour, each at
least MIN_BAR of the frame, of nearly one size (BALANCE: bars are centred), and each ending at
once (EDGE_SHARE): the picture's first line, or the one after it (a downscaled edge is a blend),
is mostly not of that colour. The picture's line next to a bar is left out as well: downscaled,
it blends bar and picture, and a line of greys that blend makes was enough to move a red
sunset's grey balance (pair 1: ΔE 5.8 from the grade without the border; 0.5 without that line).
Borders inside borders (a letterboxed still on a white page) are found one within another. A
night sky black to the top edge, or an overcast sky white to it, has no twin at the bottom; an
object shot on black (a perfume bottle, a face, fire, a lit house at night: the Deep Photo
Style Transfer pairs have several) fades into its background line by line and leaves unequal
margins: all stay picture. Together the bars must leave at least MIN_PICTURE of the frame, so
an image that is nearly all black is not cut down to a sliver. None of the 105 images of the
other Deep Photo Style Transfer pairs, the shared pairs or the walk clip has bars or a border.
"""

from __future__ import annotations

import math

from torch import Tensor

from shotstyle.server.engine.colourmath import acescct_to_linear

# Scene-linear level of a bar's pixels: black, its grain, and a video-range black (16/255) read
# as full range (0.0052).
BAR_LEVEL = 0.006
# Share of a row's pixels that must be of the bar's colour (burnt-in subtitles in a bar leave most of it black).
DARK_SHARE = 0.9
# Each bar's least size, a share of the frame's height (width), and at least 2 rows (columns).
MIN_BAR = 0.02
# Two bars differ by at most this share of the larger (and 2 lines).
BALANCE = 0.1
# The picture's first line (or the next) has at most this share of pixels of the bar's colour.
EDGE_SHARE = 0.5
# The least share of the frame left as picture.
MIN_PICTURE = 0.5
# A border of another colour than black (a still framed in white or grey on a page or a web
# site): its pixels are within BAR_LEVEL plus this share of its colour's brightest channel of
# that colour, in each channel (scene-linear: 8-bit compression noise on white is about 2%).
BORDER_TOLERANCE = 0.04
# Borders inside borders (a letterboxed still on a white page) are found one within another, at
# most this many deep.
NESTING = 3


def _black(colour: Tensor) -> bool:
    """Whether a border's colour (3, scene-linear) is black: at most BAR_LEVEL in every channel."""
    return bool((colour.abs() <= BAR_LEVEL).all())


def _near(linear: Tensor, colour: Tensor) -> Tensor:
    """H×W: which pixels of a 3×H×W scene-linear image have a border's colour (`colour`, 3): black
    bars' pixels are at most BAR_LEVEL in every channel; another border's differ from its colour
    by at most BAR_LEVEL plus BORDER_TOLERANCE times the colour's brightest channel, in each."""
    if _black(colour):
        return linear.abs().amax(dim=0) <= BAR_LEVEL
    reach = BAR_LEVEL + BORDER_TOLERANCE * float(colour.abs().amax())
    return ((linear - colour[:, None, None]).abs() <= reach).all(dim=0)


def _shares(linear: Tensor, dim: int) -> tuple[list[float], list[float]]:
    """For the lines across `dim` of a 3×H×W image (dim 1: rows, 2: columns), the share of each
    line's pixels with the colour of the first line, and with the colour of the last; both
    empty when those two colours differ (a border's opposite is of its colour)."""
    first, last = (linear.select(dim, index).median(dim=1).values for index in (0, -1))
    if not bool(_near(last[:, None, None], first).all()) or not bool(_near(first[:, None, None], last).all()):
        return [], []
    across = 1 if dim == 1 else 0   # of the H×W match: along each row, or down each column
    leading = _near(linear, first).float().mean(dim=across).tolist()
    if _black(first) and _black(last):   # black bars match by one rule, whatever their grain's level
        return leading, leading
    return leading, _near(linear, last).float().mean(dim=across).tolist()


def _bars(leading_share: list[float], trailing_share: list[float], least_picture: int) -> tuple[int, int]:
    """(leading, trailing) counts of bar lines, given each line's share of pixels of the leading
    and of the trailing border's colour; (0, 0) unless both ends have one and they leave
    `least_picture` lines (see the module doc)."""
    size = len(leading_share)
    if not size:
        return 0, 0
    lead = [value >= DARK_SHARE for value in leading_share]
    trail = [value >= DARK_SHARE for value in trailing_share]
    leading = lead.index(False) if False in lead else size
    trailing = trail[::-1].index(False) if False in trail else size
    picture = size - leading - trailing
    if min(leading, trailing) < max(2, MIN_BAR * size) or picture < max(MIN_PICTURE * size, least_picture):
        return 0, 0
    if abs(leading - trailing) > max(2, BALANCE * max(leading, trailing)):
        return 0, 0
    first = leading_share[leading:leading + 2]
    last = trailing_share[size - trailing - 2:size - trailing]
    if min(first) > EDGE_SHARE or min(last) > EDGE_SHARE:
        return 0, 0
    return leading, trailing


def picture_box(image: Tensor, least_picture: int = 1) -> tuple[slice, slice]:
    """(rows, columns) of the picture inside the letterbox and pillarbox bars and the borders of a
    1×3×H×W working-space (ACEScct) image (the whole image when it has none, or when they would
    leave fewer than `least_picture` rows or columns)."""
    linear = acescct_to_linear(image[0])
    height, width = linear.shape[-2:]
    top, bottom, left, right = 0, height, 0, width
    # The picture keeps MIN_PICTURE of the whole frame however deep borders nest, and
    # `least_picture` lines once its edge lines are left out.
    least_rows = max(least_picture + 2, math.ceil(MIN_PICTURE * height))
    least_columns = max(least_picture + 2, math.ceil(MIN_PICTURE * width))
    for _ in range(NESTING):
        above, below = _bars(*_shares(linear[:, top:bottom, left:right], 1), least_rows)
        inner_top, inner_bottom = top + above, bottom - below
        before, after = _bars(*_shares(linear[:, inner_top:inner_bottom, left:right], 2), least_columns)
        if not (above or below or before or after):
            break
        top, bottom, left, right = inner_top, inner_bottom, left + before, right - after
        # The picture's edge line next to a border: in a downscaled image, a blend of the two.
        top, bottom = top + (above > 0), bottom - (below > 0)
        left, right = left + (before > 0), right - (after > 0)
    return slice(top, bottom), slice(left, right)
