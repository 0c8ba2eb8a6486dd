"""Engine benchmark: one table of network speed, peak memory, render rate, shot cost and training rate.

Rows (each measured in its own subprocess so its peak RSS is its own):
- network: the network's own work, ms per frame through `Stylizer` (working-space array in →
  out, CPU: no I/O, no colour conversion) for `grade` (the grade alone), `hrnet-fast` and
  `hrnet` at 960×540, 1920×1080 and 3840×2160 (`hrnet` tiled at 4K; one timed frame for
  `hrnet`, the median of several for the others).
- colour: the limit a LUT sets, on the same 1920×1080 frame: OpenColorIO's processor applying
  the model's exported .cube to the ACEScct frame, and the ACEScg → ACEScct → cube → ACEScg
  chain as one OCIO processor; beside them the grade-only model from ACEScg to ACEScg as the
  frame pipeline runs it (input rule, one OCIO pass, finite output).
- frame: where a rendered 1920×1080 RGBA half/zip EXR frame's time goes, one stage at a time in
  one process: reading it (as the render does: half stays half), the pipeline's stages (`prepare`: colour in on the host; `infer`:
  the network; `finish`: colour out; a grade-only model is done whole in `prepare`), writing
  it, for `grade` and `hrnet-fast`; and the CPU time (all threads) of the whole trip with the
  network on the threads the render gives it, whose sum over the cores bounds the render's
  frame rate (the render rows say how near they come).
- render: `shotstyle render --in-process` on 1920×1080 RGBA half EXRs (read, colour,
  stylize, write) for `grade` and `hrnet-fast`, frames/s against the network-only rate and
  against `oiiotool` applying the same .cube chain, one process per frame (an artist's LUT
  workflow, measured first in the same run), where the OpenImageIO package installed it.
- shot: the research note's claim on the 60-frame clip: train once then render 60 frames, vs
  per-frame optimisation (the pixels of each frame optimised with the same loss and step
  count). Step times are measured on a few steps and scaled linearly to the step count.
- train: training steps/s at the default resolution (long side 512) for the default network.

Input frames are the real clip (../shared/data) resized; random pixels without it.
Usage: python bench/engine.py [--quick] [--only network,colour,frame,render,shot,train] [--archs grade,hrnet-fast,hrnet]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("SHOTSTYLE_SHARED_DATA", REPO.parent / "shared" / "data"))
SIZES = {"960x540": (540, 960), "1920x1080": (1080, 1920), "3840x2160": (2160, 3840)}
SHOT_FRAMES = 60
SHOT_STEPS = 300          # TrainConfig's default step count
TIMED_STEPS = 5


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def plate(height: int, width: int) -> np.ndarray:
    """A working-space frame of the given size: the clip's first frame resized, or noise."""
    import torch
    import torch.nn.functional as F
    source = SHARED / "clip" / "walk.0001.jpg"
    if not source.exists():
        return np.random.default_rng(0).random((height, width, 3), dtype=np.float32) * 0.6
    from shotstyle.server.engine.pipeline import load_working
    x = torch.from_numpy(load_working(str(source))).permute(2, 0, 1)[None]
    x = F.interpolate(x, size=(height, width), mode="bilinear", align_corners=False)
    return np.ascontiguousarray(x[0].permute(1, 2, 0).numpy())


def model(arch: str):
    """A network built as the default training builds it (target loss, 512 px: hrnet-fast with
    semantic features), with non-trivial (seeded random) weights; speed does not depend on training."""
    import torch
    from shotstyle.server.engine.modelfile import StyleModel
    from shotstyle.server.engine.networks import REGISTRY, build_network
    torch.manual_seed(0)
    network = build_network(arch, **REGISTRY[arch].build.training_arguments(512, targeted=True))
    for parameter in network.parameters():
        parameter.data += torch.randn_like(parameter) * 0.01
    network.grade.set(network.grade.lut.flip(0) * 0.8 + 0.1)  # a grade that changes every colour
    return StyleModel(network.eval(), {"loss": "bench"})


def times_ms(work, runs: int, clock=time.perf_counter) -> list[float]:
    """Times of ``runs`` calls of ``work()`` after one warm-up, in ms: wall time, or ``clock``'s
    (time.process_time: the CPU time of every thread)."""
    work()
    times = []
    for _ in range(runs):
        start = clock()
        work()
        times.append(1000 * (clock() - start))
    return times


