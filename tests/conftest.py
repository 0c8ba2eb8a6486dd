"""Shared pytest fixtures: where the shared data lives, the test material made at test time
(`testfiles`), and every test's own runtime folders."""

from __future__ import annotations

import os
from pathlib import Path

# Before anything imports torch: OpenMP threads that spin while waiting starve the other
# processes these tests start (servers, farm renders) on a 2-core machine.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import pytest  # noqa: E402

from testfiles import damaged_exrs, exr_sequence, made_exrs, plate_clip, style_image  # noqa: E402,F401

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = Path(os.environ.get("SHOTSTYLE_SHARED_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real footage/EXR folder beside the repository; tests that need it skip without it.

    Only tests whose point is an outside file use it; everything else uses `testfiles`."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared data not found at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture(autouse=True)
def _isolated_runtime(tmp_path_factory, monkeypatch):
    """Keep every test's server pid files and model stores out of the real user folders."""
    home = tmp_path_factory.mktemp("runtime")
    monkeypatch.setenv("SHOTSTYLE_RUNTIME_DIR", str(home / "run"))
    monkeypatch.setenv("SHOTSTYLE_MODELS_DIR", str(home / "models"))
    # Tests never look for (or download) ImageNet VGG-19 weights unless they ask to.
    monkeypatch.setenv("SHOTSTYLE_VGG_WEIGHTS", os.environ.get("SHOTSTYLE_TEST_VGG_WEIGHTS", ""))
