"""GPU benchmark (issue 11): one table of what a GPU server delivers, against the issue's targets.

Runs on the best device there is (CUDA, else the CPU, reporting CPU figures); one command,
about 3 minutes on an H200:

- network: ms per frame through `Stylizer` for `hrnet-fast` and `hrnet` at 1920×1080 and
  3840×2160, "array" (working-space numpy array in and out: upload, network, read-back) and
  "device" (a tensor already on the device, synchronised); host overhead = array − device
  (target at 4K: ≤ 2× device); peak device memory.
- agreement: the device against the CPU on the same model and 960×540 frame: mean |difference|
  as a share of the mean effect (target ≤ 1%) and max (target ≤ 0.01 ACEScct), for the
  precision the engine uses (IEEE float32) and, as evidence for that choice, TF32 and bfloat16
  autocast. On a CPU: the accelerator path (device.Execution) against the CPU path, bfloat16
  autocast on the CPU and TF32 emulated (conv operands rounded to TF32's 10-bit mantissa).
- render: `shotstyle render --in-process` on 1920×1080 RGBA half zip EXRs, frames/s against
  the network-only rate (target ≥ 0.8×), and through a local server on the same device against
  in-process (target ≥ 0.9×).
- train: `hrnet-fast` + look at 512 px through that server: steps/s of one job alone (target
  ≥ 150, a 300-step training ≤ 2 s), and the aggregate of four jobs at once (target ≥ 1.5×
  alone).

Frames: the walk clip and style from $SHOTSTYLE_SHARED_DATA (else ../shared/data), else the
copies shipped with shotstyle (`shotstyle.examples`). Usage: python bench/gpu.py [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import torch
import torch.nn.functional as F

REPO = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("SHOTSTYLE_SHARED_DATA", REPO.parent / "shared" / "data"))
SIZES = {"1920x1080": (1080, 1920), "3840x2160": (2160, 3840)}
AGREEMENT_SIZE = (540, 960)
TRAIN_RESOLUTION = 512
Row = tuple[str, str, str, str]


def sources() -> tuple[str, str]:
    """(a plate, the style image): the shared clip when present, else the shipped example."""
    plate, style = SHARED / "clip" / "walk.0001.jpg", SHARED / "styles" / "seed_in47.png"
    if plate.exists() and style.exists():
        return str(plate), str(style)
    from shotstyle import examples  # (a GPU machine running from a source tree may not have it)
    return examples.PLATE.replace("####", "0001"), examples.STYLE


def plate(height: int, width: int) -> np.ndarray:
    """The plate in the working space, resized to height × width."""
    from shotstyle.server.engine.pipeline import load_working
    x = torch.from_numpy(load_working(sources()[0])).permute(2, 0, 1)[None]
    x = F.interpolate(x, size=(height, width), mode="bilinear", align_corners=False)
    return np.ascontiguousarray(x[0].permute(1, 2, 0).numpy())


def model(arch: str) -> Any:
    """The issue's measurement model: seeded weights plus small noise (bench/engine.py's)."""
    from shotstyle.server.engine.modelfile import StyleModel
    from shotstyle.server.engine.networks import build_network
    torch.manual_seed(0)
    network = build_network(arch)
    for parameter in network.parameters():
        parameter.data += torch.randn_like(parameter) * 0.01
    return StyleModel(network.eval(), {"loss": "bench"})


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(work: Callable[[], Any], device: torch.device, runs: int) -> float:
    """Median ms of `runs` calls after one warm-up, the device synchronised around each."""
    work()
    times = []
    for _ in range(runs):
        synchronize(device)
        start = time.perf_counter()
        work()
        synchronize(device)
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


# ------------------------------------------------------------------------------ network

def network_rows(device: torch.device, quick: bool) -> tuple[list[Row], dict[tuple[str, str], float]]:
    from shotstyle.server.engine.inference import Stylizer
    rows: list[Row] = []
    array_ms: dict[tuple[str, str], float] = {}
    for arch in ("hrnet-fast", "hrnet"):
        stylizer = Stylizer(model(arch), device=str(device))
        for size, (height, width) in SIZES.items():
            if quick and size != "1920x1080":
                continue
            runs = 1 if device.type == "cpu" and arch == "hrnet" else (3 if device.type == "cpu" else 10)
            frame = plate(height, width)
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(device)
            on_array = timed(lambda: stylizer(frame), device, runs)
            x = torch.from_numpy(frame).to(device).permute(2, 0, 1)[None]
            on_device = timed(lambda: stylizer.tensors(x), device, runs)
            peak = f", peak {torch.cuda.max_memory_allocated(device) / 2**30:.1f} GiB" if device.type == "cuda" else ""
            array_ms[(arch, size)] = on_array
            overhead = on_array - on_device
            target = " (target ≤ 2×)" if size == "3840x2160" else ""
            rows.append((f"network {arch}", size, f"array {on_array:.1f} ms, device {on_device:.1f} ms{peak}",
                         f"host overhead {overhead:.1f} ms = {overhead / on_device:.2f}× device{target}"))
        del stylizer
    return rows, array_ms


# ------------------------------------------------------------------------------ agreement

def agreement(reference: np.ndarray, other: np.ndarray, frame: np.ndarray) -> str:
    effect = np.abs(reference - frame).mean()
    difference = np.abs(other - reference)
    share = difference.mean() / effect
    verdict = "ok" if share <= 0.01 and difference.max() <= 0.01 else "OUTSIDE the bound"
    return f"mean {difference.mean():.2e} = {100 * share:.2f}% of effect {effect:.4f}, max {difference.max():.4f}: {verdict}"


@contextmanager
def tf32(device: torch.device) -> Iterator[None]:
    """TF32 convs and matmuls: on CUDA for real; on a CPU by rounding conv operands to 10 bits."""
    if device.type == "cuda":
        torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = True
        try:
            yield
        finally:
            torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
        return
    original = torch.nn.Conv2d._conv_forward

    def rounded(x: torch.Tensor) -> torch.Tensor:
        bits = x.float().contiguous().view(torch.int32)
        return ((bits + 0x1000) & ~0x1FFF).view(torch.float32)

    def conv(self: torch.nn.Conv2d, x: torch.Tensor, weight: torch.Tensor, bias: Any) -> torch.Tensor:
        return original(self, rounded(x), rounded(weight), bias)
    torch.nn.Conv2d._conv_forward = conv  # type: ignore[method-assign]
    try:
        yield
    finally:
        torch.nn.Conv2d._conv_forward = original  # type: ignore[method-assign]


@contextmanager
def bf16(device: torch.device) -> Iterator[None]:
    with torch.autocast(device.type, dtype=torch.bfloat16):
        yield


def agreement_rows(device: torch.device) -> list[Row]:
    from shotstyle.server.engine.device import execution_for
    from shotstyle.server.engine.inference import Stylizer
    rows: list[Row] = []
    frame = plate(*AGREEMENT_SIZE)
    size = f"{AGREEMENT_SIZE[1]}x{AGREEMENT_SIZE[0]}"
    cpu = torch.device("cpu")
    for arch in ("hrnet-fast", "hrnet"):
        reference = Stylizer(model(arch), device="cpu")(frame)
        execution = execution_for(device, accelerator_path=True)
        other = Stylizer(model(arch), execution=execution)
        name = "CUDA" if device.type == "cuda" else "CPU accelerator path"
        rows.append((f"agreement {arch}: {name} float32 vs CPU", size, agreement(reference, other(frame), frame),
                     "target ≤ 1%, max ≤ 0.01"))
        for label, context in (("TF32" if device.type == "cuda" else "TF32 emulated", tf32),
                               ("bfloat16 autocast", bf16)):
            with context(device if device.type == "cuda" else cpu):
                candidate = other(frame)
            rows.append((f"agreement {arch}: {label} vs CPU float32", size, agreement(reference, candidate, frame),
                         "not used: evidence for float32"))
    return rows


# ------------------------------------------------------------------------------ render, server, training

def write_plates(folder: Path, frames: int) -> None:
    from shotstyle.media.frame import Frame
    from shotstyle.media.writing import write_frame
    from shotstyle.server.engine.colour import from_working
    height, width = SIZES["1920x1080"]
    linear = from_working(plate(height, width), "ACEScg")
    pixels = np.concatenate([linear, np.ones((height, width, 1), np.float32)], axis=2)
    window = (0, 0, width, height)
    for number in range(1, frames + 1):
        frame = Frame(pixels, ["R", "G", "B", "A"], ["half"] * 4, window, window, {"compression": "zip"},
                      colourspace="ACEScg")
        write_frame(str(folder / f"plate.{number:04d}.exr"), frame)


def render_fps(folder: Path, frames: int, out: str, *how: str) -> float:
    """Frames/s between the first and the last frame written (start-up and model load excluded)."""
    command = [sys.executable, "-m", "shotstyle.cli", "render", "--model", str(folder / "look.safetensors"),
               "--in", str(folder / "plate.####.exr"), "--out", str(folder / out / "s.####.exr"),
               "--frames", f"1-{frames}", "--compression", "zip", "--json-progress", *how]
    result = subprocess.run(command, capture_output=True, text=True)
    elapsed = sorted(json.loads(line)["elapsed"] for line in result.stdout.splitlines()
                     if line.startswith("{") and json.loads(line).get("event") == "frame"
                     and json.loads(line).get("status") == "rendered")
    if len(elapsed) < 2:
        raise RuntimeError(f"render {' '.join(how)} failed: {(result.stderr or result.stdout)[-400:]}")
    return (len(elapsed) - 1) / (elapsed[-1] - elapsed[0])


@contextmanager
def server(folder: Path, device: torch.device) -> Iterator[str]:
    """A server on `device` with the folder's model store; its address."""
    process = subprocess.Popen([sys.executable, "-m", "shotstyle.server", "--port", "0", "--device", str(device),
                                "--models", str(folder / "store"), "--no-server-file"],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert process.stdout is not None
        for line in process.stdout:
            if "listening on" in line:
                yield line.split("listening on ")[1].split()[0]
                return
        raise RuntimeError("the server did not start")
    finally:
        process.terminate()
        process.wait(60)


def train_rate(address: str, jobs: int, steps: int) -> tuple[float, float]:
    """(aggregate steps/s, seconds from the first step to the last job done) for `jobs` at once,
    each from its own client (as several artists would send them)."""
    from shotstyle.plugin import codec
    from shotstyle.plugin.client import Client, follow
    keyframe_path, style_path = sources()
    keyframe, style = codec.encode_file(keyframe_path, frame=1), codec.encode_file(style_path, frame=0)
    params = {"steps": steps, "resolution": TRAIN_RESOLUTION, "loss": "look", "arch": "hrnet-fast",
              "preview_every": 0}
    clients = [Client(address, timeout=600) for _ in range(jobs)]
    started: list[float] = []

    def first_step(event: dict) -> None:
        if not started:
            started.append(time.perf_counter())
    try:
        running = [client.train([keyframe], style, f"bench{n}", params) for n, client in enumerate(clients)]
        for job in running:
            follow(job, on_progress=first_step, timeout=1200)
        took = time.perf_counter() - started[0]
    finally:
        for client in clients:
            client.close()
    return jobs * steps / took, took


def pipeline_rows(device: torch.device, array_ms: dict[tuple[str, str], float], quick: bool) -> list[Row]:
    from shotstyle.server.engine.modelfile import save_model
    rows: list[Row] = []
    cuda = device.type == "cuda"
    frames = 48 if cuda else (4 if quick else 8)
    steps = 300 if cuda else (4 if quick else 10)
    network_fps = 1000 / array_ms[("hrnet-fast", "1920x1080")]
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        write_plates(folder, frames)
        save_model(model("hrnet-fast"), str(folder / "look.safetensors"))
        in_process = render_fps(folder, frames, "in-process", "--in-process")
        rows.append(("render --in-process hrnet-fast, zip EXR", "1920x1080",
                     f"{in_process:.1f} frames/s = {in_process / network_fps:.2f}× network-only "
                     f"({network_fps:.1f}/s)", "target ≥ 0.8×"))
        with server(folder, device) as address:
            served = render_fps(folder, frames, "served", "--server", address)
            rows.append(("render through a local server, zip EXR", "1920x1080",
                         f"{served:.1f} frames/s = {served / in_process:.2f}× in-process", "target ≥ 0.9×"))
            alone, took = train_rate(address, 1, steps)
            rows.append(("train hrnet-fast + look, one job", f"long side {TRAIN_RESOLUTION}",
                         f"{alone:.1f} steps/s ({steps} steps in {took:.1f} s)", "target ≥ 150 steps/s"))
            together, took = train_rate(address, 4, steps)
            rows.append(("train hrnet-fast + look, four jobs at once", f"long side {TRAIN_RESOLUTION}",
                         f"{together:.1f} steps/s in all = {together / alone:.2f}× one alone ({took:.1f} s)",
                         "target ≥ 1.5×" if cuda else "a CPU trains one at a time"))
    return rows


# ------------------------------------------------------------------------------ the table

def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1080p only, few frames and steps (a smoke run)")
    args = parser.parse_args()
    from shotstyle.server.engine.device import pick_device
    device = pick_device(None)
    begun = time.perf_counter()
    rows, array_ms = network_rows(device, args.quick)
    rows += agreement_rows(device)
    rows += pipeline_rows(device, array_ms, args.quick)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {os.cpu_count()} cores"
    print(f"bench/gpu.py on {device} ({name}), torch {torch.__version__}, {time.perf_counter() - begun:.0f} s, "
          f"load average {os.getloadavg()[0]:.1f}")
    headers = ("measurement", "size", "result", "target / note")
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    print("| " + " | ".join(h.ljust(w) for h, w in zip(headers, widths)) + " |")
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for row in rows:
        print("| " + " | ".join(c.ljust(w) for c, w in zip(row, widths)) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
