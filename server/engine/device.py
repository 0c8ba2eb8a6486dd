"""Which torch device the engine runs on, and how: CPU threads, CUDA autocast dtype.

`pick_device()` prefers CUDA, then Apple's MPS, then the CPU; a name ("cpu", "cuda",
"cuda:1", "mps") forces one and fails clearly when it is not there.
"""

from __future__ import annotations

import os

import torch

from shotstyle.server.errors import DeviceError


def pick_device(name: str | None = None) -> torch.device:
    """The device named `name`, or the best one available when `name` is None or "auto"."""
    if name in (None, "", "auto"):
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError as exc:
        raise DeviceError(f"unknown device {name!r}: use auto, cpu, cuda, cuda:N or mps") from exc
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise DeviceError(f"device {name!r} asked for, but this machine has no usable CUDA GPU; "
                              "use --device cpu (or auto)")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise DeviceError(f"device {name!r} asked for, but only {torch.cuda.device_count()} "
                              "CUDA GPU(s) are visible")
    elif device.type == "mps" and not torch.backends.mps.is_available():
        raise DeviceError(f"device {name!r} asked for, but MPS is not available here; use cpu")
    elif device.type not in ("cpu", "cuda", "mps"):
        raise DeviceError(f"device {name!r} is not supported: use auto, cpu, cuda, cuda:N or mps")
    return device


def cpu_count() -> int:
    """CPU cores this process may use (respects affinity masks and container limits)."""
    try:
        return max(len(os.sched_getaffinity(0)), 1)
    except AttributeError:
        return os.cpu_count() or 1


def configure_threads(device: torch.device, threads: int | None = None) -> None:
    """On CPU, use every core we may run on (or `threads`); GPUs need few host threads."""
    if device.type == "cpu":
        torch.set_num_threads(threads or cpu_count())


def autocast_dtype(device: torch.device) -> torch.dtype | None:
    """bfloat16 on CUDA GPUs that support it, else float16; None (full float32) elsewhere."""
    if device.type != "cuda":
        return None
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
