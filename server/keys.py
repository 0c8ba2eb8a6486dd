"""CurveZMQ key files and the CURVE side of the server (`shotstyle keys` makes the pairs: cli.keys).

A server that listens on anything but loopback (or ipc://) must encrypt and authenticate:
it needs its own secret key (``--curve-secret server.key_secret``) and a folder of the
public keys of the clients it accepts (``--authorized-keys DIR``, one ``NAME.key`` file per
client). Key files are ZeroMQ certificate files (``zmq.auth``); secret files are mode 0600.
"""

from __future__ import annotations

import ipaddress
import os
import re
from typing import Any, Dict, Optional, Tuple

import zmq
import zmq.auth
from zmq.auth.thread import ThreadAuthenticator

from shotstyle.server.errors import CurveKeyError
from shotstyle.plugin.userdirs import user_folder

LOOPBACK_HOSTS = ("localhost",)


def default_keys_dir() -> str:
    return user_folder("config", "keys")


def check_key_name(name: str) -> str:
    """``name`` if it can name a key pair's files, else CurveKeyError."""
    if not re.match(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", name):
        raise CurveKeyError(f"key name {name!r}: use letters, digits, '_', '-' or '.'")
    return name


def make_keypair(folder: str, name: str, overwrite: bool = False) -> Tuple[str, str]:
    """Create ``NAME.key`` (public) and ``NAME.key_secret`` in ``folder``; returns their paths."""
    check_key_name(name)
    os.makedirs(folder, exist_ok=True)
    public = os.path.join(folder, name + ".key")
    secret = os.path.join(folder, name + ".key_secret")
    if not overwrite and (os.path.exists(public) or os.path.exists(secret)):
        raise CurveKeyError(f"{public} already exists; pass --overwrite to replace it (clients holding the old "
                        "key will be refused)")
    public, secret = zmq.auth.create_certificates(folder, name)
    os.chmod(secret, 0o600)
    return public, secret


def is_local_address(address: str) -> bool:
    """True for ipc://, inproc:// and tcp:// on a loopback host."""
    if address.startswith(("ipc://", "inproc://")):
        return True
    match = re.match(r"^tcp://(\[[^\]]*\]|[^:]*):", address)
    if not match:
        return False
    host = match.group(1).strip("[]")
    if host in LOOPBACK_HOSTS:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def server_curve_options(secret_file: str) -> Dict[int, Any]:
    """Socket options that make a ROUTER a CURVE server with the key in ``secret_file``."""
    try:
        public, secret = zmq.auth.load_certificate(secret_file)
    except (OSError, ValueError) as exc:
        raise CurveKeyError(f"{secret_file}: cannot read the server's CURVE key ({exc}); make one with "
                        "`shotstyle keys server`") from None
    if secret is None:
        raise CurveKeyError(f"{secret_file}: holds no secret key; give the '.key_secret' file made by `shotstyle keys`")
    return {zmq.CURVE_SERVER: 1, zmq.CURVE_PUBLICKEY: public, zmq.CURVE_SECRETKEY: secret}


def start_authenticator(context: zmq.Context, authorized_dir: str) -> ThreadAuthenticator:
    """Accept only clients whose public key file is in ``authorized_dir``."""
    if not os.path.isdir(authorized_dir):
        raise CurveKeyError(f"{authorized_dir}: authorised client keys folder not found; put each client's "
                        "NAME.key there")
    auth = ThreadAuthenticator(context)
    auth.start()
    auth.configure_curve(domain="*", location=authorized_dir)
    return auth


def check_bind(address: str, secret_file: Optional[str], authorized_dir: Optional[str]) -> None:
    """Refuse a non-local bind without CURVE keys (never expose the server unencrypted)."""
    if not is_local_address(address) and not (secret_file and authorized_dir):
        raise CurveKeyError(f"refusing to listen on {address} without CurveZMQ: make keys with `shotstyle keys "
                        "server client` and pass --curve-secret server.key_secret --authorized-keys DIR "
                        "(a folder holding each client's .key file)")
