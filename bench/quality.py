"""Measure the look: style match, structure kept, temporal stability and time, for our models
against the plate, Reinhard transfer and per-frame optimisation.

    .venv/bin/python bench/quality.py            # full run (all pairs + the walk clip), < 20 min
    .venv/bin/python bench/quality.py --quick    # two pairs, small, a short clip: < 2 min

Writes under --out (default bench/out/): quality.md (mean over pairs, one row per method),
quality.csv (every pair and method), sheet_<pair>.png contact sheets and metrics.png bars.
Metrics are computed on display-referred sRGB (see bench/metrics.py). Methods marked
"pipeline check" (VGG-19 with random weights) say nothing about the look.
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import cv2
import numpy as np
import torch

import metrics
from shotstyle.server.engine.colour import from_working, to_working
from shotstyle.server.engine.inference import Stylizer
from shotstyle.server.engine.losses import build_loss, locate_vgg_weights
from shotstyle.server.engine.pipeline import load_working
from shotstyle.server.engine.training import TrainConfig, to_training_tensor, train

REPO = Path(__file__).resolve().parent.parent
DATA = REPO.parent / "shared" / "data"
# Clip frames the per-frame optimisation is run on (its cost is linear in frames).
PER_FRAME_CLIP_FRAMES = 3
METRIC_COLUMNS = ("style_swd", "hist_dist", "ssim", "grad_corr", "warp_ratio", "train_s", "ms_per_frame")


@dataclass
class Method:
    name: str
    # (keyframe, style) in working space -> a function from a working-space frame to its result
    prepare: Callable[[np.ndarray, np.ndarray], Callable[[np.ndarray], np.ndarray]]
    per_frame_cost: bool = False   # True: the "prepare" work is repeated for every frame
    note: str = ""


@dataclass
class Result:
    values: dict[str, float] = field(default_factory=dict)
    image: np.ndarray | None = None


def display(working: np.ndarray) -> np.ndarray:
    return np.clip(from_working(working, "sRGB"), 0.0, 1.0).astype(np.float32)


def resized(image: np.ndarray, long_side: int) -> np.ndarray:
    height, width = image.shape[:2]
    scale = long_side / max(height, width)
    if scale >= 1:
        return image
    return cv2.resize(image, (round(width * scale), round(height * scale)), interpolation=cv2.INTER_AREA)


def reinhard_method(keyframe, style):
    style_display = display(style)

    def apply(frame):
        return to_working(metrics.reinhard(display(frame), style_display), "sRGB")[0]
    return apply


def per_frame_optimisation(steps: int, resolution: int):
    """Gatys-style: optimise the frame's pixels from the plate with the look loss, `steps` steps."""
    def prepare(keyframe, style):
        style_tensor = to_training_tensor(style, resolution, torch.device("cpu"))

        def apply(frame):
            plate = torch.from_numpy(frame).permute(2, 0, 1)[None].contiguous()
            loss = build_loss("look", style_tensor, [plate])
            pixels = plate.clone().requires_grad_(True)
            optimiser = torch.optim.Adam([pixels], lr=2e-2)
            for step in range(steps):
                optimiser.zero_grad()
                loss(pixels, 0, step)["total"].backward()
                optimiser.step()
            return pixels.detach()[0].permute(1, 2, 0).numpy()
        return apply
    return prepare


def trained(arch: str, loss: str, steps: int, resolution: int, vgg: str | None = None,
            threads: int | None = None):
    def prepare(keyframe, style):
        model = train([keyframe], style, TrainConfig(arch=arch, loss=loss, vgg=vgg, steps=steps,
                                                     resolution=resolution, device="cpu"))
        stylizer = Stylizer(model, device="cpu")
        if threads:  # the Stylizer sets the process's CPU threads; --threads wins
            torch.set_num_threads(threads)
        return lambda frame: stylizer(frame)
    return prepare


