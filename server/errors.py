"""The server side's exception tree, and the one table from exception to protocol error code.

Every user-facing failure on the server side (the ZeroMQ server, its jobs and store, frame I/O
and the engine, also when the farm runs the engine in-process) is one of these. Messages are
shown to artists and TDs as they are, so each names the file or value that is wrong and what
to do about it::

    ShotstyleError
    ├── FrameIOError                an image file is missing, damaged or unusable
    │   ├── MissingFramesError
    │   └── FrameWriteError         one the system will not let us write (full disk, permissions)
    ├── ColourError                 an OCIO config or colour space
    ├── ModelFileError
    ├── WeightsUnavailableError
    ├── TrainingCancelled
    ├── TrainingInputError          a keyframe or training setting
    ├── UnknownArchitectureError
    ├── UnknownLossError
    ├── InferenceError              a frame or setting the stylizer refuses
    ├── DeviceError
    ├── CurveKeyError
    └── RequestError                a request refused; carries its own code
        └── StoreError              a bad model name, or a model not in the store

`wire_code` gives an exception's protocol error code (`WIRE_CODES`); `error_of` the
(code, message) of an error reply. Clients map codes to exit statuses with
`plugin.exitcodes.for_error_code`, which `exit_code` applies here, so one failure leaves a
command with one status whether it happened in a server or in-process.
"""

from __future__ import annotations

import sys
import traceback

from shotstyle.plugin.exitcodes import ExitCode, for_error_code
from shotstyle.plugin.protocol import ERROR_CODES, ProtocolError


class ShotstyleError(Exception):
    """Base: message is user-facing and names what is wrong + what to do."""


class FrameIOError(ShotstyleError):
    """An image file is missing, unreadable, damaged or has an unusable channel layout.

    The message starts with the path.
    """


class MissingFramesError(FrameIOError):
    """Frames of a sequence are not on disk; `missing` lists their numbers."""

    def __init__(self, message: str, missing: list[int]):
        super().__init__(message)
        self.missing = list(missing)


class FrameWriteError(FrameIOError):
    """An image file cannot be written for a reason of the system: a full disk, no permission, a
    read-only filesystem. The message starts with the path and gives the system's reason."""


class ColourError(ShotstyleError):
    """An OpenColorIO config or colour space cannot be loaded or used."""


class ModelFileError(ShotstyleError):
    """A style model file is tampered with, of an unknown architecture or a newer format."""


class WeightsUnavailableError(ShotstyleError):
    """The ImageNet VGG-19 weights cannot be found; the message says how to fetch them."""


class TrainingCancelled(ShotstyleError):
    """A training job was cancelled by its client."""


class TrainingInputError(ShotstyleError, ValueError):
    """A keyframe, style image or setting the trainer cannot use."""


class UnknownArchitectureError(ShotstyleError, ValueError):
    """A network name or argument the registry does not know."""


class UnknownLossError(ShotstyleError, ValueError):
    """A loss name the registry does not know."""


class InferenceError(ShotstyleError):
    """A frame or setting the stylizer cannot use (a mix out of range, a tile size too small...)."""


class DeviceError(ShotstyleError):
    """A requested compute device does not exist on this machine."""


class CurveKeyError(ShotstyleError):
    """Missing, unreadable or unsafe CURVE key configuration."""


class RequestError(ShotstyleError):
    """A request refused for the reason its ``code`` (one of protocol.ERROR_CODES) names."""

    def __init__(self, code: str, message: str):
        if code not in ERROR_CODES:
            raise ValueError(f"{code!r} is not a protocol error code")
        super().__init__(message)
        self.code = code


def shutting_down() -> RequestError:
    """What a request gets once the server has begun to stop (the loop and every worker stage say the same)."""
    return RequestError("shutting_down", "the server is stopping; send the request again once it is back")


class StoreError(RequestError):
    """A model name that is invalid (bad_argument) or not in the store (unknown_model); a model the store
    cannot keep (io_error) or may not replace (forbidden)."""


WIRE_CODES: dict[type, str] = {
    ShotstyleError: "internal",
    FrameIOError: "bad_frame",
    FrameWriteError: "io_error",
    ColourError: "bad_argument",
    ModelFileError: "bad_model",
    WeightsUnavailableError: "weights_unavailable",
    TrainingCancelled: "cancelled",
    TrainingInputError: "bad_argument",
    UnknownArchitectureError: "bad_argument",
    UnknownLossError: "bad_argument",
    InferenceError: "bad_argument",
    DeviceError: "bad_argument",
    CurveKeyError: "bad_argument",
}


def wire_code(exc: BaseException) -> str:
    """The protocol error code of ``exc``: its own for requests, the table's for the rest.

    A plain ValueError is an argument the parameter description refused (params.validate);
    anything else unexpected is ``internal``.
    """
    if isinstance(exc, (RequestError, ProtocolError)):
        return exc.code
    for cls in type(exc).__mro__:
        if cls in WIRE_CODES:
            return WIRE_CODES[cls]
    return "bad_argument" if isinstance(exc, ValueError) else "internal"


def error_of(exc: BaseException) -> tuple[str, str]:
    """(code, message) of an exception, for an error reply; unexpected ones are logged with their traceback."""
    code = wire_code(exc)
    if isinstance(exc, (ShotstyleError, ProtocolError, ValueError)):
        return code, str(exc)
    traceback.print_exception(type(exc), exc, exc.__traceback__, file=sys.stderr)
    return code, f"{type(exc).__name__}: {exc}"


def exit_code(exc: ShotstyleError) -> ExitCode:
    """The status a command that stops on ``exc`` leaves with (the same as through a server)."""
    return for_error_code(wire_code(exc))
