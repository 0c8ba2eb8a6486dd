"""Pictures for people to look at: a frame's RGB as display values, written as an 8-bit sRGB PNG.

The demo's contact sheet and animation and `train --preview` show frames this one way: through
the OCIO config's display view (`colour.to_display`: the built-in config's ACES 2.0 SDR sRGB
view), as an artist's viewer shows them, so highlights above 1.0 roll off instead of clipping.
"""

from __future__ import annotations

import numpy as np

from shotstyle.plugin.codec import EncodedFrame

PREVIEW_WIDTH = 640        # the widest a frame is shown


def display_rgb(rgb: np.ndarray, colourspace: str, width: int = PREVIEW_WIDTH) -> np.ndarray:
    """H×W×3 pixels in `colourspace` as display values 0..1 (the display view), at most `width` wide."""
    import OpenImageIO as oiio

    from shotstyle.server.engine.colour import to_display

    shown = np.clip(to_display(rgb, colourspace), 0, 1)
    height, full = shown.shape[:2]
    if full <= width:
        return shown
    size = (width, max(1, round(height * width / full)))
    resized = oiio.ImageBufAlgo.resize(oiio.ImageBuf(np.ascontiguousarray(shown)), roi=oiio.ROI(0, size[0], 0, size[1]))
    return np.asarray(resized.get_pixels(oiio.FLOAT))


def frame_display(ef: EncodedFrame) -> np.ndarray:
    """A frame as it came over the wire (file bytes or a raw buffer) as display values (`display_rgb`)."""
    from shotstyle.media.payloads import frame_from_raw
    from shotstyle.media.reading import decode_image_bytes

    frame = frame_from_raw(ef) if ef.kind == "raw" else decode_image_bytes(bytes(ef.data), ef.header["format"])
    return display_rgb(frame.rgb(), frame.colourspace or "ACEScg")


def write_png(picture: np.ndarray, path: str) -> None:
    """Display RGB 0..1 (H×W×3) as an 8-bit sRGB PNG (or another type, by `path`'s extension)."""
    from shotstyle.media.frame import Frame
    from shotstyle.media.writing import write_frame

    h, w = picture.shape[:2]
    write_frame(path, Frame(pixels=np.ascontiguousarray(picture, np.float32), channels=["R", "G", "B"],
                            channel_formats=["uint8"] * 3, data_window=(0, 0, w, h), display_window=(0, 0, w, h),
                            attributes={}, colourspace="sRGB"))