def methods(args) -> list[Method]:
    found = [
        Method("plate", lambda k, s: (lambda f: f)),
        Method("reinhard", reinhard_method, note="Lab mean/std transfer"),
        Method("per-frame look", per_frame_optimisation(args.steps, args.size), per_frame_cost=True,
               note=f"pixels optimised from the plate, {args.steps} steps"),
        Method("hrnet-fast look", trained("hrnet-fast", "look", args.steps, args.size, threads=args.threads)),
        Method("hrnet look", trained("hrnet", "look", args.steps, args.size, threads=args.threads)),
    ]
    weights, _ = locate_vgg_weights(args.vgg)
    if weights:
        found.append(Method("hrnet-fast vgg", trained("hrnet-fast", "vgg", args.steps, args.size, weights,
                                                      args.threads)))
    elif args.random_vgg:
        found.append(Method("hrnet-fast vgg-random",
                            trained("hrnet-fast", "vgg", args.steps, args.size, "random", args.threads),
                            note="pipeline check only: random VGG features, the look means nothing"))
    return [m for m in found if not args.methods or m.name in args.methods]


def pair_names(folder: Path, quick: bool) -> list[str]:
    names = sorted((p.stem[2:] for p in folder.glob("in*.png") if (folder / f"tar{p.stem[2:]}.png").exists()),
                   key=lambda n: (len(n), n))
    return names[:2] if quick else names


def run_pair(method: Method, content: np.ndarray, style: np.ndarray) -> Result:
    started = time.perf_counter()
    apply = method.prepare(content, style)
    prepared = time.perf_counter()
    output = apply(content)
    done = time.perf_counter()
    out, plate, target = display(output), display(content), display(style)
    values = {
        "style_swd": metrics.style_swd(out, target),
        "hist_dist": metrics.histogram_distance(out, target),
        "ssim": metrics.structure_ssim(out, plate),
        "grad_corr": metrics.gradient_correlation(out, plate),
        "train_s": 0.0 if method.per_frame_cost else prepared - started,
        "ms_per_frame": 1000 * (done - (started if method.per_frame_cost else prepared)),
    }
    return Result(values, out)


