"""The Nuke side of ``shotstyle nuke-prerender``: runs in Nuke's own Python (``nuke -t``).

``nuke -t prerender.py --plan=PLAN.json [--frames=1001-1100] SCRIPT.nk`` opens the script, and
for every enabled ShotStyle node (upstream ones first) writes the plate frames whose stylized
frame is missing with the node's inner PlateWrite (``nuke.execute``: outside any render, so
Nuke allows it), then writes a plan: per node its model file, plate and result patterns, the
frames to stylize and the render settings. The farm command stylizes those through
``shotstyle render`` and runs this again for nodes fed by other ShotStyle nodes, whose plates
can only be written once the upstream frames exist ("blocked" in the plan).

Arguments are ``--name=value`` and the script comes last: Nuke takes a trailing frame range
off ``sys.argv``.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any, Dict, List, Optional

import nuke

from shotstyle.nodes.nuke import actions, callbacks, knobs, node as ssnode
from shotstyle.plugin import params
from shotstyle.plugin.sequences import SequencePattern, parse_frame_range


def shotstyle_nodes() -> List[nuke.Node]:
    """Every enabled ShotStyle node of the script, each after the ShotStyle nodes that feed it."""
    ordered: List[nuke.Node] = []
    for group in nuke.allNodes(recurseGroups=True):
        if not ssnode.is_shotstyle(group) or group["disable"].value():
            continue
        for upstream in callbacks.upstream_shotstyle_nodes(group) + [group]:
            if all(upstream is not known for known in ordered):
                ordered.append(upstream)
    return ordered


def plan_node(group: nuke.Node, wanted: Optional[List[int]], pending_by_node: Dict[str, List[int]]) -> Dict[str, Any]:
    """Write the plates ``group`` needs (unless an upstream node still has frames to make); its plan entry."""
    first, last = ssnode.input_range(group)
    frames = [f for f in (wanted or range(first, last + 1)) if first <= f <= last]
    results = SequencePattern(ssnode.result_pattern(group))
    pending = [f for f in frames if not os.path.isfile(results.path(f))]
    current = knobs.read_values(group, ssnode.description_of(group))
    model = str(current.get("model") or "")
    entry: Dict[str, Any] = {"node": group.fullName(), "model": model, "frames": pending, "blocked": False,
                             "error": None, "results": results.text, "plates": ssnode.plate_pattern(group),
                             "model_file": ssnode.model_file(group, model) if model else "",
                             **params.FrameArgs.from_values(current).wire()}  # mix, colourspace (if not auto)
    pending_by_node[group.fullName()] = pending
    if not pending:
        return entry
    if not model:
        entry["error"] = "{}: no model chosen; train one before rendering".format(group.fullName())
    elif not os.path.isfile(entry["model_file"]):
        entry["error"] = ("{}: its model {!r} has no copy at {}; train it with this script's node, or copy the "
                          "model file there".format(group.fullName(), model, entry["model_file"]))
    elif group.input(ssnode.PLATE_INPUT) is None:
        entry["error"] = "{}: nothing is connected to its plate input".format(group.fullName())
    elif any(set(pending_by_node.get(up.fullName(), [])) & set(pending)
             for up in callbacks.upstream_shotstyle_nodes(group)):
        entry["blocked"] = True
    else:
        actions.write_plates(group, pending)
    return entry


def prepare(wanted: Optional[List[int]]) -> List[Dict[str, Any]]:
    pending_by_node: Dict[str, List[int]] = {}
    return [plan_node(group, wanted, pending_by_node) for group in shotstyle_nodes()]


def main(argv: List[str]) -> int:
    options = dict(arg[2:].split("=", 1) for arg in argv if arg.startswith("--") and "=" in arg)
    scripts = [arg for arg in argv if not arg.startswith("--")]
    if len(scripts) != 1 or "plan" not in options:
        print("usage: nuke -t prerender.py --plan=PLAN.json [--frames=RANGE] SCRIPT.nk", file=sys.stderr)
        return 2
    nuke.scriptOpen(scripts[0])
    wanted = parse_frame_range(options["frames"]) if options.get("frames") else None
    plan = {"script": scripts[0], "nodes": prepare(wanted)}
    temp = options["plan"] + ".tmp"
    with open(temp, "w") as handle:
        json.dump(plan, handle, indent=1)
    os.replace(temp, options["plan"])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
