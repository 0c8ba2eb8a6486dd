"""Model files: safetensors + metadata round trip, bit-identical renders after reload, and
refusal of tampered, pickled, unknown-architecture and newer-format files."""

from __future__ import annotations

import io
import json
import os

import numpy as np
import pytest
import torch
from safetensors.torch import save as save_tensors

from shotstyle.plugin import __version__
from shotstyle.server.engine import modelfile
from shotstyle.server.engine.inference import Stylizer
from shotstyle.server.engine.modelfile import (FORMAT_VERSION, StyleModel, load_model,
                                               model_from_bytes, model_to_bytes, save_model)
from shotstyle.server.engine.networks import build_network
from shotstyle.server.engine.optimiserstate import capture
from shotstyle.server.errors import ModelFileError


@pytest.fixture
def model() -> StyleModel:
    torch.manual_seed(1)
    network = build_network("hrnet-fast", width=8, blocks=1, low_res=64)
    for parameter in network.parameters():  # trained-looking weights, not the identity start
        parameter.data += torch.randn_like(parameter) * 0.02
    return StyleModel(network, {"loss": "look", "strength": 0.5, "steps": 20, "resolution": 128,
                                "style_sha256": "ab" * 32, "keyframe_sha256": ["cd" * 32]})


def rewrite(data: bytes, metadata_change: dict) -> bytes:
    """The same weights with changed metadata and a *valid* checksum (an honest other file)."""
    tensors = model_from_bytes(data).network.state_dict()
    metadata = json.loads(json.loads(data[8:8 + int.from_bytes(data[:8], "little")])
                          ["__metadata__"]["shotstyle"])
    metadata.pop("checksum")
    metadata.update(metadata_change)
    metadata["checksum"] = modelfile.checksum(tensors, metadata)
    return save_tensors(tensors, metadata={"shotstyle": json.dumps(metadata)})


def test_save_load_round_trip_renders_bit_identically(model, tmp_path):
    path = str(tmp_path / "look.safetensors")
    save_model(model, path)
    assert os.listdir(tmp_path) == ["look.safetensors"]  # atomic: no temp file left behind
    loaded = load_model(path)
    assert loaded.hash == model.hash
    assert loaded.metadata["architecture"] == "hrnet-fast"
    assert loaded.metadata["arch_kwargs"] == {"width": 8, "blocks": 1, "low_res": 64}
    assert loaded.metadata["format_version"] == FORMAT_VERSION
    assert loaded.metadata["shotstyle_version"] == __version__
    assert loaded.metadata["working_space"] == "ACEScct"
    assert loaded.metadata["keyframe_sha256"] == ["cd" * 32]
    frame = np.random.default_rng(0).random((70, 90, 3), dtype=np.float32) * 0.6
    before, after = Stylizer(model, device="cpu")(frame), Stylizer(loaded, device="cpu")(frame)
    assert np.abs(before - frame).max() > 1e-3
    assert np.array_equal(before, after)


def test_bytes_are_deterministic_and_the_hash_follows_the_weights(model):
    assert model_to_bytes(model) == model_to_bytes(model)
    hash_before = model.hash
    model.metadata["strength"] = 0.6
    assert model.hash != hash_before
    model.metadata["strength"] = 0.5
    with torch.no_grad():
        next(model.network.parameters())[0] += 1e-3
    assert model.hash != hash_before


@pytest.mark.parametrize("arch", ["hrnet-fast", "hrnet"])
def test_channels_last_networks_hash_save_and_load_like_plain_ones(arch, tmp_path):
    """What a GPU runs: channels-last weights, whose 1×1 convs are "contiguous" with
    stride(-1) ≠ 1 (viewing them as bytes crashed the hash on CUDA)."""
    torch.manual_seed(2)
    plain = StyleModel(build_network(arch, width=8, blocks=1), {"loss": "look"})
    last = StyleModel(build_network(arch, width=8, blocks=1), {"loss": "look"})
    last.network.load_state_dict(plain.network.state_dict())
    last.network.to(memory_format=torch.channels_last)
    odd = [t for t in last.network.state_dict().values() if t.dim() == 4 and t.stride(-1) != 1]
    assert any(t.is_contiguous() for t in odd)  # the 1×1 weights that crashed
    assert last.hash == plain.hash
    assert model_to_bytes(last) == model_to_bytes(plain)
    save_model(last, str(tmp_path / "m.safetensors"))
    assert load_model(str(tmp_path / "m.safetensors")).hash == plain.hash


def test_a_file_edited_after_saving_is_refused(model):
    data = model_to_bytes(model)
    for tampered in (data.replace(b"look", b"lool", 1),          # metadata in the header
                     data[:-5] + bytes([data[-5] ^ 1]) + data[-4:]):  # one weight bit
        with pytest.raises(ModelFileError, match="checksum mismatch.*modified after it was saved"):
            model_from_bytes(tampered)


def test_damaged_header_is_refused(model, tmp_path):
    data = model_to_bytes(model)
    path = tmp_path / "cut.safetensors"
    path.write_bytes(data[:200])
    with pytest.raises(ModelFileError, match=r"cut\.safetensors: damaged"):
        load_model(str(path))
    broken = data[:8] + b"[" + data[9:]  # the JSON header no longer parses
    with pytest.raises(ModelFileError, match="damaged header"):
        model_from_bytes(broken)


