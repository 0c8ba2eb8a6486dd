"""Farm rendering benchmark: one process vs three chunked processes, I/O overlap, and resume cost.

Renders the walk clip (../shared/data/clip, 60 frames) with `shotstyle render --in-process`
and prints one table:

* network only: `Stylizer` on frames already in memory, in working space (the ceiling);
* compute only: `stylize_frame` on frames already read (adds colour conversion, alpha...);
* 1 process: one `shotstyle render` of all frames, steady-state rate from its per-frame
  timestamps (reader/writer threads overlap I/O; target ≥ 0.8× the network-only rate) and
  wall-clock rate including start-up;
* 3 processes: three chunks (1-20, 21-40, 41-60) rendered at once into one folder;
* resume: the same command again over the finished folder (target ≤ 1 s for 60 frames).

``--hd`` first converts the clip to 1920×1080 half-float EXRs (the issue's film-resolution case).
``--model`` benchmarks a trained model; by default an untrained default `hrnet-fast` (same cost).
CPU time is shared with whatever else runs on the machine: treat figures as indicative.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CLIP = Path(os.environ.get("SHOTSTYLE_SHARED_DATA", REPO.parent / "shared" / "data")) / "clip"


def default_model(folder: Path) -> str:
    from shotstyle.server.engine.modelfile import StyleModel, save_model
    from shotstyle.server.engine.networks import build_network
    path = folder / "untrained.safetensors"
    save_model(StyleModel(build_network("hrnet-fast"), {"loss": "look", "steps": 0}), str(path))
    return str(path)


def hd_plates(folder: Path, frames: int) -> str:
    """The clip upscaled to 1920×1080 and converted to ACEScg half EXRs (through the colour module)."""
    import cv2
    from shotstyle.media.frame import Frame
    from shotstyle.media.reading import read_frame
    from shotstyle.media.writing import write_frame
    from shotstyle.server.engine.colour import from_working, to_working
    folder.mkdir()
    for frame in range(1, frames + 1):
        srgb = cv2.resize(read_frame(str(CLIP / f"walk.{frame:04d}.jpg")).rgb(), (1920, 1080),
                          interpolation=cv2.INTER_CUBIC)
        acescg = from_working(to_working(srgb, "sRGB")[0], "ACEScg")
        write_frame(str(folder / f"plate.{frame:04d}.exr"),
                    Frame(acescg, ["R", "G", "B"], ["half"] * 3, (0, 0, 1920, 1080), (0, 0, 1920, 1080), {}))
    return str(folder / "plate.####.exr")


def in_memory_rates(model: str, pattern: str, frames: int, threads: int | None) -> tuple[float, float]:
    from shotstyle.media.reading import read_frame
    from shotstyle.plugin.sequences import SequencePattern
    from shotstyle.server.engine.colour import to_working
    from shotstyle.server.engine.device import configure_threads
    from shotstyle.server.engine.inference import Stylizer
    from shotstyle.server.engine.modelfile import load_model
    from shotstyle.server.engine.pipeline import stylize_frame
    stylizer = Stylizer(load_model(model))
    if threads:
        configure_threads(stylizer.device, threads)
    sequence = SequencePattern(pattern)
    plates = [read_frame(sequence.path(f)) for f in range(1, frames + 1)]
    working = [to_working(p.rgb(), p.colourspace)[0] for p in plates]
    stylizer(working[0])  # warm-up
    started = time.perf_counter()
    for rgb in working:
        stylizer(rgb)
    network = frames / (time.perf_counter() - started)
    started = time.perf_counter()
    for plate in plates:
        stylize_frame(stylizer, plate)
    compute = frames / (time.perf_counter() - started)
    return network, compute


def render(model: str, pattern: str, out: Path, frames: str, threads: int | None = None) -> subprocess.Popen:
    share = ["--threads", str(threads)] if threads else []
    return subprocess.Popen([sys.executable, "-m", "shotstyle.cli", "render", "--model", model,
                             "--in", pattern, "--out", str(out / "style.####.exr"), "--frames", frames,
                             "--in-process", "--json-progress", *share], stdout=subprocess.PIPE, text=True)


def records(process: subprocess.Popen) -> list[dict]:
    stdout, _ = process.communicate()
    if process.returncode != 0:
        raise SystemExit(f"render failed with exit {process.returncode}:\n{stdout}")
    return [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]


def steady_fps(events: list[dict]) -> float:
    times = sorted(r["elapsed"] for r in events if r.get("event") == "frame" and r["status"] == "rendered")
    return (len(times) - 1) / (times[-1] - times[0]) if len(times) > 1 and times[-1] > times[0] else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="model file (default: an untrained default hrnet-fast)")
    parser.add_argument("--frames", type=int, default=60)
    parser.add_argument("--hd", action="store_true", help="bench on 1920×1080 half EXRs made from the clip")
    parser.add_argument("--threads", type=int, help="CPU threads for every measurement (default: the engine's "
                        "choice, all cores; the three chunks then get a third each)")
    args = parser.parse_args()
    if not CLIP.is_dir():
        raise SystemExit(f"the walk clip is not at {CLIP}; set SHOTSTYLE_SHARED_DATA")
    with tempfile.TemporaryDirectory(prefix="shotstyle-bench-") as scratch:
        folder = Path(scratch)
        model = args.model or default_model(folder)
        pattern = hd_plates(folder / "hd", args.frames) if args.hd else str(CLIP / "walk.####.jpg")
        network, compute = in_memory_rates(model, pattern, min(args.frames, 20), args.threads)
        n = args.frames
        started = time.perf_counter()
        single = records(render(model, pattern, folder / "one", f"1-{n}", args.threads))
        single_wall = time.perf_counter() - started
        third = n // 3
        chunks = [f"1-{third}", f"{third + 1}-{2 * third}", f"{2 * third + 1}-{n}"]
        started = time.perf_counter()
        share = args.threads or max(1, (os.cpu_count() or 1) // 3)  # each chunk its share, as a farm would
        processes = [render(model, pattern, folder / "three", chunk, share) for chunk in chunks]
        for process in processes:
            records(process)
        three_wall = time.perf_counter() - started
        started = time.perf_counter()
        resume = records(render(model, pattern, folder / "one", f"1-{n}"))
        resume_wall = time.perf_counter() - started
        resume_summary = resume[-1]
        assert resume_summary["skipped"] == n and resume_summary["rendered"] == 0, resume_summary

    size = "1920×1080 EXR" if args.hd else "500×281 JPEG"
    single_steady = steady_fps(single)
    print(f"farm render, {n} frames of the walk clip ({size}), in-process, {os.cpu_count()} CPU cores, "
          f"threads per process: {args.threads or 'all'} (1 process) / {share} (3 processes); "
          f"load average at the end {os.getloadavg()[0]:.1f}")
    print(f"{'what':46s} {'frames/s':>9s}  note")
    print(f"{'network only (Stylizer, frames in memory)':46s} {network:9.2f}")
    print(f"{'compute only (stylize_frame, frames read)':46s} {compute:9.2f}")
    print(f"{'1 process, steady state':46s} {single_steady:9.2f}  "
          f"{single_steady / network:.2f}× network-only (target ≥ 0.80)")
    print(f"{'1 process, wall clock incl. start-up':46s} {n / single_wall:9.2f}  {single_wall:.1f} s")
    print(f"{'3 chunked processes at once, wall clock':46s} {n / three_wall:9.2f}  {three_wall:.1f} s, "
          f"--threads {share} each")
    print(f"{'resume over the complete folder':46s} {'':9s}  {resume_wall:.2f} s wall "
          f"(render's own {resume_summary['seconds']:.2f} s; target ≤ 1 s)")


if __name__ == "__main__":
    main()
