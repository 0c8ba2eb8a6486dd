"""`install.py nuke|resolve --check`: the printed self-test runs in a host's Python and reports each step."""

from __future__ import annotations

import os
import subprocess
import sys

from hostdata import host_server  # noqa: F401
from shotstyle.nodes import hostinstall, selftest


def test_the_printed_check_connects_describes_trains_and_stylizes(host_server, tmp_path):
    layout = hostinstall.layout("nuke", "Linux", tmp_path, {})
    script = hostinstall.check_script(layout)       # the library is not there: the repo's package is used
    env = dict(os.environ, SHOTSTYLE_RUNTIME_DIR=str(host_server.runtime))
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, env=env)
    lines = done.stdout.splitlines()
    assert done.returncode == 0, done.stderr
    assert [line.split()[0] for line in lines[:-1]] == ["ok"] * 8, done.stdout
    for step in ("Nuke runs Python", "pyzmq", "connect", "describe", "train (2 steps)", "stylize one frame",
                 "clean up"):
        assert any(step in line for line in lines), step
    assert lines[-1] == "ShotStyle works in Nuke."


def test_a_failing_step_says_which_and_stops(tmp_path):
    printed = []
    assert not selftest.run("Nuke", address="tcp://127.0.0.1:9", echo=printed.append, timeout=1.0)
    assert printed[-1].startswith("FAIL  describe:") and "no reply" in printed[-1], printed
    assert [line.split()[0] for line in printed] == ["ok"] * 4 + ["FAIL"]