def median_ms(work, runs: int) -> float:
    return statistics.median(times_ms(work, runs))


def cube_file(folder: str, arch: str = "grade") -> str:
    """The bench model's grade exported as a 33-node .cube in ``folder``."""
    from shotstyle.server.engine.lut import cube_text
    from shotstyle.server.engine.networks.base import grade_of
    path = f"{folder}/look.cube"
    Path(path).write_text(cube_text(grade_of(model(arch).network).lut, 33, "bench"))
    return path


# ---------------------------------------------------------------- children (one measurement each)

def child_network(arch: str, size: str, runs: int) -> dict:
    from shotstyle.server.engine.inference import Stylizer
    frame = plate(*SIZES[size])
    stylizer = Stylizer(model(arch), device="cpu")
    tiled = stylizer.tiles and frame.shape[0] * frame.shape[1] > stylizer.tile_pixels
    if runs > 1:
        stylizer(frame)  # warm-up
    times, cpu_times = [], []
    for _ in range(runs):
        start, cpu_start = time.perf_counter(), time.process_time()
        stylizer(frame)
        times.append(time.perf_counter() - start)
        cpu_times.append(time.process_time() - cpu_start)
    return {"ms": 1000 * statistics.median(times), "cpu_ms": 1000 * statistics.median(cpu_times),
            "rss": peak_rss_mib(), "tiled": tiled}


def child_colour(runs: int) -> dict:
    import PyOpenColorIO as ocio
    from shotstyle.server.engine.colour import config, from_working, run_processor
    from shotstyle.server.engine.inference import Stylizer
    working = plate(*SIZES["1920x1080"])
    linear = from_working(working, "ACEScg")
    with tempfile.TemporaryDirectory() as folder:
        cube = ocio.FileTransform(src=cube_file(folder), interpolation=ocio.INTERP_LINEAR)
        cube_only = config().getProcessor(cube).getDefaultCPUProcessor()
        chain = ocio.GroupTransform()
        for step in (ocio.ColorSpaceTransform("ACEScg", "ACEScct"), cube,
                     ocio.ColorSpaceTransform("ACEScct", "ACEScg")):
            chain.appendTransform(step)
        whole_chain = config().getProcessor(chain).getDefaultCPUProcessor()
        stylizer = Stylizer(model("grade"), device="cpu")

        def grade_only_scene_linear() -> None:
            stylizer.grade_on_host(linear, "ACEScg", "ACEScg", 1.0, out=np.empty_like(linear))

        return {"cube": median_ms(lambda: run_processor(cube_only, working.copy()), runs),
                "chain": median_ms(lambda: run_processor(whole_chain, linear.copy()), runs),
                "grade_linear": median_ms(grade_only_scene_linear, runs),
                "copy": median_ms(lambda: working.copy(), runs)}


def write_plates(folder: str, frames: int) -> None:
    """``frames`` 1920×1080 RGBA half/zip ACEScg EXRs, plate.0001.exr on."""
    from shotstyle.media.frame import Frame
    from shotstyle.media.writing import write_frame
    from shotstyle.server.engine.colour import from_working
    height, width = SIZES["1920x1080"]
    linear = from_working(plate(height, width), "ACEScg")
    pixels = np.concatenate([linear, np.ones((height, width, 1), np.float32)], axis=2)
    window = (0, 0, width, height)
    for number in range(1, frames + 1):
        frame = Frame(pixels, ["R", "G", "B", "A"], ["half"] * 4, window, window, {},
                      colourspace="ACEScg")
        write_frame(f"{folder}/plate.{number:04d}.exr", frame)


def child_frame(runs: int) -> dict:
    """ms of each stage of one EXR frame's trip (the fastest of ``runs``, after a warm-up)."""
    from shotstyle.media.reading import read_frame
    from shotstyle.media.writing import write_frame

    def fastest(work) -> float:
        return min(times_ms(work, runs))

    with tempfile.TemporaryDirectory() as folder:
        write_plates(folder, 1)
        path = f"{folder}/plate.0001.exr"
        frame = read_frame(path, half=True)
        out = {"read": fastest(lambda: read_frame(path, half=True)),
               "write": fastest(lambda: write_frame(f"{folder}/out.exr", frame))}
        return out | stages_ms(frame, path, folder, fastest, runs)


