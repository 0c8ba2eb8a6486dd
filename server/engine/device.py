"""Which torch device the engine runs on, and how: `Execution`, precision, threads, copies.

`pick_device()` prefers CUDA, then Apple's MPS, then the CPU; a name ("cpu", "cuda",
"cuda:1", "mps") forces one and fails clearly when it is not there.

`Execution` holds every choice a GPU makes differently from a CPU (memory layout, batching,
where colour is computed, concurrent training). The choices are fields, not device tests
scattered through the engine, so a CPU can be asked to make the GPU's choices: the test suite
does (`execution_for(device, accelerator_path=True)`, or SHOTSTYLE_ACCELERATOR_PATH=1 for a
whole process such as a test server) and so runs, on CI's CPUs, the code a GPU runs.

Precision: float32 everywhere, IEEE on CUDA too (`use_ieee_float32`: no TF32 in cuDNN convs
or cuBLAS matmuls). Reduced precision was measured against float32 on the CPU (bench/gpu.py
reports it; the same frame and seeded models the issue used): bfloat16 autocast moves
`hrnet-fast` by 12% of its mean effect (max 0.067 ACEScct) and `hrnet` by 33% (max 0.16);
TF32-rounded conv operands by 1.6% and 5.4%. The bound for CPU/GPU agreement is 1% of the
mean effect and 0.01 at most, so neither is used: on a GPU these small networks are bound by
memory traffic and kernel launches rather than arithmetic.
"""

from __future__ import annotations

import os
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from typing import ContextManager, Iterator

import torch
from torch import Tensor

from shotstyle.server.errors import DeviceError

# Set to 1 to make a CPU take the GPU's path (see the module docstring).
ACCELERATOR_PATH_VARIABLE = "SHOTSTYLE_ACCELERATOR_PATH"
# Training steps between reads of the loss values on a GPU (on a CPU reading costs nothing).
LOSS_READS_EVERY = 10


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


@dataclass(frozen=True)
class Execution:
    """How the engine drives `device`; `execution_for` gives the device's own choices."""

    device: torch.device
    channels_last: bool        # networks and frames NHWC in memory (cuDNN's fast layout)
    batch_frames: bool         # same-size frames through the network together
    torch_colour: bool         # colour as torch ops on the device; else OCIO's CPU processor
    concurrent_training: bool  # several training jobs at once; else one, yielding to frames
    loss_reads_every: int      # training steps between reads of the loss values (a read waits for the device)

    @property
    def pinned(self) -> bool:
        """Page-locked host buffers and asynchronous copies: only CUDA has them."""
        return self.device.type == "cuda"


def execution_for(device: torch.device, accelerator_path: bool | None = None) -> Execution:
    """The choices for `device`: a CUDA GPU's, or on other devices the CPU's unless
    `accelerator_path` (default: $SHOTSTYLE_ACCELERATOR_PATH) asks for the GPU's.

    On a CPU, OCIO's processor is 1.5–2× faster than torch's elementwise ops at 1920×1080,
    batching buys nothing and channels-last convs are no faster; training one job at a time
    leaves the cores to the frames an artist is waiting for, and reading the loss every step
    costs nothing."""
    if accelerator_path is None:
        accelerator_path = os.environ.get(ACCELERATOR_PATH_VARIABLE, "") not in ("", "0")
    gpu = device.type == "cuda" or accelerator_path
    if device.type == "cuda":
        use_ieee_float32()
    return Execution(device, channels_last=gpu, batch_frames=gpu, torch_colour=gpu, concurrent_training=gpu,
                     loss_reads_every=LOSS_READS_EVERY if gpu else 1)


def use_ieee_float32() -> None:
    """No TF32 in CUDA convs and matmuls (torch allows it in cuDNN by default): see the module
    docstring for why. Process-wide, as torch's flags are."""
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False


def own_stream(execution: Execution) -> ContextManager[None]:
    """Work queued inside runs on a stream of its own, so jobs sharing a CUDA GPU overlap
    (each training job gets one); nothing changes on other devices."""
    return _cuda_stream(execution.device) if execution.pinned else nullcontext()


@contextmanager
def _cuda_stream(device: torch.device) -> Iterator[None]:
    stream = torch.cuda.Stream(device)  # type: ignore[no-untyped-call]
    with torch.cuda.stream(stream):
        yield
    stream.synchronize()


class Transfers:
    """Host <-> device copies for frames. On CUDA: page-locked host buffers and copies on their
    own streams, so the copy of the next frame and the read-back of the last one overlap the
    network; nothing here makes the host wait. Elsewhere the tensors stay where they are."""

    def __init__(self, execution: Execution):
        self.execution = execution
        cuda = execution.pinned
        self._up = torch.cuda.Stream(execution.device) if cuda else None  # type: ignore[no-untyped-call]
        self._down = torch.cuda.Stream(execution.device) if cuda else None  # type: ignore[no-untyped-call]

    def host_buffer(self, shape: tuple[int, ...], dtype: torch.dtype) -> Tensor:
        """An empty host tensor to stage a frame in (page-locked on CUDA)."""
        return torch.empty(shape, dtype=dtype, pin_memory=self.execution.pinned)

    def upload(self, host: Tensor) -> Tensor:
        """`host` on the device, ready for work queued on the current stream after this call."""
        if self._up is None:
            return host.to(self.execution.device)
        compute = torch.cuda.current_stream(self.execution.device)
        with torch.cuda.stream(self._up):
            on_device = host.to(self.execution.device, non_blocking=True)
        compute.wait_stream(self._up)
        on_device.record_stream(compute)  # its memory is used on the compute stream
        return on_device

    def download(self, on_device: Tensor) -> "Download":
        """Start copying `on_device` (when the work queued so far has made it) to the host."""
        if self._down is None:
            return Download(on_device.to("cpu"), None)
        host = self.host_buffer(tuple(on_device.shape), on_device.dtype)
        self._down.wait_stream(torch.cuda.current_stream(self.execution.device))
        with torch.cuda.stream(self._down):
            host.copy_(on_device, non_blocking=True)
            done = torch.cuda.Event()  # type: ignore[no-untyped-call]
            done.record(self._down)
        on_device.record_stream(self._down)
        return Download(host, done)


@dataclass
class Download:
    """A device-to-host copy under way; `result()` waits for it (only this copy, not the device)."""

    host: Tensor
    done: "torch.cuda.Event | None"

    def result(self) -> Tensor:
        if self.done is not None:
            self.done.synchronize()
        return self.host
