"""Issue 21, item 10 (fairness): per-client limits count a loopback peer by its user, not by its
address: every user of the server's machine is 127.0.0.1, and one of them must not use up the
others' share (`too_many_jobs`). Fresh connections of one user still share one share
(tests/test_robust_server.py: test_f6_training_limits_count_per_peer_not_per_socket_identity)."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys

import pytest

from conftest import REPO
from serverproc import ServerProcess, exchange
from shotstyle.plugin import protocol
from test_robust_server import code_of, request, train_request

NOBODY = 65534
ANOTHER_USER = """
import pickle, sys
sys.path.insert(0, sys.argv[1])
from serverproc import exchange
print(__import__("json").dumps(exchange(sys.argv[2], pickle.load(sys.stdin.buffer), 60)))
"""


@pytest.mark.skipif(not sys.platform.startswith("linux") or os.geteuid() != 0,
                    reason="needs Linux and root, to send as a second user")
def test_one_local_user_at_the_limit_leaves_another_his_share(tmp_path):
    with ServerProcess(tmp_path / "srv") as server:
        codes = [code_of(exchange(server.address, train_request(f"mine{n}"))) for n in range(3)]
        assert codes == ["ok"] * protocol.MAX_JOBS_PER_CLIENT + ["too_many_jobs"], codes
        done = subprocess.run([sys.executable, "-c", ANOTHER_USER, str(REPO / "tests"), server.address],
                              input=pickle.dumps([bytes(p) for p in train_request("theirs")]),
                              capture_output=True, timeout=120, user=NOBODY, env=server.env)
        assert done.returncode == 0, done.stderr.decode()
        assert code_of(json.loads(done.stdout)) == "ok", done.stdout
        for job in exchange(server.address, request("status"))["result"]["jobs"]:
            exchange(server.address, request("cancel", {"job": job["id"]}, token=server.token))
