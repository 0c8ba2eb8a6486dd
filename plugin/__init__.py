"""The host-neutral bridge between artists' hosts and the shotstyle server.

Everything here is standard library plus pyzmq, so it can run inside Nuke's or
Resolve's embedded Python: the wire protocol, the frame payload codec, the
client, sequence patterns and the effect's parameter description.
"""

__version__ = "0.1.0"
