"""Reaching a server from a farm command: its options, a client that has answered, and the line that says which.

`shotstyle render`, `train`, `demo` and `nuke-prerender` all start here. ``--server`` takes
the address forms of `plugin.address` (a bad one is a usage error, exit 2); ``--server-key``
/ ``--client-key`` (or their environment variables and the per-user config,
`plugin.userconfig`) make the connection CURVE-encrypted. ``hello`` gets a short timeout and
no retries, so a dead address fails in seconds, not minutes; afterwards the client gets the
longer timeout and the retries real requests need. A server running another shotstyle
version is used with a warning.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any, List, Optional

from shotstyle.plugin.address import AddressError, parse_address, parse_addresses
from shotstyle.plugin.client import Client
from shotstyle.plugin.errors import ServerError, SetupError
from shotstyle.plugin.exitcodes import ExitCode
from shotstyle.plugin.localserver import install_mismatch
from shotstyle.plugin.userconfig import CurveKeys, curve_keys

HELLO_TIMEOUT_S = 5.0
REQUEST_TIMEOUT_S = 60.0
REQUEST_RETRIES = 2


def server_list(text: str) -> str:
    """argparse ``type`` of ``--server``: the addresses normalised (comma-separated), or a usage error."""
    try:
        return ",".join(parse_addresses(text))
    except AddressError as exc:
        raise argparse.ArgumentTypeError(exc.message) from None


def server_address(text: str) -> str:
    """argparse ``type`` of a single-server ``--server``: the address normalised, or a usage error."""
    try:
        return parse_address(text)
    except AddressError as exc:
        raise argparse.ArgumentTypeError(exc.message) from None


def add_key_options(parser: Any) -> None:
    """``--server-key`` / ``--client-key``: the CURVE keys for a server given with ``--server``."""
    parser.add_argument("--server-key", metavar="FILE",
                        help="the server's public CURVE key file (default $SHOTSTYLE_SERVER_KEY or the config file)")
    parser.add_argument("--client-key", metavar="FILE",
                        help="this client's .key_secret file (default $SHOTSTYLE_CLIENT_KEY or the config file)")


def keys_from(args: argparse.Namespace) -> Optional[CurveKeys]:
    """The CURVE keys for ``args.server`` (None for the local server); SetupError (exit 2) when they are wrong."""
    given = getattr(args, "server_key", None), getattr(args, "client_key", None)
    if not getattr(args, "server", None):
        if any(given):
            raise SetupError(ExitCode.USAGE, "--server-key/--client-key are for a server given with --server "
                                             "(the local server needs no keys)")
        return None
    try:
        return curve_keys(*given)
    except ServerError as exc:
        raise SetupError(ExitCode.USAGE, exc.message) from None


def addresses(args: argparse.Namespace) -> List[Optional[str]]:
    """The servers ``args.server`` names, or [None] (the local server)."""
    return list(args.server.split(",")) if getattr(args, "server", None) else [None]


def connect(address: Optional[str], keys: Optional[CurveKeys] = None) -> Client:
    """A Client to ``address`` (None: the local server, started if absent) that has answered hello."""
    curve = {} if keys is None else keys.client_options()
    try:
        client = Client(address, autostart=address is None, timeout=HELLO_TIMEOUT_S, retries=0, **curve)
    except ServerError as exc:
        if exc.code == "bad_argument":  # an address none of the forms (AddressError), a key file
            raise SetupError(ExitCode.USAGE, exc.message) from None
        raise SetupError(ExitCode.SERVER_UNREACHABLE, f"no local server: {exc.message}; start one with "
                         "`shotstyle serve`, give --server, or use --in-process") from None
    try:
        hello = client.hello()
    except ServerError as exc:
        client.close()
        hint = "" if keys is None else " (CURVE keys given: is it a CURVE server, and does it know this client?)"
        raise SetupError(ExitCode.SERVER_UNREACHABLE, f"no answer from {client.address}: {exc.message}{hint}; "
                         "start one with `shotstyle serve`, check the address, or use --in-process") from None
    mismatch = install_mismatch(hello)
    if mismatch:
        print(f"shotstyle: warning: the server at {client.address}: {mismatch}", file=sys.stderr, flush=True)
    client.timeout, client.retries = REQUEST_TIMEOUT_S, REQUEST_RETRIES
    return client


def server_line(client: Client) -> str:
    """Which server a command uses, in one line: address, whether it was started, found or given, version, device."""
    hello = client.hello()
    how = "started now" if client.started_server else "found running" if client.local else "given"
    return (f"server {client.address} ({how}; shotstyle {hello.get('version', '?')}, "
            f"device {hello.get('device', '?')})")