def stages_ms(frame, path: str, folder: str, fastest, runs: int) -> dict:
    """`child_frame`'s pipeline stages and whole-trip CPU time for each model."""
    from shotstyle.server.engine.inference import Stylizer
    from shotstyle.server.engine.pipeline import finish, infer, model_tags, prepare
    out = {}
    for arch in ("grade", "hrnet-fast"):
        stylizer = Stylizer(model(arch), device="cpu")
        pending = prepare(frame, stylizer)
        tags = model_tags(stylizer, 1.0)
        out[f"{arch} prepare"] = fastest(lambda: prepare(frame, stylizer))
        out[f"{arch} infer"] = fastest(lambda: infer(stylizer, [pending]))
        finishes = []  # finish converts the network's result in place: a new one for each run, made untimed
        for _ in range(runs + 1):
            results = infer(stylizer, [pending])
            start = time.perf_counter()
            finish(pending, results[0], tags)
            finishes.append(1000 * (time.perf_counter() - start))
        out[f"{arch} finish"] = min(finishes[1:])
        out[f"{arch} cpu"] = frame_cpu_ms(stylizer, path, f"{folder}/out.exr", runs)
    return out


def frame_cpu_ms(stylizer, path: str, written: str, runs: int) -> float:
    """CPU time (every thread) of one frame's whole trip, read to write, with the network on the
    threads `render --in-process` gives it: what a render pays per frame, whatever overlaps."""
    import torch
    from shotstyle.cli.render.inprocess import network_threads
    from shotstyle.media.frame import io_threads
    from shotstyle.media.reading import read_frame
    from shotstyle.media.writing import write_frame
    from shotstyle.server.engine.device import cpu_count
    from shotstyle.server.engine.pipeline import finish, infer, model_tags, prepare

    def trip() -> None:
        pending = prepare(read_frame(path, half=True), stylizer)
        write_frame(written, finish(pending, infer(stylizer, [pending])[0], model_tags(stylizer, 1.0)))

    torch.set_num_threads(network_threads(cpu_count(), 2 * io_threads(), stylizer.network.light))
    return min(times_ms(trip, runs, clock=time.process_time))


def child_render(arch: str, frames: int) -> dict:
    from shotstyle.server.engine.modelfile import save_model
    with tempfile.TemporaryDirectory() as folder:
        write_plates(folder, frames)
        save_model(model(arch), f"{folder}/look.safetensors")
        command = [sys.executable, "-m", "shotstyle.cli", "render",
                   "--model", f"{folder}/look.safetensors", "--in", f"{folder}/plate.####.exr",
                   "--out", f"{folder}/out.####.exr", "--frames", f"1-{frames}", "--in-process",
                   "--json-progress"]
        result = subprocess.run(command, capture_output=True, text=True, check=True)
    elapsed = [json.loads(line)["elapsed"] for line in result.stdout.splitlines()
               if line.startswith("{") and json.loads(line).get("event") == "frame"]
    # Rate between the first and the last finished frame: excludes start-up and model load.
    return {"fps": (len(elapsed) - 1) / (elapsed[-1] - elapsed[0]), "frames": len(elapsed)}


def oiiotool() -> str | None:
    """The oiiotool beside this Python (the OpenImageIO package installs one), or on PATH."""
    beside = Path(sys.executable).parent / "oiiotool"
    return str(beside) if beside.exists() else shutil.which("oiiotool")


def child_oiiotool(frames: int) -> dict:
    """frames/s of oiiotool applying the .cube chain to the render's plates, one process a frame."""
    tool = oiiotool()
    with tempfile.TemporaryDirectory() as folder:
        write_plates(folder, frames)
        cube = cube_file(folder)
        env = {**os.environ, "OCIO": os.environ.get("OCIO", "ocio://default")}
        start = time.perf_counter()
        for number in range(1, frames + 1):
            subprocess.run([tool, f"{folder}/plate.{number:04d}.exr", "--colorconvert", "ACEScg", "ACEScct",
                            "--ociofiletransform", cube, "--colorconvert", "ACEScct", "ACEScg",
                            "-d", "half", "--compression", "zip", "-o", f"{folder}/out.{number:04d}.exr"],
                           check=True, env=env, capture_output=True)
        return {"fps": frames / (time.perf_counter() - start)}


