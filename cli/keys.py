"""`shotstyle keys`: make CurveZMQ key pairs for the server and its clients (server.keys holds the
CURVE side of the server and the key files' rules)."""

from __future__ import annotations

import argparse
import os
import sys

from shotstyle.server.errors import ShotstyleError, exit_code
from shotstyle.server.keys import check_key_name, default_keys_dir, make_keypair


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("names", nargs="*", default=["server"], metavar="NAME",
                        help="key pairs to make, several at once: the server's and one per client, e.g. "
                             "`server artist-01 artist-02` (default: server)")
    parser.add_argument("--dir", default=None, help=f"folder for the key files (default {default_keys_dir()})")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace existing key pairs (by default they are kept: clients holding them stay valid)")


def run(args: argparse.Namespace) -> int:
    folder = args.dir or default_keys_dir()
    try:
        for name in args.names:  # every name is checked before any file is made
            check_key_name(name)
        made = {}
        for name in args.names:
            public, secret = os.path.join(folder, name + ".key"), os.path.join(folder, name + ".key_secret")
            if not args.overwrite and os.path.isfile(public) and os.path.isfile(secret):
                print(f"{name}: kept the existing pair {public} (--overwrite replaces it)")
            else:
                public, secret = make_keypair(folder, name, args.overwrite)
                print(f"{name}: public {public}\n{' ' * len(name)}  secret {secret} (keep private)")
            made[name] = (public, secret)
    except ShotstyleError as exc:
        print(f"shotstyle keys: {exc}", file=sys.stderr)
        return exit_code(exc)
    server = made.get("server", (os.path.join(folder, "server.key"), os.path.join(folder, "server.key_secret")))
    clients = [name for name in made if name != "server"]
    print(f"Server: shotstyle serve --bind tcp://0.0.0.0:5599 --curve-secret {server[1]} --authorized-keys DIR\n"
          "        (DIR holds each client's public .key file" + (f": copy {', '.join(n + '.key' for n in clients)} "
                                                                 "there)" if clients else ")"))
    client = made[clients[0]][1] if clients else "<client>.key_secret"
    print(f"Client: shotstyle render|train ... --server HOST:5599 --server-key {server[0]} --client-key {client}\n"
          "        (or SHOTSTYLE_SERVER_KEY / SHOTSTYLE_CLIENT_KEY, or server_key / client_key in the config file)")
    return 0
