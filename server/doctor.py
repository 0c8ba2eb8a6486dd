"""`shotstyle doctor`: report what this machine offers shotstyle.

Prints Python, torch, the compute devices (CUDA / MPS / CPU), OpenImageIO, OpenColorIO (and
the config in use), pyzmq versions, and whether the ImageNet VGG-19 weights are available and
from where. Exit status 6 (`ExitCode.FAILED`) when a required piece is missing or broken, else 0
(missing VGG-19 weights are a warning: training then falls back to the weights-free look loss).
"""

from __future__ import annotations

import argparse
import platform
import sys
from typing import Callable

from shotstyle.plugin.exitcodes import ExitCode


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--vgg", metavar="PATH", help="check this VGG-19 weights file instead of searching")


def _python() -> str:
    return f"{platform.python_version()} ({sys.executable})"


def _torch() -> str:
    import torch

    return f"{torch.__version__} ({torch.get_num_threads()} CPU threads)"


def _device() -> str:
    import torch

    if torch.cuda.is_available():
        names = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
        return f"CUDA {torch.version.cuda}: " + ", ".join(names)
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return "MPS (Apple GPU)"
    return f"CPU only ({platform.processor() or platform.machine()}); no CUDA or MPS GPU found"


def _openimageio() -> str:
    import OpenImageIO as oiio

    return oiio.__version__


def _opencolorio() -> str:
    import PyOpenColorIO as ocio

    from shotstyle.server.engine.colour import describe_config

    return f"{ocio.__version__}; config {describe_config()}"


def _pyzmq() -> str:
    import zmq

    return f"{zmq.__version__} (libzmq {zmq.zmq_version()})"


def _vgg(explicit: str | None) -> str:
    try:
        from shotstyle.server.engine.losses.vgg import locate_vgg_weights
    except ImportError as error:
        return f"cannot check: the VGG-19 loader is not available ({error})"
    path, where = locate_vgg_weights(explicit)
    if path:
        return f"found: {path} ({where})"
    return f"NOT found ({where}); training falls back to a random VGG-19 or the look loss"


def run(args: argparse.Namespace) -> int:
    checks: list[tuple[str, Callable[[], str]]] = [
        ("Python", _python),
        ("torch", _torch),
        ("device", _device),
        ("OpenImageIO", _openimageio),
        ("OpenColorIO", _opencolorio),
        ("pyzmq", _pyzmq),
    ]
    broken = 0
    for label, check in checks:
        try:
            line = check()
        except Exception as error:  # report every broken piece, not just the first
            broken += 1
            line = f"BROKEN: {type(error).__name__}: {error}"
        print(f"{label + ':':13s}{line}")
    print(f"{'VGG-19:':13s}{_vgg(getattr(args, 'vgg', None))}")
    if broken:
        print(f"shotstyle doctor: {broken} required piece(s) broken; re-run install.py", file=sys.stderr)
        return ExitCode.FAILED
    return ExitCode.OK
