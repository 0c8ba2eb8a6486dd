"""One local server per install, said aloud; addresses as people type them.

Real server processes on 127.0.0.1 (each test has its own runtime folder, conftest.py): the
server file is keyed by install, `hello` says which code answers, `train`/`render` say which
server they use, `shotstyle stop` ends it, a second `serve` refuses to take over, and a server
started on demand exits once idle (never while it trains).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from serverproc import ServerProcess
from shotstyle.cli.main import main
from shotstyle.plugin import localserver, protocol
from shotstyle.plugin.client import Client, ServerError
from shotstyle.plugin.exitcodes import ExitCode
from testfiles import paths_of


def wait_gone(pid: int, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while localserver.pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    return not localserver.pid_alive(pid)


@pytest.fixture
def served(tmp_path, monkeypatch):
    """A `serve`-started server whose runtime folder is this test's."""
    with ServerProcess(tmp_path / "server") as server:
        monkeypatch.setenv("SHOTSTYLE_RUNTIME_DIR", str(server.runtime))
        yield server


def test_two_installs_never_share_a_local_server(served, monkeypatch):
    assert localserver.find_local_server() == served.address            # this install's
    monkeypatch.setenv("SHOTSTYLE_SERVER_PYTHON", "/studio/other-checkout/.venv/bin/python")
    assert localserver.find_local_server() is None                       # another venv: its own server
    with pytest.raises(ServerError):
        Client(timeout=2)   # not found, and without autostart nothing is started
    assert os.path.basename(str(served.server_file)).startswith(f"server-p{protocol.PROTOCOL_VERSION}-")


def test_hello_says_which_code_answers_and_another_version_warns(served, monkeypatch, capsys):
    from shotstyle.cli.connection import connect
    with Client(served.address) as client:
        hello = client.hello()
    assert hello["install"]["prefix"] == localserver.prefix_of(sys.executable)
    assert hello["install"]["python"] == sys.executable and hello["pid"] == served.process.pid
    monkeypatch.setattr(localserver, "__version__", "9.9.9")   # this client is another release
    connect(served.address).close()
    err = capsys.readouterr().err
    assert f"warning: the server at {served.address}: it runs shotstyle {hello['version']}" in err
    assert "this is shotstyle 9.9.9" in err


def test_commands_say_which_server_and_stop_ends_it(tiny_model, tmp_path, plate_clip, style_image, capsys):
    render = ["render", "--model", tiny_model, "--in", plate_clip, "--out", str(tmp_path / "out" / "s.####.exr"),
              "--frames", "1"]
    try:
        assert main(render) == 0
        err = capsys.readouterr().err
        address = localserver.find_local_server()
        assert f"server {address} (started now; shotstyle" in err and "device cpu" in err
        assert main([*render, "--force"]) == 0
        assert f"server {address} (found running; shotstyle" in capsys.readouterr().err
        keyframe = paths_of(plate_clip, [1])[0]
        assert main(["train", "--content", keyframe, "--style", style_image, "-o", str(tmp_path / "t.safetensors"),
                     "--steps", "2", "--resolution", "64"]) == 0
        err = capsys.readouterr().err
        assert f"server {address} (found running" in err
        assert "loss 'auto' -> 'target'" in err and "64 px, 2 steps" in err
        info = localserver.read_server_file()
        assert info is not None and info["autostarted"] and info["idle_exit_s"] == 30 * 60
    finally:
        pid = (localserver.read_server_file() or {}).get("pid")
        code = main(["stop"])
    out = capsys.readouterr().out
    assert code == 0 and f"stopped the shotstyle server at {address} (pid {pid}" in out
    assert wait_gone(pid, 10) and localserver.read_server_file() is None
    assert main(["stop"]) == 0
    assert "no local shotstyle server is running for this install" in capsys.readouterr().out


def serve(*args: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "shotstyle.cli", "serve", "--device", "cpu", *args],
                          capture_output=True, text=True, timeout=60, env=env)


