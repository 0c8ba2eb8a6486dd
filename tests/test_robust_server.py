"""Issue 15, faults 1, 2 and 6: no single request stops the server or a worker thread, and its limits hold.

1. an error reply over the header limit (a huge name, a huge op) is cut, never fatal;
2. a model.put whose error text is huge, or a worker thread that dies anyway, never disables
   rendering: the thread answers or is restarted, and health says "degraded";
6. names matched whole, frame ranges bounded before expansion, limits per peer or key (not per
   socket identity), control ops need authority, deep JSON and bad tiles are refused with their
   codes, a big refused upload gives its memory back, small float32 training frames work.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest
import zmq

import hostile
from serverproc import MODEL, ServerProcess, exchange, serving_tiny_model
from shotstyle.plugin import codec, protocol
from shotstyle.plugin.client import Client, ServerError, follow


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    yield from serving_tiny_model(tmp_path_factory)


def header(op: str, args: dict | None = None, frames=(), token: str | None = None) -> bytes:
    fields = {"v": protocol.PROTOCOL_VERSION, "id": "req-1", "op": op, "args": args or {}, "frames": list(frames)}
    return json.dumps({**fields, **({"token": token} if token else {})}).encode()


def request(op: str, args: dict | None = None, frames=(), token: str | None = None) -> list:
    return [header(op, args, frames, token)]


def code_of(answer: dict) -> str:
    return "ok" if answer["ok"] else answer["error"]["code"]


def assert_healthy(server: ServerProcess) -> None:
    """Alive, answering, every worker thread alive and nothing queued: stylize still works."""
    assert server.alive(), server.log()
    with Client(server.address, timeout=30) as client:
        status = client.status()
        assert status["health"] == protocol.HEALTH_OK and status["queued_requests"] == 0, status
        out = client.stylize([raw_frame(8)], MODEL)
        assert out[0].header["width"] == 8


def raw_frame(size: int, dtype=np.float16, number: int = 1, value: float = 0.18) -> codec.EncodedFrame:
    pixels = np.full((size, size, 3), value, dtype)
    header = {"width": size, "height": size, "channels": ["R", "G", "B"], "formats": ["half"] * 3,
              "dtype": np.dtype(dtype).name, "data_window": [0, 0, size, size], "display_window": [0, 0, size, size]}
    return codec.encode_raw(pixels, header, number)


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as handle:
        return next(int(line.split()[1]) for line in handle if line.startswith("VmRSS:")) / 1024


# --- fault 1 ---------------------------------------------------------------------------------

def test_f1_an_error_reply_that_would_pass_the_header_limit_is_cut_and_the_server_lives(tmp_path):
    from serverproc import save_tiny_model
    save_tiny_model(tmp_path / "models")
    with ServerProcess(tmp_path) as server:  # its own: on a server that has the fault, this kills it
        backslashes = request("model.describe", {"name": "\\" * 300_000})
        for parts, code in ((backslashes, "bad_argument"),
                            ([json.dumps({"v": 1, "id": "req-1", "op": "x" * 1_000_000}).encode()], "unknown_op")):
            answer = exchange(server.address, parts)
            assert code_of(answer) == code and len(json.dumps(answer)) < protocol.MAX_ERROR_MESSAGE_CHARS + 1000
            assert_healthy(server)


def test_f1_error_replies_are_bounded_whatever_the_message():
    header = protocol.error_reply("r", "internal", "\\" * 3_000_000)
    data = protocol.encode_header(header)
    assert len(data) < protocol.MAX_HEADER_BYTES
    assert header["error"]["message"].endswith("[message cut: 2996000 more characters]")


# --- fault 2 ---------------------------------------------------------------------------------

def test_f2_a_model_put_with_a_huge_error_gets_its_reply_and_rendering_goes_on(tmp_path):
    from serverproc import save_tiny_model
    save_tiny_model(tmp_path / "models")
    with ServerProcess(tmp_path) as server:  # its own: on a server that has the fault, this disables rendering
        for name in ("architecture 1.1 MB", "blocks 6000"):
            data = hostile.HOSTILE_MODELS[name][0]()
            answer = exchange(server.address, [*request("model.put", {"name": "hostile"}), data], 60)
            assert code_of(answer) == "bad_model", (name, answer)
            assert len(answer["error"]["message"]) <= protocol.MAX_ERROR_MESSAGE_CHARS + 100
            assert_healthy(server)


def test_f2_a_worker_thread_that_dies_is_restarted_answered_and_reported(tmp_path):
    from shotstyle.server.jobs import DeviceWorker
    from shotstyle.server.store import ModelStore

    context = zmq.Context()
    results = context.socket(zmq.PULL)
    results.bind("inproc://results-test")
    worker = DeviceWorker(ModelStore(str(tmp_path)), "cpu", context, "inproc://results-test")
    try:
        def dies():  # a library that calls sys.exit() in the middle of a task
            raise SystemExit(3)

        worker.submit(b"client-1", "req-dies", dies)
        deadline = time.monotonic() + 10
        answers = []
        while not answers and time.monotonic() < deadline:
            answers = worker.supervise()
            time.sleep(0.05)
        assert len(answers) == 1, "the dead thread's request got no answer"
        identity, header = answers[0]
        reply = json.loads(header)
        assert identity == b"client-1" and reply["id"] == "req-dies"
        assert reply["error"]["code"] == "internal" and "SystemExit" in reply["error"]["message"]
        assert worker.health() == protocol.HEALTH_DEGRADED
        assert worker.faults()[0]["thread"] == "shotstyle-tasks"
        assert worker.queued_renders() == 0 and worker.renders_in_flight("client-1") == 0
        worker.submit(b"client-1", "req-ok", lambda: ({"fine": True}, []))  # the restarted thread works
        assert results.poll(10000)
        identity, header = results.recv_multipart()
        assert json.loads(header)["result"] == {"fine": True}
    finally:
        worker.request_stop()
        worker.close()
        results.close(0)
        context.term()


def test_f2_status_and_hello_report_health(server):
    with Client(server.address) as client:
        assert client.hello()["health"] == protocol.HEALTH_OK
        status = client.status()
        assert status["health"] == protocol.HEALTH_OK and status["faults"] == []


# --- fault 6 ---------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["tiny\n", "evil\n", "a/b", "..", ".hidden", "x" * 129, "é"])
def test_f6_model_names_are_matched_whole(server, name, tmp_path):
    for op in ("model.describe", "stylize"):
        answer = exchange(server.address, request(op, {"name": name, "model": name}))
        assert code_of(answer) == "bad_argument", (op, answer)
    from serverproc import save_tiny_model
    data = open(save_tiny_model(tmp_path), "rb").read()
    answer = exchange(server.address, [*request("model.put", {"name": name}), data], 60)
    assert code_of(answer) == "bad_argument", answer
    assert not any("\n" in p.name for p in server.models.iterdir())


def test_f6_a_huge_frame_range_is_refused_before_it_is_expanded(server):
    before = rss_mb(server.process.pid)
    started = time.monotonic()
    answer = exchange(server.address, request("train", {"name": "big", "params": {"keyframes": "0-20000000"}}))
    assert code_of(answer) == "bad_argument" and "more than" in answer["error"]["message"]
    assert time.monotonic() - started < 1.0
    assert rss_mb(server.process.pid) - before < 50


def train_frames() -> list:
    frames, payloads = codec.frames_to_message([
        codec.EncodedFrame("raw", raw_frame(16).header, raw_frame(16).data, 1, {"role": "keyframe"}),
        codec.EncodedFrame("raw", raw_frame(16).header, raw_frame(16).data, 2, {"role": "style"})])
    return [frames, payloads]


def train_request(name: str, steps: int = 100_000, token: str | None = None) -> list:
    descs, payloads = train_frames()
    params = {"steps": steps, "resolution": 32, "loss": "look"}
    return [header("train", {"name": name, "params": params}, descs, token), *payloads]


def test_f6_training_limits_count_per_peer_not_per_socket_identity(tmp_path):
    with ServerProcess(tmp_path) as server:
        codes = [code_of(exchange(server.address, train_request(f"job{n}"))) for n in range(5)]
        assert codes == ["ok"] * protocol.MAX_JOBS_PER_CLIENT + ["too_many_jobs"] * 3, codes
        jobs = exchange(server.address, request("status"))["result"]["jobs"]
        for job in jobs:  # the owner (with the token) may cancel anyone's
            exchange(server.address, request("cancel", {"job": job["id"]}, token=server.token))
        assert len(jobs) == protocol.MAX_JOBS_PER_CLIENT


def test_f6_control_ops_need_the_token_and_reading_stays_open(tmp_path):
    from serverproc import save_tiny_model
    with ServerProcess(tmp_path) as server:
        data = open(save_tiny_model(tmp_path / "src"), "rb").read()
        assert code_of(exchange(server.address, [*request("model.put", {"name": "mine"}), data], 60)) == "ok"
        for parts in (request("shutdown"), request("model.delete", {"name": "mine"}),
                      [*request("model.put", {"name": "mine"}), data]):
            answer = exchange(server.address, parts, 60)
            assert code_of(answer) == "forbidden", answer
            assert "local server file" in answer["error"]["message"]
        wrong = exchange(server.address, request("shutdown", token="not-the-token"))
        assert code_of(wrong) == "forbidden"
        for parts in (request("hello"), request("status"), request("models"),
                      request("model.describe", {"name": "mine"}), request("model.get", {"name": "mine"})):
            assert code_of(exchange(server.address, parts)) == "ok"
        # a job started by one peer is not another's to cancel
        started = exchange(server.address, train_request("their-job", token=server.token))
        job = started["result"]["job"]
        assert code_of(exchange(server.address, request("cancel", {"job": job}))) == "forbidden"
        assert code_of(exchange(server.address, request("cancel", {"job": job}, token=server.token))) == "ok"
        assert server.alive()
        token = server.token
        assert oct(Path(server.server_file).stat().st_mode & 0o777) == "0o600"
        assert code_of(exchange(server.address, [*request("model.put", {"name": "mine"}, token=token), data],
                                60)) == "ok"
        assert code_of(exchange(server.address, request("model.delete", {"name": "mine"}, token=token))) == "ok"
        assert code_of(exchange(server.address, request("shutdown", token=token))) == "ok"
        server.process.wait(60)


def test_f6_over_ipc_the_servers_own_user_has_authority(tmp_path):
    folder = tmp_path / "sock"
    folder.mkdir(mode=0o700)
    with ServerProcess(tmp_path, ["--bind", f"ipc://{folder}/shotstyle.sock"]) as server:
        assert code_of(exchange(server.address, request("shutdown"))) == "ok"  # no token: the kernel vouches
        server.process.wait(60)


def test_f6_deep_json_and_bad_tiles_get_their_codes(server):
    nested = b'{"v":1,"id":"req-1","op":"hello","args":{"a":' + b"[" * 100_000 + b"]" * 100_000 + b"}}"
    assert code_of(exchange(server.address, [nested])) == "bad_message"
    shallow_enough = {"v": 1, "id": "req-1", "op": "hello", "args": {"a": [[[1]]]}}
    assert code_of(exchange(server.address, [json.dumps(shallow_enough).encode()])) == "ok"
    deep = {"v": 1, "id": "req-1", "op": "hello", "args": {}}
    node = deep["args"]
    for _ in range(protocol.MAX_JSON_DEPTH + 2):
        node["x"] = {}
        node = node["x"]
    assert code_of(exchange(server.address, [json.dumps(deep).encode()])) == "bad_message"
    for tile in (1, 100, -1, 2.5, "big"):
        ef = raw_frame(64)
        descs, payloads = codec.frames_to_message([ef])
        answer = exchange(server.address, [*request("stylize", {"model": MODEL, "tile": tile}, descs), *payloads], 60)
        assert code_of(answer) == "bad_argument", (tile, answer)
    assert_healthy(server)


def test_f6_a_big_refused_upload_gives_its_memory_back(server):
    before = rss_mb(server.process.pid)
    garbage = np.random.default_rng(0).integers(0, 255, 300 << 20, dtype=np.uint8).tobytes()
    answer = exchange(server.address, [*request("model.put", {"name": "garbage"}), garbage], 120)
    del garbage
    assert code_of(answer) == "bad_model"
    time.sleep(1.0)
    assert rss_mb(server.process.pid) - before < 60, (before, rss_mb(server.process.pid))
    assert_healthy(server)


@pytest.mark.parametrize("size", [16, 20, 24])
def test_f6_small_float32_raw_training_frames_train(server, size):
    with Client(server.address, timeout=60) as client:
        key, style = raw_frame(size, np.float32, 1, 0.2), raw_frame(size, np.float32, 2, 0.5)
        job = client.train([key], style, f"small{size}", {"steps": 2, "resolution": 32, "loss": "look",
                                                           "preview_every": 1}, preview=key)
        assert follow(job, timeout=120)["type"] == protocol.EVENT_DONE
