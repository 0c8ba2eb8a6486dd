"""Per-user settings for reaching servers: CURVE key files, and how long an autostarted server idles.

Each setting comes from the first of: the command line (or a host node's field), an
environment variable, the per-user config file, the default. The config file is
``$SHOTSTYLE_CONFIG``, else ``config.ini`` in the user's shotstyle config folder
(`config_file`)::

    [server]
    # the server's public key (made by `shotstyle keys` on the server)      SHOTSTYLE_SERVER_KEY
    server_key = /studio/keys/gpu-farm.key
    # this user's key pair: the .key_secret file holds both halves           SHOTSTYLE_CLIENT_KEY
    client_key = ~/.config/shotstyle/keys/artist-01.key_secret
    # minutes an autostarted local server waits idle before it exits        SHOTSTYLE_IDLE_EXIT_MINUTES
    idle_exit_minutes = 30

CURVE keys are for servers named by address (``--server``, a node's server field); the local
server listens on loopback only and needs none. Standard library only (it runs inside hosts).
"""

from __future__ import annotations

import configparser
import os
from typing import Any, Dict, NamedTuple, Optional

from shotstyle.plugin.errors import ServerError
from shotstyle.plugin.userdirs import user_folder

SECTION = "server"
DEFAULT_IDLE_EXIT_MINUTES = 30.0
# setting -> environment variable
ENVIRONMENT = {"server_key": "SHOTSTYLE_SERVER_KEY", "client_key": "SHOTSTYLE_CLIENT_KEY",
               "idle_exit_minutes": "SHOTSTYLE_IDLE_EXIT_MINUTES"}


class CurveKeys(NamedTuple):
    """What a client needs for a CURVE server: the server's public key, and its own key pair file."""

    server_key: str
    client_key: str

    def client_options(self) -> Dict[str, Any]:
        """The `Client` keyword arguments for these keys (the .key_secret file holds both halves of the pair)."""
        return {"server_public_key": self.server_key, "client_keys": (self.client_key, self.client_key)}


def config_file() -> str:
    return os.environ.get("SHOTSTYLE_CONFIG") or user_folder("config", "config.ini")


def setting(name: str, given: Optional[str] = None) -> Optional[str]:
    """``name``'s value: ``given`` if not empty, else its environment variable, else the config file."""
    if given:
        return given
    if os.environ.get(ENVIRONMENT[name]):
        return os.environ[ENVIRONMENT[name]]
    parser = configparser.ConfigParser()
    try:
        parser.read(config_file(), encoding="utf-8")
    except configparser.Error as exc:
        raise ServerError("bad_argument", f"{config_file()}: cannot read the shotstyle config file ({exc})") from None
    value = parser.get(SECTION, name, fallback="").strip()
    return os.path.expanduser(value) if value else None


def curve_keys(server_key: Optional[str] = None, client_key: Optional[str] = None) -> Optional[CurveKeys]:
    """The CURVE keys to use (given, else environment, else config), or None when none are set.

    Key files are checked here, so a typo fails before any connection with the file's name.
    """
    server = setting("server_key", server_key)
    client = setting("client_key", client_key)
    if server is None and client is None:
        return None
    if server is None or client is None:
        missing, flag = ("the server's public key", "--server-key") if server is None \
            else ("this client's key pair", "--client-key")
        raise ServerError("bad_argument", f"a CURVE connection needs {missing} too: give {flag} FILE (or "
                                          f"{ENVIRONMENT['server_key' if server is None else 'client_key']}, "
                                          f"or set it in {config_file()})")
    for label, path in (("--server-key", server), ("--client-key", client)):
        if not os.path.isfile(path):
            raise ServerError("bad_argument", f"{label} {path}: no such key file (make key pairs with "
                                              "`shotstyle keys`)")
    if not client.endswith(".key_secret"):
        raise ServerError("bad_argument", f"--client-key {client}: give this client's '.key_secret' file "
                                          "(it holds the public and the secret key)")
    return CurveKeys(os.path.abspath(server), os.path.abspath(client))


def idle_exit_minutes() -> float:
    """Minutes an autostarted local server waits without work or clients before it exits."""
    value = setting("idle_exit_minutes")
    if value is None:
        return DEFAULT_IDLE_EXIT_MINUTES
    try:
        minutes = float(value)
    except ValueError:
        raise ServerError("bad_argument", f"idle_exit_minutes {value!r} (from {ENVIRONMENT['idle_exit_minutes']} or "
                                          f"{config_file()}) is not a number of minutes") from None
    if not minutes > 0:
        raise ServerError("bad_argument", f"idle_exit_minutes {value!r}: give a positive number of minutes")
    return minutes
