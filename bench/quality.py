"""Measure the look: style match, structure kept, colours in the right places, temporal
stability and time, for our models against the plate, Reinhard transfer and per-frame
optimisation.

    .venv/bin/python bench/quality.py            # full run (all pairs, the walk clip, unseen pairs)
    .venv/bin/python bench/quality.py --quick    # two pairs, small, a short clip: < 2 min

Writes under --out (default bench/out/): quality.md (mean over pairs, one row per method; the
walk clip's regions; the unseen pairs), quality.csv (every pair and method), sheet_<pair>.png
contact sheets, sheet_walk_clip.png (frames × methods), walk_regions.png (the fixed regions)
and metrics.png bars. Metrics are computed on display-referred sRGB (see bench/metrics.py):

- style_swd, hist_dist: the output's colour distribution against the style's;
- ssim, grad_corr: the plate's structure kept;
- coherence: output colour spread among plate pixels of nearly the same colour beyond any
  smooth colour map (0 for a pure grade; blotches and halos raise it);
- neutral_drift: chroma added to the plate's near-neutral pixels beyond the style's grey tint;
- warp_ratio: temporal stability on the walk clip (1.0 = as stable as the plates);
- lut_reproduced: the share of a trained model's keyframe effect its LUT alone carries;
- de_ideal (unseen pairs with a known grade): ΔE2000 to the plate put through that grade;
- region_de, region_acc, region_wrong: the look in the right regions of the pairs' hand masks
  (bench/pairregions.py, issue 19), with a "+ mattes" variant given those masks when training
  takes mattes;
- flat_ratio: where the plate is flat the output stays flat (bench/flatness.py; ≤ 1.5 passes),
  with negative controls (a blob, a vignette, a halo put into Reinhard's output) that must fail.

    .venv/bin/python bench/quality.py --pairs-only --methods plate reinhard "hrnet-fast target"
                                                 # the region and flatness tables alone, fast

Trained models also appear as "NAME (LUT only)": their global grade alone. Methods marked
"pipeline check" (VGG-19 with random weights) say nothing about the look.
"""

from __future__ import annotations

import argparse
import csv
import inspect
import sys
import warnings
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import cv2
import numpy as np
import torch

import flatness
import metrics
import pairregions
import regions
import regrades
from shotstyle.server.engine.colour import from_working, to_working
from shotstyle.server.engine.inference import Stylizer
from shotstyle.server.engine.losses import build_loss, locate_vgg_weights
from shotstyle.server.engine.pipeline import load_working
from shotstyle.server.engine.training import TrainConfig, to_training_tensor, train

REPO = Path(__file__).resolve().parent.parent
DATA = REPO.parent / "shared" / "data"
# Clip frames the per-frame optimisation is run on (its cost is linear in frames).
PER_FRAME_CLIP_FRAMES = 3
METRIC_COLUMNS = ("style_swd", "hist_dist", "ssim", "grad_corr", "coherence", "neutral_drift", "warp_ratio",
                  "lut_reproduced", "train_s", "ms_per_frame")
REGION_COLUMNS = ("region_de", "region_acc", "region_wrong", "flat_ratio")
MATTES_SUFFIX = " + mattes"
EXTRA_COLUMNS = ("de_ideal", "style_swd", "ssim", "coherence", "neutral_drift")
LUT_SUFFIX = " (LUT only)"
DEFAULT_METHOD = "hrnet-fast target"
QUICK_SKIPS = ("per-frame look", "hrnet look", "hrnet target")
# Clip frames shown in the clip contact sheet.
SHEET_CLIP_FRAMES = 3


@dataclass
class Method:
    name: str
    # (keyframe, style) in working space -> a function from a working-space frame to its result
    prepare: Callable[[np.ndarray, np.ndarray], Callable[[np.ndarray], np.ndarray]]
    per_frame_cost: bool = False   # True: the "prepare" work is repeated for every frame
    takes_mattes: bool = False     # prepare also takes mattes= (the pair's masks); pairs with masks only
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


