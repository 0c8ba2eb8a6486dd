"""Exclusive per-frame claims beside the output files, so overlapping chunks never double-write a frame.

Before rendering a frame a process claims it by creating ``<output>.claim`` exclusively (pid,
host, time) and holding an advisory lock on it for as long as it works on the frame; a claim
whose lock is free belongs to a dead process and is taken over (a claim from another host is
trusted while its heartbeat keeps it fresh); the claim is removed once the frame is written.
"""

from __future__ import annotations

import errno
import fcntl
import os
import socket
import threading
import time
from typing import Callable, Optional

from shotstyle.plugin.sequences import SequencePattern

CLAIM_SUFFIX = ".claim"
# A claim written on another host is trusted for this long after its last heartbeat
# (advisory locks are not always shared between hosts on network filesystems).
CLAIM_STALE_AFTER_S = 120.0
CLAIM_HEARTBEAT_S = 20.0


class Claims:
    """Exclusive per-frame claims beside the output files, safe across processes and hosts.

    A claim is ``<output>.claim`` created with O_EXCL and held with a `fcntl.flock` lock; the
    kernel drops the lock when its process dies, however it dies, which is how a stale claim
    is recognised and taken over.
    """

    def __init__(self, output: SequencePattern, log: Callable[[str], None]):
        self._output = output
        self._log = log
        self._host = socket.gethostname()
        self._held: dict[int, tuple[int, str]] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._heartbeat = threading.Thread(target=self._beat, name="claim-heartbeat", daemon=True)
        self._heartbeat.start()

    def path(self, frame: int) -> str:
        return self._output.path(frame) + CLAIM_SUFFIX

    def try_claim(self, frame: int) -> bool:
        """Claim ``frame`` for this process; False if a live process holds it."""
        path = self.path(frame)
        for _ in range(5):
            try:
                fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o666)
            except FileExistsError:
                taken = self._take_over(path)
                if taken is None:
                    continue  # the claim vanished meanwhile: try to create it again
                if taken is False:
                    return False
                fd = taken
            else:
                if not _lock(fd):  # someone took the brand-new file over before we locked it
                    os.close(fd)
                    return False
            self._write_owner(fd)
            with self._lock:
                self._held[frame] = (fd, path)
            return True
        return False

    def _take_over(self, path: str) -> Optional[int | bool]:
        """fd of a dead process's claim now ours; False if its holder lives; None if it vanished."""
        try:
            fd = os.open(path, os.O_RDWR)
        except FileNotFoundError:
            return None
        if not _lock(fd):
            os.close(fd)
            return False
        try:
            current = os.stat(path)
        except FileNotFoundError:
            os.close(fd)
            return None
        if current.st_ino != os.fstat(fd).st_ino:  # released and re-created while we waited
            os.close(fd)
            return None
        owner = os.pread(fd, 4096, 0).decode("utf-8", "replace")
        fields = dict(part.split("=", 1) for part in owner.split() if "=" in part)
        foreign = fields.get("host") not in (None, self._host)
        if foreign and time.time() - current.st_mtime < CLAIM_STALE_AFTER_S:
            os.close(fd)
            return False
        if owner.strip():  # an empty claim is one whose creator has not locked it yet: it backs off
            self._log(f"taking over stale claim {path} ({owner.strip()})")
        return fd

    def _write_owner(self, fd: int) -> None:
        text = f"pid={os.getpid()} host={self._host} time={time.strftime('%Y-%m-%dT%H:%M:%S')}\n"
        os.ftruncate(fd, 0)
        os.pwrite(fd, text.encode(), 0)

    def release(self, frame: int) -> None:
        """Drop the claim: unlink first, then close (which releases the lock)."""
        with self._lock:
            fd, path = self._held.pop(frame)
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
        os.close(fd)

    def close(self) -> None:
        self._stop.set()
        for frame in list(self._held):
            self.release(frame)

    def _beat(self) -> None:
        while not self._stop.wait(CLAIM_HEARTBEAT_S):
            with self._lock:
                held = list(self._held.values())
            for fd, _ in held:
                try:
                    os.utime(fd)
                except OSError:
                    pass


def _lock(fd: int) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            return False
        raise
    return True
