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


def test_plugin_imports_only_stdlib_pyzmq_and_itself():
    assert sources("plugin"), "plugin/ has no modules"
    bad = offending("plugin", lambda n: top(n) in STDLIB or top(n) == "zmq"
                    or n == "shotstyle.plugin" or n.startswith("shotstyle.plugin."))
    assert bad == []


# Code that runs inside a host's embedded Python: stdlib, pyzmq, the host's API, the bridge.
HOST_SHARED = "shotstyle.nodes.hostbridge"


@pytest.mark.parametrize("host, host_modules", [
    ("nodes/nuke", {"nuke", "nukescripts"}),
    ("nodes/resolve", {"fusionscript", "DaVinciResolveScript", "bmd"}),
    ("nodes/hostbridge.py", set()),
    ("nodes/selftest.py", set()),
    ("nodes/hostpython.py", set()),
])
def test_host_nodes_stay_light(host, host_modules):
    if not (REPO / host).exists() or not sources(host):
        pytest.skip(f"{host} has no modules yet")
    own = "shotstyle." + host.removesuffix(".py").replace("/", ".")
    bad = offending(host, lambda n: top(n) in STDLIB or top(n) in host_modules | {"zmq"}
                    or n.startswith(("shotstyle.plugin", own, HOST_SHARED)))
    assert bad == []


def test_server_never_imports_nodes():
    assert offending("server", lambda n: not n.startswith("shotstyle.nodes")) == []


def test_engine_knows_nothing_of_zeromq_or_the_server_loop():
    forbidden = ("zmq", "shotstyle.server.app", "shotstyle.server.jobs", "shotstyle.server.store",
                 "shotstyle.nodes")
    assert offending("server/engine", lambda n: not n.startswith(forbidden)) == []


@pytest.mark.slow
def test_wheel_installs_only_under_the_shotstyle_name(built_wheel):
    names = zipfile.ZipFile(built_wheel).namelist()
    tops = {n.split("/")[0] for n in names}
    assert tops == {"shotstyle", next(t for t in tops if t.endswith(".dist-info"))}
    for expected in ("shotstyle/plugin/protocol.py", "shotstyle/server/app.py",
                     "shotstyle/server/engine/networks/hrnet.py", "shotstyle/nodes/farm/cli.py",
                     "shotstyle/examples/walk/LICENSE"):
        assert expected in names
    shipped = sorted(p.relative_to(REPO).as_posix() for p in (REPO / "examples" / "walk").iterdir())
    assert shipped and all(f"shotstyle/{name}" in names for name in shipped)  # the whole built-in example
