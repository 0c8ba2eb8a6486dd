"""A real server process survives every kind of bad request, answers each with an error reply
carrying a documented code, keeps answering `hello`, refuses unauthorised CURVE clients and
stops gracefully on SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
import zmq

import testfiles
from serverproc import exchange, serving_tiny_model, MODEL, ServerProcess, save_tiny_model
from shotstyle.plugin import codec, protocol
from shotstyle.plugin.client import Client, ServerError
from shotstyle.plugin.exitcodes import ExitCode

@pytest.fixture(scope="module")
def server(tmp_path_factory):
    yield from serving_tiny_model(tmp_path_factory)


def assert_still_answers(server: ServerProcess) -> None:
    assert server.alive(), server.log()
    with Client(server.address, timeout=10) as client:
        assert client.hello()["protocol"] == protocol.PROTOCOL_VERSION


def raw_frame_desc(**header_changes):
    header = {"width": 2, "height": 2, "channels": ["R", "G", "B"], "formats": ["half"] * 3, "dtype": "float16",
              "data_window": [0, 0, 2, 2], "display_window": [0, 0, 2, 2], "attributes": {}}
    header.update(header_changes)
    return {"kind": "raw", "frame": 1, "size": 24, "header": header, "part": 0}


def stylize_header(frames, **args):
    return protocol.encode_header(protocol.request("stylize", {"model": MODEL, **args}, frames, "req-1"))


BAD_REQUESTS = {
    "not json": ([b"{this is not json"], "bad_message"),
    "empty header": ([b""], "bad_message"),
    "json array": ([b"[]"], "bad_message"),
    "wrong version": ([json.dumps({"v": 0, "id": "req-1", "op": "hello"}).encode()], "version_mismatch"),
    "unknown op": ([protocol.encode_header(protocol.request("rm_rf", request_id="req-1"))], "unknown_op"),
    "args not an object": ([json.dumps({"v": 1, "id": "req-1", "op": "stylize", "args": 3}).encode()],
                           "bad_message"),
    "truncated multipart": ([stylize_header([raw_frame_desc()])], "bad_message"),
    "payload shorter than declared": ([stylize_header([raw_frame_desc()]), b"\0" * 10], "bad_message"),
    "huge declared frame": ([stylize_header([raw_frame_desc(width=10**7, data_window=[0, 0, 10**7, 2])]),
                             b"\0" * 24], "too_large"),
    "huge declared size": ([stylize_header([{**raw_frame_desc(), "size": 10**15}]), b"\0" * 24], "bad_message"),
    "bad frame kind": ([stylize_header([{**raw_frame_desc(), "kind": "pickle"}]), b"\0" * 24], "bad_message"),
    "path traversal model": ([protocol.encode_header(protocol.request("stylize", {"model": "../../etc/passwd"},
                                                                      request_id="req-1"))], "bad_argument"),
    "unknown model": ([protocol.encode_header(protocol.request("stylize", {"model": "nope"}, request_id="req-1"))],
                      "unknown_model"),
    "mix out of range": ([stylize_header([raw_frame_desc()], mix=7), b"\0" * 24], "bad_argument"),
    "garbage exr": ([stylize_header([{"kind": "file", "frame": 1, "size": 10, "header": {"format": "exr"},
                                      "part": 0}]), b"not an exr"], "bad_frame"),
    "pickled model upload": ([protocol.encode_header(protocol.request("model.put", {"name": "evil"},
                                                                      request_id="req-1")),
                              b"\x80\x04\x95 pickle bytes"], "bad_model"),
    "cancel unknown job": ([protocol.encode_header(protocol.request("cancel", {"job": "nojob"}, request_id="req-1"))],
                           "unknown_job"),
    "train without style": ([protocol.encode_header(protocol.request("train", {"name": "x"}, request_id="req-1"))],
                            "bad_argument"),
}


@pytest.mark.parametrize("name", list(BAD_REQUESTS))
def test_bad_request_gets_an_error_reply_and_the_server_lives(server, name):
    parts, code = BAD_REQUESTS[name]
    answer = exchange(server.address, parts)
    assert answer["ok"] is False
    assert answer["error"]["code"] == code, answer
    assert answer["error"]["code"] in protocol.ERROR_CODES and answer["error"]["message"]
    if name not in ("not json", "empty header", "json array"):
        assert answer["id"] == "req-1"
    if name == "wrong version":
        assert "0" in answer["error"]["message"] and str(protocol.PROTOCOL_VERSION) in answer["error"]["message"]
    assert_still_answers(server)


def test_hello_and_status_send_the_fields_the_protocol_documents(server):
    with Client(server.address, timeout=10) as client:
        assert sorted(client.hello()) == sorted(protocol.HELLO_FIELDS)
        assert sorted(client.status()) == sorted(protocol.STATUS_FIELDS)


def test_a_tile_size_the_stylizer_refuses_is_a_bad_argument_not_internal(server):
    payload = np.zeros((2, 2, 3), np.float16)
    ef = codec.encode_raw(payload, raw_frame_desc()["header"], frame=1)
    with Client(server.address, timeout=60) as client:
        with pytest.raises(ServerError) as err:
            client.call("stylize", {"model": MODEL, "tile": 100}, [ef])
    assert err.value.code == "bad_argument" and "tile_pixels=100 is too small" in err.value.message


def assert_bad_frame_replies(server: ServerProcess, paths) -> None:
    with Client(server.address, timeout=60) as client:
        for path in paths:
            with pytest.raises(ServerError) as err:
                client.stylize([codec.encode_file(str(path), frame=1)], MODEL)
            assert err.value.code == "bad_frame", (path, err.value)
            assert err.value.frame == 1
        assert client.hello()["version"]
    assert server.alive()


def test_every_damaged_exr_is_a_bad_frame_reply(server, damaged_exrs):
    assert_bad_frame_replies(server, [damaged_exrs[name] for name in testfiles.DAMAGES
                                      if name not in testfiles.RECOVERABLE_DAMAGES])


def test_every_fuzz_corpus_exr_is_a_bad_frame_reply(server, shared_data):
    damaged = sorted((shared_data / "exr" / "damaged").glob("*.exr"))
    assert damaged
    assert_bad_frame_replies(server, damaged)


def test_a_client_killed_mid_request_does_not_disturb_the_server(server, tmp_path):
    script = textwrap.dedent(f"""
        import os, numpy as np
        from shotstyle.plugin import codec
        from shotstyle.plugin.client import Client
        client = Client({server.address!r})
        header = {{"width": 640, "height": 360, "channels": ["R", "G", "B", "A"], "formats": ["half"] * 4,
                  "dtype": "float32", "data_window": [0, 0, 640, 360], "display_window": [0, 0, 640, 360]}}
        pixels = np.full((360, 640, 4), 0.25, np.float32)
        for n in range(8):
            client._send("stylize", {{"model": {MODEL!r}}}, [codec.encode_raw(pixels, header, n)])
        print("sent", flush=True)
        os.kill(os.getpid(), 9)
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60,
                          env=server.env)
    assert proc.returncode == -signal.SIGKILL and "sent" in proc.stdout, proc.stderr
    assert_still_answers(server)
    with Client(server.address, timeout=60) as client:
        pixels = np.full((8, 8, 3), 0.18, np.float16)
        header = {"width": 8, "height": 8, "channels": ["R", "G", "B"], "formats": ["half"] * 3,
                  "dtype": "float16", "data_window": [0, 0, 8, 8], "display_window": [0, 0, 8, 8]}
        out = client.stylize([codec.encode_raw(pixels, header, 5)], MODEL)
        assert out[0].frame == 5 and out[0].header["channels"] == ["R", "G", "B"]


