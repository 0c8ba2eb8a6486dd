"""Shared pytest fixtures: where the shared data lives, the test material made at test time
(`testfiles`), and every test's own runtime folders."""

from __future__ import annotations

import os
import subprocess
import sys
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
        pytest.skip(f"shared data not found at {SHARED_DATA}: this test is about those outside files")
    return SHARED_DATA


@pytest.fixture(scope="session")
def built_wheel(tmp_path_factory) -> Path:
    """This checkout built as a wheel (without its dependencies), once per session."""
    folder = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(folder),
                    str(REPO)], check=True)
    (wheel,) = folder.glob("shotstyle-*.whl")
    return wheel


@pytest.fixture(scope="session")
def installed_wheel(built_wheel, tmp_path_factory) -> Path:
    """The bin folder of a fresh virtual environment with the wheel installed, not the checkout.

    Its dependencies (torch, OpenImageIO...) come from this interpreter's site-packages folders
    through a .pth file; the editable install of the checkout is not among them (the .pth files
    inside those folders are not run).
    """
    venv = tmp_path_factory.mktemp("wheel-venv")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    (site_packages,) = venv.glob("lib/python*/site-packages")
    dependencies = [p for p in sys.path if os.path.basename(p) in ("site-packages", "dist-packages")]
    (site_packages / "_dependencies.pth").write_text("\n".join(dependencies) + "\n")
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "--no-index", "-q",
                    str(built_wheel)], check=True)
    return venv / "bin"


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> str:
    """A small untrained hrnet-fast model file: rendering does not care whether the weights are good."""
    import torch
    from shotstyle.server.engine.modelfile import StyleModel, save_model
    from shotstyle.server.engine.networks import build_network
    torch.manual_seed(0)
    network = build_network("hrnet-fast", width=4, blocks=1, low_res=64)
    path = str(tmp_path_factory.mktemp("model") / "tiny.safetensors")
    save_model(StyleModel(network, {"loss": "look", "steps": 0}), path)
    return path


@pytest.fixture(scope="session")
def grade_model(tmp_path_factory) -> str:
    """A grade-only model that moves every colour: the channels rotated and squeezed in ACEScct, slopes
    at most 0.9."""
    import torch
    from shotstyle.server.engine.grade import identity_lattice
    from shotstyle.server.engine.modelfile import StyleModel, save_model
    from shotstyle.server.engine.networks import build_network
    network = build_network("grade", grade_size=9)
    r, g, b = identity_lattice(9)
    network.grade.set(torch.stack([0.05 + 0.9 * g, 0.1 + 0.8 * b, 0.9 * r]))
    path = str(tmp_path_factory.mktemp("grade") / "grade.safetensors")
    save_model(StyleModel(network.eval(), {"loss": "closed form"}), path)
    return path


@pytest.fixture(autouse=True)
def _isolated_runtime(tmp_path_factory, monkeypatch):
    """Keep every test's server files, model stores and settings out of the real user folders."""
    home = tmp_path_factory.mktemp("runtime")
    monkeypatch.setenv("SHOTSTYLE_RUNTIME_DIR", str(home / "run"))
    monkeypatch.setenv("SHOTSTYLE_MODELS_DIR", str(home / "models"))
    monkeypatch.setenv("SHOTSTYLE_CONFIG", str(home / "config.ini"))  # no real user's keys or idle time
    for name in ("SHOTSTYLE_SERVER_KEY", "SHOTSTYLE_CLIENT_KEY", "SHOTSTYLE_IDLE_EXIT_MINUTES"):
        monkeypatch.delenv(name, raising=False)
    # Tests never look for (or download) ImageNet VGG-19 weights unless they ask to.
    monkeypatch.setenv("SHOTSTYLE_VGG_WEIGHTS", os.environ.get("SHOTSTYLE_TEST_VGG_WEIGHTS", ""))
