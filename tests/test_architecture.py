"""The house's shape: which part may import which, and one installable `shotstyle` name.

Imports are read from the source with `ast` (nothing is executed), so a forbidden import
anywhere in a module — even inside a function — fails here before it fails in a host.
"""

from __future__ import annotations

import ast
import sys
import zipfile
from pathlib import Path

import pytest

from conftest import REPO

STDLIB = set(sys.stdlib_module_names)


def imported_modules(path: Path) -> set[str]:
    """Absolute module names a file imports (relative imports resolved against its package)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    rel = path.relative_to(REPO).with_suffix("")
    package = ["shotstyle", *rel.parts[:-1]]
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                names.add(".".join(base + ([node.module] if node.module else [])))
            else:
                names.add(node.module or "")
    return names


def sources(folder: str) -> list[Path]:
    path = REPO / folder
    return [path] if path.is_file() else sorted(path.rglob("*.py"))


def offending(folder: str, allowed) -> list[str]:
    bad = []
    for path in sources(folder):
        for name in imported_modules(path):
            if not allowed(name):
                bad.append(f"{path.relative_to(REPO)} imports {name}")
    return bad


def top(name: str) -> str:
    return name.split(".")[0]


def ours(name: str) -> bool:
    return top(name) == "shotstyle"


def within(name: str, *packages: str) -> bool:
    return any(name == p or name.startswith(p + ".") for p in packages)


# The rooms and whom each may import of ours (DESIGN.md). A `python -m` entry point is a command,
# whichever package it starts: it follows the command line's rule.
ROOMS = {
    "plugin": ("shotstyle.plugin",),
    "nodes": ("shotstyle.plugin", "shotstyle.nodes"),
    "cli": ("shotstyle.cli", "shotstyle.plugin", "shotstyle.media", "shotstyle.server", "shotstyle.examples"),
    "media": ("shotstyle.media", "shotstyle.plugin", "shotstyle.server.errors"),
    "server": ("shotstyle.server", "shotstyle.plugin", "shotstyle.media"),
    "examples": (),
}
ENTRY_POINT = "__main__.py"


def room_offences(room: str) -> list[str]:
    bad = []
    for path in sources(room):
        allowed = ROOMS["cli" if path.name == ENTRY_POINT else room]
        bad += [f"{path.relative_to(REPO)} imports {name}" for name in sorted(imported_modules(path))
                if ours(name) and not within(name, *allowed)]
    return bad


def test_every_package_is_a_room():
    packages = {p.parent.relative_to(REPO).parts[0] for p in REPO.glob("*/*.py")}
    assert packages - {"tests", "bench"} == set(ROOMS)


@pytest.mark.parametrize("room", sorted(ROOMS))
def test_imports_run_only_the_ways_the_rooms_allow(room):
    assert sources(room), f"{room}/ has no modules"
    assert room_offences(room) == []


def test_plugin_imports_only_stdlib_pyzmq_and_itself():
    bad = offending("plugin", lambda n: top(n) in STDLIB or top(n) == "zmq" or within(n, "shotstyle.plugin"))
    assert bad == []


# Code that runs inside a host's embedded Python: stdlib, pyzmq, the host's API, plugin and nodes.
HOST_APIS = {"nuke", "nukescripts", "fusionscript", "DaVinciResolveScript", "bmd"}


def test_host_nodes_stay_light():
    bad = offending("nodes", lambda n: top(n) in STDLIB | HOST_APIS | {"zmq"}
                    or within(n, "shotstyle.plugin", "shotstyle.nodes"))
    assert bad == []


def test_engine_knows_nothing_of_zeromq_or_the_server_loop():
    forbidden = ("zmq", "shotstyle.server.app", "shotstyle.server.jobs", "shotstyle.server.store")
    assert offending("server/engine", lambda n: not n.startswith(forbidden)) == []


@pytest.mark.slow
def test_wheel_installs_only_under_the_shotstyle_name(built_wheel):
    names = zipfile.ZipFile(built_wheel).namelist()
    tops = {n.split("/")[0] for n in names}
    assert tops == {"shotstyle", next(t for t in tops if t.endswith(".dist-info"))}
    for expected in ("shotstyle/plugin/protocol.py", "shotstyle/server/app.py",
                     "shotstyle/server/engine/networks/hrnet.py", "shotstyle/cli/main.py",
                     "shotstyle/examples/walk/LICENSE"):
        assert expected in names
    shipped = sorted(p.relative_to(REPO).as_posix() for p in (REPO / "examples" / "walk").iterdir())
    assert shipped and all(f"shotstyle/{name}" in names for name in shipped)  # the whole built-in example
