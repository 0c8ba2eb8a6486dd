"""Who sent a request, and what they may do: the server's side of the protocol's access rules.

ZeroMQ tells the server who is at the other end of a connection, and a client cannot choose
it: the CURVE key a client authenticated with (``User-Id``, set by the ZAP authenticator to the
key's Z85 text), and the peer's address (``Peer-Address``: the IP of a TCP peer, or for
``ipc://`` "host:uid:gid:pid" from the kernel's peer credentials). A request's socket identity,
by contrast, is whatever the client picked, so it only routes replies.

* *Authority* (`Caller.authority`: stop the server, delete or replace models, cancel other
  clients' jobs) comes from the server's token (written to the per-user server file, mode
  0600, and sent by local clients in each request header), an ``ipc://`` peer running as the
  server's own user, or any authorised CURVE key (the server's admin chose those keys).
* *Limits* count per `Caller.principal`: the CURVE key; the connection, for a token holder (the
  user the server runs for: several nodes of one artist each get their own share); for a
  loopback peer, its user (every user of the server's machine is 127.0.0.1: counted as one
  client, one local user's render blocked everyone else's; Linux: the kernel's socket table
  says who owns the other end); else the peer address, so fresh identities and connections
  from one machine (or one local user) share one share.
"""

from __future__ import annotations

import dataclasses
import hmac
import ipaddress
import os
import secrets
import socket
from typing import Any, Optional

import zmq


def new_token() -> str:
    """A fresh secret for the server file: whoever can read that file may control the server."""
    return secrets.token_urlsafe(32)


@dataclasses.dataclass(frozen=True)
class Caller:
    """The sender of one request."""

    identity: bytes   # the socket identity replies are routed to (client-chosen)
    principal: str    # what per-client limits count by
    authority: bool   # may run control ops on anything


def _property(frame: Any, name: str) -> Optional[str]:
    """A ZeroMQ connection property of a received frame, or None (unknown, or not a zmq.Frame)."""
    try:
        value = frame.get(name)
    except (zmq.ZMQError, AttributeError, TypeError):
        return None
    return value if isinstance(value, str) and value else None


def _same_user_ipc(peer: Optional[str]) -> bool:
    """Whether an ipc:// peer ("host:uid:gid:pid") runs as this process's user."""
    if peer is None or not hasattr(os, "geteuid"):
        return False
    fields = peer.rsplit(":", 3)
    return len(fields) == 4 and fields[1] == str(os.geteuid())


def identify(frame: Any, identity: bytes, sent_token: Any, token: Optional[str], ipc: bool) -> Caller:
    """The Caller of a request whose first message part is ``frame``, with ``sent_token`` from its header.

    ``token`` is the server's own (None: it has none); ``ipc``: the server listens on ipc://.
    """
    user = _property(frame, "User-Id")
    if user is not None:
        return Caller(identity, f"key:{user}", True)
    token_ok = (token is not None and isinstance(sent_token, str)
                and hmac.compare_digest(sent_token.encode("utf-8", "replace"), token.encode("utf-8")))
    peer = _property(frame, "Peer-Address")
    if token_ok or (ipc and _same_user_ipc(peer)):
        return Caller(identity, f"owner:{identity.hex()}", True)
    user_id = _local_user(frame) if _loopback(peer) else None
    if user_id is not None:
        return Caller(identity, f"local user {user_id}", False)
    return Caller(identity, f"peer:{peer or 'unknown'}", False)


def _loopback(peer: Optional[str]) -> bool:
    try:
        return peer is not None and ipaddress.ip_address(peer).is_loopback
    except ValueError:  # an ipc:// peer ("host:uid:gid:pid")
        return False


def _local_user(frame: Any) -> Optional[int]:
    """The user id owning the client end of a loopback TCP connection (Linux), or None.

    The message's connection is our socket `zmq.SRCFD`; its peer's port is the client socket's
    own port, and /proc/net/tcp lists that socket with its owner's uid."""
    try:
        with socket.socket(fileno=os.dup(int(frame.get(zmq.SRCFD)))) as ours:  # a dup: ZeroMQ's stays open
            family, here, there = ours.family, ours.getsockname()[1], ours.getpeername()[1]
        table = "/proc/net/tcp6" if family == socket.AF_INET6 else "/proc/net/tcp"
        with open(table) as handle:
            next(handle)   # the column titles
            for line in handle:
                fields = line.split()   # sl local_address rem_address st ... uid
                if (int(fields[1].rsplit(":", 1)[1], 16), int(fields[2].rsplit(":", 1)[1], 16)) == (there, here):
                    return int(fields[7])
    except (zmq.ZMQError, AttributeError, TypeError, ValueError, OSError, IndexError, StopIteration):
        pass
    return None
