"""The whole package type-checks; host-side code against the real hosts' APIs and Pythons.

mypy checks every module of plugin/, server/ and nodes/ at the strictness pyproject.toml sets
([tool.mypy]: strict, bare generics and Any-typed library returns allowed), nodes/nuke and
nodes/resolve against the published ``types-nuke`` and ``fusionscript-stubs`` (plus
nodes/resolve/fusiontypes.pyi for the Fusion object model those stubs leave empty), so a call
that does not exist in the host's API fails here; a deliberately wrong module proves the check
bites. Syntax: Nuke code must parse as Python 3.9 (Nuke 14-16),
Resolve code as Python 3.6.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
NUKE_FILES = sorted((REPO / "nodes" / "nuke").glob("*.py"))
RESOLVE_FILES = sorted((REPO / "nodes" / "resolve").glob("*.py")) + [REPO / "nodes" / "hostbridge.py"]
# What host code imports from plugin/ runs inside Nuke too.
PLUGIN_FILES = [REPO / "plugin" / name for name in ("__init__.py", "protocol.py", "codec.py", "params.py",
                                                     "client.py", "localserver.py", "sequences.py", "errors.py",
                                                     "exitcodes.py", "userdirs.py")]
WRONG = '''
from typing import TYPE_CHECKING
import nuke
if TYPE_CHECKING:
    from fusionscript import Resolve
    from shotstyle.nodes.resolve.fusiontypes import Comp

def nuke_calls() -> None:
    group = nuke.createNode("Group")
    group.addKnobs([])                                       # line 10: no such Node method
    nuke.executeFrames(group, 1, 10)                         # line 11: no such function

def resolve_calls(resolve: "Resolve", comp: "Comp") -> None:
    resolve.GetProjectManager().GetCurrentProject().GetMediaPools()   # line 14
    comp.AddToool("Loader")                                  # line 15
'''


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> Path:
    """A folder where ``shotstyle.*`` maps onto the repository like the installed package (mypy can't
    follow the editable install's import hook)."""
    root = tmp_path_factory.mktemp("mypy")
    (root / "shotstyle").mkdir()
    for folder in ("plugin", "server", "nodes"):
        (root / "shotstyle" / folder).symlink_to(REPO / folder, target_is_directory=True)
    return root


def mypy(tree: Path, *targets: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "mypy", "--python-version", "3.10", "--follow-imports=silent",
               "--cache-dir", str(tree / ".mypy_cache"), "--no-error-summary", *targets]
    return subprocess.run(command, cwd=str(tree), env={"MYPYPATH": str(tree), "PATH": "/usr/bin:/bin"},
                          capture_output=True, text=True, timeout=600)


@pytest.mark.slow
def test_the_whole_package_type_checks(tree):
    done = mypy(tree, "--config-file", str(REPO / "pyproject.toml"),
                "-p", "shotstyle.plugin", "-p", "shotstyle.server", "-p", "shotstyle.nodes")
    assert done.returncode == 0, done.stdout + done.stderr


def test_calls_missing_from_the_host_apis_fail_the_check(tree):
    (tree / "wrong_calls.py").write_text(WRONG)
    done = mypy(tree, "wrong_calls.py")
    failing = sorted({int(line.split(":")[1]) for line in done.stdout.splitlines() if ": error:" in line})
    assert failing == [10, 11, 14, 15], done.stdout


@pytest.mark.parametrize("path", NUKE_FILES + PLUGIN_FILES, ids=lambda p: p.name)
def test_nuke_side_code_is_python_3_9(path):
    ast.parse(path.read_text(), str(path), feature_version=(3, 9))


@pytest.mark.parametrize("path", RESOLVE_FILES, ids=lambda p: p.name)
def test_resolve_side_code_is_python_3_6(path):
    source = path.read_text()
    tree = ast.parse(source, str(path), feature_version=(3, 6))
    futures = [alias.name for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
               and node.module == "__future__" for alias in node.names]
    assert "annotations" not in futures, "from __future__ import annotations needs Python 3.7"