def test_pickled_payload_is_refused_without_unpickling(model, tmp_path):
    class Boom:
        def __reduce__(self):
            return (os.system, ("touch " + str(tmp_path / "pwned"),))

    buffer = io.BytesIO()
    torch.save({"state": model.network.state_dict(), "boom": Boom()}, buffer)
    path = tmp_path / "model.pt"
    path.write_bytes(buffer.getvalue())
    with pytest.raises(ModelFileError, match=r"model\.pt: this is a pickle / torch\.save file"):
        load_model(str(path))
    import pickle
    with pytest.raises(ModelFileError, match="pickle"):
        model_from_bytes(pickle.dumps(Boom()))
    assert not (tmp_path / "pwned").exists()


def test_unknown_architecture_and_newer_format_are_refused(model):
    data = model_to_bytes(model)
    with pytest.raises(ModelFileError, match="unknown network architecture 'unet3'.*hrnet, hrnet-fast"):
        model_from_bytes(rewrite(data, {"architecture": "unet3"}))
    with pytest.raises(ModelFileError, match=f"newer shotstyle.*format {FORMAT_VERSION + 1}.*Upgrade"):
        model_from_bytes(rewrite(data, {"format_version": FORMAT_VERSION + 1}))
    with pytest.raises(ModelFileError, match="weights do not fit"):
        model_from_bytes(rewrite(data, {"arch_kwargs": {"width": 16}}))


def test_a_model_from_before_the_grade_is_refused_with_a_message_to_retrain(model):
    # What shotstyle 0.1 wrote: format 1, the network's weights without a grade lattice.
    tensors = {name: t for name, t in model.network.state_dict().items() if not name.startswith("grade.")}
    metadata = {**modelfile.full_metadata(model), "format_version": 1, "shotstyle_version": "0.1.0"}
    metadata["checksum"] = modelfile.checksum(tensors, metadata)
    old = save_tensors(tensors, metadata={"shotstyle": json.dumps(metadata)})
    with pytest.raises(ModelFileError, match=r"old\.safetensors: model format 1, made by shotstyle 0\.1\.0 "
                                             r"before a look became a global grade.*Retrain it"):
        model_from_bytes(old, name="old.safetensors")


def test_missing_file_names_the_path(tmp_path):
    with pytest.raises(ModelFileError, match="nothing.safetensors: cannot read"):
        load_model(str(tmp_path / "nothing.safetensors"))


def with_moments(model: StyleModel) -> StyleModel:
    """``model`` as a checkpoint: the Adam state after two real steps on its parameters."""
    optimiser = torch.optim.Adam(model.network.parameters(), lr=1e-3)
    for _ in range(2):
        optimiser.zero_grad()
        model.network(torch.rand(1, 3, 32, 32)).square().mean().backward()
        optimiser.step()
    model.optimiser = capture(optimiser, model.network)
    return model


def signed(tensors: dict, metadata: dict) -> bytes:
    """A file of these tensors and metadata with a *valid* checksum (what a stranger can write)."""
    metadata = {**metadata, "checksum": modelfile.checksum(tensors, metadata)}
    return save_tensors(tensors, metadata={"shotstyle": json.dumps(metadata)})


def test_a_checkpoint_carries_its_optimiser_state_through_the_file(model):
    checkpoint = with_moments(model)
    assert checkpoint.optimiser is not None and checkpoint.optimiser.step == 2
    loaded = model_from_bytes(model_to_bytes(checkpoint))
    assert loaded.hash == checkpoint.hash and "optimiser" not in loaded.metadata
    assert loaded.optimiser is not None and loaded.optimiser.step == 2
    assert loaded.optimiser.moments.keys() == checkpoint.optimiser.moments.keys()
    for key, tensor in checkpoint.optimiser.moments.items():
        assert torch.equal(tensor, loaded.optimiser.moments[key]), key
    header = json.loads(model_to_bytes(checkpoint)[8:8 + int.from_bytes(model_to_bytes(checkpoint)[:8], "little")])
    assert json.loads(header["__metadata__"]["shotstyle"])["optimiser"] == {"algorithm": "adam", "step": 2}
    assert any(key.endswith(".exp_avg_sq") for key in header if key.startswith("optimiser."))


def test_optimiser_state_from_a_stranger_is_bounded(model):
    checkpoint = with_moments(model)
    tensors = checkpoint._tensors()
    metadata = modelfile.full_metadata(checkpoint)
    moment = next(key for key in tensors if key.endswith(".exp_avg_sq"))
    cases = [
        ({**tensors, "optimiser.nowhere.exp_avg": torch.zeros(3)}, metadata, "unexpected tensors"),
        ({**tensors, moment: torch.zeros(2, 2)}, metadata, f"tensor '{moment}' is 'F32' of shape"),
        ({**tensors, moment: -tensors[moment] - 1}, metadata, "negative values"),
        ({**tensors, moment: tensors[moment].double()}, metadata, f"tensor '{moment}' is 'F64'"),
        ({k: t for k, t in tensors.items() if k != moment}, metadata, "comes without"),
        (tensors, {k: v for k, v in metadata.items() if k != "optimiser"}, "optimiser state is damaged"),
        (tensors, {**metadata, "optimiser": {"algorithm": "adam", "step": -1}}, "optimiser state is damaged"),
        (tensors, {**metadata, "optimiser": {"algorithm": "sgd", "step": 2}}, "optimiser state is damaged"),
        (model.network.state_dict(), metadata, "optimiser state is damaged"),
    ]
    for file_tensors, file_metadata, message in cases:
        with pytest.raises(ModelFileError, match=message):
            model_from_bytes(signed({k: t.contiguous() for k, t in file_tensors.items()}, file_metadata))
    assert model_from_bytes(signed(tensors, metadata)).optimiser is not None   # the honest file loads
