"""One image in memory (`Frame`): its data window's pixels, channels and their storage formats, its
windows and header; its views' colour channels (a stereo EXR has two); the half-float range
(`HALF_MAX`: values beyond it are clamped and counted, never made ±Inf); how many frames to
read or write at once on this machine (`io_threads`)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from shotstyle.server.errors import FrameIOError


# Cores per thread reading or writing frames (each EXR read or write also uses OpenEXR's threads).
CORES_PER_IO_THREAD = 4


HALF_MAX = float(np.finfo(np.float16).max)  # 65504


@dataclass(frozen=True)
class View:
    """One view's colour channels in a Frame (a stereo EXR has two): indices of R, G, B and alpha."""

    name: str                      # its name in ``multiView``; "" for an ordinary image
    rgb: tuple[int, int, int]
    alpha: int | None


@dataclass
class Frame:
    """One image: the data window's pixels (H×W×C float32, channels in file order) plus its header.

    Frames that arrive as half raw buffers keep float16 pixels (media.payloads); every reader
    here gives float32, and `rgb()` is float32 either way."""

    pixels: np.ndarray
    channels: list[str]
    channel_formats: list[str]
    data_window: tuple[int, int, int, int]
    display_window: tuple[int, int, int, int]
    attributes: dict[str, Any]
    source: str | None = None
    colourspace: str | None = None
    nonfinite: int = 0
    # Values beyond the half range already clamped to ±HALF_MAX on the way here (the frame pipeline's half output,
    # a server's half-float reply).
    clamped: int = 0
    # OpenImageIO type names ("float2", "string[2]", "matrix"...) of `attributes`, so they write back as read.
    attribute_types: dict[str, str] = field(default_factory=dict)
    # Tile width and height of the file it was read from (None: scanlines); an EXR is written with them.
    tiles: tuple[int, int] | None = None

    def _where(self) -> str:
        return self.source or "frame"

    def views(self) -> list["View"]:
        """Every view's colour channels: the image's own R, G, B (and A) first, then, in a multi-view
        (stereo) EXR, each other view that has its own (``left.R``, ``left.G``, ``left.B``, ``left.A``).

        By the OpenEXR convention the default view (first in ``multiView``) owns the plain channels
        and another view's carry its name before the channel's own. FrameIOError without R, G, B.
        """
        names = self.attributes.get("multiView")
        names = [str(n) for n in names] if isinstance(names, (list, tuple)) and names else [""]
        found = [View(names[0], self.rgb_indices(), self.alpha_index())]
        lowered = [c.lower() for c in self.channels]
        for name in names[1:]:
            prefix = name.lower() + "."
            if all(prefix + c in lowered for c in "rgb"):
                rgb = tuple(lowered.index(prefix + c) for c in "rgb")
                alpha = lowered.index(prefix + "a") if prefix + "a" in lowered else None
                found.append(View(name, rgb, alpha))  # type: ignore[arg-type]
        return found

    def rgb_indices(self) -> tuple[int, int, int]:
        """Indices of the R, G, B channels (plain or of the un-named layer); FrameIOError if there are none."""
        lowered = [c.lower() for c in self.channels]
        for names in (("r", "g", "b"), ("red", "green", "blue"), ("rgba.r", "rgba.g", "rgba.b")):
            if all(n in lowered for n in names):
                return tuple(lowered.index(n) for n in names)  # type: ignore[return-value]
        if "y" in lowered:
            raise FrameIOError(
                f"{self._where()}: luminance-only image (channels {', '.join(self.channels)}); shotstyle needs R, G, B. "
                "Luminance/chroma EXRs are read by OpenImageIO as luminance only: convert the file to RGB first."
            )
        raise FrameIOError(
            f"{self._where()}: no R, G, B channels (channels are {', '.join(self.channels)}); "
            "shuffle the colour layer into R, G, B before sending it to shotstyle"
        )

    def alpha_index(self) -> int | None:
        """Index of the alpha channel, or None."""
        lowered = [c.lower() for c in self.channels]
        for name in ("a", "alpha", "rgba.a"):
            if name in lowered:
                return lowered.index(name)
        return None

    def rgb(self) -> np.ndarray:
        """H×W×3 float32 copy of the RGB channels."""
        return np.ascontiguousarray(self.pixels[:, :, list(self.rgb_indices())], dtype=np.float32)

    def with_rgb(self, rgb: np.ndarray) -> "Frame":
        """A new Frame with RGB replaced by ``rgb`` (H×W×3); every other channel and the header unchanged."""
        return self.with_views([rgb], self.views()[:1])

    def with_views(self, rgbs: list[np.ndarray], views: list["View"]) -> "Frame":
        """A new Frame with each of ``views``' RGB replaced (H×W×3 each); every other channel and the header
        unchanged."""
        height, width = self.pixels.shape[:2]
        pixels = self.pixels.copy()
        for rgb, view in zip(rgbs, views):
            if rgb.shape != (height, width, 3):
                raise FrameIOError(f"{self._where()}: new RGB is {rgb.shape}, the frame needs {(height, width, 3)}")
            pixels[:, :, list(view.rgb)] = rgb
        return replace(self, pixels=pixels, attributes=dict(self.attributes),
                       attribute_types=dict(self.attribute_types), nonfinite=0, clamped=0)


def io_threads() -> int:
    """How many frames to read, or write, at once on this machine: one per `CORES_PER_IO_THREAD`
    cores, one on a small machine (its cores belong to the network)."""
    return max(1, int((os.cpu_count() or 1) // CORES_PER_IO_THREAD))


def beyond_half(pixels: np.ndarray, channels: list[int] | None = None) -> int:
    """How many finite values of ``pixels`` (in ``channels``; None: all) lie beyond the half-float range."""
    values = pixels if channels is None else pixels[..., channels]
    count = int(np.count_nonzero(np.abs(values) > HALF_MAX))  # NaN is not counted, ±Inf is: taken off below
    return count - int(np.count_nonzero(np.isinf(values))) if count else 0


def clamp_to_half(pixels: np.ndarray, channels: list[int] | None = None) -> np.ndarray:
    """``pixels`` with finite values beyond the half-float range (in ``channels``; None: all) clamped to
    ±HALF_MAX: a copy when there are any, else ``pixels`` itself. ±Inf and NaN stay as they are."""
    if not beyond_half(pixels, channels):
        return pixels
    out = np.array(pixels, copy=True)
    view = out if channels is None else out[..., channels]
    finite = np.isfinite(view)
    clipped = np.where(finite, np.clip(view, -HALF_MAX, HALF_MAX), view)
    if channels is None:
        out[...] = clipped
    else:
        out[..., channels] = clipped
    return out
