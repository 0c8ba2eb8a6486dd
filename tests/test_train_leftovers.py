"""A `train --server -o OUT` leaves nothing in the server's store: the model is its client's alone
(issue 21, fault 10). Delivered with the final event when the client is there; when it is gone
(killed, or exit 5 after a timeout) the server finishes the job and nothing of it stays behind.
A training into a store name (what the hosts' nodes do) still keeps its model there.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from serverproc import ServerProcess
from test_robust_faults import keyframe  # noqa: F401  (a fixture: a small EXR keyframe)
from shotstyle.plugin.client import Client, follow
from shotstyle.plugin.codec import encode_file
from shotstyle.plugin.exitcodes import ExitCode

STEPS = 60   # a few seconds at 32 px: long enough to kill the client mid-job


def train(server: ServerProcess, keyframe: str, output: Path, steps: int) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "shotstyle.cli", "train", "--server", server.address, "--content",
                             keyframe, "--style", keyframe, "-o", str(output), "--steps", str(steps),
                             "--resolution", "32", "--loss", "look"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=server.env)


def stored(server: ServerProcess) -> list[str]:
    return sorted(p.name for p in server.models.glob("*")) if server.models.exists() else []


def wait_for_jobs_to_end(server: ServerProcess, timeout: float = 120.0) -> list[dict]:
    with Client(server.address, timeout=10) as client:
        deadline = time.monotonic() + timeout
        while True:
            jobs = client.status()["jobs"]
            if jobs and all(job["state"] in ("done", "failed", "cancelled") for job in jobs):
                return jobs
            assert time.monotonic() < deadline, jobs
            time.sleep(0.2)


def test_a_delivered_training_leaves_nothing_in_the_store(tmp_path, keyframe):
    output = tmp_path / "m.safetensors"
    with ServerProcess(tmp_path / "srv") as server:
        before = stored(server)
        client = train(server, keyframe, output, 3)
        out, err = client.communicate(timeout=120)
        assert client.returncode == ExitCode.OK, err
        assert output.exists()
        assert stored(server) == before
        with Client(server.address, timeout=10) as probe:
            assert not [m for m in probe.list_models() if m["name"].startswith("train-")]


@pytest.mark.parametrize("how", ["SIGKILL", "SIGSTOP"])
def test_a_training_whose_client_is_gone_leaves_nothing_in_the_store(tmp_path, keyframe, how):
    output = tmp_path / "m.safetensors"
    with ServerProcess(tmp_path / "srv") as server:
        before = stored(server)
        client = train(server, keyframe, output, STEPS)
        try:
            deadline = time.monotonic() + 60
            with Client(server.address, timeout=10) as watcher:
                while not any(job["state"] == "running" for job in watcher.status()["jobs"]):
                    assert time.monotonic() < deadline and client.poll() is None
                    time.sleep(0.1)
            client.send_signal(getattr(signal, how))
            jobs = wait_for_jobs_to_end(server)
        finally:
            client.kill()
            client.communicate()
        assert [job["state"] for job in jobs] == ["done"], jobs   # the server finished it
        assert stored(server) == before                          # and kept nothing of it
        assert not output.exists()


def test_a_training_into_a_store_name_still_keeps_it(tmp_path, keyframe):
    with ServerProcess(tmp_path / "srv") as server, Client(server.address, timeout=30) as client:
        job = client.train([encode_file(keyframe)], encode_file(keyframe), "shot_look",
                           {"steps": 3, "resolution": 32, "loss": "look"})
        assert follow(job, timeout=120)["type"] == "done"
        assert "shot_look" in [m["name"] for m in client.list_models()]
