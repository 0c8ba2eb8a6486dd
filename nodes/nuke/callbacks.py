"""Render callbacks: a render of a ShotStyle node reads prepared frames, and says which are missing.

Nuke refuses to start a render inside a render ("I'm already executing something else"), so
no plate can be written and no server reached while a Write renders. Frames are prepared
before: in the GUI with Stylize range, on the farm with the ``shotstyle nuke-prerender`` pre-job.
``register()`` (called from the init.py block install.py adds) hooks beforeRender and
beforeFrameRender with checks that only read knobs and look at files: a ShotStyle node
upstream without a model, or without the stylized frame about to render, stops the render with
a message naming the node and the frame.
"""

from __future__ import annotations

from typing import List, Set

import nuke

from shotstyle.nodes.nuke import node as ssnode


def upstream_shotstyle_nodes(start: nuke.Node) -> List[nuke.Node]:
    """Enabled ShotStyle nodes feeding ``start``, farthest upstream first.

    The walk goes through groups' Input nodes to the group's own inputs, so a Write inside a
    ShotStyle node (its PlateWrite) finds the ShotStyle nodes that feed that node's plate.
    """
    found: List[nuke.Node] = []
    seen: Set[str] = set()

    def sources(node: nuke.Node) -> List[nuke.Node]:
        parent = node.parent()
        if node.Class() == "Input" and isinstance(parent, nuke.Group) and parent is not nuke.root():
            source = parent.input(int(node["number"].value()))
            return [source] if source is not None else []
        inputs = [node.input(i) for i in range(node.inputs())]
        return [source for source in inputs if source is not None]

    def visit(current: nuke.Node) -> None:
        for source in sources(current):
            if source.fullName() in seen:
                continue
            seen.add(source.fullName())
            visit(source)
            if ssnode.is_shotstyle(source) and not source["disable"].value():
                found.append(source)

    visit(start)
    return found


def before_render() -> None:
    """Every ShotStyle node feeding this Write must have a model (one clear error up front)."""
    for group in upstream_shotstyle_nodes(nuke.thisNode()):
        if not str(group["model"].value()):
            raise ssnode.ShotStyleNodeError("{}: no model chosen; train one before rendering".format(group.fullName()))


def before_frame_render() -> None:
    """The frame about to render must be prepared for every ShotStyle node feeding this Write."""
    frame = nuke.frame()
    for group in upstream_shotstyle_nodes(nuke.thisNode()):
        problem = ssnode.missing_frame_error(group, frame)
        if problem is not None:
            raise ssnode.ShotStyleNodeError(problem)


def register() -> None:
    nuke.addBeforeRender(before_render)
    nuke.addBeforeFrameRender(before_frame_render)
