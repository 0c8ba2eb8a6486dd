"""Draws the ShotStyle toolbar icon (ShotStyle.png, 24x24 RGBA) with the standard library only.

The PNG is committed beside this module; ``python -m shotstyle.nodes.nuke.icon`` rewrites it.
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

SIZE = 24
ICON_PATH = Path(__file__).with_name("ShotStyle.png")


def _pixel(x: int, y: int) -> bytes:
    """A rounded square with a warm-to-cool diagonal grade and a light diagonal stroke."""
    corner = 4
    dx = max(corner - x, x - (SIZE - 1 - corner), 0)
    dy = max(corner - y, y - (SIZE - 1 - corner), 0)
    if dx * dx + dy * dy > corner * corner:
        return bytes((0, 0, 0, 0))
    t = (x + y) / (2.0 * (SIZE - 1))
    warm, cool = (240, 150, 60), (50, 110, 210)
    rgb = [int(w + (c - w) * t) for w, c in zip(warm, cool)]
    if abs(x - y) <= 1 and 4 <= x <= SIZE - 5:
        rgb = [245, 245, 240]
    return bytes(rgb + [255])


def png_bytes() -> bytes:
    """The icon as PNG file bytes (deterministic)."""
    raw = b"".join(b"\x00" + b"".join(_pixel(x, y) for x in range(SIZE)) for y in range(SIZE))

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))

    header = struct.pack(">IIBBBBB", SIZE, SIZE, 8, 6, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b""))


if __name__ == "__main__":
    ICON_PATH.write_bytes(png_bytes())
