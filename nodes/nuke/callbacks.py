"""Render callbacks: command-line and farm renders (``nuke -x``) stylize the frames they need first.

``register()`` (called from the init.py block install.py adds) hooks Nuke's beforeRender and
beforeFrameRender. When a Write renders, every ShotStyle node upstream of it gets the
frame about to render stylized (plate written with its inner Write, sent to the server, result
written to its cache) before the Result Read is pulled. In terminal sessions the farm node's
own local server is used (started if needed) and models missing there are uploaded from the
copy the node keeps in its cache folder.
"""

from __future__ import annotations

import contextlib
from typing import Iterator, List, Set

import nuke

from shotstyle.nodes.nuke import actions, node as ssnode

_internal_renders = [0]   # > 0 while a ShotStyle node renders its own PlateWrite


@contextlib.contextmanager
def internal_render() -> Iterator[None]:
    """Marks renders of our inner Writes, which must not trigger these callbacks again."""
    _internal_renders[0] += 1
    try:
        yield
    finally:
        _internal_renders[0] -= 1


def upstream_shotstyle_nodes(start: nuke.Node) -> List[nuke.Node]:
    """ShotStyle nodes feeding ``start``, farthest upstream first (they must be stylized first)."""
    found: List[nuke.Node] = []
    seen: Set[str] = set()

    def visit(current: nuke.Node) -> None:
        for index in range(current.inputs()):
            source = current.input(index)
            if source is None or source.fullName() in seen:
                continue
            seen.add(source.fullName())
            visit(source)
            if ssnode.is_shotstyle(source):
                found.append(source)

    visit(start)
    return found


def _rendering_nodes() -> List[nuke.Node]:
    if _internal_renders[0]:
        return []
    return upstream_shotstyle_nodes(nuke.thisNode())


def before_render() -> None:
    """Check up front that every ShotStyle node feeding this Write has a model (clear farm error)."""
    for group in _rendering_nodes():
        if not str(group["model"].value()):
            raise ssnode.ShotStyleNodeError("{}: no model chosen; train one before rendering".format(group.name()))


def before_frame_render() -> None:
    """Stylize the frame about to render for every ShotStyle node feeding this Write."""
    for group in _rendering_nodes():
        actions.stylize(group, [nuke.frame()], in_render=True)


def register() -> None:
    nuke.addBeforeRender(before_render)
    nuke.addBeforeFrameRender(before_frame_render)
