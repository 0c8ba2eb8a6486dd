#!/usr/bin/env python3
"""Set up shotstyle: a virtual environment with the package and its dependencies.

    python3 install.py            set up (or update) ./.venv; safe to run again
    python3 install.py demo       set up, then run the built-in demo (`shotstyle demo`)
    python3 install.py test       set up with the test tools, then run the whole test suite
    python3 install.py nuke|resolve|all [--uninstall] [--dry-run] [--nuke-version 14,15]
                      [--host-python X.Y] [--site DIR] [--no-pyzmq]
                                  install (or remove) the host nodes for the current user
                                  (--site: a studio folder to put on NUKE_PATH)
    python3 install.py nuke|resolve --check
                                  print a self-test to paste into the host

Setting up also fetches the ImageNet VGG-19 weights into torch's hub cache once, so
the `vgg` loss is available; an offline machine carries on without them (the
weights-free `look` loss is used) and says so. Standard library only: it runs
before anything is installed.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
DEFAULT_VENV = ROOT / ".venv"
STAMP_NAME = "shotstyle-install.stamp"
HOST_TARGETS = ("nuke", "resolve", "all")


def venv_python(venv_dir: Path) -> Path:
    sub = "Scripts/python.exe" if os.name == "nt" else "bin/python"
    return venv_dir / sub


def run(cmd: list, **kwargs) -> None:
    print("+ " + " ".join(str(c) for c in cmd), flush=True)
    subprocess.run([str(c) for c in cmd], check=True, **kwargs)


def install_stamp(extras: str) -> str:
    """What an install depends on: a new pyproject or other extras means pip must run again."""
    digest = hashlib.sha256((ROOT / "pyproject.toml").read_bytes())
    digest.update(extras.encode())
    return digest.hexdigest()


def ensure_venv(venv_dir: Path, with_tests: bool) -> Path:
    python = venv_python(venv_dir)
    if not python.exists():
        if sys.version_info < (3, 10):
            sys.exit(f"shotstyle needs Python 3.10 or newer to set up (this is {sys.version.split()[0]}).")
        print(f"Creating virtual environment {venv_dir}", flush=True)
        venv.EnvBuilder(with_pip=True).create(venv_dir)
    extras = "[test]" if with_tests else ""
    stamp_file = venv_dir / STAMP_NAME
    stamp = install_stamp(extras)
    already = stamp_file.read_text().split() if stamp_file.exists() else []
    if stamp in already or (not with_tests and install_stamp("[test]") in already):
        print(f"shotstyle already installed in {venv_dir} (pyproject unchanged)", flush=True)
        return python
    # torch/torchvision are pinned in pyproject.toml; pip (not uv/poetry) finds them locally where mirrored.
    run([python, "-m", "pip", "install", "--disable-pip-version-check", "-q", "-e", f"{ROOT}{extras}"])
    stamp_file.write_text("\n".join(already + [stamp]) + "\n")
    return python


def fetch_vgg_weights(python: Path) -> None:
    """Fetch torchvision's ImageNet VGG-19 once into the torch hub cache; never fatal."""
    script = (
        "import sys\n"
        "from shotstyle.server.engine.losses.vgg import load_vgg_features\n"
        "from shotstyle.server.errors import WeightsUnavailableError\n"
        "try:\n"
        "    _, source = load_vgg_features(allow_download=True)\n"
        "except WeightsUnavailableError as exc:\n"
        "    sys.exit(f'VGG-19 ImageNet weights: not available ({exc})')\n"
        "print('VGG-19 ImageNet weights: ' + source)\n"
    )
    result = subprocess.run([str(python), "-c", script])
    if result.returncode != 0:
        print("!" * 72 + "\n"
              "! Could not fetch the ImageNet VGG-19 weights (offline?). shotstyle still works:\n"
              "! training uses the weights-free 'look' loss. To enable the 'vgg' loss later, copy\n"
              "! vgg19-dcbb9e9d.pth to this machine and set SHOTSTYLE_VGG_WEIGHTS=/path/to/it, or run\n"
              "! `python3 install.py` again on a machine with internet access.\n" + "!" * 72,
              flush=True)


def load_hostinstall():
    """nodes/hostinstall.py by path: stdlib only, so it runs before (and without) the venv."""
    import importlib.util
    spec = importlib.util.spec_from_file_location("shotstyle_hostinstall", ROOT / "nodes" / "hostinstall.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("action", nargs="?", default="setup",
                        choices=("setup", "demo", "test") + HOST_TARGETS,
                        help="what to do after setting up (default: only set up)")
    parser.add_argument("--venv", type=Path, default=DEFAULT_VENV,
                        help=f"virtual environment to create or reuse (default: {DEFAULT_VENV})")
    parser.add_argument("--no-vgg", action="store_true",
                        help="do not try to fetch the ImageNet VGG-19 weights")
    parser.add_argument("--uninstall", action="store_true", help="host targets: remove what was added")
    parser.add_argument("--dry-run", action="store_true", help="host targets: print every file it would touch")
    parser.add_argument("--host-python", default=None,
                        help="host targets: the host's Python (X.Y) for its pyzmq wheel; default: from "
                             "--nuke-version / the Nuke installs found, or the Python Resolve loads")
    parser.add_argument("--nuke-version", default="",
                        help="nuke: the Nuke version(s) to install for, e.g. 15 or 14,15,16 (default: those found)")
    parser.add_argument("--site", type=Path, default=None,
                        help="nuke: install into this studio folder (put it on NUKE_PATH) instead of ~/.nuke")
    parser.add_argument("--check", action="store_true",
                        help="host targets: print a self-test script to paste into the host, install nothing")
    parser.add_argument("--no-pyzmq", action="store_true",
                        help="host targets: do not install pyzmq for the host (it already has it)")
    args, passthrough = parser.parse_known_args(argv)

    if args.action in HOST_TARGETS:
        hostinstall = load_hostinstall()
        server_python = venv_python(args.venv)
        if not server_python.exists() and not args.check:
            print(f"note: {args.venv} is not set up yet; hosts will start a local server with `python3 -m "
                  "shotstyle.server` only once you run `python3 install.py` (or set SHOTSTYLE_SERVER_PYTHON)")
        ask = input if sys.stdin.isatty() and not args.dry_run else None
        return hostinstall.main(args.action, uninstall=args.uninstall, dry_run=args.dry_run,
                                host_python=args.host_python, repo=ROOT, pyzmq=not args.no_pyzmq,
                                server_python=str(server_python), nuke_version=args.nuke_version,
                                site=args.site, check=args.check, ask=ask)

    python = ensure_venv(args.venv, with_tests=args.action == "test")
    if not args.no_vgg and not os.environ.get("CI") and args.action != "test":
        fetch_vgg_weights(python)
    if args.action == "demo":
        return subprocess.run([str(python), "-m", "shotstyle.cli", "demo", *passthrough]).returncode
    if args.action == "test":
        return subprocess.run([str(python), "-m", "pytest", *passthrough], cwd=ROOT).returncode
    print(f"Ready: {venv_python(args.venv).parent / 'shotstyle'} doctor", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
