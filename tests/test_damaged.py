"""Every damaged EXR raises FrameIOError naming the file and the problem: never a crash or a hang.

The damaged files are made at test time from a good EXR (tests/testfiles.py: cut short in every
part of the file, bytes changed where a reader trusts them); the OpenEXR fuzz corpus in
../shared/data (files that overflowed older readers) goes through the same checks when present.

Each file is read in a child process with a timeout, so a segfault or an endless loop inside
OpenImageIO fails the test instead of taking pytest down. A second child reads them all in one
process, as the long-lived server would, and must still read a good file afterwards.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import testfiles
from conftest import SHARED_DATA

FUZZ_CORPUS = sorted((SHARED_DATA / "exr" / "damaged").glob("*.exr"))

# Reads each file three ways (path, header probe, bytes as received over the wire); prints, per way,
# the error message or a digest of the pixels it read.
CHILD = r"""
import hashlib, json, sys
from shotstyle.media.reading import decode_image_bytes, probe, read_frame
from shotstyle.server.errors import FrameIOError

results = {}
for path in sys.argv[1:]:
    outcome = {}
    for how, call in (("read", lambda: read_frame(path)), ("probe", lambda: probe(path)),
                      ("bytes", lambda: decode_image_bytes(open(path, "rb").read(), "exr"))):
        try:
            result = call()
            pixels = getattr(result, "pixels", None)
            outcome[how] = {"error": None, "pixels": None if pixels is None else hashlib.sha1(pixels).hexdigest()}
        except FrameIOError as error:
            outcome[how] = {"error": str(error), "pixels": None}
    results[path] = outcome
print(json.dumps(results))
"""


def run_child(*paths: str, timeout: float = 60) -> dict:
    done = subprocess.run([sys.executable, "-c", CHILD, *paths], capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"reader died with status {done.returncode}: {done.stderr[-2000:]}"
    return json.loads(done.stdout.splitlines()[-1])


def check_refused(path: str, outcome: dict, good_pixels: str | None = None) -> None:
    """A clear FrameIOError from read and from bytes; or, where ``good_pixels`` is given, the intact pixels."""
    if good_pixels is not None and outcome["read"]["error"] is None:
        assert outcome["read"]["pixels"] == outcome["bytes"]["pixels"] == good_pixels, "damaged pixels were read"
        return
    message = outcome["read"]["error"]
    assert message is not None, "read_frame accepted a damaged file"
    assert message.startswith(f"{path}: ")
    assert any(word in message for word in ("damaged", "cannot read", "corrupt", "truncated"))
    assert outcome["bytes"]["error"] is not None and outcome["bytes"]["error"].startswith("received exr image")
    if outcome["probe"]["error"] is not None:  # headers of some damaged files are fine: only their pixels are broken
        assert outcome["probe"]["error"].startswith(f"{path}: ")


@pytest.mark.parametrize("name", testfiles.DAMAGES)
def test_damaged_file_raises_clear_error_in_a_child(damaged_exrs, name):
    path, good = damaged_exrs[name], damaged_exrs["good"]
    outcome = run_child(path, good)
    assert outcome[good]["read"]["error"] is None
    recovered = outcome[good]["read"]["pixels"] if name in testfiles.RECOVERABLE_DAMAGES else None
    check_refused(path, outcome[path], recovered)


@pytest.mark.parametrize("path", FUZZ_CORPUS or [None], ids=[p.name for p in FUZZ_CORPUS] or ["absent"])
def test_fuzz_corpus_file_raises_clear_error_in_a_child(shared_data, path):  # shared_data skips when absent
    check_refused(str(path), run_child(str(path))[str(path)])


@pytest.fixture(params=["made", "fuzz corpus"])
def damaged_and_good(request, damaged_exrs) -> tuple[list[str], str]:
    """Damaged files and a good one to read after them: the made ones, or the corpus (needs ../shared)."""
    if request.param == "made":
        return [damaged_exrs[name] for name in testfiles.DAMAGES], damaged_exrs["good"]
    good = request.getfixturevalue("shared_data") / "exr" / "TestImages" / "stripes.exr"
    return [str(p) for p in FUZZ_CORPUS], str(good)


def test_all_damaged_files_in_one_process_then_a_good_one(damaged_and_good):
    damaged, good = damaged_and_good
    outcome = run_child(*damaged, good)
    assert all(outcome[good][how]["error"] is None for how in ("read", "probe", "bytes"))
    for path in damaged:  # only made files can be recoverable: they are all cut from `good`
        recoverable = Path(path).stem in testfiles.RECOVERABLE_DAMAGES
        check_refused(path, outcome[path], outcome[good]["read"]["pixels"] if recoverable else None)
