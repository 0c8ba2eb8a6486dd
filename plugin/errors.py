"""The client side's exceptions: one root for everything hosts and the farm commands raise.

Modelled on httpx's single tree: catch `ClientError` for any failure to show the artist or TD,
or a branch for one kind::

    ClientError                  root; the message names what is wrong and what to do
    ├── ProtocolError            a message or frame breaks the protocol (plugin.protocol)
    ├── ServerError              a request failed; .code, .frame
    ├── SetupError               a command cannot start (no server, unreadable model); .exit_code
    └── the hosts' own           HostBridgeError (nodes.hostbridge), ShotStyleNodeError (nodes.nuke.node),
                                 FusionCompError (nodes.resolve.fusioncomp), SubmitError (cli.submit)

(The installer's HostInstallError and HostPythonError are not: install.py loads those modules
before shotstyle is installed.)

Every error has a ``code`` from `protocol.ERROR_CODES` or an explicit exit status, and
``exit_code`` says which `ExitCode` a command leaves with (`exitcodes.for_error_code`): the
server side maps its exceptions to the same codes (`server.errors.wire_code`), so one failure
leaves with one status whether it happened in a server or in-process.
"""

from __future__ import annotations

from typing import Any, Optional

from shotstyle.plugin.exitcodes import ExitCode, for_error_code


class ClientError(Exception):
    """Root of the client side's errors; ``str()`` is the message for the artist or TD."""

    @property
    def exit_code(self) -> ExitCode:
        """The status a command that stops on this error leaves with."""
        return ExitCode.FAILED


class CodedError(ClientError):
    """An error with a protocol error code (``code``, one of protocol.ERROR_CODES) and a message."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message

    @property
    def exit_code(self) -> ExitCode:
        return for_error_code(self.code)


class ServerError(CodedError):
    """A request failed: the server's error reply, or timeout/unreachable/unauthorised from this side.

    ``frame`` is the frame number the request carried, if any; ``model_file`` the bytes of a
    finished model a failed training job sent anyway (its server could not keep it).
    """

    def __init__(self, code: str, message: str, frame: Optional[int] = None, model_file: Any = None):
        super().__init__(code, message)
        where = "" if frame is None or message.startswith(f"frame {frame}:") else f"frame {frame}: "
        self.args = (f"[{code}] {where}{message}",)
        self.frame = frame
        self.model_file = model_file


class SetupError(ClientError):
    """A command cannot start (no server answers, the model file is unreadable...); leaves with ``exit_code``."""

    def __init__(self, exit_code: ExitCode, message: str):
        super().__init__(message)
        self._exit_code = exit_code

    @property
    def exit_code(self) -> ExitCode:
        return self._exit_code
