"""Writing files so that readers never see half of one: a temporary name in the same folder,
then an atomic rename over the final name."""

from __future__ import annotations

import os
from typing import Union


def write_atomic(path: str, data: Union[bytes, str]) -> None:
    """Write ``data`` (text is UTF-8) to ``path`` atomically; no temporary file is left on failure, and
    an OSError names ``path``."""
    folder = os.path.dirname(os.path.abspath(path))
    temp = os.path.join(folder, f".{os.path.basename(path)}.{os.getpid()}.tmp")
    try:
        with open(temp, "wb") as handle:
            handle.write(data.encode("utf-8") if isinstance(data, str) else data)
        os.replace(temp, path)
    except BaseException as exc:
        if os.path.exists(temp):
            os.unlink(temp)
        if isinstance(exc, OSError):
            exc.filename = path  # a failed write (a full disk) names no file; the message must name this one
        raise
