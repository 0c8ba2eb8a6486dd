"""`shotstyle doctor`: report what this machine offers shotstyle.

Prints Python, torch, the compute devices (CUDA / MPS / CPU), OpenImageIO, OpenColorIO (and
the config in use), pyzmq versions, the semantic feature network the look uses (ImageNet
EfficientNet-Lite0, installed with shotstyle: loaded strictly here), whether the ImageNet VGG-19
weights are available and from where, which loss ``--loss auto`` picks, and the local servers
running (this install's, and other installs' of this user). Exit status 6 (`ExitCode.FAILED`)
when a required piece is missing or broken, else 0 (missing VGG-19 weights are a warning: only
the `vgg` loss needs them).
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


def _features() -> str:
    from shotstyle.server.engine import semantic

    semantic.network()   # strict load: every tensor of the shipped state dict
    return f"{semantic.NAME}: {semantic.weights_path()}"


def _vgg(explicit: str | None) -> str:
    try:
        from shotstyle.server.engine.losses.vgg import locate_vgg_weights
    except ImportError as error:
        return f"cannot check: the VGG-19 loader is not available ({error})"
    path, where = locate_vgg_weights(explicit)
    if path:
        return f"found: {path} ({where}); the target loss's content term uses them"
    return (f"NOT found ({where}); the vgg loss needs them, the default target loss takes its content "
            "term from the features above instead")


def _loss(explicit: str | None) -> str:
    from shotstyle.server.engine.losses import resolve_loss_name

    return resolve_loss_name("auto", explicit)[1]


def _servers() -> list[str]:
    """This install's local server (running or not) and any other install's this user runs."""
    from shotstyle.plugin import localserver

    own = localserver.server_file()
    lines = []
    for path in sorted(set(localserver.server_files()) | {own}):
        info = localserver.read_server_file(path)
        ours = "this install's" if path == own else "another install's"
        if info is None:
            if path == own:
                lines.append(f"this install's local server: not running (train/render start one on demand; "
                             f"it would write {own})")
            continue
        hello = localserver.ping(info["address"], 2.0) if localserver.pid_alive(info.get("pid")) else None
        if hello is None or hello.get("pid") != info.get("pid"):
            lines.append(f"{ours} local server: recorded in {path} (pid {info.get('pid')}) but not answering")
            continue
        how = (f"started on demand, exits after {info['idle_exit_s'] / 60:g} idle min" if info.get("autostarted")
               and info.get("idle_exit_s") else "started with `shotstyle serve`")
        where = "" if path == own else f" from {(hello.get('install') or {}).get('prefix', '?')}"
        lines.append(f"{ours} local server: {info['address']} (pid {info['pid']}, shotstyle {hello.get('version')}"
                     f"{where}, device {hello.get('device')}, {how}; `shotstyle stop` ends it)")
    return lines


def run(args: argparse.Namespace) -> int:
    checks: list[tuple[str, Callable[[], str]]] = [
        ("Python", _python),
        ("torch", _torch),
        ("device", _device),
        ("OpenImageIO", _openimageio),
        ("OpenColorIO", _opencolorio),
        ("pyzmq", _pyzmq),
        ("features", _features),
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
    try:
        print(f"{'loss:':13s}{_loss(getattr(args, 'vgg', None))}")
    except Exception as error:  # the report goes on
        print(f"{'loss:':13s}cannot tell which loss 'auto' picks: {type(error).__name__}: {error}")
    for line in _servers():
        print(f"{'server:':13s}{line}")
    if broken:
        print(f"shotstyle doctor: {broken} required piece(s) broken; re-run install.py", file=sys.stderr)
        return ExitCode.FAILED
    return ExitCode.OK
