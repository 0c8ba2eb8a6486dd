"""Exit statuses of every `shotstyle` command, and the one each protocol error code leaves with.

One table for all the commands, so a farm manager or a pipeline script reads a number the same
way whichever command it ran; the README's exit-code table lists exactly these, and its table by
command exactly `BY_COMMAND`. An error leaves with the status of its protocol
error code (`for_error_code`), so it gives the same status whether it happened in a server or
in-process (server-side exceptions get their code from `server.errors.wire_code`).
"""

from __future__ import annotations

import enum
from typing import Dict, FrozenSet


class ExitCode(enum.IntEnum):
    """What a `shotstyle` command's exit status means (the README's table)."""

    OK = 0                  # done: every frame rendered or already complete, the model written, ...
    INTERNAL = 1            # an unexpected error: a bug; the message or traceback names it
    USAGE = 2               # bad arguments: a value, pattern, address, option, colour space, device or key file
    MISSING_INPUT = 3       # input missing or unreadable: frames (render: the others were rendered),
                            # keyframes, the style image, files given to `info`
    MODEL_ERROR = 4         # a model file cannot be read, is damaged or unknown; or the VGG-19 weights
                            # a training needs are not available
    SERVER_UNREACHABLE = 5  # no usable server answered (or could be started); `submit`: the farm
                            # manager refused the job or is not installed
    FAILED = 6              # the work failed: some frames (named in the log), the training, a required
                            # piece of the installation (`doctor`)
    IO_ERROR = 7            # a file or folder cannot be written (or read) for a reason of the system: no
                            # permission, a full disk, a read-only filesystem, a folder that cannot be made
    CANCELLED = 130         # stopped by Ctrl-C or a cancel (`train` keeps a checkpoint)


# Every code of protocol.ERROR_CODES (tests/test_errors.py checks the keys are exactly those).
BY_ERROR_CODE: Dict[str, ExitCode] = {
    "bad_message": ExitCode.INTERNAL,            # one side breaks the protocol: a bug
    "version_mismatch": ExitCode.SERVER_UNREACHABLE,
    "unknown_op": ExitCode.SERVER_UNREACHABLE,   # an older server
    "bad_argument": ExitCode.USAGE,
    "too_large": ExitCode.USAGE,
    "too_many_jobs": ExitCode.SERVER_UNREACHABLE,
    "bad_frame": ExitCode.MISSING_INPUT,
    "unknown_model": ExitCode.MODEL_ERROR,
    "bad_model": ExitCode.MODEL_ERROR,
    "weights_unavailable": ExitCode.MODEL_ERROR,
    "unknown_job": ExitCode.FAILED,
    "training_failed": ExitCode.FAILED,
    "cancelled": ExitCode.CANCELLED,
    "shutting_down": ExitCode.SERVER_UNREACHABLE,
    "internal": ExitCode.INTERNAL,
    "timeout": ExitCode.SERVER_UNREACHABLE,
    "unreachable": ExitCode.SERVER_UNREACHABLE,
    "unauthorised": ExitCode.SERVER_UNREACHABLE,
    "forbidden": ExitCode.SERVER_UNREACHABLE,
    "busy": ExitCode.SERVER_UNREACHABLE,
    "io_error": ExitCode.IO_ERROR,
}


# The statuses each command leaves with (the README's "exit statuses by command" table lists exactly
# these; tests/test_errors.py checks it, and that every command of the CLI is here). Every command
# may also leave with 1 (a bug), 2 (arguments argparse refuses), 7 (a system I/O failure it does not
# handle itself: cli.main) and 130 (Ctrl-C).
_ANY = frozenset({ExitCode.OK, ExitCode.INTERNAL, ExitCode.USAGE, ExitCode.IO_ERROR, ExitCode.CANCELLED})
_WORK = frozenset(ExitCode)  # commands that read inputs, load models, use servers and do the work
BY_COMMAND: Dict[str, FrozenSet[ExitCode]] = {
    "doctor": _ANY | {ExitCode.FAILED},
    "info": _ANY | {ExitCode.MISSING_INPUT},
    "train": _WORK,
    "render": _WORK,
    "serve": _ANY | {ExitCode.SERVER_UNREACHABLE},   # serve --stop: as stop
    "stop": _ANY | {ExitCode.SERVER_UNREACHABLE},
    "keys": _ANY,
    "demo": _WORK,
    "submit": _ANY | {ExitCode.SERVER_UNREACHABLE},
    "nuke-prerender": _WORK,
    "export-lut": _ANY | {ExitCode.MISSING_INPUT, ExitCode.MODEL_ERROR},
}


def for_error_code(code: str) -> ExitCode:
    """The exit status of a failure with protocol error code ``code`` (an unknown code: INTERNAL)."""
    return BY_ERROR_CODE.get(code, ExitCode.INTERNAL)
