"""Giving freed memory back to the system once a burst of work has drained.

glibc's malloc keeps what a burst of frames freed: its mmap threshold rises to the size of the
largest block freed (up to 32 MB), so later frame-sized buffers come from the heap and its
per-thread arenas, whose free pages stay resident. A server that took 40 1080p frames at once
then held about 1.2 GB more than before, for good. `TrimWhenIdle` calls glibc's
``malloc_trim(0)`` (every arena, free pages in the middle too) once no request has been in
flight for `IDLE_S`; not after every request, so a steady stream of frames does not fault its
buffers in again each time. Elsewhere than glibc it does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import time
from typing import Callable, Optional

IDLE_S = 1.0


@functools.lru_cache(maxsize=1)
def _malloc_trim() -> Optional[Callable[[int], int]]:
    name = ctypes.util.find_library("c")
    try:
        trim = ctypes.CDLL(name).malloc_trim if name else None
    except (OSError, AttributeError):  # not glibc (musl, macOS)
        return None
    if trim is not None:
        trim.argtypes, trim.restype = [ctypes.c_size_t], ctypes.c_int
    return trim


def release_free_memory() -> bool:
    """Return the C heap's free pages to the system; False where the C library cannot."""
    trim = _malloc_trim()
    return bool(trim is not None and trim(0) >= 0)


class TrimWhenIdle:
    """Call `tick` from a loop with whether work is in flight; trims once per burst, `IDLE_S` after it."""

    def __init__(self, idle_s: float = IDLE_S):
        self._idle_s = idle_s
        self._busy_until: Optional[float] = None   # when the last burst was last seen busy; None: trimmed

    def tick(self, busy: bool) -> None:
        now = time.monotonic()
        if busy:
            self._busy_until = now
        elif self._busy_until is not None and now - self._busy_until >= self._idle_s:
            self._busy_until = None
            release_free_memory()