def run_clip(method: Method, frames: list[np.ndarray], style: np.ndarray,
             flows: list, plate_error: float) -> dict[str, float]:
    apply = method.prepare(frames[len(frames) // 2], style)
    started = time.perf_counter()
    outputs = [display(apply(f)) for f in frames]
    per_frame = (time.perf_counter() - started) / len(frames)
    error = metrics.warping_error(outputs, flows)
    return {"warp_ratio": error / plate_error, "clip_ms_per_frame": 1000 * per_frame}


def contact_sheet(path: Path, content: np.ndarray, style: np.ndarray, outputs: dict[str, np.ndarray]) -> None:
    height = content.shape[0]
    tiles = [("content", content), ("style", style)] + list(outputs.items())
    row = []
    for label, image in tiles:
        image = cv2.resize(image, (round(image.shape[1] * height / image.shape[0]), height))
        image = (image * 255).astype(np.uint8)[..., ::-1].copy()
        cv2.putText(image, label, (6, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 3, cv2.LINE_AA)
        cv2.putText(image, label, (6, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1, cv2.LINE_AA)
        row.append(image)
    cv2.imwrite(str(path), np.concatenate(row, axis=1))


def bar_chart(path: Path, table: dict[str, dict[str, float]]) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    shown = [c for c in ("style_swd", "ssim", "grad_corr", "warp_ratio") if any(c in v for v in table.values())]
    figure, axes = plt.subplots(1, len(shown), figsize=(4 * len(shown), 4))
    names = list(table)
    for axis, column in zip(np.atleast_1d(axes), shown):
        axis.bar(range(len(names)), [table[n].get(column, np.nan) for n in names], color="tab:blue")
        axis.set_xticks(range(len(names)), names, rotation=45, ha="right", fontsize=8)
        axis.set_title(column + (" (lower is better)" if column in ("style_swd", "warp_ratio") else ""))
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def markdown(table: dict[str, dict[str, float]], notes: dict[str, str], pairs: int) -> str:
    columns = [c for c in METRIC_COLUMNS if any(c in v for v in table.values())]
    lines = [f"Mean over {pairs} pairs (warp_ratio: walk clip, 1.0 = as stable as the plates).", "",
             "| method | " + " | ".join(columns) + " | note |",
             "| --- |" + " ---: |" * len(columns) + " --- |"]
    for name, values in table.items():
        cells = [f"{values[c]:.3f}" if c in values else "–" for c in columns]
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {notes.get(name, '')} |")
    reinhard = table.get("reinhard")
    if reinhard:
        lines += ["", f"Targets: style_swd ≤ {0.7 * reinhard['style_swd']:.3f} (0.7× Reinhard), "
                      f"ssim ≥ {reinhard['ssim']:.3f} (Reinhard), warp_ratio ≤ 1.1."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=Path, default=DATA / "pairs", help="folder of inN/tarN images")
    parser.add_argument("--clip", type=Path, default=DATA / "clip", help="folder of walk.####.jpg frames")
    parser.add_argument("--clip-style", type=Path, default=DATA / "styles" / "seed_in47.png")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "out")
    parser.add_argument("--quick", action="store_true", help="two pairs, small size, short clip")
    parser.add_argument("--size", type=int, help="long side of every image (default 256, quick 128)")
    parser.add_argument("--steps", type=int, help="training / optimisation steps (default 100, quick 20)")
    parser.add_argument("--clip-frames", type=int, help="clip frames measured (default 60, quick 6)")
    parser.add_argument("--vgg", help="VGG-19 weights path (else the usual search)")
    parser.add_argument("--random-vgg", action="store_true", help="add the random-VGG pipeline check")
    parser.add_argument("--methods", nargs="*", help="only these methods")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    args = parser.parse_args(argv)
    args.size = args.size or (128 if args.quick else 256)
    args.steps = args.steps or (20 if args.quick else 100)
    args.clip_frames = args.clip_frames or (6 if args.quick else 60)
    if args.threads:
        torch.set_num_threads(args.threads)
    if not args.pairs.is_dir():
        print(f"no pairs folder at {args.pairs}", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    chosen = methods(args)
    names = pair_names(args.pairs, args.quick)

    rows, per_method = [], {m.name: [] for m in chosen}
    for pair in names:
        content = resized(load_working(str(args.pairs / f"in{pair}.png")), args.size)
        style = resized(load_working(str(args.pairs / f"tar{pair}.png")), args.size)
        outputs = {}
        for method in chosen:
            result = run_pair(method, content, style)
            outputs[method.name] = result.image
            per_method[method.name].append(result.values)
            rows.append({"pair": pair, "method": method.name, **result.values})
            print(f"pair {pair} {method.name:24s} " + " ".join(f"{k} {v:.3f}" for k, v in result.values.items()),
                  flush=True)
        contact_sheet(args.out / f"sheet_{pair}.png", display(content), display(style), outputs)
    table = {name: {k: float(np.mean([v[k] for v in values])) for k in values[0]}
             for name, values in per_method.items()}

    clip_files = sorted(args.clip.glob("walk.*.jpg"))[:args.clip_frames]
    if len(clip_files) >= 2 and args.clip_style.exists():
        frames = [resized(load_working(str(p)), args.size) for p in clip_files]
        plates = [display(f) for f in frames]
        flows = [metrics.flow_and_mask(a, b) for a, b in zip(plates, plates[1:])]
        plate_error = metrics.warping_error(plates, flows)
        clip_style = resized(load_working(str(args.clip_style)), args.size)
        for method in chosen:
            if method.per_frame_cost and len(frames) > PER_FRAME_CLIP_FRAMES:
                # Optimising every frame is linear in frames: measure its stability on a short run.
                n = PER_FRAME_CLIP_FRAMES
                values = run_clip(method, frames[:n], clip_style, flows[:n - 1],
                                  metrics.warping_error(plates[:n], flows[:n - 1]))
            else:
                values = run_clip(method, frames, clip_style, flows, plate_error)
            table[method.name].update(values)
            rows.append({"pair": "walk-clip", "method": method.name, **values})
            print(f"clip {method.name:24s} warp_ratio {values['warp_ratio']:.3f}", flush=True)

    notes = {m.name: m.note for m in chosen}
    (args.out / "quality.md").write_text(markdown(table, notes, len(names)))
    columns = ["pair", "method"] + list(METRIC_COLUMNS) + ["clip_ms_per_frame"]
    with open(args.out / "quality.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    bar_chart(args.out / "metrics.png", table)
    print(markdown(table, notes, len(names)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
