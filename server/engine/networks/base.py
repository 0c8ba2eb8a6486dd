"""What every stylization network is: the written contract between a network, the trainer, the
inference engine and the model files (the registry in `__init__.py` builds only these).

A network maps N×3×H×W working-space (ACEScct) frames to the same shape. It holds:
- `grade`: the model's global grade (engine/grade.py), applied first; fitted in closed form by
  the trainer and fixed while the network trains; exported as the model's LUT;
- `bound`: the largest local change it may add to the grade (networks/local.py; 0 only for `grade`, which has none);
- `architecture`, `arch_kwargs`: its registry name and arguments (set by `build_network`), so a
  model file can rebuild it exactly.

What differs between networks is said by these class attributes and methods, never found by
probing: `tiles` (inference cuts large frames into tiles with the whole frame's normalisation
statistics: `norm_statistics` and `frozen_norms`), `any_layout` (it takes frames in either memory
layout, NCHW or channels-last, and returns its result in theirs, so inference hands it frames as
they lie in memory instead of copying them into its execution's layout), `light` (its work on a
frame costs a CPU less than reading, converting and writing the frame: a low-resolution network
and per-pixel steps, so an in-process CPU render runs it on the cores its reader and writer
threads leave, cli.render.inprocess), `trains` (False: the grade alone, fitted, never trained)
and `training_arguments` (what the trainer builds it with).
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any, ClassVar, Iterator

from torch import Tensor, nn

from shotstyle.server.engine.grade import LatticeGrade

NormStats = list[tuple[Tensor, Tensor]]


class StyleNetwork(nn.Module):
    """The base of every registry network; see the module doc."""

    grade: LatticeGrade | None
    bound: float
    tiles: ClassVar[bool] = False
    any_layout: ClassVar[bool] = False
    light: ClassVar[bool] = False
    trains: ClassVar[bool] = True

    def __init__(self) -> None:
        super().__init__()
        self.architecture = ""
        self.arch_kwargs: dict[str, Any] = {}

    @classmethod
    def training_arguments(cls, resolution: int, targeted: bool) -> dict[str, Any]:
        """The arguments a new network is built with for a training at `resolution` (long side,
        pixels); `targeted`: trained on per-pixel keyframe targets (the `target` loss), so its
        local change follows the targets rather than the grade's direction (networks/local.py)."""
        return {"along_grade": False} if targeted else {}

    def norm_statistics(self, x: Tensor) -> NormStats:
        """Every normalisation layer's statistics on `x` (networks with `tiles` only)."""
        raise NotImplementedError(f"{type(self).__name__} is not tiled")

    @contextmanager
    def frozen_norms(self, stats: NormStats) -> Iterator[None]:
        """Inside the block, normalisation layers use `stats` (networks with `tiles` only)."""
        raise NotImplementedError(f"{type(self).__name__} is not tiled")
        yield


def grade_of(network: StyleNetwork) -> LatticeGrade:
    """A style network's global grade (every registry network has one, as `network.grade`)."""
    if network.grade is None:
        raise TypeError(f"{type(network).__name__} has no global grade: build it with networks.build_network")
    return network.grade
