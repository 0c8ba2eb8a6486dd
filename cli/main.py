"""The `shotstyle` console command: one table of sub-commands, each in its own module.

Every sub-command module exposes ``configure(parser)`` to add its arguments and
``run(args) -> int`` to do the work; they are imported only when chosen, so
`shotstyle info` never pays for importing torch. Every exit status is one of
`plugin.exitcodes.ExitCode` (the README's table): an error a command does not handle itself
leaves with the status of its kind, the same through a server as in-process.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import importlib
import os
import sys
import threading
from typing import NoReturn, Optional, Sequence

from shotstyle.cli import verbosity
from shotstyle.plugin import __version__
from shotstyle.plugin.errors import ClientError
from shotstyle.plugin.exitcodes import ExitCode
from shotstyle.server.errors import ShotstyleError, exit_code

# name -> (module, one-line help)
SUBCOMMANDS = {
    "doctor": ("shotstyle.cli.doctor", "report versions, compute device and VGG-19 weights"),
    "info": ("shotstyle.cli.info", "describe EXR/image files, sequences or model files"),
    "train": ("shotstyle.cli.train", "train a style model on keyframes"),
    "render": ("shotstyle.cli.render", "stylize a frame sequence with a trained model"),
    "serve": ("shotstyle.cli.serve", "run the persistent ZeroMQ server"),
    "stop": ("shotstyle.cli.stop", "stop this install's local server"),
    "keys": ("shotstyle.cli.keys", "make CurveZMQ key pairs for remote servers"),
    "demo": ("shotstyle.cli.demo", "train and render a built-in example through a local server"),
    "submit": ("shotstyle.cli.submit", "write (and submit) Deadline / OpenCue farm jobs"),
    "nuke-prerender": ("shotstyle.cli.nukeprerender", "stylize a Nuke script's ShotStyle frames before it renders"),
    "export-lut": ("shotstyle.cli.exportlut", "write a model's global grade as a .cube LUT and an OCIO look"),
}


DESCRIPTION = ("Give a shot the look of a style frame: train a small network on a keyframe (shotstyle train), "
               "then restyle every frame of the shot (shotstyle render), locally, on a GPU server or on a render "
               "farm; Nuke and DaVinci Resolve use the same server.")
EPILOG = "`shotstyle COMMAND --help` lists a command's options and their defaults; `shotstyle doctor` checks the setup."


class HelpFormatter(argparse.HelpFormatter):
    """argparse's help, with each option's default said where the help text does not say it already."""

    def add_argument(self, action: argparse.Action) -> None:
        default = action.default
        if action.option_strings and action.help != argparse.SUPPRESS and not (
                default is None or default is False or default in ([], "") or default == argparse.SUPPRESS) \
                and "default" not in (action.help or ""):
            action = copy.copy(action)
            action.help = f"{action.help} (default: %(default)s)" if action.help else "default: %(default)s"
        super().add_argument(action)


class CommandParser(argparse.ArgumentParser):
    """A sub-command's parser: a refused argument is one line naming it (argparse's own message, which
    names the option and the value) and where the options are listed, without the usage block."""

    def error(self, message: str) -> NoReturn:
        self.exit(ExitCode.USAGE, f"{self.prog}: error: {message} (`{self.prog} --help` lists the options)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="shotstyle", description=DESCRIPTION, epilog=EPILOG,
                                     formatter_class=HelpFormatter)
    parser.add_argument("--version", action="version", version=f"shotstyle {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module_name, help_text) in SUBCOMMANDS.items():
        sub = subparsers.add_parser(name, help=help_text, description=help_text)
        sub.set_defaults(_module=module_name)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run a command; its exit status. Without ``argv`` it is the process's entry point (the
    `shotstyle` script, ``python -m``): the command line is ``sys.argv`` and it ends the process."""
    if argv is None:
        end_process(run_command(sys.argv[1:]))
    return run_command(argv)


def end_process(code: int) -> NoReturn:
    """Exit with ``code``, skipping the interpreter's finalization while other threads run.

    A command's worker threads (frame readers and writers, server streams) may still be inside
    native code when it returns, after Ctrl-C above all. Finalizing, Python ends such a thread
    with pthread_exit when it asks for the GIL back; unwinding through OpenImageIO's C++ (a
    noexcept destructor: pybind11's GIL guard) calls std::terminate: "terminate called without
    an active exception", SIGABRT, exit 134 instead of 130. Files are closed and claim locks
    dropped by the kernel either way; a render's temporary files are removed by the next run.
    """
    if threading.active_count() > 1:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):
                pass
        os._exit(code)
    sys.exit(code)


def run_command(argv: Sequence[str]) -> int:
    argv = list(argv)
    parser = build_parser()
    if not argv or argv[0] not in SUBCOMMANDS:
        parser.parse_args(argv)  # --help, --version, or a clear error for an unknown command
        parser.print_help()
        return ExitCode.USAGE
    command = argv[0]
    module_name, help_text = SUBCOMMANDS[command]
    with contextlib.ExitStack() as said:  # the errors below go to --log-file too
        return _run(command, module_name, help_text, argv[1:], said)


def _run(command: str, module_name: str, help_text: str, argv: Sequence[str], said: contextlib.ExitStack) -> int:
    try:
        module = importlib.import_module(module_name)
        sub = CommandParser(prog=f"shotstyle {command}", description=help_text, formatter_class=HelpFormatter)
        module.configure(sub)
        verbosity.add_options(sub)
        args = sub.parse_args(argv)
        said.enter_context(verbosity.applied(args))
        return int(module.run(args) or 0)
    except ShotstyleError as exc:
        print(f"shotstyle {command}: error: {exc}", file=sys.stderr)
        return exit_code(exc)
    except ClientError as exc:
        print(f"shotstyle {command}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except BrokenPipeError:  # output piped into `head` and the like
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return ExitCode.OK
    except KeyboardInterrupt:  # commands that keep work on Ctrl-C (train) handle it themselves
        print(f"shotstyle {command}: stopped by Ctrl-C", file=sys.stderr)
        return ExitCode.CANCELLED
    except OSError as exc:  # what a command does not handle itself: a clear line, not a traceback
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"shotstyle {command}: error: {where}{exc.strerror or exc}", file=sys.stderr)
        return ExitCode.IO_ERROR


if __name__ == "__main__":
    main()
