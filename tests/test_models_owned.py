"""Issue 21, items 2 and 3: model names are owned, and a finished training is never lost.

2. replacing a model, or writing a name a queued or running training job holds, needs the
   server owner's authority: a client without it is refused (`forbidden`), never overwritten
   later by whoever finishes last;
3. when the store cannot keep a finished model (its disk is full), the training's reply is
   `io_error` (exit 7), not `internal`, and carries the model; `model.put` there answers
   `io_error` too. (`train -o` never needs the store: it writes the model whatever the store's disk.)
"""

from __future__ import annotations

import errno
import hashlib
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from serverproc import ServerProcess, exchange, save_tiny_model
from shotstyle.plugin.client import Client, ServerError, follow
from shotstyle.plugin.codec import encode_file
from shotstyle.plugin.exitcodes import ExitCode
from test_robust_server import code_of, request, train_request


def test_a_name_a_running_job_holds_is_refused_without_the_token(tmp_path):
    data = open(save_tiny_model(tmp_path / "src"), "rb").read()
    with ServerProcess(tmp_path / "srv") as server:
        owner = exchange(server.address, train_request("victim", token=server.token))
        assert code_of(owner) == "ok", owner
        for parts in (train_request("victim"), [*request("model.put", {"name": "victim"}), data]):
            answer = exchange(server.address, parts, 60)
            assert code_of(answer) == "forbidden", answer
            assert "'victim'" in answer["error"]["message"] and "training job" in answer["error"]["message"]
        (job,) = exchange(server.address, request("status"))["result"]["jobs"]
        assert job["name"] == "victim" and job["state"] in ("queued", "running")
        assert not (server.models / "victim.safetensors").exists()
        # the owner may (its authority covers it); a new name stays open to everyone
        assert code_of(exchange(server.address, [*request("model.put", {"name": "fresh"}), data], 60)) == "ok"
        assert code_of(exchange(server.address, request("cancel", {"job": owner["result"]["job"]},
                                                        token=server.token))) == "ok"


def test_the_store_refuses_a_write_without_authority_over_a_model_made_meanwhile(tmp_path):
    from shotstyle.server.errors import StoreError
    from shotstyle.server.store import ModelStore

    data = open(save_tiny_model(tmp_path / "src"), "rb").read()
    store = ModelStore(str(tmp_path / "models"))
    store.write("raced", b"the winner's bytes")
    with pytest.raises(StoreError) as refused:
        store.put_bytes("raced", data, replace=False)
    assert refused.value.code == "forbidden" and "'raced'" in str(refused.value)
    assert (tmp_path / "models" / "raced.safetensors").read_bytes() == b"the winner's bytes"
    assert sorted(os.listdir(tmp_path / "models")) == ["raced.safetensors"]   # no temporary file left
    store.put_bytes("raced", data, replace=True)
    assert (tmp_path / "models" / "raced.safetensors").read_bytes() == data


FULL_STORE = textwrap.dedent("""
    # The model store's disk is full: syncing any file in it fails as a full disk does.
    import errno, os
    _sync, _store = os.fsync, os.path.realpath(os.environ["SHOTSTYLE_MODELS_DIR"]) + os.sep
    def _full(fd):
        if os.path.realpath(os.readlink(f"/proc/self/fd/{fd}")).startswith(_store):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return _sync(fd)
    os.fsync = _full
""")


def write_bytes(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


@pytest.fixture
def full_store_server(tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(FULL_STORE)
    path = os.pathsep.join(p for p in (str(site), os.environ.get("PYTHONPATH", "")) if p)
    with ServerProcess(tmp_path / "srv", env={"PYTHONPATH": path}) as server:
        yield server


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="the full disk is simulated through /proc")
def test_a_full_store_disk_loses_no_finished_training(full_store_server, tmp_path):
    from shotstyle.media.frame import Frame
    from shotstyle.media.writing import write_frame
    from shotstyle.server.engine.modelfile import load_model

    server = full_store_server
    key = str(tmp_path / "key.exr")
    rgb = np.random.default_rng(0).uniform(0, 1, (48, 64, 3)).astype(np.float32)
    write_frame(key, Frame(rgb, ["R", "G", "B"], ["half"] * 3, (0, 0, 64, 48), (0, 0, 64, 48), {}))
    output = tmp_path / "out" / "look.safetensors"
    output.parent.mkdir()
    done = subprocess.run([sys.executable, "-m", "shotstyle.cli", "train", "--server", server.address,
                           "--content", key, "--style", key, "-o", str(output), "--steps", "2", "--resolution", "32",
                           "--loss", "look"], capture_output=True, text=True, timeout=300, env=server.env)
    # train -o never asks the store to keep its model (test_train_leftovers.py): the full store is no fault of it.
    assert done.returncode == ExitCode.OK, (done.returncode, done.stderr, server.log()[-3000:])
    assert load_model(str(output)).metadata["steps"] == 2
    # A training into a store name (a host's node) gets the model with its io_error: nothing is lost.
    with Client(server.address, timeout=60) as client:
        job = client.train([encode_file(key)], encode_file(key), "look", {"steps": 2, "resolution": 32, "loss": "look"})
        with pytest.raises(ServerError) as refused:
            follow(job, timeout=300)
    assert refused.value.code == "io_error" and os.strerror(errno.ENOSPC) in refused.value.message, refused.value
    assert refused.value.model_file is not None
    assert load_model(str(write_bytes(tmp_path / "kept.safetensors", refused.value.model_file))).metadata["steps"] == 2
    assert not [n for n in os.listdir(server.models) if not n.startswith("tiny")]   # nothing half-written
    data = output.read_bytes()
    answer = exchange(server.address, [*request("model.put", {"name": "upload"}), data], 60)
    assert code_of(answer) == "io_error" and str(server.models) in answer["error"]["message"], answer
    assert hashlib.sha256(output.read_bytes()).hexdigest() == hashlib.sha256(data).hexdigest()
