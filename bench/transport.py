"""Transport benchmark: what the ZeroMQ round trip costs next to the network itself.

For 960x540 and 1920x1080 RGBA half frames, one table (best of N, milliseconds per frame; the
paths are measured interleaved and the minimum taken, since a shared machine's load only
ever adds time):

* in-process     stylize_frame on a Frame already in memory (what `render --in-process` does)
* server raw     the same frame through a local server as a raw half buffer (client encode,
                 send, server decode, stylize, encode, reply, client decode)
* raw overhead   server raw minus the server's own stylize time for that request (the server
                 reports it in the reply's ``timings_ms``): what transport adds, measured on the
                 same request, so it does not depend on how busy a shared machine is
* est. ratio     (in-process + raw overhead) / in-process: the target is <= 1.05
* server EXR / EXR overhead   the same with EXR file bytes (what Nuke/Resolve send; the host's
                 own EXR write/read is not counted): what EXR costs a GPU budget, in ms
* codec raw / codec EXR   encode + decode of one frame, both directions, no network, no server

Model: an untrained `hrnet-fast` (speed does not depend on training).

    .venv/bin/python bench/transport.py [--repeats 5] [--sizes 960x540,1920x1080]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from typing import Callable, List, Tuple

import numpy as np


def best_ms(works: List[Callable[[], float]], repeats: int) -> List[Tuple[float, float]]:
    """(best time, best time minus what the work reports as server compute) of each piece of work
    (which returns that server time in ms, or 0), run interleaved ``repeats`` times after a warm-up."""
    for work in works:
        work()  # warm-up: caches, allocator, lazy imports
    best = [(float("inf"), float("inf"))] * len(works)
    for _ in range(repeats):
        for index, work in enumerate(works):
            start = time.perf_counter()
            server_ms = work()
            took = (time.perf_counter() - start) * 1000
            best[index] = (min(best[index][0], took), min(best[index][1], took - server_ms))
    return best


def test_frame(width: int, height: int):
    from shotstyle.media.frame import Frame

    grid = np.mgrid[0:height, 0:width].astype(np.float32)
    y, x = grid[0], grid[1]
    rgb = np.stack([x / width, y / height, 0.5 + 0.5 * np.sin(x / 37.0) * np.cos(y / 23.0)], -1)
    alpha = (x * (2.0 / width)).clip(0.0, 1.0)[..., None]
    pixels = np.concatenate([rgb * alpha, alpha], -1).astype(np.float16).astype(np.float32)
    return Frame(pixels=pixels, channels=["R", "G", "B", "A"], channel_formats=["half"] * 4,
                 data_window=(0, 0, width, height), display_window=(0, 0, width, height),
                 attributes={"compression": "zip"}, colourspace="ACEScg")


def start_server(root: str) -> Tuple[subprocess.Popen, str]:
    server_file = os.path.join(root, "run", "server.json")
    proc = subprocess.Popen([sys.executable, "-m", "shotstyle.server", "--port", "0", "--device", "cpu",
                             "--models", os.path.join(root, "models"), "--server-file", server_file],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            with open(server_file) as handle:
                info = json.load(handle)
            if info.get("pid") == proc.pid:
                return proc, info["address"]
        except (OSError, ValueError):
            pass
        time.sleep(0.1)
    proc.kill()
    raise RuntimeError("the benchmark server did not start")


def main(argv: List[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--sizes", default="960x540,1920x1080")
    args = parser.parse_args(argv)

    import torch

    from shotstyle.media.payloads import frame_from_raw, frame_to_raw
    from shotstyle.media.reading import decode_image_bytes
    from shotstyle.media.writing import encode_exr_bytes
    from shotstyle.plugin.client import Client
    from shotstyle.plugin.codec import EncodedFrame
    from shotstyle.server.engine.inference import Stylizer
    from shotstyle.server.engine.modelfile import StyleModel, load_model, save_model
    from shotstyle.server.engine.networks import build_network
    from shotstyle.server.engine.pipeline import stylize_frame

    root = tempfile.mkdtemp(prefix="shotstyle-bench-")
    torch.manual_seed(0)
    model_path = os.path.join(root, "models", "bench.safetensors")
    os.makedirs(os.path.dirname(model_path))
    save_model(StyleModel(build_network("hrnet-fast"), {"loss": "look"}), model_path)
    stylizer = Stylizer(load_model(model_path), "cpu")
    proc, address = start_server(root)
    rows = []
    try:
        client = Client(address, timeout=300)
        for size in args.sizes.split(","):
            width, height = (int(v) for v in size.lower().split("x"))
            frame = test_frame(width, height)
            exr = encode_exr_bytes(frame)

            def through_server(ef: EncodedFrame, decode: Callable[[EncodedFrame], object]) -> float:
                result, frames, _ = client.call("stylize", {"model": "bench"}, [ef])
                decode(frames[0])
                return float(result["timings_ms"]["stylize"])

            (in_process, _), (raw, raw_overhead), (exr_trip, exr_overhead), (codec_raw, _), (codec_exr, _) = best_ms([
                lambda: stylize_frame(stylizer, frame) and 0.0,
                lambda: through_server(frame_to_raw(frame, "float16"), frame_from_raw),
                lambda: through_server(EncodedFrame("file", {"format": "exr"}, exr), lambda ef: None),
                lambda: frame_from_raw(frame_to_raw(frame_from_raw(frame_to_raw(frame, "float16")), "float16"))
                and 0.0,
                lambda: decode_image_bytes(encode_exr_bytes(decode_image_bytes(exr))) and 0.0,
            ], args.repeats)
            rows.append((f"{width}x{height}", in_process, raw, raw_overhead, exr_trip, exr_overhead, codec_raw,
                         codec_exr))
        client.shutdown()
        client.close()
        proc.wait(60)
    finally:
        if proc.poll() is None:
            proc.kill()
    print(f"transport benchmark: RGBA half, untrained hrnet-fast, CPU x{torch.get_num_threads()} threads, "
          f"best of {args.repeats} (ms per frame)\n")
    print("| frame | in-process | server raw | raw overhead | est. ratio | server EXR | EXR overhead | codec raw "
          "| codec EXR |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name, in_process, raw, raw_overhead, exr_trip, exr_overhead, codec_raw, codec_exr in rows:
        print(f"| {name} | {in_process:.1f} | {raw:.1f} | {raw_overhead:.1f} | "
              f"{(in_process + raw_overhead) / in_process:.3f}x | {exr_trip:.1f} | {exr_overhead:.1f} | "
              f"{codec_raw:.1f} | {codec_exr:.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
