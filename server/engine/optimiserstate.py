"""The trainer's Adam state in a checkpoint, so `--init` continues the optimisation itself.

Adam keeps, per parameter, two running moments of the gradient (``exp_avg``, ``exp_avg_sq``)
and a step count that corrects their bias. Restarting them at zero on resume makes the first
updates of the continued run far larger than the stopped run's last ones (the loss jumps). A
checkpoint therefore carries them: tensors named ``optimiser.<parameter>.<moment>`` beside the
weights, and the step in the metadata record (``optimiser``: {"algorithm", "step"}). The
learning rate and betas are the continuing run's own. A finished model carries none.

The names, shapes and dtypes of the moments are checked against the network's parameters by
`modelfile` (as its weights are), and their values here: finite (`modelfile`), ``exp_avg_sq``
never negative (Adam divides by its square root).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

import torch
from torch import nn

from shotstyle.server.errors import ModelFileError

PREFIX = "optimiser."
MOMENTS = ("exp_avg", "exp_avg_sq")
ALGORITHM = "adam"
MAX_STEP = 10 ** 7


@dataclass
class OptimiserState:
    """Adam's step and its moments, by file tensor name (``optimiser.<parameter>.<moment>``)."""

    step: int
    moments: dict[str, torch.Tensor]

    def record(self) -> dict[str, Any]:
        """What the model's metadata records of it."""
        return {"algorithm": ALGORITHM, "step": self.step}


def tensor_names(parameter: str) -> list[str]:
    return [f"{PREFIX}{parameter}.{moment}" for moment in MOMENTS]


def capture(optimiser: torch.optim.Optimizer, network: nn.Module) -> Optional[OptimiserState]:
    """The optimiser's state now (None before its first step), as CPU copies."""
    moments: dict[str, torch.Tensor] = {}
    steps = set()
    for name, parameter in network.named_parameters():
        state = optimiser.state.get(parameter)
        if not state:
            continue
        steps.add(int(state["step"]))
        for key, moment in zip(tensor_names(name), MOMENTS):
            moments[key] = state[moment].detach().to("cpu", memory_format=torch.contiguous_format).clone()
    if not moments:
        return None
    # One training updates every parameter with a gradient at every step: they share one count.
    return OptimiserState(step=max(steps), moments=moments)


def restore(optimiser: torch.optim.Optimizer, network: nn.Module, state: OptimiserState) -> None:
    """Put ``state`` into a freshly built Adam over ``network``'s parameters (its own hyperparameters kept)."""
    saved = optimiser.state_dict()
    by_index: dict[int, dict[str, torch.Tensor]] = {}
    for index, (name, _) in enumerate(network.named_parameters()):
        keys = tensor_names(name)
        if keys[0] in state.moments:
            by_index[index] = {"step": torch.tensor(float(state.step)),
                               **{moment: state.moments[key] for key, moment in zip(keys, MOMENTS)}}
    optimiser.load_state_dict({"state": by_index, "param_groups": saved["param_groups"]})


def from_file(record: Any, tensors: dict[str, torch.Tensor], name: str) -> Optional[OptimiserState]:
    """The state a model file holds (``record``: its metadata's ``optimiser``; ``tensors``: its
    ``optimiser.*`` tensors, names and shapes already checked), or None; ModelFileError if it is not sound."""
    if record is None and not tensors:
        return None
    if not (isinstance(record, dict) and record.get("algorithm") == ALGORITHM and isinstance(record.get("step"), int)
            and not isinstance(record["step"], bool) and 1 <= record["step"] <= MAX_STEP and tensors):
        raise ModelFileError(f"{name}: the optimiser state is damaged (its record must be "
                             f"{{'algorithm': {ALGORITHM!r}, 'step': 1..{MAX_STEP}}} with its moments); "
                             "continue from a checkpoint written by `shotstyle train`")
    for key, tensor in tensors.items():
        pair = key[:-len("_sq")] if key.endswith("_sq") else key + "_sq"
        if pair not in tensors:
            raise ModelFileError(f"{name}: optimiser moment {key!r} comes without {pair!r}; the file is damaged")
        if key.endswith(".exp_avg_sq") and bool((tensor < 0).any()):
            raise ModelFileError(f"{name}: optimiser moment {key!r} holds negative values (a running mean of "
                                 "squares cannot); the file is damaged")
    return OptimiserState(step=record["step"], moments=dict(tensors))
