"""Time the look's training path on this machine: the keyframe target, a default training, the
grade alone, and what the semantic features cost a 1080p hrnet-fast frame.

    OMP_WAIT_POLICY=PASSIVE .venv/bin/python bench/look_time.py [--steps N] [--resolution PX]

Uses the shipped walk example (shotstyle.examples), so it runs without ../shared. Prints one
markdown table; figures are wall-clock seconds on this process's CPU threads (say the machine
and its load beside them: other work on the cores changes them).
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np
import torch

from shotstyle.server.engine.pipeline import load_working
from shotstyle.server.engine.target import make_target
from shotstyle.server.engine.training import TrainConfig, to_training_tensor, train

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "walk"


def seconds(work) -> tuple[float, object]:
    start = time.perf_counter()
    result = work()
    return time.perf_counter() - start, result


def frame_ms(network: torch.nn.Module, frame: torch.Tensor, repeats: int = 5) -> float:
    with torch.inference_mode():
        network(frame)
        start = time.perf_counter()
        for _ in range(repeats):
            network(frame)
    return (time.perf_counter() - start) / repeats * 1000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=TrainConfig.steps)
    parser.add_argument("--resolution", type=int, default=TrainConfig.resolution)
    args = parser.parse_args()
    keyframe = load_working(str(EXAMPLE / "walk.0001.jpg"))
    style = load_working(str(EXAMPLE / "seed_in47.jpg"))
    device = torch.device("cpu")
    plate = to_training_tensor(keyframe, args.resolution, device)
    style_tensor = to_training_tensor(style, args.resolution, device)
    rows = []

    target_s, _ = seconds(lambda: make_target(plate, plate, style_tensor))
    rows.append(("keyframe target (semantic regions, transfer, refit)", f"{target_s:.1f} s"))
    grade_s, _ = seconds(lambda: train([keyframe], style, TrainConfig(arch="grade", resolution=args.resolution)))
    rows.append(("`--arch grade` (fit only)", f"{grade_s:.1f} s"))
    train_s, model = seconds(lambda: train([keyframe], style, TrainConfig(steps=args.steps, resolution=args.resolution)))
    rows.append((f"default training: target + {args.steps} steps at {args.resolution} px", f"{train_s:.1f} s"))
    look_s, look_model = seconds(lambda: train([keyframe], style, TrainConfig(steps=5, loss="look",
                                                                              resolution=args.resolution)))

    frame = torch.nn.functional.interpolate(torch.from_numpy(np.ascontiguousarray(keyframe)).permute(2, 0, 1)[None],
                                            size=(1080, 1920), mode="bilinear", align_corners=False)
    with_features = frame_ms(model.network.eval(), frame)
    without = frame_ms(look_model.network.eval(), frame)
    rows.append(("hrnet-fast 1080p frame, target model (semantic features)", f"{with_features:.0f} ms"))
    rows.append(("hrnet-fast 1080p frame, look model (no features)", f"{without:.0f} ms"))
    print(f"threads {torch.get_num_threads()}, load {os.getloadavg()[0]:.1f}")
    print("| what | time |\n| --- | ---: |")
    for what, value in rows:
        print(f"| {what} | {value} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
