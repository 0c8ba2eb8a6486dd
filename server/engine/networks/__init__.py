"""The stylization networks, chosen by name: the registry the trainer and model files use.

Every network maps N×3×H×W working-space (ACEScct) frames to the same shape. A built network
remembers its name and arguments (`architecture`, `arch_kwargs`) so a model file can rebuild
it exactly.
"""

from __future__ import annotations

from typing import Any, Callable

from torch import nn

from shotstyle.server.errors import UnknownArchitectureError
from shotstyle.server.engine.networks.hrnet import HRNet
from shotstyle.server.engine.networks.hrnet_fast import HRNetFast

BUILDERS: dict[str, Callable[..., nn.Module]] = {
    "hrnet": HRNet,
    "hrnet-fast": HRNetFast,
}
ARCHITECTURES = tuple(BUILDERS)


def build_network(name: str, **kwargs: Any) -> nn.Module:
    """A freshly initialised network `name` ("hrnet" or "hrnet-fast") built with `kwargs`."""
    if name not in BUILDERS:
        raise UnknownArchitectureError(
            f"unknown network architecture {name!r}: choose one of {', '.join(ARCHITECTURES)}")
    try:
        network = BUILDERS[name](**kwargs)
    except TypeError as exc:
        raise UnknownArchitectureError(f"bad arguments {kwargs} for network {name!r}: {exc}") from exc
    setattr(network, "architecture", name)
    setattr(network, "arch_kwargs", dict(kwargs))
    return network


__all__ = ["ARCHITECTURES", "build_network", "UnknownArchitectureError"]