def test_too_many_requests_in_flight_is_refused(server):
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(server.address)

    def request(size: int, number: int) -> list:
        pixels = np.full((size, size, 3), 0.18, np.float16)
        header = {"width": size, "height": size, "channels": ["R", "G", "B"], "formats": ["half"] * 3,
                  "dtype": "float16", "data_window": [0, 0, size, size], "display_window": [0, 0, size, size]}
        descs, payloads = codec.frames_to_message([codec.encode_raw(pixels, header, number)])
        return protocol.pack(protocol.request("stylize", {"model": MODEL, "mix": 1}, descs), payloads)

    try:
        # A big frame first keeps the one render thread busy for seconds while the small ones
        # arrive, so they pile up behind it however fast or loaded the machine is.
        count = protocol.MAX_REQUESTS_IN_FLIGHT_PER_CLIENT + 8
        for n in range(count):
            sock.send_multipart(request(2048 if n == 0 else 8, n))
        codes = []
        for _ in range(count):
            assert sock.poll(120000)
            answer = json.loads(sock.recv_multipart()[0])
            codes.append("ok" if answer["ok"] else answer["error"]["code"])
        assert set(codes) == {"ok", "too_many_jobs"}, codes
        assert codes.count("ok") >= protocol.MAX_REQUESTS_IN_FLIGHT_PER_CLIENT  # the limit, not fewer
    finally:
        sock.close()
    assert_still_answers(server)


