"""One failure, one code, one exit status.

The server side's exception → protocol error code table (`server.errors.wire_code`), the
clients' code → exit status table (`plugin.exitcodes`), the single root of the client side's
errors, and a failure that gives the same exit status through a server and in-process.
"""

from __future__ import annotations

import ast
import importlib
import pkgutil
from pathlib import Path

import numpy as np
import pytest

from conftest import REPO
from shotstyle.plugin.errors import ClientError, ServerError
from shotstyle.plugin.exitcodes import BY_ERROR_CODE, ExitCode, for_error_code
from shotstyle.plugin.protocol import ERROR_CODES
from shotstyle.server import errors
from shotstyle.server.errors import RequestError, ShotstyleError, wire_code


def import_everything(package: str) -> None:
    """Import every module of ``package`` so each exception class it defines exists."""
    root = importlib.import_module(package)
    for info in pkgutil.walk_packages(root.__path__, package + "."):
        importlib.import_module(info.name)


def subclasses(cls: type) -> set[type]:
    found = set()
    for sub in cls.__subclasses__():
        found |= {sub} | subclasses(sub)
    return found


def test_every_server_exception_maps_to_a_listed_code():
    import_everything("shotstyle.server")
    classes = {ShotstyleError} | subclasses(ShotstyleError)
    for cls in classes:
        assert cls.__module__ == "shotstyle.server.errors", f"{cls.__qualname__} lives outside the one tree"
        if not issubclass(cls, RequestError):  # those carry their own code, checked below
            assert wire_code(cls.__new__(cls)) in ERROR_CODES, cls
    with pytest.raises(ValueError, match="not a protocol error code"):
        RequestError("no_such_code", "x")


def test_the_two_misfilings_are_fixed():
    assert wire_code(errors.InferenceError("tile_pixels=4 is too small")) == "bad_argument"
    assert wire_code(errors.WeightsUnavailableError("no VGG-19")) == "weights_unavailable"
    assert for_error_code("weights_unavailable") == ExitCode.MODEL_ERROR
    assert errors.error_of(errors.InferenceError("x")) == ("bad_argument", "x")


def test_every_protocol_code_has_an_exit_status_and_every_status_is_documented():
    assert set(BY_ERROR_CODE) == set(ERROR_CODES)
    readme = (REPO / "README.md").read_text()
    table = readme[readme.index("| exit | meaning |"):]
    documented = {int(line.split("|")[1]) for line in table.splitlines()[2:] if line.startswith("| ")
                  and line.split("|")[1].strip().isdigit()}
    assert documented == {int(code) for code in ExitCode}


def test_client_side_errors_share_one_root():
    import_everything("shotstyle.plugin")
    import_everything("shotstyle.cli")
    importlib.import_module("shotstyle.nodes.hostbridge")
    defined = []
    for folder in ("plugin", "cli", "nodes/hostbridge.py"):
        paths = [REPO / folder] if folder.endswith(".py") else sorted((REPO / folder).rglob("*.py"))
        for path in paths:
            module = "shotstyle." + ".".join(path.relative_to(REPO).with_suffix("").parts).removesuffix(".__init__")
            tree = ast.parse(Path(path).read_text())
            defined += [getattr(importlib.import_module(module), node.name) for node in tree.body
                        if isinstance(node, ast.ClassDef) and node.name.endswith("Error")]
    assert len(defined) >= 6
    for cls in defined:
        assert issubclass(cls, ClientError), cls
    for code in ERROR_CODES:
        assert ServerError(code, "m").exit_code == for_error_code(code)


@pytest.fixture
def no_vgg_weights(tmp_path, monkeypatch):
    import torch
    previous = torch.hub.get_dir()
    torch.hub.set_dir(str(tmp_path / "hub"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("SHOTSTYLE_VGG_WEIGHTS", "")
    yield
    torch.hub.set_dir(previous)


@pytest.mark.slow
def test_missing_weights_exit_alike_in_process_and_through_a_server(no_vgg_weights, tmp_path, capsys):
    from serverproc import ServerProcess
    from shotstyle.cli.main import main
    from shotstyle.media.frame import Frame
    from shotstyle.media.writing import write_frame
    rgb = np.random.default_rng(0).uniform(0, 1, (32, 48, 3)).astype(np.float32)
    for name in ("key", "style"):
        write_frame(str(tmp_path / f"{name}.exr"), Frame(rgb, ["R", "G", "B"], ["half"] * 3, (0, 0, 48, 32),
                                                         (0, 0, 48, 32), {}))
    argv = ["train", "--content", str(tmp_path / "key.exr"), "--style", str(tmp_path / "style.exr"),
            "-o", str(tmp_path / "m.safetensors"), "--loss", "vgg", "--steps", "2", "--resolution", "32"]
    assert main([*argv, "--in-process"]) == ExitCode.MODEL_ERROR
    assert "VGG-19" in capsys.readouterr().err
    with ServerProcess(tmp_path / "server", env={"TORCH_HOME": str(tmp_path / "torch")}) as server:
        assert main([*argv, "--server", server.address]) == ExitCode.MODEL_ERROR
    assert "[weights_unavailable]" in capsys.readouterr().err
