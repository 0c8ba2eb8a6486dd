"""Issue 15, faults 3 and 5: every model shotstyle writes loads, and hostile or odd model files are
refused, clearly and alike, by the one loader render, the store and ``model.put`` share.

3. a file is recognised by its structure (header length, then JSON), not its first byte: the
   length field of a real model starts with 0x80 (a pickle's first byte) once in 32 files;
5. the metadata schema, the network arguments' bounds, tensor names/shapes/dtypes against a
   meta-device build (before anything large is built) and finite weights.
"""

from __future__ import annotations

import functools
import struct
import time

import pytest

import hostile
from serverproc import ServerProcess, exchange
from shotstyle.cli.main import main
from shotstyle.plugin import protocol
from shotstyle.plugin.exitcodes import ExitCode
from shotstyle.server.engine.modelfile import load_model, model_from_bytes
from shotstyle.server.errors import ModelFileError


def refusal(action) -> str:
    """The message of the ModelFileError ``action()`` raises, without the file's name."""
    with pytest.raises(ModelFileError) as err:
        action()
    return str(err.value).split(": ", 1)[1]


# --- fault 3 ---------------------------------------------------------------------------------

def test_f3_a_model_loads_whatever_its_header_length_starts_with(tmp_path):
    from shotstyle.server.store import ModelStore

    variants = hostile.every_header_length()
    assert 128 in variants and struct.unpack("<Q", variants[128][:8])[0] % 256 == 128  # the first byte is 0x80
    store = ModelStore(str(tmp_path / "store"))
    for residue, data in variants.items():
        model = model_from_bytes(data)
        assert store.put_bytes(f"m{residue}", data) == model.hash
        assert store.get(f"m{residue}").hash == model.hash


def test_f3_render_takes_a_model_whose_header_length_starts_with_0x80(tmp_path, plate_clip, capsys):
    path = tmp_path / "model.safetensors"
    path.write_bytes(hostile.every_header_length()[128])
    code = main(["render", "--model", str(path), "--in", plate_clip, "--out", str(tmp_path / "out" / "s.####.exr"),
                 "--frames", "1", "--in-process", "--threads", "1"])
    assert code == ExitCode.OK, capsys.readouterr().err
    assert (tmp_path / "out" / "s.0001.exr").is_file()


# --- fault 5 ---------------------------------------------------------------------------------

@pytest.mark.parametrize("name", list(hostile.HOSTILE_MODELS))
def test_f5_hostile_models_are_refused_alike_by_the_loader_the_store_and_render(name, tmp_path):
    from shotstyle.server.store import ModelStore

    make, words = hostile.HOSTILE_MODELS[name]
    data = make()
    path = tmp_path / "hostile.safetensors"
    path.write_bytes(data)
    loaded = refusal(lambda: load_model(str(path)))                         # render --in-process, store.get
    stored = refusal(lambda: ModelStore(str(tmp_path / "store")).put_bytes("hostile", data))  # model.put
    assert loaded == stored and words in loaded, (loaded, stored)
    assert len(loaded) < 1000
    assert not (tmp_path / "store" / "hostile.safetensors").exists()


def test_f5_the_server_answers_every_hostile_model_with_bad_model(server):
    for name, (make, words) in hostile.HOSTILE_MODELS.items():
        header = protocol.encode_header(protocol.request("model.put", {"name": "hostile"}, request_id="req-1"))
        answer = exchange(server.address, [header, make()], 60)
        assert not answer["ok"] and answer["error"]["code"] == "bad_model", (name, answer)
        assert words in answer["error"]["message"], (name, answer)
    assert server.alive() and not (server.models / "hostile.safetensors").exists()


@pytest.mark.parametrize("change", [{"blocks": 2000}, {"width": 1024}])
def test_f5_an_oversized_network_is_refused_before_it_is_built(change):
    data = hostile.with_kwargs(**change)
    started = time.monotonic()
    message = refusal(lambda: model_from_bytes(data))
    assert time.monotonic() - started < 0.5 and "must be within" in message


def test_f5_shapes_are_checked_against_the_network_before_it_is_built(monkeypatch):
    import torch

    from shotstyle.server.engine import modelfile

    built = []  # the device each build happened on
    real = modelfile.build_network
    monkeypatch.setattr(modelfile, "build_network", lambda *a, **k: built.append(torch.empty(0).device.type)
                        or real(*a, **k))
    getattr(modelfile, "expected_tensors", functools.lru_cache()(lambda: None)).cache_clear()
    refusal(lambda: model_from_bytes(hostile.with_kwargs(width=8)))
    assert built == ["meta"]  # no real network was built


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with ServerProcess(tmp_path_factory.mktemp("server")) as proc:
        yield proc


@pytest.mark.parametrize("name", ["NaN weight", "float64 weights", "radius -5", "arch_kwargs a list"])
def test_f5_render_refuses_hostile_models_in_process_and_through_a_server_with_exit_4(name, server, tmp_path,
                                                                                     plate_clip, capsys):
    path = tmp_path / "hostile.safetensors"
    path.write_bytes(hostile.HOSTILE_MODELS[name][0]())
    argv = ["render", "--model", str(path), "--in", plate_clip, "--out", str(tmp_path / "out" / "s.####.exr"),
            "--frames", "1"]
    assert main([*argv, "--in-process", "--threads", "1"]) == ExitCode.MODEL_ERROR
    assert main([*argv, "--server", server.address]) == ExitCode.MODEL_ERROR
    err = capsys.readouterr().err
    assert "Traceback" not in err and "[internal]" not in err
    assert not (tmp_path / "out" / "s.0001.exr").exists()


def test_f5_every_network_argument_has_a_bound():
    import inspect

    from shotstyle.server.engine.networks import REGISTRY

    for name, architecture in REGISTRY.items():
        arguments = set(inspect.signature(architecture.build).parameters) - {"self"}
        assert arguments == set(architecture.bounds), name
        defaults = {k: p.default for k, p in inspect.signature(architecture.build).parameters.items()}
        for key, bound in architecture.bounds.items():  # the defaults are inside their bounds
            assert bound.problem(defaults[key]) is None, (name, key)
