"""Paths whose bytes live in memory, so that OpenImageIO (whose Python binding has no in-memory
I/O) can decode and encode image bytes without touching a disk."""

from __future__ import annotations

import contextlib
import functools
import os
import re
import tempfile
import uuid
from typing import Any, Iterator


_HAVE_MEMFD = hasattr(os, "memfd_create") and os.path.isdir("/proc/self/fd")


@contextlib.contextmanager
def memory_file(ext: str, data: Any = None) -> Iterator[str]:
    """A path ending in ``.ext`` whose bytes (``data``, if given) live in memory, for OpenImageIO.

    OpenImageIO's Python binding (3.2) has no in-memory I/O (its C++ IOProxy is not exposed), so
    bytes are decoded and encoded through a file that is RAM: an anonymous memfd, reached through
    a symlink that carries the extension OpenImageIO picks its reader by (a damaged EXR then
    gets the EXR reader's diagnosis, and no other format's reader sees the bytes). Without memfd
    and /proc (macOS), a temporary file.
    """
    link = os.path.join(memory_folder(), f"shotstyle-{os.getpid()}-{uuid.uuid4().hex}.{ext}")
    if _HAVE_MEMFD:
        fd = os.memfd_create("shotstyle-frame", os.MFD_CLOEXEC)
        try:
            if data is not None:
                with open(fd, "wb", closefd=False) as handle:
                    handle.write(data)
            os.symlink(f"/proc/self/fd/{fd}", link)
            try:
                yield link
            finally:
                os.unlink(link)
        finally:
            os.close(fd)
        return
    try:
        if data is not None:
            with open(link, "wb") as handle:
                handle.write(data)
        yield link
    finally:
        if os.path.exists(link):
            os.unlink(link)


@functools.lru_cache(maxsize=None)
def memory_folder() -> str:
    """Where `memory_file` puts its names: /dev/shm where there is one (RAM), else the temp folder.

    The first call in a process removes the names left by processes that died holding one (a
    decoder killed by a damaged file): names carry their process id.
    """
    shm = "/dev/shm"
    folder = shm if os.path.isdir(shm) and os.access(shm, os.W_OK) else tempfile.gettempdir()
    for name in os.listdir(folder):
        match = _MEMORY_NAME.fullmatch(name)
        if match and not _process_alive(int(match.group(1))):
            with contextlib.suppress(OSError):
                os.unlink(os.path.join(folder, name))
    return folder


_MEMORY_NAME = re.compile(r"shotstyle-(\d+)-[0-9a-f]{32}\.[a-z0-9]+")


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True
