"""A real shotstyle server process for tests: 127.0.0.1, a random free port, its own folders.

Any test module may use it: ``with ServerProcess(tmp_path) as server: Client(server.address)``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, Optional, Sequence

MODEL = "tiny"


class ServerProcess:
    """``python -m shotstyle.server --port 0`` with its runtime and model folders under ``root``."""

    def __init__(self, root: Path, extra_args: Sequence[str] = (), env: Optional[Dict[str, str]] = None,
                 start_timeout: float = 60.0):
        self.root = Path(root)
        self.runtime = self.root / "run"
        self.models = self.root / "models"
        self.runtime.mkdir(parents=True, exist_ok=True)
        self.log_path = self.root / "server.log"
        self.server_file: Optional[Path] = None  # found once the server has written it
        self.env = {**os.environ, "SHOTSTYLE_RUNTIME_DIR": str(self.runtime),
                    "SHOTSTYLE_MODELS_DIR": str(self.models), "SHOTSTYLE_VGG_WEIGHTS": "", **(env or {})}
        args = list(extra_args)
        if "--bind" not in args:
            args = ["--port", "0", *args]
        command = [sys.executable, "-m", "shotstyle.server", "--device", "cpu", "--models", str(self.models), *args]
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(command, env=self.env, stdout=log, stderr=subprocess.STDOUT)
        self.address = self._wait_for_address(start_timeout)

    def _wait_for_address(self, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited with {self.process.returncode}:\n{self.log()}")
            for path in self.runtime.glob("*.json"):  # the server file it writes (named by its install)
                try:
                    info = json.loads(path.read_text())
                except (OSError, ValueError):
                    continue
                if info.get("pid") == self.process.pid:
                    self.server_file = path
                    return str(info["address"])
            time.sleep(0.05)
        self.kill()
        raise RuntimeError(f"server did not start within {timeout} s:\n{self.log()}")

    @property
    def token(self) -> str:
        """The server's token (from its server file): what gives a client authority over it."""
        return str(json.loads(Path(self.server_file).read_text())["token"])

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def alive(self) -> bool:
        return self.process.poll() is None

    def terminate(self, timeout: float = 60.0) -> int:
        """SIGTERM, then wait for the graceful exit; its exit status."""
        if self.alive():
            self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout)

    def kill(self) -> None:
        if self.alive():
            self.process.kill()
        self.process.wait(10)

    def __enter__(self) -> "ServerProcess":
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            self.terminate(30)
        except subprocess.TimeoutExpired:
            self.kill()


def exchange(address: str, parts: Sequence[bytes], timeout: float = 30.0) -> dict:
    """Send raw multipart ``parts`` on a fresh DEALER (a fresh identity each time); the reply header."""
    import zmq

    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(address)
    try:
        sock.send_multipart(parts)
        assert sock.poll(int(timeout * 1000)), "no reply"
        return dict(json.loads(sock.recv_multipart()[0]))
    finally:
        sock.close()


def save_tiny_model(folder: Path) -> str:
    """An untrained but saved hrnet-fast model, quick to run; its weights are randomised (a fresh
    network's output layer starts at zero, i.e. identity) and its grade is a colour grade, so it
    visibly changes pixels, through both its parts."""
    import torch

    from shotstyle.server.engine.grade import identity_lattice
    from shotstyle.server.engine.modelfile import StyleModel, save_model
    from shotstyle.server.engine.networks import build_network

    torch.manual_seed(0)
    network = build_network("hrnet-fast", low_res=64, bound=0.1)
    with torch.no_grad():
        for parameter in network.parameters():
            parameter.add_(torch.randn_like(parameter) * 0.05)
    network.grade.set(identity_lattice(network.grade.size) * torch.tensor([0.8, 1.0, 1.2]).view(3, 1, 1, 1))
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, MODEL + ".safetensors")
    save_model(StyleModel(network, {"loss": "look"}), path)
    return path


def serving_tiny_model(tmp_path_factory):
    """Body of a module-scoped ``server`` fixture: a server with the tiny model in its store."""
    root = tmp_path_factory.mktemp("server")
    save_tiny_model(root / "models")
    with ServerProcess(root) as proc:
        yield proc
