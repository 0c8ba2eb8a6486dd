"""Where shotstyle keeps per-user things, by each platform's convention (stdlib only).

``config`` (CURVE keys), ``data`` (the model store) and ``runtime`` (the local server's
pid/port file and log), each under a ``shotstyle`` folder; an environment variable named by
the caller wins over the convention.
"""

from __future__ import annotations

import os
import sys
from typing import Optional

# kind -> (Windows variable, its fallback), macOS folder, (XDG variable, its fallback)
_CONVENTIONS = {
    "config": (("APPDATA", "~\\AppData\\Roaming"), "~/Library/Application Support", ("XDG_CONFIG_HOME", "~/.config")),
    "data": (("APPDATA", "~\\AppData\\Roaming"), "~/Library/Application Support", ("XDG_DATA_HOME", "~/.local/share")),
    "runtime": (("LOCALAPPDATA", "~\\AppData\\Local"), "~/Library/Caches", ("XDG_RUNTIME_DIR", "~/.cache")),
}


def user_folder(kind: str, leaf: str, override_env: Optional[str] = None) -> str:
    """The folder ``<platform base>/shotstyle/<leaf>`` for ``kind`` ("config", "data", "runtime")."""
    if override_env and os.environ.get(override_env):
        return os.environ[override_env]
    (win_var, win_fallback), mac_base, (xdg_var, xdg_fallback) = _CONVENTIONS[kind]
    if sys.platform == "win32":
        base = os.environ.get(win_var) or os.path.expanduser(win_fallback)
    elif sys.platform == "darwin":
        base = os.path.expanduser(mac_base)
    else:
        xdg = os.environ.get(xdg_var)
        base = xdg if xdg and os.path.isdir(xdg) else os.path.expanduser(xdg_fallback)
    return os.path.join(base, "shotstyle", leaf)
