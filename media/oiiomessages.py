"""OpenImageIO's pending error messages, as one line that our messages (which start with the path) can quote."""

from __future__ import annotations

from typing import Any

import OpenImageIO as oiio


def oiio_message(source: Any, path: str = "") -> str:
    """The pending OpenImageIO error of ``source`` (an ImageInput/ImageOutput or the oiio module), cleared.

    Repeated lines and the reader's own "(path): " prefixes are dropped: our messages start with the path.
    """
    try:
        text = source.geterror()
    except UnicodeDecodeError as error:
        # Damaged headers put raw bytes in channel/attribute names; the binding cannot decode them.
        text = bytes(error.object).decode("utf-8", "backslashreplace")
    if path:
        text = text.replace(f" ({path}): ", ": ")
    lines = [line.strip() for line in text.split("\n") if line.strip()]
    return "; ".join(dict.fromkeys(lines)) or "unknown OpenImageIO error"


def clear_global_error() -> None:
    oiio_message(oiio)
