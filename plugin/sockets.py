"""What both ends of the wire set on their ZeroMQ sockets alike (the client's DEALER, the server's ROUTER)."""

from __future__ import annotations

from typing import Dict

import zmq

from shotstyle.plugin import protocol


def heartbeat_options(timeout_ms: int = protocol.HEARTBEAT_TIMEOUT_MS) -> Dict[int, int]:
    """ZMTP heartbeat socket options (protocol.HEARTBEAT_*): a client's; the server waits longer for
    an answer to its pings (``timeout_ms``: protocol.SERVER_HEARTBEAT_TIMEOUT_MS)."""
    return {zmq.HEARTBEAT_IVL: protocol.HEARTBEAT_IVL_MS, zmq.HEARTBEAT_TIMEOUT: timeout_ms,
            zmq.HEARTBEAT_TTL: protocol.HEARTBEAT_TTL_MS}
