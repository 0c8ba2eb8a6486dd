"""`shotstyle nuke-prerender SCRIPT.nk`: prepare a Nuke script's ShotStyle frames before it renders.

A Nuke render cannot stylize frames (Nuke allows no render inside a render, and a farm render
must not wait on a server per frame), so a script's stylized frames are made before it, by
this command, typically as the pre-job of the farm submission (``shotstyle submit ...
--nuke-script``). It runs ``nuke -t`` with the node's Nuke-side module
(``shotstyle/nodes/nuke/prerender.py``), which opens the script and writes the plates of the
frames not stylized yet with the nodes' own Writes; then it stylizes them through the normal
render path (`shotstyle render`: resumable, claim files, several servers, the model copy kept
beside the script uploaded where it is missing). Nodes fed by other ShotStyle nodes are done
in further passes, once what feeds them exists. The Nuke render then reads only prepared
frames, and stops on one that is missing, naming the node and frame.

Nuke must have shotstyle installed (``python3 install.py nuke``, ``--site`` for a farm's
NUKE_PATH). Exit status as `shotstyle render` (the worst of its renders); 2 also when Nuke
cannot be run, 4 when a node has no model or no model copy, 6 when Nuke failed.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import tempfile
from typing import Any, Dict, List, Optional

from shotstyle.cli import render
from shotstyle.cli.render.command import frame_flags, positive_int
from shotstyle.plugin import params
from shotstyle.cli.connection import add_key_options, keys_from, server_list
from shotstyle.plugin.exitcodes import ExitCode
from shotstyle.plugin.sequences import SequencePattern, format_frame_range, parse_frame_range

NUKE_ENV = "SHOTSTYLE_NUKE"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("script", metavar="SCRIPT.nk", help="the Nuke script to prepare")
    parser.add_argument("--frames", help="frames to prepare, e.g. 1001-1100 (default: each node's plate range)")
    parser.add_argument("--nuke", default=os.environ.get(NUKE_ENV, "nuke"),
                        help="the Nuke executable (default: $%s, else `nuke` on PATH)" % NUKE_ENV)
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--server", metavar="ADDR[,ADDR2...]", type=server_list,
                       help="render servers (default: the local one)")
    where.add_argument("--in-process", action="store_true", help="stylize here without a server")
    add_key_options(parser)
    parser.add_argument("--threads", type=positive_int, help="--in-process CPU threads")
    parser.add_argument("--keep-plates", action="store_true", help="keep the plate EXRs written for stylizing")


def server_options(args: argparse.Namespace) -> List[str]:
    """The --server / --in-process / --threads choice, as arguments for `shotstyle render` or this command.

    With --server, the CURVE keys (given, or from the environment or config here) go along as
    absolute paths: farm workers must be able to read them there.
    """
    argv: List[str] = []
    if args.server:
        argv += ["--server", args.server]
        keys = keys_from(args)
        if keys is not None:
            argv += ["--server-key", keys.server_key, "--client-key", keys.client_key]
    if args.in_process:
        argv += ["--in-process"]
    if args.threads:
        argv += ["--threads", str(args.threads)]
    return argv


def _log(message: str) -> None:
    print("shotstyle nuke-prerender: " + message, flush=True)


def nuke_plan(args: argparse.Namespace, nuke: str) -> Dict[str, Any]:
    """One ``nuke -t`` pass: writes the plates it can and returns the plan (raises RuntimeError)."""
    # The file Nuke runs (host code, never imported here): shotstyle/nodes/nuke/prerender.py beside this package.
    script_file = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "nodes", "nuke",
                               "prerender.py")
    with tempfile.TemporaryDirectory(prefix="shotstyle-prerender-") as folder:
        plan_file = os.path.join(folder, "plan.json")
        command = [nuke, "-t", script_file, "--plan=" + plan_file]
        if args.frames:
            command.append("--frames=" + format_frame_range(parse_frame_range(args.frames)))
        command.append(os.path.abspath(args.script))
        done = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True)
        if done.returncode != 0 or not os.path.isfile(plan_file):
            raise RuntimeError("Nuke could not prepare {} (exit {}):\n{}".format(args.script, done.returncode,
                                                                                  done.stdout[-4000:]))
        with open(plan_file, encoding="utf-8") as handle:
            return json.load(handle)


def render_entry(entry: Dict[str, Any], args: argparse.Namespace) -> int:
    """Stylize one node's pending frames with `shotstyle render`; its exit status."""
    argv = ["--model", entry["model_file"], "--in", entry["plates"], "--out", entry["results"],
            "--frames", format_frame_range(entry["frames"])]
    argv += frame_flags(params.FrameArgs.from_values(entry))
    argv += server_options(args)
    parser = argparse.ArgumentParser(prog="shotstyle render")
    render.configure(parser)
    _log("{}: stylizing frames {} with {}".format(entry["node"], format_frame_range(entry["frames"]),
                                                 entry["model"]))
    code = int(render.run(parser.parse_args(argv)))
    if not args.keep_plates:
        plates, results = SequencePattern(entry["plates"]), SequencePattern(entry["results"])
        for frame in entry["frames"]:
            plate, result = plates.path(frame), results.path(frame)
            if os.path.isfile(result) and os.path.isfile(plate) and not os.path.samefile(result, plate):
                os.remove(plate)
    return code


def run(args: argparse.Namespace) -> int:
    nuke: Optional[str] = shutil.which(args.nuke) or (args.nuke if os.path.isfile(args.nuke) else None)
    if nuke is None:
        _log("cannot find Nuke as {!r}: give --nuke /path/to/Nuke15.1 or set {}".format(args.nuke, NUKE_ENV))
        return int(ExitCode.USAGE)
    if not os.path.isfile(args.script):
        _log("{}: no such script".format(args.script))
        return int(ExitCode.USAGE)
    codes: List[int] = []
    while True:
        try:
            plan = nuke_plan(args, nuke)
        except RuntimeError as exc:
            _log(str(exc))
            return int(ExitCode.FAILED)
        entries = plan["nodes"]
        errors = [e["error"] for e in entries if e["error"]]
        for error in errors:
            _log(error)
        if errors:
            return int(ExitCode.MODEL_ERROR)
        ready = [e for e in entries if e["frames"] and not e["blocked"]]
        blocked = [e for e in entries if e["blocked"]]
        for entry in ready:
            codes.append(render_entry(entry, args))
        if any(codes) or not blocked:
            break
        if not ready:   # nothing could move: should not happen (blocked means an upstream node had work)
            _log("nodes {} wait on frames no pass can make".format(", ".join(e["node"] for e in blocked)))
            return int(ExitCode.FAILED)
    if not codes:
        _log("every ShotStyle frame of {} is already stylized".format(args.script))
    return max(codes, default=int(ExitCode.OK))

