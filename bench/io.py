"""Read/write time of one 1920×1080 RGBA half EXR per compression, through shotstyle's media package.

The frame is synthesised (smooth scene-linear gradients with highlights above 1.0, grain and a
soft alpha) so compressors see plate-like data. Prints the median of several runs per row.
Usage: python bench/io.py [--runs N] [--width W --height H]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

import numpy as np

from shotstyle.media.frame import Frame

from shotstyle.media.reading import read_frame

from shotstyle.media.writing import write_frame

COMPRESSIONS = ("zip", "piz", "dwaa", "none")


def synthetic_frame(width: int, height: int, seed: int = 0) -> Frame:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    base = np.stack([x / width, y / height, 0.5 + 0.5 * np.sin(x / 97.0) * np.cos(y / 61.0)], axis=2)
    highlight = 8.0 * np.exp(-(((x - 0.7 * width) ** 2 + (y - 0.3 * height) ** 2) / (0.02 * width * width)))
    rgb = base * 0.6 + highlight[:, :, None] + rng.normal(0.0, 0.01, (height, width, 3)).astype(np.float32)
    alpha = ((x - 0.1 * width) / (0.2 * width)).clip(0.0, 1.0)[:, :, None]
    pixels = np.concatenate([rgb * alpha, alpha], axis=2).astype(np.float16).astype(np.float32)
    window = (0, 0, width, height)
    return Frame(pixels, ["R", "G", "B", "A"], ["half"] * 4, window, window, {}, colourspace="ACEScg")


def timed(call, runs: int) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--width", type=int, default=1920)
    parser.add_argument("--height", type=int, default=1080)
    args = parser.parse_args()
    frame = synthetic_frame(args.width, args.height)
    print(f"{args.width}x{args.height} RGBA half EXR, median of {args.runs} runs, {os.cpu_count()} CPU cores")
    print(f"{'compression':12s} {'write ms':>9s} {'read ms':>9s} {'size MB':>8s}")
    with tempfile.TemporaryDirectory(prefix="shotstyle-bench-") as folder:
        for compression in COMPRESSIONS:
            path = os.path.join(folder, f"frame.{compression}.exr")
            write_ms = 1000 * timed(lambda: write_frame(path, frame, compression=compression), args.runs)
            read_ms = 1000 * timed(lambda: read_frame(path), args.runs)
            size_mb = os.path.getsize(path) / 1e6
            print(f"{compression:12s} {write_ms:9.1f} {read_ms:9.1f} {size_mb:8.2f}")


if __name__ == "__main__":
    main()
