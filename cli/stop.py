"""`shotstyle stop`: end this install's local server cleanly (also `shotstyle serve --stop`).

The server is asked to shut down (a training job checkpoints first) and waited for. ``--all``
stops the local servers of every install of this user recorded in the runtime folder (other
checkouts, venvs or versions). Exit status (`ExitCode`): 0 stopped or nothing to stop, 5 a
server did not answer or did not stop in time (it is named, with its pid).
"""

from __future__ import annotations

import argparse

from shotstyle.plugin import localserver
from shotstyle.plugin.exitcodes import ExitCode

STOP_TIMEOUT_S = 150.0


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--all", action="store_true",
                        help="stop every install's local server of this user, not only this install's")
    parser.add_argument("--timeout", type=float, default=STOP_TIMEOUT_S, metavar="SECONDS",
                        help="how long to wait for a server to finish (a training job saves a checkpoint)")


def run(args: argparse.Namespace) -> int:
    paths = localserver.server_files() if args.all else [localserver.server_file()]
    if not paths:
        print(f"shotstyle stop: no local shotstyle servers recorded in {localserver.runtime_dir()}")
        return ExitCode.OK
    code = ExitCode.OK
    for path in paths:
        stopped, message = localserver.stop_server(path, args.timeout)
        print(f"shotstyle stop: {message}")
        if not stopped:
            code = ExitCode.SERVER_UNREACHABLE
    return code
