"""The stylization networks, chosen by name: the registry the trainer and model files use.

Every network is a `StyleNetwork` (base.py: the written contract — its grade, its local bound,
whether it tiles or trains, what the trainer builds it with). A built network remembers its
name and arguments (`architecture`, `arch_kwargs`) so a model file can rebuild it exactly.
Adding a network is its own file and one entry here.

Each architecture's entry also bounds its arguments (`Bound`): a model file is a stranger's
data, and its ``arch_kwargs`` are checked against them before anything is built, so a file
cannot make the server build a network of a thousand blocks. An argument added to a network
gets its bound here, beside it (a test checks that every argument has one).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Mapping

from shotstyle.plugin.protocol import brief
from shotstyle.server.errors import UnknownArchitectureError
from shotstyle.server.engine.networks.base import StyleNetwork
from shotstyle.server.engine.networks.grade_only import GradeOnly
from shotstyle.server.engine.networks.hrnet import HRNet
from shotstyle.server.engine.networks.hrnet_fast import HRNetFast


@dataclasses.dataclass(frozen=True)
class Bound:
    """The values one network argument may take in a model file: ``kind`` (int, float or bool) in [low, high]."""

    kind: type
    low: float = 0.0
    high: float = 0.0

    def problem(self, value: Any) -> str | None:
        """What is wrong with ``value``, or None when it is allowed."""
        if self.kind is bool:
            return None if isinstance(value, bool) else "must be true or false"
        if isinstance(value, bool) or not isinstance(value, (int, float) if self.kind is float else int):
            return f"must be {'a number' if self.kind is float else 'a whole number'}"
        if not self.low <= value <= self.high:  # NaN fails this too
            return f"must be within [{self.low:g}, {self.high:g}]"
        return None


@dataclasses.dataclass(frozen=True)
class Architecture:
    build: type[StyleNetwork]
    bounds: Mapping[str, Bound]


# Bounds: what the trainer makes, with room to spare; far below what would exhaust a machine.
_HRNET_BOUNDS = {"width": Bound(int, 1, 32), "blocks": Bound(int, 1, 4),
                 # the global grade's lattice nodes per axis, and the local term's budget (local.py)
                 "grade_size": Bound(int, 2, 129), "bound": Bound(float, 0.0, 1.0),
                 # the local term's rule (local.py): honest (True) or targeted (False)
                 "along_grade": Bound(bool)}
REGISTRY: dict[str, Architecture] = {
    # in_channels > 3 is for hrnet-fast's inner network (colour + semantic features) only
    "hrnet": Architecture(HRNet, {**_HRNET_BOUNDS, "in_channels": Bound(int, 3, 3)}),
    "hrnet-fast": Architecture(HRNetFast, {**_HRNET_BOUNDS, "low_res": Bound(int, 16, 2048),
                                           "radius": Bound(int, 1, 32), "eps": Bound(float, 1e-8, 1.0),
                                           # semantic feature channels given to the inner HRNet
                                           "semantic": Bound(int, 0, 32)}),
    "grade": Architecture(GradeOnly, {"grade_size": _HRNET_BOUNDS["grade_size"]}),
}
ARCHITECTURES = tuple(REGISTRY)


def check_arguments(name: str, kwargs: Any) -> dict[str, Any]:
    """``kwargs`` if they are arguments network ``name`` accepts, each within its bound.

    UnknownArchitectureError names the architecture or the argument and what is allowed.
    """
    if name not in REGISTRY:
        raise UnknownArchitectureError(
            f"unknown network architecture {brief(name)}: choose one of {', '.join(ARCHITECTURES)}")
    if not isinstance(kwargs, dict):
        raise UnknownArchitectureError(f"arguments of network {name!r} must be a mapping of name to value, "
                                       f"got {type(kwargs).__name__}")
    bounds = REGISTRY[name].bounds
    for key, value in kwargs.items():
        bound = bounds.get(key)
        if bound is None:
            raise UnknownArchitectureError(f"network {name!r} has no argument {brief(key)}; "
                                           f"its arguments: {', '.join(bounds)}")
        problem = bound.problem(value)
        if problem is not None:
            raise UnknownArchitectureError(f"network {name!r} argument {key!r} = {brief(value)} {problem}")
    return kwargs


def build_network(name: str, **kwargs: Any) -> StyleNetwork:
    """A freshly initialised network `name` (one of `ARCHITECTURES`) built with `kwargs`."""
    if name not in REGISTRY:
        raise UnknownArchitectureError(
            f"unknown network architecture {brief(name)}: choose one of {', '.join(ARCHITECTURES)}")
    try:
        network = REGISTRY[name].build(**kwargs)
    except TypeError as exc:
        raise UnknownArchitectureError(f"bad arguments {brief(kwargs)} for network {name!r}: {exc}") from exc
    network.architecture = name
    network.arch_kwargs = dict(kwargs)
    return network


__all__ = ["ARCHITECTURES", "Bound", "REGISTRY", "StyleNetwork", "build_network", "check_arguments",
           "UnknownArchitectureError"]
