"""The stylization networks, chosen by name: the registry the trainer and model files use.

Every network is a `StyleNetwork` (base.py: the written contract — its grade, its local bound,
whether it tiles or trains, what the trainer builds it with). A built network remembers its
name and arguments (`architecture`, `arch_kwargs`) so a model file can rebuild it exactly.
Adding a network is its own file and one entry here.

Each architecture's entry also bounds its arguments (`Bound`): a model file is a stranger's
data, and its ``arch_kwargs`` are checked against them before anything is built, so a file
cannot make the server build a network of a thousand blocks. An argument added to a network
gets its bound here, beside it (a test checks that every argument has one).

Bounds taken one by one still multiply: a model may also ask no more work per frame than
`MAX_WORK` (`work_problem`, counted by networks/work.py), checked wherever a model file is
loaded or stored.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Mapping

from shotstyle.plugin.quoting import brief
from shotstyle.server.errors import UnknownArchitectureError
from shotstyle.server.engine.networks.base import StyleNetwork
from shotstyle.server.engine.networks.grade_only import GradeOnly
from shotstyle.server.engine.networks.hrnet import HRNet
from shotstyle.server.engine.networks.hrnet_fast import HRNetFast
from shotstyle.server.engine.networks import work


@dataclasses.dataclass(frozen=True)
class Bound:
    """The values one network argument may take: ``kind`` (int, float or bool) in [low, high], or in
    (low, high] when ``above_low``."""

    kind: type
    low: float = 0.0
    high: float = 0.0
    above_low: bool = False

    def problem(self, value: Any) -> str | None:
        """What is wrong with ``value``, or None when it is allowed."""
        if self.kind is bool:
            return None if isinstance(value, bool) else "must be true or false"
        if isinstance(value, bool) or not isinstance(value, (int, float) if self.kind is float else int):
            return f"must be {'a number' if self.kind is float else 'a whole number'}"
        if not (self.low < value if self.above_low else self.low <= value) or not value <= self.high:  # NaN too
            return f"must be within {'(' if self.above_low else '['}{self.low:g}, {self.high:g}]"
        return None


@dataclasses.dataclass(frozen=True)
class Architecture:
    build: type[StyleNetwork]
    bounds: Mapping[str, Bound]
    # Multiply-adds of one height×width frame given the network's arguments, and the arguments it grows with.
    work: Callable[[Mapping[str, Any], int, int], float]
    costly: tuple[str, ...] = ()


# Bounds: what the trainer makes, with room to spare; far below what would exhaust a machine.
_HRNET_BOUNDS = {"width": Bound(int, 1, 32), "blocks": Bound(int, 1, 4),
                 # the global grade's lattice nodes per axis, and the local term's budget (local.py):
                 # positive, for model files and the trainer alike; no local term is the `grade` network
                 "grade_size": Bound(int, 2, 129), "bound": Bound(float, 0.0, 1.0, above_low=True),
                 # the local term's rule (local.py): honest (True) or targeted (False)
                 "along_grade": Bound(bool)}
REGISTRY: dict[str, Architecture] = {
    # in_channels > 3 is for hrnet-fast's inner network (colour + semantic features) only
    "hrnet": Architecture(HRNet, {**_HRNET_BOUNDS, "in_channels": Bound(int, 3, 3)}, work.hrnet_work,
                          ("width", "blocks")),
    "hrnet-fast": Architecture(HRNetFast, {**_HRNET_BOUNDS, "low_res": Bound(int, 16, 2048),
                                           "radius": Bound(int, 1, 32), "eps": Bound(float, 1e-8, 1.0),
                                           # semantic feature channels given to the inner HRNet
                                           "semantic": Bound(int, 0, 32)},
                               work.hrnet_fast_work, ("width", "blocks", "low_res", "semantic")),
    "grade": Architecture(GradeOnly, {"grade_size": _HRNET_BOUNDS["grade_size"]}, work.no_work),
}
ARCHITECTURES = tuple(REGISTRY)

# The frame work is counted on (height, width), and how many times the heaviest network the trainer
# makes (`hrnet` at its defaults: about 39 G multiply-adds there) a model may ask. A model at every
# bound above asks far more (hrnet-fast at width 32, blocks 4, low_res 2048, semantic 32: 7x that,
# 45 s instead of 0.9 s per 1080p frame on a 2-core CPU). Such a model is refused where it is loaded
# (model.put, the store, render) rather than run with less work: fewer convolutions would render
# other pixels than the model's, and a refusal says so before any frame waits on it.
WORK_FRAME = (1080, 1920)
WORK_ROOM = 2.0


def frame_work(name: str, kwargs: Mapping[str, Any], height: int, width: int) -> float:
    """Multiply-adds network ``name`` with ``kwargs`` (already checked) asks of a height×width frame."""
    architecture = REGISTRY[name]
    return architecture.work(work.defaults(architecture.build, kwargs), height, width)


def max_work() -> float:
    """The most multiply-adds a model may ask of a `WORK_FRAME` frame."""
    return WORK_ROOM * frame_work("hrnet", {}, *WORK_FRAME)


def work_problem(name: str, kwargs: Mapping[str, Any]) -> str | None:
    """Why network ``name`` with ``kwargs`` (within their bounds) asks too much work per frame, or None."""
    asked, limit = frame_work(name, kwargs, *WORK_FRAME), max_work()
    if asked <= limit:
        return None
    costly = REGISTRY[name].costly
    arguments = work.defaults(REGISTRY[name].build, kwargs)
    given = ", ".join(f"{key} {arguments[key]}" for key in costly)
    height, width = WORK_FRAME
    return (f"network {name!r} with {given} asks {asked / 1e9:.0f} G multiply-adds per {width}x{height} frame, "
            f"over the limit of {limit / 1e9:.0f} G ({WORK_ROOM:g}x the default 'hrnet'); "
            f"a model needs smaller {', '.join(costly[:-1])} or {costly[-1]}")


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


__all__ = ["ARCHITECTURES", "Bound", "REGISTRY", "StyleNetwork", "build_network", "check_arguments", "frame_work",
           "max_work", "work_problem", "UnknownArchitectureError"]
