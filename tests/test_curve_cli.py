"""A CURVE-secured server is usable from the command line, the farm jobs and the host nodes.

`shotstyle keys` makes the server's pair and several clients' at once (keeping pairs that exist);
`--server-key`/`--client-key`, SHOTSTYLE_SERVER_KEY/SHOTSTYLE_CLIENT_KEY or the per-user config
file give a client its keys. One real CURVE server (127.0.0.1, its clients' public keys in a
folder) serves the whole module.
"""

from __future__ import annotations

import shutil
import socket
from pathlib import Path

import pytest

from serverproc import ServerProcess
from shotstyle.cli.main import main
from shotstyle.plugin.exitcodes import ExitCode
from testfiles import paths_of


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def keys(tmp_path_factory) -> Path:
    """The server's pair and two clients' (the `keys` command itself: tests/test_server.py)."""
    from shotstyle.server.keys import make_keypair
    folder = tmp_path_factory.mktemp("keys")
    for name in ("server", "artist-01", "artist-02"):
        make_keypair(str(folder), name)
    return folder


@pytest.fixture(scope="module")
def curve_server(keys, tmp_path_factory):
    allowed = tmp_path_factory.mktemp("authorized")
    shutil.copy(keys / "artist-01.key", allowed)        # artist-02 is not let in
    root = tmp_path_factory.mktemp("curve-server")
    with ServerProcess(root, ["--bind", f"tcp://127.0.0.1:{free_port()}", "--curve-secret",
                              str(keys / "server.key_secret"), "--authorized-keys", str(allowed)]) as server:
        yield server


def render(model: str, plates: str, out: Path, server: str, *extra: str) -> int:
    return main(["render", "--model", model, "--in", plates, "--out", str(out / "s.####.exr"), "--frames", "1",
                 "--server", server, *extra])


def test_render_and_train_with_keys_from_options_environment_or_config(curve_server, keys, tiny_model,
                                                                       plate_clip, style_image, tmp_path,
                                                                       monkeypatch, capsys):
    server, client = str(keys / "server.key"), str(keys / "artist-01.key_secret")
    assert render(tiny_model, plate_clip, tmp_path / "a", curve_server.address,
                  "--server-key", server, "--client-key", client) == 0, curve_server.log()
    assert main(["train", "--content", paths_of(plate_clip, [1])[0], "--style", style_image, "-o",
                 str(tmp_path / "t.safetensors"), "--steps", "2", "--resolution", "32", "--loss", "look",
                 "--server", curve_server.address, "--server-key", server, "--client-key", client]) == 0
    monkeypatch.setenv("SHOTSTYLE_SERVER_KEY", server)
    monkeypatch.setenv("SHOTSTYLE_CLIENT_KEY", client)
    assert render(tiny_model, plate_clip, tmp_path / "b", curve_server.address) == 0
    monkeypatch.delenv("SHOTSTYLE_SERVER_KEY")
    monkeypatch.delenv("SHOTSTYLE_CLIENT_KEY")
    import os
    Path(os.environ["SHOTSTYLE_CONFIG"]).write_text(f"[server]\nserver_key = {server}\nclient_key = {client}\n")
    assert render(tiny_model, plate_clip, tmp_path / "c", curve_server.address) == 0
    capsys.readouterr()


def test_wrong_or_half_given_keys_fail_clearly(curve_server, keys, tiny_model, plate_clip, tmp_path, capsys):
    assert render(tiny_model, plate_clip, tmp_path / "a", curve_server.address, "--server-key",
                  str(keys / "server.key")) == ExitCode.USAGE
    assert "needs this client's key pair too: give --client-key" in capsys.readouterr().err
    assert render(tiny_model, plate_clip, tmp_path / "a", curve_server.address, "--server-key",
                  str(keys / "server.key"), "--client-key", str(keys / "missing.key_secret")) == ExitCode.USAGE
    assert "missing.key_secret: no such key file" in capsys.readouterr().err
    assert render(tiny_model, plate_clip, tmp_path / "a", curve_server.address, "--server-key",
                  str(keys / "server.key"), "--client-key", str(keys / "artist-02.key_secret")) \
        == ExitCode.SERVER_UNREACHABLE
    assert "refused this client's CURVE key" in capsys.readouterr().err


def test_submit_passes_the_keys_on_to_the_farm_jobs(keys, tmp_path, monkeypatch):
    import shlex
    monkeypatch.setenv("SHOTSTYLE_CLIENT_KEY", str(keys / "artist-01.key_secret"))
    jobs = tmp_path / "jobs"
    assert main(["submit", "opencue", "--model", str(tmp_path / "m.safetensors"), "--in", "p.####.exr", "--out",
                 str(tmp_path / "o.####.exr"), "--frames", "1-10", "--show", "showA", "--server", "gpu-01:5599",
                 "--server-key", str(keys / "server.key"), "-o", str(jobs)]) == 0
    (spec,) = jobs.glob("*.cjsl.xml")
    command = shlex.split(spec.read_text().split("<cmd>")[1].split("</cmd>")[0])
    assert command[command.index("--server") + 1] == "tcp://gpu-01:5599"
    assert command[command.index("--server-key") + 1] == str(keys / "server.key")
    assert command[command.index("--client-key") + 1] == str(keys / "artist-01.key_secret")


def test_host_nodes_reach_a_curve_server_with_their_key_fields(curve_server, keys, monkeypatch):
    from shotstyle.nodes.hostbridge import BridgePool
    from shotstyle.plugin import params
    assert {"server_key", "client_key"} <= set(params.group("Server"))   # a field in every host's panel
    pool = BridgePool()
    bridge = pool.get("node-1", curve_server.address, str(keys / "server.key"), str(keys / "artist-01.key_secret"))
    assert bridge.status_line().startswith("connected: shotstyle")
    monkeypatch.setenv("SHOTSTYLE_SERVER_KEY", str(keys / "server.key"))
    monkeypatch.setenv("SHOTSTYLE_CLIENT_KEY", str(keys / "artist-01.key_secret"))
    assert pool.get("node-2", curve_server.address).status_line().startswith("connected: shotstyle")
    pool.close_all()
