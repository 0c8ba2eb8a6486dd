"""Reaching a server from a farm command: a client that has answered, or a SetupError saying why not.

`shotstyle render`, `train` and `demo` all start here. ``hello`` gets a short timeout and no
retries, so a dead address fails in seconds, not minutes; afterwards the client gets the
longer timeout and the retries real requests need.
"""

from __future__ import annotations

from typing import Optional

from shotstyle.plugin.client import Client
from shotstyle.plugin.errors import ServerError, SetupError
from shotstyle.plugin.exitcodes import ExitCode

HELLO_TIMEOUT_S = 5.0
REQUEST_TIMEOUT_S = 60.0
REQUEST_RETRIES = 2


def connect(address: Optional[str]) -> Client:
    """A Client to ``address`` (None: the local server, started if absent) that has answered hello."""
    try:
        client = Client(address, autostart=address is None, timeout=HELLO_TIMEOUT_S, retries=0)
    except ServerError as exc:
        raise SetupError(ExitCode.SERVER_UNREACHABLE, f"no local server: {exc.message}; start one with "
                         "`shotstyle serve`, give --server, or use --in-process") from None
    try:
        client.hello()
    except ServerError as exc:
        client.close()
        raise SetupError(ExitCode.SERVER_UNREACHABLE, f"no answer from {client.address}: {exc.message}; "
                         "start one with `shotstyle serve`, check the address, or use --in-process") from None
    client.timeout, client.retries = REQUEST_TIMEOUT_S, REQUEST_RETRIES
    return client
