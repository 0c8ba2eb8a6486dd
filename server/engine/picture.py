"""What of a keyframe or a style image the look is learnt from: its picture.

Two kinds of pixel are in an image without being picture. Letterbox and pillarbox bars, and
the border around a still, are one (engine/bars.py). Pixels its alpha leaves uncovered are the
other: a CG element rendered
on a transparent background, a style frame cut out of its photograph. Read for their colour,
uncovered pixels are black: a premultiplied file's RGB is 0 there, and so is a straight PNG's
once OpenImageIO associates its alpha. Like bars, they are then a large share of the image's
blacks. They move every tonal rank, and they give the other image's shadows counterparts that
are not in the picture. Measured with the shared pairs 1 and 3 put on a transparent canvas 1.8
times their size (69% of it uncovered), and the default model trained at 256 px: against the
same model trained on the opaque images, a model trained on the transparent keyframe rendered
the opaque plate ΔE 26.8 and 26.2 away on average, and the keyframe's own picture 12.6 and 19.7
(pair 1's red sky with two pink blobs in it); one trained with the style on the canvas instead,
25.9 and 19.6 (both shots nearly black).

So training takes from each image its `Picture`: the box inside its bars that holds the pixels
its alpha covers (PICTURE_ALPHA or more at the training resolution), and those pixels' mask in
it. The grade (engine/correspondence.py) and the keyframe targets (engine/target.py) read only
the picture. The network still learns on the whole keyframe, with the target of every pixel
that is not picture set to its grade; the renderer leaves uncovered pixels as they are anyway
(engine/pipeline.py).
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor

from shotstyle.server.engine.bars import picture_box

# A pixel at the training resolution is picture when its alpha is at least this: a CG element's
# soft edge, half covered, counts; the background it fades into does not.
PICTURE_ALPHA = 0.5


@dataclass(frozen=True)
class Picture:
    """The picture of a 1×3×H×W image: the box of it that holds the picture (rows, columns), and
    the picture's pixels in that box (1×1×h×w bool; None: all of them)."""

    rows: slice
    columns: slice
    mask: Tensor | None

    def crop(self, image: Tensor) -> Tensor:
        """The box of an N×C×H×W tensor the size of the image."""
        return image[:, :, self.rows, self.columns]

    def size(self) -> tuple[int, int, int]:
        """(height, width) of the box and how many of its pixels are picture."""
        height, width = self.rows.stop - self.rows.start, self.columns.stop - self.columns.start
        return height, width, height * width if self.mask is None else int(self.mask.sum())

    def share_of(self, image: Tensor) -> float:
        """The share of `image`'s pixels that are picture."""
        return self.size()[2] / (image.shape[-2] * image.shape[-1])


def picture_of(image: Tensor, alpha: Tensor | None, least: int = 1) -> Picture:
    """The picture of a 1×3×H×W working-space image whose alpha (1×1×H×W, or None: opaque) says
    which pixels are covered; `least`: the fewest rows or columns bars may leave (bars.picture_box).
    An image that its alpha covers nowhere has an empty box."""
    rows, columns = picture_box(image, least)
    if alpha is None:
        return Picture(rows, columns, None)
    covered = alpha[0, 0, rows, columns] >= PICTURE_ALPHA
    inside_rows = covered.any(dim=1).nonzero()[:, 0].tolist() or [0, -1]
    inside_columns = covered.any(dim=0).nonzero()[:, 0].tolist() or [0, -1]
    top, bottom = rows.start + inside_rows[0], rows.start + inside_rows[-1] + 1
    left, right = columns.start + inside_columns[0], columns.start + inside_columns[-1] + 1
    mask = covered[top - rows.start:bottom - rows.start, left - columns.start:right - columns.start]
    return Picture(slice(top, bottom), slice(left, right), None if bool(mask.all()) else mask[None, None])