def child_shot(arch: str) -> dict:
    """Seconds per training step, per render frame and per pixel-optimisation step on the clip."""
    import torch
    from shotstyle.server.engine.inference import Stylizer
    from shotstyle.server.engine.losses import build_loss
    from shotstyle.server.engine.pipeline import load_working
    from shotstyle.server.engine.training import TrainConfig, to_training_tensor, train
    keyframe = load_working(str(SHARED / "clip" / "walk.0001.jpg"))
    style = load_working(str(SHARED / "styles" / "seed_in47.png"))
    config = TrainConfig(arch=arch, loss="look", steps=TIMED_STEPS)
    start = time.perf_counter()
    trained = train([keyframe], style, config)
    train_step = (time.perf_counter() - start) / TIMED_STEPS

    stylizer = Stylizer(trained, device="cpu")
    frames = [load_working(str(SHARED / "clip" / f"walk.{n:04d}.jpg")) for n in range(1, 6)]
    stylizer(frames[0])
    start = time.perf_counter()
    for frame in frames:
        stylizer(frame)
    render_frame = (time.perf_counter() - start) / len(frames)

    # Per-frame optimisation (Gatys-style): the frame's pixels are the parameters.
    device = torch.device("cpu")
    content = to_training_tensor(frames[1], config.resolution, device)
    loss = build_loss("look", to_training_tensor(style, config.resolution, device), [content])
    pixels = content.clone().requires_grad_(True)
    optimiser = torch.optim.Adam([pixels], lr=config.lr)
    start = time.perf_counter()
    for step in range(TIMED_STEPS):
        total = loss(pixels, 0, step)["total"]
        optimiser.zero_grad()
        total.backward()
        optimiser.step()
    pixel_step = (time.perf_counter() - start) / TIMED_STEPS
    return {"train_step": train_step, "render_frame": render_frame, "pixel_step": pixel_step,
            "rss": peak_rss_mib()}