def test_non_loopback_bind_without_curve_keys_is_refused(tmp_path, capsys):
    import argparse

    from shotstyle.cli import serve
    from shotstyle.server import keys

    parser = argparse.ArgumentParser()
    serve.configure(parser)
    for address in ("tcp://0.0.0.0:0", "tcp://*:5599", "tcp://192.168.1.20:5599", "tcp://gpu-01:5599"):
        args = parser.parse_args(["--bind", address, "--models", str(tmp_path), "--device", "cpu"])
        assert serve.run(args) == ExitCode.USAGE
        assert "without CurveZMQ" in capsys.readouterr().err
    assert all(keys.is_local_address(a) for a in ("tcp://127.0.0.1:1", "tcp://localhost:1", "tcp://[::1]:1",
                                                  "ipc:///tmp/x"))


def test_curve_refuses_unauthorised_clients(tmp_path):
    from shotstyle.server.keys import make_keypair

    keys = tmp_path / "keys"
    allowed = tmp_path / "allowed"
    allowed.mkdir()
    server_pub, server_secret = make_keypair(str(keys), "server")
    good_pub, good_secret = make_keypair(str(keys), "artist")
    bad_pub, bad_secret = make_keypair(str(keys), "stranger")
    (allowed / "artist.key").write_bytes(open(good_pub, "rb").read())
    assert oct(os.stat(server_secret).st_mode & 0o777) == "0o600"
    with ServerProcess(tmp_path / "srv", ["--bind", "tcp://127.0.0.1:*", "--curve-secret", server_secret,
                                          "--authorized-keys", str(allowed)]) as server:
        with Client(server.address, timeout=10, server_public_key=server_pub,
                    client_keys=(good_pub, good_secret)) as client:
            assert client.hello()["capabilities"]["curve"] is True
        with Client(server.address, timeout=20, retries=0, server_public_key=server_pub,
                    client_keys=(bad_pub, bad_secret)) as client:
            start = time.monotonic()
            with pytest.raises(ServerError) as err:
                client.hello()
            assert err.value.code == "unauthorised" and time.monotonic() - start < 10
        with Client(server.address, timeout=1, retries=0) as plain:  # no CURVE at all: never answered
            with pytest.raises(ServerError) as err:
                plain.hello()
            assert err.value.code == "timeout"
        assert server.alive()


