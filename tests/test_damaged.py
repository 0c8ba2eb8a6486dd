"""Every damaged EXR raises FrameIOError naming the file and the problem: never a crash or a hang.

Each file is read in a child process with a timeout, so a segfault or an endless loop inside
OpenImageIO fails the test instead of taking pytest down. A second child reads them all in one
process, as the long-lived server would, and must still read a good file afterwards.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from conftest import SHARED_DATA

DAMAGED = sorted((SHARED_DATA / "exr" / "damaged").glob("*.exr")) if SHARED_DATA.is_dir() else []

# Reads one file three ways (path, header probe, bytes as received over the wire); prints what happened.
CHILD = r"""
import json, sys
from shotstyle.server.errors import FrameIOError
from shotstyle.server.frameio import decode_image_bytes, probe, read_frame

results = {}
for path in sys.argv[1:]:
    outcome = {}
    for how, call in (("read", lambda: read_frame(path)), ("probe", lambda: probe(path)),
                      ("bytes", lambda: decode_image_bytes(open(path, "rb").read(), "exr"))):
        try:
            call()
            outcome[how] = None
        except FrameIOError as error:
            outcome[how] = str(error)
    results[path] = outcome
print(json.dumps(results))
"""


def run_child(*paths: str, timeout: float = 60) -> dict:
    done = subprocess.run([sys.executable, "-c", CHILD, *paths], capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"reader died with status {done.returncode}: {done.stderr[-2000:]}"
    return json.loads(done.stdout.splitlines()[-1])


@pytest.mark.parametrize("path", DAMAGED, ids=[p.name for p in DAMAGED])
def test_damaged_file_raises_clear_error_in_a_child(shared_data, path):
    outcome = run_child(str(path))[str(path)]
    assert outcome["read"] is not None, "read_frame accepted a damaged file"
    assert outcome["read"].startswith(f"{path}: ")
    assert any(word in outcome["read"] for word in ("damaged", "cannot read", "corrupt", "truncated"))
    assert outcome["bytes"] is not None and outcome["bytes"].startswith("received exr image")
    if outcome["probe"] is not None:  # headers of some damaged files are fine: only their pixels are broken
        assert outcome["probe"].startswith(f"{path}: ")


def test_all_damaged_files_in_one_process_then_a_good_one(shared_data):
    good = str(shared_data / "exr" / "TestImages" / "stripes.exr")
    outcome = run_child(*map(str, DAMAGED), good)
    assert all(outcome[str(p)]["read"] for p in DAMAGED)
    assert outcome[good] == {"read": None, "probe": None, "bytes": None}
