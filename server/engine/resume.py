"""Continuing a model's training (`--init`): how far it got, how many steps to run, what may not change.

Read from a model file's metadata (no torch; see `modelfile` for the fields): a model records
``steps_total``, the total its training aimed at, and ``steps_trained``, the steps it has
really had (both counted over every run that led to it). An interrupted run (Ctrl-C, a
cancelled job) has ``steps_trained < steps_total``; continuing it runs the rest. The network
and the loss are the model's own: asking for others is an error, never silently ignored.
"""

from __future__ import annotations

from typing import Any, Optional

from shotstyle.server.errors import TrainingInputError


def trained_steps(metadata: dict[str, Any]) -> int:
    """Steps the model has been trained, over all its runs (older files: from what they recorded)."""
    if isinstance(metadata.get("steps_trained"), int):
        return int(metadata["steps_trained"])
    steps = int(metadata.get("steps", 0) or 0)
    done = int(metadata.get("steps_done", steps) or 0)
    if "init_model" in metadata:  # older files recorded the planned total: take away what was not done
        return int(metadata.get("steps_total", steps) or 0) - steps + done
    return done


def target_steps(metadata: dict[str, Any]) -> int:
    """The total the model's last run aimed at."""
    return int(metadata.get("steps_total", metadata.get("steps", 0)) or 0)


def interrupted(metadata: dict[str, Any]) -> bool:
    """Whether the model is a checkpoint of a run that stopped before its steps (not an early stop)."""
    return "early_stopped_at" not in metadata and trained_steps(metadata) < target_steps(metadata)


def steps_to_run(metadata: dict[str, Any], name: str, total: Optional[int] = None,
                 more: Optional[int] = None) -> int:
    """How many steps to train ``name`` further: up to ``total`` (counting what it has), ``more`` on top
    of it, or (neither given) the rest of an interrupted run. TrainingInputError says what to give."""
    done = trained_steps(metadata)
    if total is not None and more is not None:
        raise TrainingInputError("give --steps TOTAL or --more-steps N, not both")
    if more is not None:
        if more < 1:
            raise TrainingInputError(f"--more-steps {more}: give 1 or more steps")
        return more
    if total is not None:
        if total <= done:
            raise TrainingInputError(f"--steps {total}: {name} has trained {done} steps already (--steps counts "
                                     "all of them when continuing); give a larger total or --more-steps N")
        return total - done
    if interrupted(metadata):
        return target_steps(metadata) - done
    raise TrainingInputError(f"{name} finished its training ({done} steps); to train it further give --steps "
                             "TOTAL or --more-steps N")


def check_same_network(metadata: dict[str, Any], name: str, arch: Optional[str], loss: Optional[str]) -> None:
    """TrainingInputError when ``arch`` or ``loss`` (None, "auto": not asked for) differ from the model's own."""
    for label, asked, own in (("--arch", arch, metadata.get("architecture")), ("--loss", loss, metadata.get("loss"))):
        if asked not in (None, "auto") and own is not None and asked != own:
            raise TrainingInputError(f"{label} {asked}: {name} was trained with {own}, and continuing it keeps "
                                     f"its {label[2:]}; leave {label} out, or train a new model without --init")
