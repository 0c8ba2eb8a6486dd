"""Shot matching: the style frame is the plate's own shot under a known grade.

A colourist's commonest match is a shot to its neighbour: the same scene, another grade. Here the
style is the plate itself (or another frame of the walk clip) through one of bench/regrades.py's
known grades (teal-orange, day-for-night, bleach bypass, warm fade), or through none; the ideal
is the plate through the same grade, so what is left between the result and the ideal is the
look's own error. With no grade (the plate is its own style) nothing should change.

Measured, per case and as a mean per grade: the plate's ΔE76 to the ideal (how far the grade
moves it), the product's closed-form grade (`--arch grade`), and the default's keyframe target
(server/engine/target.py: what the default network is trained to reproduce on the keyframe;
bench/quality.py measures how close the trained network comes). Display-referred CIELAB means.

    .venv/bin/python bench/shotmatch.py [--size 256]
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

import metrics
import quality
import regrades
from shotstyle.server.engine import target
from shotstyle.server.engine.colour import convert, working_space
from shotstyle.server.engine.pipeline import load_working
from shotstyle.server.engine.training import TrainConfig, to_training_tensor, train

# (name, plate, style) under the shared data folder: each pair's plate as its own style, and two frames
# of the walk clip 35 frames apart.
CASES = [*((f"in{n}", f"pairs/in{n}.png", f"pairs/in{n}.png") for n in (1, 2, 3, 5, 6, 8)),
         ("walk10 <- walk45", "clip/walk.0010.jpg", "clip/walk.0045.jpg")]
GRADES = ["none", *regrades.GRADES]


def _delta_e(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(metrics.srgb_to_lab(a) - metrics.srgb_to_lab(b), axis=-1).mean())


def measure(size: int) -> dict[str, list[tuple[str, float, float, float]]]:
    """Per grade: (case, plate, grade, target) ΔE to the ideal."""
    device = torch.device("cpu")
    rows: dict[str, list[tuple[str, float, float, float]]] = {name: [] for name in GRADES}
    for case, plate_path, style_path in CASES:
        content = quality.resized(load_working(str(quality.DATA / plate_path)), size)
        shown = quality.display(quality.resized(load_working(str(quality.DATA / style_path)), size))
        plate_shown = quality.display(content)
        plate = to_training_tensor(content, size, device)
        for name in GRADES:
            style_shown = shown if name == "none" else regrades.regrade(name, shown)
            ideal = plate_shown if name == "none" else regrades.regrade(name, plate_shown)
            style = convert(np.ascontiguousarray(style_shown), "sRGB", working_space())
            model = train([content], style, TrainConfig(arch="grade", resolution=size, device="cpu"))
            with torch.no_grad():
                graded = model.network.grade(plate)
                wanted = target.make_target(plate, graded, to_training_tensor(style, size, device))
            outputs = [quality.display(x[0].permute(1, 2, 0).numpy()) for x in (graded, wanted)]
            rows[name].append((case, _delta_e(plate_shown, ideal), *(_delta_e(out, ideal) for out in outputs)))
            print(f"{case:18s} {name:14s} plate {rows[name][-1][1]:5.2f}  grade {rows[name][-1][2]:5.2f}  "
                  f"target {rows[name][-1][3]:5.2f}", flush=True)
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=256, help="long side of every image (default 256)")
    args = parser.parse_args()
    rows = measure(args.size)
    print(f"\nShot matching, {len(CASES)} cases a grade (ΔE76 to the ideal, mean; lower is better).\n")
    print("| grade | plate | grade (--arch grade) | default's keyframe target |")
    print("| --- | ---: | ---: | ---: |")
    for name, values in rows.items():
        means = np.array([row[1:] for row in values]).mean(axis=0)
        print(f"| {name} | {means[0]:.2f} | {means[1]:.2f} | {means[2]:.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
