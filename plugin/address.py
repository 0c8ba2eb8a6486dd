"""Server addresses as people type them → the ZeroMQ endpoints sockets take: the one parser.

Accepted forms (`FORMS`): ``host:port``, ``[ipv6]:port``, ``:port`` and ``port`` (this
machine, 127.0.0.1), ``tcp://host:port`` and ``ipc://path``. Anything else is an
`AddressError` (a usage error, exit 2) naming the forms, never a ZeroMQ traceback. Every
command (`--server`, `serve --bind`), the client and the host nodes' server field go
through `parse_address`. Standard library only (it runs inside hosts).
"""

from __future__ import annotations

import re
from typing import List, Optional

from shotstyle.plugin.errors import ServerError

FORMS = "host:port, :port, port, tcp://host:port or ipc://path"
LOCAL_HOST = "127.0.0.1"

_HOST = r"(?P<host>\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9*](?:[A-Za-z0-9_.*-]*[A-Za-z0-9*])?)"
_HOST_PORT = re.compile(rf"^{_HOST}?:(?P<port>\d+)$")


class AddressError(ServerError):
    """An address that is none of the accepted forms (`FORMS`); a usage error."""

    def __init__(self, message: str):
        super().__init__("bad_argument", message)


def parse_address(text: str, *, bind: bool = False) -> str:
    """The ZeroMQ endpoint for ``text`` (see `FORMS`); AddressError naming the forms otherwise.

    ``bind``: an address to listen on, where port 0 or ``*`` (any free port) and host ``*``
    (every interface) are allowed too.
    """
    value = str(text).strip()
    if value.startswith("ipc://"):
        if len(value) <= len("ipc://"):
            raise AddressError(f"server address {text!r}: ipc:// needs a path, e.g. ipc:///tmp/shotstyle.sock")
        return value
    rest = value[len("tcp://"):] if value.startswith("tcp://") else value
    if "://" in rest:
        raise AddressError(f"server address {text!r}: unknown transport; give {FORMS}")
    if rest.isdigit():
        rest = ":" + rest
    if bind and rest.endswith(":*"):
        rest = rest[:-1] + "0"
    match = _HOST_PORT.match(rest)
    if not match:
        raise AddressError(f"server address {text!r} is not one of the forms {FORMS} "
                           "(e.g. gpu-01:5599, :5599, tcp://10.0.0.5:5599)")
    port = int(match.group("port"))
    if not (0 if bind else 1) <= port <= 65535:
        raise AddressError(f"server address {text!r}: port {port} is outside 1-65535")
    host = match.group("host") or LOCAL_HOST
    if "*" in host and not (bind and host == "*"):
        raise AddressError(f"server address {text!r}: '*' (every interface) is only for listening (serve --bind)")
    return f"tcp://{host}:{port if port else '*'}"


def parse_addresses(text: str) -> List[str]:
    """A comma-separated list of addresses (``--server A,B``); AddressError for any bad one or none."""
    addresses = [parse_address(part) for part in str(text).split(",") if part.strip()]
    if not addresses:
        raise AddressError(f"server address {text!r} is empty; give {FORMS}")
    return addresses


def address_or_local(text: Optional[str]) -> Optional[str]:
    """``text`` parsed, or None (the local server) when it is empty: what a host's server field means."""
    return parse_address(text) if text and str(text).strip() else None
