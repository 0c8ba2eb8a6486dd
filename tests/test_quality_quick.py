"""bench/quality.py --quick runs end to end and writes its table, CSV and pictures."""

from __future__ import annotations

import csv
import subprocess
import sys

import cv2
import pytest

from conftest import REPO


@pytest.mark.slow
def test_quick_quality_bench_writes_every_output(shared_data, tmp_path):
    out = tmp_path / "out"
    done = subprocess.run([sys.executable, str(REPO / "bench" / "quality.py"), "--quick", "--threads", "1", "--out", str(out),
                           "--pairs", str(shared_data / "pairs"), "--clip", str(shared_data / "clip"),
                           "--clip-style", str(shared_data / "styles" / "seed_in47.png")],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    with open(out / "quality.csv") as handle:
        rows = list(csv.DictReader(handle))
    methods = {"plate", "reinhard", "grade", "hrnet-fast target", "hrnet-fast look"}
    luts = {"grade (LUT only)", "hrnet-fast target (LUT only)", "hrnet-fast look (LUT only)",
            "hrnet-fast target + mattes (LUT only)"}
    controls = {"control: blob", "control: vignette", "control: halo"}
    assert {r["method"] for r in rows} == methods | {"hrnet-fast target + mattes"} | luts | controls
    pairs = {r["pair"] for r in rows if r["pair"] != "walk-clip"}
    # the clip has no masks: no "+ mattes" row there
    assert len(pairs) == 2 and sum(r["pair"] == "walk-clip" for r in rows) == len(methods)
    by_method = {r["method"]: r for r in rows if r["pair"] == sorted(pairs)[0]}
    table = (out / "quality.md").read_text()
    # The plate is its own structure; Reinhard moves the colours towards the style.
    assert float(by_method["plate"]["ssim"]) == pytest.approx(1.0, abs=1e-4)
    assert float(by_method["reinhard"]["style_swd"]) < float(by_method["plate"]["style_swd"])
    # A pure grade (the LUT alone) is coherent: equal plate colours, equal output colours.
    assert float(by_method["hrnet-fast look (LUT only)"]["coherence"]) < 1.0
    assert float(by_method["plate"]["neutral_drift"]) >= 0.0 and 0 < float(by_method["hrnet-fast target"]["lut_reproduced"]) <= 1
    # Region scores on every method of a pair with masks: the plate is scored, Reinhard moves it towards the style.
    assert float(by_method["reinhard"]["region_de"]) < float(by_method["plate"]["region_de"])
    assert by_method["hrnet-fast look (LUT only)"]["region_acc"] != ""
    assert "pairs region-wrong" in table and "| control: blob |" in table
    clip_plate = next(r for r in rows if r["pair"] == "walk-clip" and r["method"] == "plate")
    assert float(clip_plate["warp_ratio"]) == pytest.approx(1.0)
    assert "| reinhard |" in table and "(Reinhard's), ssim ≥ 0.90" in table and "Walk clip regions" in table
    assert "region ΔE ≤ 8" in table and "(1.5× the grade's)" in table  # issue 19's aims, not an older line
    assert "| hrnet-fast target | " in table.split("Walk clip regions")[1]
    for pair in pairs:
        sheet = cv2.imread(str(out / f"sheet_{pair}.png"))
        assert sheet is not None and sheet.shape[1] > 6 * sheet.shape[0]
    assert cv2.imread(str(out / "metrics.png")) is not None
    assert cv2.imread(str(out / "sheet_walk_clip.png")) is not None and cv2.imread(str(out / "walk_regions.png")) is not None
