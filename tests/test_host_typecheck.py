"""The whole package type-checks; host-side code against the real hosts' APIs and Pythons.

mypy checks every module of plugin/, server/ and nodes/ at the strictness pyproject.toml sets
([tool.mypy]: strict, bare generics and Any-typed library returns allowed), nodes/nuke and
nodes/resolve against the published ``types-nuke`` and ``fusionscript-stubs`` (plus
nodes/resolve/fusiontypes.pyi for the Fusion object model those stubs leave empty), so a call
that does not exist in the host's API fails here; a deliberately wrong module proves the check
bites. Syntax: everything that runs inside a host (the Nuke and Resolve nodes, the shared bridge
and self-test, and what they import from plugin/) must parse as Python 3.7, the oldest host
Python the installer accepts (Nuke 13; Resolve with Python 3.7+).
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
HOST_FILES = (sorted((REPO / "nodes" / "nuke").glob("*.py")) + sorted((REPO / "nodes" / "resolve").glob("*.py"))
              + [REPO / "nodes" / name for name in ("__init__.py", "hostbridge.py", "selftest.py")]
              + sorted((REPO / "plugin").glob("*.py")))   # install.py copies all of plugin/ into the host
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
    for folder in ("plugin", "media", "server", "cli", "nodes", "examples"):
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
                "-p", "shotstyle.plugin", "-p", "shotstyle.media", "-p", "shotstyle.server", "-p", "shotstyle.cli", "-p", "shotstyle.nodes", "-p", "shotstyle.examples")
    assert done.returncode == 0, done.stdout + done.stderr


def test_calls_missing_from_the_host_apis_fail_the_check(tree):
    (tree / "wrong_calls.py").write_text(WRONG)
    done = mypy(tree, "wrong_calls.py")
    failing = sorted({int(line.split(":")[1]) for line in done.stdout.splitlines() if ": error:" in line})
    assert failing == [10, 11, 14, 15], done.stdout


@pytest.mark.parametrize("path", HOST_FILES, ids=lambda p: p.parent.name + "/" + p.name)
def test_host_side_code_is_python_3_7(path):
    ast.parse(path.read_text(), str(path), feature_version=(3, 7))
