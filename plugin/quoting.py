"""How a message quotes a value it was given: `brief`, a repr cut to a readable length.

Every side's error messages use it (the protocol's checks, the server, the engine's model files
and networks, the commands), so a hostile or huge value never floods a log or an error reply.
Standard library only (it runs inside hosts).
"""

from __future__ import annotations

import reprlib
from typing import Any

_BRIEF = reprlib.Repr()
_BRIEF.maxstring = _BRIEF.maxother = _BRIEF.maxlong = 80
_BRIEF.maxlevel = 3


def brief(value: Any) -> str:
    """A short repr of ``value`` (long strings, lists and nesting cut): how a message quotes a value it was sent."""
    return _BRIEF.repr(value)
