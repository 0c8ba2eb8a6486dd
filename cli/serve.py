"""`shotstyle serve` (also `python -m shotstyle.server`): start the persistent ZeroMQ server
(server.app) from the command line: its options, the refusals before it binds (another server
answers there, this install's local server runs), devices and store, signals."""

from __future__ import annotations

import argparse
import signal
import sys
from typing import Optional

import zmq

from shotstyle.plugin import localserver
from shotstyle.plugin.exitcodes import ExitCode
from shotstyle.server.app import Server
from shotstyle.server.errors import DeviceError, ShotstyleError, exit_code
from shotstyle.server.store import DEFAULT_MEMORY_BUDGET, ModelStore


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--port", type=int, default=localserver.DEFAULT_PORT,
                        help="TCP port on 127.0.0.1 (0: any free port)")
    parser.add_argument("--bind", default=None, metavar="ADDR",
                        help="address to listen on instead, e.g. tcp://0.0.0.0:5599 (needs CURVE keys) "
                             "or ipc:///tmp/shotstyle.sock")
    parser.add_argument("--models", default=None, help="model store folder (default $SHOTSTYLE_MODELS_DIR or "
                                                       "the user data folder)")
    parser.add_argument("--device", default="auto", help="compute device: auto, cpu, cuda, cuda:N, mps")
    parser.add_argument("--devices", default=None, metavar="LIST",
                        help="several compute devices, one worker each, e.g. cuda:0,cuda:1: frames and training "
                             "jobs are spread over them (overrides --device)")
    parser.add_argument("--model-memory", type=int, default=DEFAULT_MEMORY_BUDGET >> 20, metavar="MB",
                        help="memory budget of loaded models, MB")
    parser.add_argument("--vgg", default=None, help="VGG-19 weights for training (a path or 'random'; default: "
                                                    "the engine's search)")
    parser.add_argument("--curve-secret", default=None, metavar="FILE",
                        help="the server's .key_secret file (from `shotstyle keys`): encrypt and authenticate")
    parser.add_argument("--authorized-keys", default=None, metavar="DIR",
                        help="folder of the public .key files of the clients allowed in")
    parser.add_argument("--no-server-file", action="store_true",
                        help="do not advertise this server as this install's local server (run it beside that one)")
    parser.add_argument("--idle-exit", nargs="?", type=float, const=-1.0, metavar="MINUTES",
                        help="exit after this many minutes without requests, jobs or frames (no value: the "
                             "configured idle time, default 30; without the option a served server stays up)")
    parser.add_argument("--stop", action="store_true", help="stop this install's running local server instead "
                                                            "(as `shotstyle stop`)")
    # Set by the client that starts a local server on demand (plugin.localserver.server_command).
    parser.add_argument("--autostarted", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--server-file", help=argparse.SUPPRESS)


def _refusal(bind: str, advertise: bool) -> Optional[str]:
    """Why this server must not start: another answers at its address, or this install's local one runs."""
    if not bind.endswith(":*"):
        hello = localserver.ping(bind.replace("://*:", "://127.0.0.1:").replace("://0.0.0.0:", "://127.0.0.1:"),
                                 timeout=1.0)
        if hello is not None:
            return (f"a shotstyle server (shotstyle {hello.get('version', '?')}, pid {hello.get('pid', '?')}) already "
                    f"answers at {bind}; stop it with `shotstyle stop` or listen elsewhere (--port 0: any free port)")
    address = localserver.find_local_server(path=localserver.own_server_file()) if advertise else None
    if address is not None:
        info = localserver.read_server_file(localserver.own_server_file()) or {}
        how = "started on demand" if info.get("autostarted") else "served"
        return (f"this install's local server already runs at {address} (pid {info.get('pid')}, {how}); "
                "stop it first with `shotstyle stop`, or give --no-server-file to run another beside it")
    return None


def run(args: argparse.Namespace) -> int:
    from shotstyle.plugin.address import AddressError, parse_address
    from shotstyle.plugin.userconfig import idle_exit_minutes
    from shotstyle.server.engine.device import configure_threads, pick_device

    if args.stop:
        from shotstyle.cli import stop
        return stop.run(argparse.Namespace(all=False, timeout=stop.STOP_TIMEOUT_S))
    try:
        bind = parse_address(args.bind, bind=True) if args.bind else \
            parse_address(str(args.port), bind=True)
        minutes = args.idle_exit if args.idle_exit is None or args.idle_exit > 0 else idle_exit_minutes()
    except AddressError as exc:
        print(f"shotstyle serve: --bind: {exc.message}", file=sys.stderr)
        return ExitCode.USAGE
    refusal = _refusal(bind, not args.no_server_file and not args.server_file)
    if refusal:
        print(f"shotstyle serve: {refusal}", file=sys.stderr)
        return ExitCode.USAGE
    try:
        devices = [pick_device(name.strip()) for name in (args.devices or args.device).split(",") if name.strip()]
        if not devices:
            raise DeviceError(f"--devices {args.devices!r} names no device; e.g. cuda:0,cuda:1")
        for device in devices:
            configure_threads(device)
        store = ModelStore(args.models, memory_budget=args.model_memory << 20)  # models load on the CPU
        server = Server(bind, store, [str(device) for device in devices], curve_secret=args.curve_secret,
                        authorized_keys=args.authorized_keys, vgg=args.vgg,
                        write_server_file=not args.no_server_file, server_file=args.server_file,
                        idle_exit_s=None if minutes is None else minutes * 60, autostarted=args.autostarted)
    except zmq.ZMQError as exc:
        print(f"shotstyle serve: cannot listen on {bind}: {exc}; another server running there? "
              "(`--port 0` picks a free port)", file=sys.stderr)
        return ExitCode.USAGE
    except ShotstyleError as exc:
        print(f"shotstyle serve: {exc}", file=sys.stderr)
        return exit_code(exc)
    except OSError as exc:  # e.g. the models folder cannot be made
        print(f"shotstyle serve: {exc}", file=sys.stderr)
        return ExitCode.USAGE
    signal.signal(signal.SIGINT, server.request_stop)
    signal.signal(signal.SIGTERM, server.request_stop)
    idle = f", exits after {minutes:g} idle min" if minutes else ""
    print(f"shotstyle serve: listening on {server.address} (device {server.device}, models in {store.folder}{idle})",
          flush=True)
    server.serve()
    print("shotstyle serve: stopped", flush=True)
    return ExitCode.OK