class Applied:
    """A trained model as a method's frame function, with its grade alone beside it."""

    def __init__(self, model):
        self.model = model
        self.stylizer = Stylizer(model, device="cpu")

    def __call__(self, frame: np.ndarray) -> np.ndarray:
        return self.stylizer(frame)

    def lut_only(self, frame: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            graded = self.model.network.grade(torch.from_numpy(frame).permute(2, 0, 1)[None])
        return graded[0].permute(1, 2, 0).numpy()


def trained(arch: str, loss: str, steps: int, resolution: int, vgg: str | None = None,
            threads: int | None = None):
    def prepare(keyframe, style, **mattes):
        model = train([keyframe], style, TrainConfig(arch=arch, loss=loss, vgg=vgg, steps=steps,
                                                     resolution=resolution, device="cpu"), **mattes)
        applied = Applied(model)
        if threads:  # the Stylizer sets the process's CPU threads; --threads wins
            torch.set_num_threads(threads)
        return applied
    return prepare


def methods(args) -> list[Method]:
    found = [
        Method("plate", lambda k, s: (lambda f: f)),
        Method("reinhard", reinhard_method, note="Lab mean/std transfer"),
        Method("per-frame look", per_frame_optimisation(args.steps, args.size), per_frame_cost=True,
               note=f"pixels optimised from the plate, {args.steps} steps"),
        Method("grade", trained("grade", "auto", args.steps, args.size, threads=args.threads),
               note="the closed-form grade alone (--arch grade)"),
        Method(DEFAULT_METHOD, trained("hrnet-fast", "target", args.steps, args.size, threads=args.threads),
               note="the default: per-pixel keyframe targets"),
        Method("hrnet target", trained("hrnet", "target", args.steps, args.size, threads=args.threads)),
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
    if "mattes" in inspect.signature(train).parameters:
        found += [Method(m.name + MATTES_SUFFIX, m.prepare, takes_mattes=True, note="the pair's masks as mattes")
                  for m in found if m.name == DEFAULT_METHOD]
    else:
        print("note: train() takes no mattes yet, the '+ mattes' variant is skipped", flush=True)
    if args.quick and not args.methods:   # the quick run keeps one network per loss
        found = [m for m in found if m.name not in QUICK_SKIPS]
    return [m for m in found if not args.methods or m.name in args.methods]


def pair_names(folder: Path, quick: bool) -> list[str]:
    names = sorted((p.stem[2:] for p in folder.glob("in*.png") if (folder / f"tar{p.stem[2:]}.png").exists()),
                   key=lambda n: (len(n), n))
    return names[:2] if quick else names


def look_metrics(out: np.ndarray, plate: np.ndarray, target: np.ndarray, labels=None) -> dict[str, float]:
    """The per-image metrics of an output (display-referred) against its plate and style;
    `labels` (plate, style label images) add the region scores."""
    found = {
        "style_swd": metrics.style_swd(out, target),
        "hist_dist": metrics.histogram_distance(out, target),
        "ssim": metrics.structure_ssim(out, plate),
        "grad_corr": metrics.gradient_correlation(out, plate),
        "coherence": metrics.colour_coherence(out, plate),
        "neutral_drift": metrics.neutral_drift(out, plate, target),
        "flat_ratio": flatness.flat_ratio(out, plate),
    }
    if labels is not None:
        found.update(pairregions.region_scores(out, plate, target, *labels))
    return found


def run_pair(method: Method, content: np.ndarray, style: np.ndarray, labels=None) -> list[tuple[str, Result]]:
    """(method name, result) for the method, and for its LUT alone when it trains a model."""
    started = time.perf_counter()
    mattes = {"mattes": pairregions.pair_mattes(*labels)} if method.takes_mattes else {}
    apply = method.prepare(content, style, **mattes)
    prepared = time.perf_counter()
    output = apply(content)
    done = time.perf_counter()
    out, plate, target = display(output), display(content), display(style)
    values = {**look_metrics(out, plate, target, labels),
              "train_s": 0.0 if method.per_frame_cost else prepared - started,
              "ms_per_frame": 1000 * (done - (started if method.per_frame_cost else prepared))}
    results = [(method.name, Result(values, out))]
    if isinstance(apply, Applied):
        values["lut_reproduced"] = apply.model.metadata["lut_report"]["reproduced"]
        graded = display(apply.lut_only(content))
        results.append((method.name + LUT_SUFFIX, Result(look_metrics(graded, plate, target, labels), graded)))
    return results


@dataclass
class ClipRun:
    values: dict[str, float]
    outputs: list[np.ndarray]
    lut_outputs: list[np.ndarray] | None = None
    lut_report: dict | None = None


def run_clip(method: Method, frames: list[np.ndarray], style: np.ndarray,
             flows: list, plate_error: float) -> ClipRun:
    apply = method.prepare(frames[len(frames) // 2], style)
    started = time.perf_counter()
    outputs = [display(apply(f)) for f in frames]
    per_frame = (time.perf_counter() - started) / len(frames)
    error = metrics.warping_error(outputs, flows)
    run = ClipRun({"warp_ratio": error / plate_error, "clip_ms_per_frame": 1000 * per_frame}, outputs)
    if isinstance(apply, Applied):
        run.lut_outputs = [display(apply.lut_only(f)) for f in frames]
        run.values["lut_warp_ratio"] = metrics.warping_error(run.lut_outputs, flows) / plate_error
        run.lut_report = apply.model.metadata["lut_report"]
    return run


def clip_sheet(path: Path, plates: list[np.ndarray], outputs: dict[str, list[np.ndarray]]) -> None:
    """Rows: a few frames of the clip; columns: the plate and every method."""
    picks = np.linspace(0, len(plates) - 1, SHEET_CLIP_FRAMES).round().astype(int)
    rows = []
    for index in picks:
        tiles = [("plate", plates[index])] + [(name, frames[min(index, len(frames) - 1)])
                                              for name, frames in outputs.items()]
        rows.append(labelled_row(tiles, plates[0].shape[0]))
    cv2.imwrite(str(path), np.concatenate(rows, axis=0))


def regions_picture(path: Path, plate: np.ndarray) -> None:
    """The walk clip's fixed regions drawn over a frame."""
    colours = {"road": (0, 0, 255), "verge": (0, 255, 0), "sky": (255, 0, 0), "bushes": (0, 255, 255),
               "ridge": (255, 0, 255), "ridge_sky": (255, 255, 0)}
    picture = (plate * 255).astype(np.uint8)[..., ::-1].copy()
    overlay = picture.copy()
    for name, mask in regions.masks(*plate.shape[:2]).items():
        overlay[mask] = colours[name]
    cv2.imwrite(str(path), cv2.addWeighted(picture, 0.55, overlay, 0.45, 0))


def labelled_row(tiles: list[tuple[str, np.ndarray]], height: int) -> np.ndarray:
    row = []
    for label, image in tiles:
        image = cv2.resize(image, (round(image.shape[1] * height / image.shape[0]), height))
        image = (image * 255).astype(np.uint8)[..., ::-1].copy()
        cv2.putText(image, label, (6, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 3, cv2.LINE_AA)
        cv2.putText(image, label, (6, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1, cv2.LINE_AA)
        row.append(image)
    return np.concatenate(row, axis=1)


def contact_sheet(path: Path, content: np.ndarray, style: np.ndarray, outputs: dict[str, np.ndarray]) -> None:
    tiles = [("content", content), ("style", style)] + list(outputs.items())
    cv2.imwrite(str(path), labelled_row(tiles, content.shape[0]))


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
        grade = table.get("grade", {})
        coherence = f", coherence ≤ {1.5 * grade['coherence']:.3f} (1.5× the grade's)" if "coherence" in grade else ""
        lines += ["", f"Targets (issue 19): style_swd ≤ {reinhard['style_swd']:.3f} (Reinhard's), ssim ≥ 0.90"
                      f"{coherence}, warp_ratio ≤ 1.05; the region aims are under the region table."]
    return "\n".join(lines) + "\n"


def regions_markdown(region_rows: dict[str, dict], lut_reports: dict[str, dict]) -> str:
    """The walk clip's regions: mean colour and frame-to-frame change per method."""
    lines = ["Walk clip regions (CIELAB of the display image; change: mean frame-to-frame ΔE76 of the "
             "region's mean colour; coh: colour coherence inside the region, 0 for a pure grade, high when "
             "a near-uniform region splits into two colours; ridge halo: coherence of the band above the "
             "ridge with the sky above it). Targets: road |a*|, |b*| ≤ 4; verge hue green to yellow "
             "(60–180°).", "",
             "| method | " + " | ".join(f"{r} L a b / change / coh" for r in regions.POLYGONS) + " | ridge halo |",
             "| --- |" + " ---: |" * (len(regions.POLYGONS) + 1)]
    for name, table in region_rows.items():
        cells = [f"{v['L']:.1f} {v['a']:+.1f} {v['b']:+.1f} / {v['change']:.2f} / {v['coherence']:.2f}"
                 for r, v in table.items() if r in regions.POLYGONS]
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {table['ridge']['halo']:.2f} |")
    for name, report in lut_reports.items():
        lines += ["", f"{name}, walk keyframe at training resolution: LUT alone vs full mean ΔE2000 "
                      f"{report['lut_vs_full_mean']:.2f} (p95 {report['lut_vs_full_p95']:.2f}), full vs plate "
                      f"{report['full_vs_plate_mean']:.2f} (p95 {report['full_vs_plate_p95']:.2f}): the LUT "
                      f"reproduces {100 * report['reproduced']:.0f}% of the effect (target ≥ 80%)."]
    return "\n".join(lines) + "\n"


def _cell(values: list[float], form: str = "{:.3f}") -> str:
    kept = [v for v in values if not np.isnan(v)]
    return form.format(np.mean(kept)) if kept else "–"


def region_markdown(rows: list[dict]) -> str:
    """Issue 19's table (means over the pairs with masks; region-wrong: how many pairs), then
    one line per pair."""
    scored = [r for r in rows if "region_de" in r]
    methods = list(dict.fromkeys(r["method"] for r in scored))
    pairs = list(dict.fromkeys(r["pair"] for r in scored))
    lines = [f"Regions of the pairs' hand masks ({len(pairs)} pairs; bench/pairregions.py: region ΔE76 to the "
             "style's class means, area-weighted; accuracy over pairs with ≥ 2 classes; region-wrong: a class "
             "over 5% moved ≥ 5 ΔE away from its style class).", "",
             "| method | style SWD (Lab) | structure SSIM | region ΔE | region accuracy | pairs region-wrong |",
             "| --- | ---: | ---: | ---: | ---: | ---: |"]
    for method in methods:
        mine = [r for r in scored if r["method"] == method]
        lines.append(f"| {method} | " + " | ".join(_cell([r[c] for r in mine]) for c in
                                                    ("style_swd", "ssim", "region_de", "region_acc")) +
                     f" | {int(sum(r['region_wrong'] for r in mine))} |")
    lines += ["", "Aims (issue 19): automatic, region accuracy ≥ 0.85, region ΔE ≤ 8, region-wrong on at most 1 in "
              "25 pairs; with the masks as mattes, accuracy ≥ 0.95 and region ΔE ≤ 5.",
              "", "Per pair (region ΔE / accuracy, * region-wrong):", ""]
    for pair in pairs:
        mine = [r for r in scored if r["pair"] == pair]
        lines.append(f"- pair {pair} ({int(mine[0]['region_classes'])} classes): " + "; ".join(
            f"{r['method']} {r['region_de']:.1f} / {r['region_acc']:.2f}{' *' if r['region_wrong'] else ''}"
            for r in mine))
    return "\n".join(lines) + "\n"


def flatness_markdown(rows: list[dict]) -> str:
    """Flat plate areas stay flat: per method (negative controls included), the pairs passed."""
    measured = [r for r in rows if not np.isnan(r.get("flat_ratio", np.nan))]
    methods = list(dict.fromkeys(r["method"] for r in measured))
    lines = [f"Flat areas stay flat (bench/flatness.py: the output's ΔE spread in the plate's flat areas over the "
             f"spread of the global colour map it implies, 99th percentile; passes at ≤ {flatness.LIMIT}; pairs "
             "without flat areas are left out). The controls put a blob, a vignette and a halo into Reinhard's "
             "output and must fail.", "",
             "| method | pairs passed | median ratio | worst ratio | per pair |", "| --- | ---: | ---: | ---: | --- |"]
    for method in methods:
        mine = [r for r in measured if r["method"] == method]
        ratios = [r["flat_ratio"] for r in mine]
        lines.append(f"| {method} | {sum(v <= flatness.LIMIT for v in ratios)}/{len(ratios)} | "
                     f"{np.median(ratios):.2f} | {max(ratios):.2f} | " +
                     " ".join(f"{r['pair']}:{r['flat_ratio']:.2f}" for r in mine) + " |")
    return "\n".join(lines) + "\n"


def extras_markdown(extra_rows: list[dict]) -> str:
    """The unseen pairs: per pair and method, and the mean per method."""
    methods = list(dict.fromkeys(r["method"] for r in extra_rows))
    lines = ["Unseen pairs (made by bench/regrades.py: other images under known grades, synthetic scenes). "
             "de_ideal: mean ΔE2000 to the plate through the known grade (lower = the look landed where "
             "it should).", "",
             "| pair | method | " + " | ".join(EXTRA_COLUMNS) + " |", "| --- | --- |" + " ---: |" * len(EXTRA_COLUMNS)]
    for row in extra_rows:
        lines.append(f"| {row['pair']} | {row['method']} | " +
                     " | ".join(f"{row[c]:.3f}" if c in row else "–" for c in EXTRA_COLUMNS) + " |")
    for method in methods:
        mine = [r for r in extra_rows if r["method"] == method]
        lines.append(f"| **mean** | {method} | " + " | ".join(
            f"{np.mean([r[c] for r in mine if c in r]):.3f}" if any(c in r for r in mine) else "–"
            for c in EXTRA_COLUMNS) + " |")
    return "\n".join(lines) + "\n"


def extra_inputs(pair: "regrades.ExtraPair", data: Path, size: int):
    """(plate, style) in working space and the ideal result (display sRGB, or None)."""
    if pair.plate == "synthetic":
        plate_rgb, style_rgb = regrades.SCENES[pair.style]()
        return to_working(plate_rgb, "sRGB")[0], to_working(style_rgb, "sRGB")[0], None
    plate = resized(load_working(str(data / pair.plate)), size)
    style_rgb = regrades.regrade(pair.grade, display(resized(load_working(str(data / pair.style)), size)))
    return plate, to_working(style_rgb, "sRGB")[0], regrades.regrade(pair.grade, display(plate))


def run_extras(chosen: list[Method], data: Path, size: int, out: Path) -> list[dict]:
    rows = []
    for pair in regrades.EXTRA_PAIRS:
        plate, style, ideal = extra_inputs(pair, data, size)
        outputs = {}
        for method in chosen:
            for name, result in run_pair(method, plate, style):
                values = {k: result.values[k] for k in EXTRA_COLUMNS if k in result.values}
                if ideal is not None:
                    values["de_ideal"] = metrics.delta_e_2000(result.image, ideal)
                rows.append({"pair": pair.name, "method": name, **values})
                outputs[name] = result.image
                print(f"extra {pair.name} {name:28s} " + " ".join(f"{k} {v:.3f}" for k, v in values.items()),
                      flush=True)
        if ideal is not None:
            outputs = {"ideal": ideal, **outputs}
        contact_sheet(out / f"sheet_extra_{pair.name.split('(')[0].replace(' ', '_')}.png", display(plate),
                      display(style), outputs)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=Path, default=DATA / "pairs", help="folder of inN/tarN images")
    parser.add_argument("--clip", type=Path, default=DATA / "clip", help="folder of walk.####.jpg frames")
    parser.add_argument("--clip-style", type=Path, default=DATA / "styles" / "seed_in47.png")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "out")
    parser.add_argument("--quick", action="store_true", help="two pairs, small size, short clip, no unseen pairs")
    parser.add_argument("--size", type=int, help="long side of every image (default 256, quick 128)")
    parser.add_argument("--steps", type=int, help="training / optimisation steps (default 100, quick 20)")
    parser.add_argument("--clip-frames", type=int, help="clip frames measured (default 60, quick 6)")
    parser.add_argument("--vgg", help="VGG-19 weights path (else the usual search)")
    parser.add_argument("--random-vgg", action="store_true", help="add the random-VGG pipeline check")
    parser.add_argument("--methods", nargs="*", help="only these methods")
    parser.add_argument("--no-extra", action="store_true", help="skip the unseen pairs")
    parser.add_argument("--only-extra", action="store_true", help="only the unseen pairs")
    parser.add_argument("--pairs-only", action="store_true", help="only the shared pairs (no clip, no unseen pairs)")
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
    names = [] if args.only_extra else pair_names(args.pairs, args.quick)
    notes = {m.name: m.note for m in chosen}
    report = []

    rows, per_method = [], {}
    for pair in names:
        content = resized(load_working(str(args.pairs / f"in{pair}.png")), args.size)
        style = resized(load_working(str(args.pairs / f"tar{pair}.png")), args.size)
        labels = pairregions.pair_labels(args.pairs, pair, content.shape, style.shape)
        outputs = {}
        for method in chosen:
            if method.takes_mattes and labels is None:
                continue
            for name, result in run_pair(method, content, style, labels):
                outputs[name] = result.image
                per_method.setdefault(name, []).append(result.values)
                rows.append({"pair": pair, "method": name, **result.values})
                print(f"pair {pair} {name:30s} " + " ".join(f"{k} {v:.3f}" for k, v in result.values.items()),
                      flush=True)
        if "reinhard" in outputs:
            plate = display(content)
            for name, inject in flatness.CONTROLS.items():
                rows.append({"pair": pair, "method": name,
                             "flat_ratio": flatness.flat_ratio(inject(outputs["reinhard"], plate), plate)})
        contact_sheet(args.out / f"sheet_{pair}.png", display(content), display(style), outputs)
    with warnings.catch_warnings():  # a column that is NaN on every pair (no flat area) stays NaN
        warnings.simplefilter("ignore", RuntimeWarning)
        table = {name: {k: float(np.nanmean([v[k] for v in values])) for k in values[0]}
                 for name, values in per_method.items()}

    clip_files = [] if args.only_extra or args.pairs_only else sorted(args.clip.glob("walk.*.jpg"))[:args.clip_frames]
    if len(clip_files) >= 2 and args.clip_style.exists():
        frames = [resized(load_working(str(p)), args.size) for p in clip_files]
        plates = [display(f) for f in frames]
        flows = [metrics.flow_and_mask(a, b) for a, b in zip(plates, plates[1:])]
        plate_error = metrics.warping_error(plates, flows)
        clip_style = resized(load_working(str(args.clip_style)), args.size)
        clip_outputs, region_rows, lut_reports = {}, {}, {}
        for method in (m for m in chosen if not m.takes_mattes):  # the clip has no masks
            if method.per_frame_cost and len(frames) > PER_FRAME_CLIP_FRAMES:
                # Optimising every frame is linear in frames: measure its stability on a short run.
                n = PER_FRAME_CLIP_FRAMES
                run = run_clip(method, frames[:n], clip_style, flows[:n - 1],
                               metrics.warping_error(plates[:n], flows[:n - 1]))
            else:
                run = run_clip(method, frames, clip_style, flows, plate_error)
            table.setdefault(method.name, {}).update(run.values)
            rows.append({"pair": "walk-clip", "method": method.name, **run.values})
            print(f"clip {method.name:24s} " + " ".join(f"{k} {v:.3f}" for k, v in run.values.items()), flush=True)
            clip_outputs[method.name] = run.outputs
            region_rows[method.name] = regions.region_table(run.outputs, plates[:len(run.outputs)])
            if run.lut_outputs is not None:
                clip_outputs[method.name + LUT_SUFFIX] = run.lut_outputs
                region_rows[method.name + LUT_SUFFIX] = regions.region_table(run.lut_outputs, plates)
                lut_reports[method.name] = run.lut_report
        clip_sheet(args.out / "sheet_walk_clip.png", plates, clip_outputs)
        regions_picture(args.out / "walk_regions.png", plates[len(plates) // 2])
        report.append(regions_markdown(region_rows, lut_reports))

    if table:
        report[:0] = [markdown(table, notes, len(names)), region_markdown(rows), flatness_markdown(rows)]
        bar_chart(args.out / "metrics.png", table)
    if not (args.quick or args.no_extra or args.pairs_only):
        chosen_extra = [m for m in chosen if m.name in ("plate", "reinhard", "grade", DEFAULT_METHOD)]
        extra_rows = run_extras(chosen_extra, args.pairs.parent, args.size, args.out)
        rows += [{**r, "pair": "extra: " + r["pair"]} for r in extra_rows]
        report.append(extras_markdown(extra_rows))
    (args.out / "quality.md").write_text("\n".join(report))
    columns = ["pair", "method"] + list(dict.fromkeys([*METRIC_COLUMNS, *REGION_COLUMNS, "region_classes", "de_ideal",
                                                       "clip_ms_per_frame", "lut_warp_ratio"]))
    with open(args.out / "quality.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    print("\n".join(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