def run_child(*args: str) -> dict:
    result = subprocess.run([sys.executable, __file__, "--child", *args], capture_output=True,
                            text=True)
    if result.returncode != 0:
        return {"error": (result.stderr.strip().splitlines() or ["?"])[-1]}
    return json.loads(result.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------- the table

def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: small sizes, few frames")
    parser.add_argument("--only", default="network,colour,frame,render,shot,train",
                        help="comma-separated parts: network, colour, frame, render, shot, train")
    parser.add_argument("--archs", default="grade,hrnet-fast,hrnet", help="networks of the network rows")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        kind, *rest = args.child
        if kind == "network":
            out = child_network(rest[0], rest[1], int(rest[2]))
        elif kind == "render":
            out = child_render(rest[0], int(rest[1]))
        elif kind == "oiiotool":
            out = child_oiiotool(int(rest[0]))
        elif kind == "colour":
            out = child_colour(int(rest[0]))
        elif kind == "frame":
            out = child_frame(int(rest[0]))
        else:
            out = child_shot(rest[0])
        print(json.dumps(out))
        return 0

    parts = set(args.only.split(","))
    rows: list[tuple[str, str, str, str]] = []
    network_ms: dict[tuple[str, str], float] = {}
    cpu_bound: dict[str, float] = {}  # frames/s the cores allow, by the frame part's CPU time
    if "network" in parts:
        sizes = ["960x540"] if args.quick else list(SIZES)
        for arch in args.archs.split(","):
            for size in sizes:
                runs = 1 if arch == "hrnet" else (2 if args.quick else 4)
                out = run_child("network", arch, size, str(runs))
                if "error" in out:
                    rows.append((f"network {arch}", size, "FAILED", out["error"]))
                    continue
                network_ms[(arch, size)] = out["ms"]
                note = " (tiled)" if out["tiled"] else ""
                rows.append((f"network {arch}{note}", size,
                             f"{out['ms']:.0f} ms/frame (CPU time {out['cpu_ms']:.0f} ms)",
                             f"{out['rss']:.0f}"))
    if "colour" in parts:
        out = run_child("colour", "3" if args.quick else "7")
        if "error" in out:
            rows.append(("colour: OCIO .cube limit", "1920x1080", "FAILED", out["error"]))
        else:
            cube = out["cube"]
            for name, key in (("OCIO .cube processor, ACEScct frame", "cube"),
                              ("OCIO ACEScg→ACEScct→cube→ACEScg, one processor", "chain"),
                              ("grade-only ACEScg→ACEScg (pipeline's host pass)", "grade_linear"),
                              ("copying the frame (memory bandwidth)", "copy")):
                rows.append((f"colour: {name}", "1920x1080", f"{out[key]:.0f} ms ({out[key] / cube:.2f}× the cube)", "-"))
            base = network_ms.get(("grade", "1920x1080"))
            if base:
                rows.append(("network grade vs the cube", "1920x1080", f"{base / cube:.2f}× the cube", "-"))
    if "frame" in parts:
        out = run_child("frame", "2" if args.quick else "5")
        if "error" in out:
            rows.append(("frame: one EXR frame's stages", "1920x1080", "FAILED", out["error"]))
        else:
            rows.append(("frame: read a RGBA half/zip EXR (media)", "1920x1080", f"{out['read']:.0f} ms", "-"))
            rows.append(("frame: write it (media)", "1920x1080", f"{out['write']:.0f} ms", "-"))
            from shotstyle.server.engine.device import cpu_count  # the cores the render's threads are counted from
            cores = cpu_count()
            for arch in ("grade", "hrnet-fast"):
                stages = [out[f"{arch} {stage}"] for stage in ("prepare", "infer", "finish")]
                rows.append((f"frame {arch}: prepare / infer / finish", "1920x1080",
                             " / ".join(f"{ms:.0f}" for ms in stages) + f" ms (sum {sum(stages):.0f})", "-"))
                cpu_bound[arch] = 1000 * cores / out[f"{arch} cpu"]
                rows.append((f"frame {arch}: CPU time read→write, the render's threads", "1920x1080",
                             f"{out[f'{arch} cpu']:.0f} ms: at most {cpu_bound[arch]:.2f} frames/s on "
                             f"{cores} cores", "-"))
    if "render" in parts:
        frames = 4 if args.quick else 12
        lut_fps = None
        if oiiotool():
            out = run_child("oiiotool", str(frames))
            lut_fps = out.get("fps")
            rows.append(("oiiotool ACEScg→ACEScct→cube→ACEScg, a process a frame", "1920x1080",
                         "FAILED" if "error" in out else f"{out['fps']:.2f} frames/s", out.get("error", "-")))
        for arch in ("grade", "hrnet-fast"):
            out = run_child("render", arch, str(frames))
            if "error" in out:
                rows.append((f"render --in-process {arch}", "1920x1080", "FAILED", out["error"]))
                continue
            base = network_ms.get((arch, "1920x1080"))
            ratio = f", {out['fps'] * base / 1000:.2f}× network-only" if base else ""
            ratio += f", {out['fps'] / lut_fps:.2f}× oiiotool" if lut_fps else ""
            ratio += f", {out['fps'] / cpu_bound[arch]:.0%} of the CPU bound" if arch in cpu_bound else ""
            rows.append((f"render --in-process {arch} (EXR→EXR)", "1920x1080",
                         f"{out['fps']:.2f} frames/s{ratio}", "-"))
    if ("shot" in parts or "train" in parts) and not (SHARED / "clip").is_dir():
        rows.append(("shot / train", "-", "skipped: no shared data", "-"))
    elif "shot" in parts or "train" in parts:
        out = run_child("shot", "hrnet-fast")
        if "error" in out:
            rows.append(("shot / train hrnet-fast", "500x281", "FAILED", out["error"]))
        else:
            if "train" in parts:
                rows.append(("train hrnet-fast, look loss", "long side 512",
                             f"{1 / out['train_step']:.2f} steps/s", f"{out['rss']:.0f}"))
            if "shot" in parts:
                once = SHOT_STEPS * out["train_step"] + SHOT_FRAMES * out["render_frame"]
                per_frame = SHOT_FRAMES * SHOT_STEPS * out["pixel_step"]
                rows.append((f"shot: train once ({SHOT_STEPS} steps) + render {SHOT_FRAMES}",
                             "500x281", f"{once:.0f} s", "-"))
                rows.append((f"shot: per-frame optimisation ({SHOT_STEPS} steps × {SHOT_FRAMES})",
                             "500x281", f"{per_frame:.0f} s ({per_frame / once:.1f}× the cost)",
                             "-"))

    # Timings are wall clock; on a shared machine, compare them with the load average.
    print(f"{os.cpu_count()} CPUs, load average at the end {os.getloadavg()[0]:.1f}")
    headers = ("measurement", "size", "result", "peak RSS MiB")
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]

    def line(cells: tuple[str, ...]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths)) + " |"

    print(line(headers))
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for row in rows:
        print(line(row))
    return 0


if __name__ == "__main__":
    sys.exit(main())
