"""bench/robustness.py --short (1,000 hostile, broken and ordinary messages) passes: the server never
dies or hangs, never answers `internal`, and its memory does not grow; after a burst of 1080p
frames its memory comes back within 300 MB, and a model asking too much work per frame is refused."""

from __future__ import annotations

import subprocess
import sys

from conftest import REPO


def test_short_robustness_bench_passes():
    done = subprocess.run([sys.executable, str(REPO / "bench" / "robustness.py"), "--short"], capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-5000:] + done.stderr[-3000:]
    lines = done.stdout.splitlines()
    assert lines[-1] == "PASS" and "deaths 0, hangs 0, internal 0" in lines[-2]
    rows = [line for line in lines if line.startswith("| 1000 |")]
    assert rows and "| yes |" in rows[0]
    kinds = [line for line in lines if line.startswith("| ") and "replies by code" not in line and "|---" not in line]
    assert any(line.startswith("| hostile model |") and "bad_model" in line for line in kinds)
    assert any(line.startswith("| oversize error |") for line in kinds)
    assert any(line.startswith("| memory after a burst |") and "ok 16, HANG 0" in line for line in lines)
    assert any(line.startswith("| work per model |") and "bad_model 1" in line for line in lines)
    (uploads,) = [line for line in lines if line.startswith("| uploads in flight |")]
    assert "busy" in uploads and "HANG 0" in uploads and "internal" not in uploads, uploads