def test_a_second_serve_refuses_where_a_server_answers(tmp_path):
    socket = f"ipc://{tmp_path}/shotstyle.sock"
    with ServerProcess(tmp_path / "server", ["--bind", socket]) as first:
        # Another serve on the same address would steal an ipc:// socket (tcp:// fails to bind).
        done = serve("--bind", socket, "--no-server-file", env=first.env)
        assert done.returncode == ExitCode.USAGE and f"already answers at {socket}" in done.stderr
        # A serve on another port must not take over this install's local server (it would orphan it).
        done = serve("--port", "0", env=first.env)
        assert done.returncode == ExitCode.USAGE
        assert f"this install's local server already runs at {first.address}" in done.stderr
        assert "shotstyle stop" in done.stderr
        with Client(first.address) as client:
            assert client.status()["pid"] == first.process.pid
        assert localserver.read_server_file(str(first.server_file))["pid"] == first.process.pid


def test_a_server_started_on_demand_exits_when_idle_but_never_while_training(plate_clip, style_image, monkeypatch):
    from shotstyle.nodes.hostbridge import HostBridge
    from shotstyle.plugin import codec
    from shotstyle.plugin.client import follow
    monkeypatch.setenv("SHOTSTYLE_IDLE_EXIT_MINUTES", "0.05")   # 3 s
    client = Client(autostart=True, timeout=30)
    pid = client.status()["pid"]
    bridge = HostBridge()            # a host node's connection, made while the server runs
    bridge.hello()
    job = client.train([codec.encode_file(paths_of(plate_clip, [1])[0])], codec.encode_file(style_image),
                       "long", {"steps": 100000, "resolution": 32, "loss": "look", "preview_every": 0})
    time.sleep(7)   # twice the idle time, with no request: the job keeps it up
    assert localserver.pid_alive(pid)
    job.cancel()
    assert follow(job)["type"] == "cancelled"
    client.close()
    assert wait_gone(pid, 30), "the idle server did not exit"
    assert localserver.read_server_file() is None
    assert "idle for 0.05 min (no requests, jobs or frames): stopping" in Path(localserver.log_file()).read_text()
    try:  # the host's next action reaches a fresh local server, not the one that exited
        assert bridge.hello()["pid"] not in (pid, None)
    finally:
        bridge.close()
        assert main(["stop"]) == 0


def test_addresses_in_every_form_and_a_clear_refusal(served, capsys):
    from shotstyle.nodes.hostbridge import HostBridge, HostBridgeError
    from shotstyle.plugin.address import FORMS, AddressError, parse_address
    port = served.address.rsplit(":", 1)[1]
    for text in (f"127.0.0.1:{port}", f"localhost:{port}", port, f":{port}", f"tcp://127.0.0.1:{port}"):
        with Client(text, timeout=10) as client:
            assert client.hello()["pid"] == served.process.pid, text
    assert parse_address("ipc:///tmp/s.sock") == "ipc:///tmp/s.sock"
    assert parse_address("[::1]:5599") == "tcp://[::1]:5599"
    assert parse_address("*:5599", bind=True) == "tcp://*:5599" and parse_address("0", bind=True) == "tcp://127.0.0.1:*"
    for bad in ("gpu-01", "http://gpu-01:5599", "gpu-01:port", "127.0.0.1:70000", "tcp://", "*:5599"):
        with pytest.raises(AddressError) as refused:
            parse_address(bad)
        assert FORMS in refused.value.message or "outside 1-65535" in refused.value.message \
            or "only for listening" in refused.value.message, bad
    assert HostBridge(f"localhost:{port}").hello()["pid"] == served.process.pid
    with pytest.raises(HostBridgeError, match="host:port, :port, port"):
        HostBridge("gpu-01").hello()
    with pytest.raises(SystemExit) as usage:   # argparse: exit 2 with the forms, not a traceback
        main(["render", "--model", "m", "--in", "a.####.exr", "--out", "b.####.exr", "--frames", "1",
              "--server", "gpu-01"])
    assert usage.value.code == ExitCode.USAGE and FORMS in capsys.readouterr().err


def test_the_server_file_says_what_a_client_needs(served):
    info = json.loads(Path(served.server_file).read_text())
    assert {"pid", "address", "protocol", "version", "install", "started", "autostarted", "idle_exit_s"} <= set(info)
    assert info["autostarted"] is False and info["idle_exit_s"] is None   # `serve` stays up unless --idle-exit
    assert Path(served.server_file).stat().st_mode & 0o777 == 0o600      # this user's alone