def test_store_validates_names_and_keeps_loaded_models_under_its_budget(tmp_path):
    from shotstyle.server.store import ModelStore, StoreError

    source = save_tiny_model(tmp_path / "src")
    store = ModelStore(str(tmp_path / "store"), memory_budget=1)  # room for one loaded model only
    data = open(source, "rb").read()
    for name in ("a", "b"):
        store.put_bytes(name, data)
    assert store.get("a") is store.get("a")
    store.get("b")
    assert store.loaded() == ["b"]
    for bad in ("../a", "a/b", "", ".hidden", "a..b", "x" * 129, None):
        with pytest.raises(StoreError) as err:
            store.path(bad)
        assert err.value.code == "bad_argument"
    assert store.describe("a")["hash"] == store.get("a").hash
    store.delete("a")
    assert store.names() == ["b"]


def test_keys_command_makes_key_pairs_and_keeps_existing_ones(tmp_path, capsys):
    import argparse

    from shotstyle.cli import keys

    parser = argparse.ArgumentParser()
    keys.configure(parser)
    assert keys.run(parser.parse_args(["--dir", str(tmp_path), "server", "artist"])) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["artist.key", "artist.key_secret", "server.key",
                                                          "server.key_secret"]
    assert "secret-key" not in (tmp_path / "server.key").read_text()  # the public file holds no secret
    assert "secret-key" in (tmp_path / "server.key_secret").read_text()
    secret = (tmp_path / "server.key_secret").read_text()
    assert keys.run(parser.parse_args(["--dir", str(tmp_path), "server", "artist-02"])) == 0  # kept, not replaced
    assert (tmp_path / "server.key_secret").read_text() == secret and (tmp_path / "artist-02.key").is_file()
    assert "server: kept the existing pair" in capsys.readouterr().out
    assert keys.run(parser.parse_args(["--dir", str(tmp_path), "server", "--overwrite"])) == 0
    assert (tmp_path / "server.key_secret").read_text() != secret
    assert keys.run(parser.parse_args(["--dir", str(tmp_path), "server", "bad/name"])) == ExitCode.USAGE
    assert not (tmp_path / "bad").exists()


def test_isolated_decoder_survives_a_dead_or_hung_helper(made_exrs):
    from shotstyle.media.payloads import IsolatedDecoder
    from shotstyle.server.errors import FrameIOError

    data = open(made_exrs["aovs"], "rb").read()
    decoder = IsolatedDecoder()
    try:
        assert decoder.decode(data, "exr").pixels.shape[2] > 4
        decoder._process.kill()  # the helper died (as a crashing image library would)
        decoder._process.join()
        assert decoder.decode(data, "exr").pixels.shape[2] > 4  # a fresh helper took over
        # A helper that does not answer in time (stopped here, as a reader stuck in a loop would be)
        # is replaced, and the frame fails. A short timeout alone races a fast decode of a small file.
        hung = decoder._process
        os.kill(hung.pid, signal.SIGSTOP)
        decoder.timeout = 0.5
        with pytest.raises(FrameIOError, match="damaged"):
            decoder.decode(data, "exr")
        hung.join(5)
        assert not hung.is_alive()
        decoder.timeout = 60
        assert decoder.decode(data, "exr").pixels.shape[2] > 4
    finally:
        decoder.close()


def test_every_op_has_a_handler_documented_arguments_and_stated_authority():
    import inspect
    import re

    from shotstyle.server.app import Server

    assert set(Server.HANDLERS) == set(protocol.OPS)
    stated = {protocol.OPEN, protocol.AUTHORITY, protocol.AUTHORITY_TO_REPLACE, protocol.AUTHORITY_FOR_OTHERS}
    for op, spec in protocol.OP_SPECS.items():
        assert spec.authority in stated and spec.result, op
        assert all(isinstance(text, str) and text for text in spec.args.values()), op
        documented = {name.removesuffix("?") for name in spec.args}
        read = set(re.findall(r"""args(?:\.get\(|\[)["'](\w+)["']""", inspect.getsource(Server.HANDLERS[op])))
        assert read <= documented, f"{op} reads undocumented arguments {read - documented}"
    assert protocol.CONTROL_OPS == {protocol.OP_SHUTDOWN, protocol.OP_MODEL_DELETE}
