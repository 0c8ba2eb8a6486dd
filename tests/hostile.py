"""Hostile and odd model files, made at test time: what the robustness tests and `bench/robustness.py` send.

Every forged file has a *valid* checksum (recomputed over its content), so it is refused for
what it holds, never merely for having been edited. `HOSTILE_MODELS` maps a name to a maker of
its bytes and the words the refusal must contain.
"""

from __future__ import annotations

import io
import json
import pickle
import struct
import zipfile
from typing import Any, Callable, Dict, Tuple

import torch
from safetensors.torch import save as save_tensors

Tensors = Dict[str, torch.Tensor]


def honest_model(**arch_kwargs: Any) -> Tuple[Tensors, Dict[str, Any]]:
    """The tensors and metadata (without checksum) of a small, valid hrnet-fast model."""
    from shotstyle.server.engine.modelfile import StyleModel, full_metadata
    from shotstyle.server.engine.networks import build_network

    torch.manual_seed(0)
    network = build_network("hrnet-fast", **{"width": 4, "blocks": 1, "low_res": 32, **arch_kwargs})
    model = StyleModel(network, {"loss": "look", "strength": 0.5, "steps": 1, "resolution": 64})
    return model._tensors(), full_metadata(model)


def forge(tensors: Tensors, metadata: Dict[str, Any]) -> bytes:
    """A model file of ``tensors`` and ``metadata`` with a recomputed, valid checksum."""
    from shotstyle.server.engine.modelfile import checksum

    metadata = {k: v for k, v in metadata.items() if k != "checksum"}
    metadata["checksum"] = checksum(tensors, metadata)
    return save_tensors(tensors, metadata={"shotstyle": json.dumps(metadata, sort_keys=True)})


def with_metadata(**change: Any) -> bytes:
    tensors, metadata = honest_model()
    return forge(tensors, {**metadata, **change})


def with_kwargs(**change: Any) -> bytes:
    """The honest tensors under changed network arguments (what a file may claim)."""
    tensors, metadata = honest_model()
    return forge(tensors, {**metadata, "arch_kwargs": {**metadata["arch_kwargs"], **change}})


def with_tensors(change: Callable[[Tensors], Tensors]) -> bytes:
    tensors, metadata = honest_model()
    return forge(change(tensors), metadata)


def _grade_filled(value: float) -> Callable[[Tensors], Tensors]:
    """A grade lattice whose every node is ``value``: finite, and black frames if loaded."""
    return lambda tensors: {**tensors, "grade.lut": torch.full_like(tensors["grade.lut"], value)}


def _nan_weight(tensors: Tensors) -> Tensors:
    first = sorted(tensors)[0]
    tensors[first] = tensors[first].clone()
    tensors[first].view(-1)[0] = float("nan")
    return tensors


def without_checksum() -> bytes:
    tensors, metadata = honest_model()
    return save_tensors(tensors, metadata={"shotstyle": json.dumps(metadata)})


def torch_save_file() -> bytes:
    buffer = io.BytesIO()
    torch.save({"state": honest_model()[0]}, buffer)
    return buffer.getvalue()


def zip_file() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("model.safetensors", b"not really")
    return buffer.getvalue()


def huge_header_claim() -> bytes:
    return struct.pack("<Q", 1 << 40) + b'{"__metadata__":{}}'


# name -> (maker of the file's bytes, a phrase the refusal names)
HOSTILE_MODELS: Dict[str, Tuple[Callable[[], bytes], str]] = {
    "arch_kwargs a list": (lambda: with_metadata(arch_kwargs=[4, 1]), "mapping"),
    "arch_kwargs a string": (lambda: with_metadata(arch_kwargs="width=4"), "mapping"),
    "unknown argument": (lambda: with_kwargs(depth=3), "no argument 'depth'"),
    "radius -5": (lambda: with_kwargs(radius=-5), "radius"),
    "low_res 0": (lambda: with_kwargs(low_res=0), "low_res"),
    "eps NaN": (lambda: with_kwargs(eps=float("nan")), "eps"),
    "no local term but not the grade network": (lambda: with_kwargs(bound=0.0), "bound"),
    "width a bool": (lambda: with_kwargs(width=True), "width"),
    "blocks 2000": (lambda: with_kwargs(blocks=2000), "blocks"),
    "blocks 6000": (lambda: with_kwargs(blocks=6000), "blocks"),
    "width 1024": (lambda: with_kwargs(width=1024), "width"),
    # every argument at its bound, each allowed alone: honest tensors, but minutes of work per frame
    "every bound at once": (lambda: forge(*honest_model(width=32, blocks=4, low_res=2048, radius=32, grade_size=129,
                                                        semantic=32)), "multiply-adds per 1920x1080 frame"),
    "wrong shapes": (lambda: with_kwargs(width=8), "do not fit"),
    "architecture 1.1 MB": (lambda: with_metadata(architecture="a" * 1_100_000), "metadata"),
    "unknown architecture": (lambda: with_metadata(architecture="unet3"), "unknown network architecture"),
    "working space /etc/passwd": (lambda: with_metadata(working_space="/etc/passwd"), "working_space"),
    "resolution -1": (lambda: with_metadata(resolution=-1), "resolution"),
    "strength 7": (lambda: with_metadata(strength=7), "strength"),
    "format_version 'one'": (lambda: with_metadata(format_version="one"), "format_version"),
    "no checksum": (without_checksum, "no checksum"),
    "NaN weight": (lambda: with_tensors(_nan_weight), "NaN"),
    "grade 3e38": (lambda: with_tensors(_grade_filled(3e38)), "grade lattice"),
    "grade -2": (lambda: with_tensors(_grade_filled(-2.0)), "grade lattice"),
    "float64 weights": (lambda: with_tensors(lambda t: {k: v.double() for k, v in t.items()}), "F64"),
    "float16 weights": (lambda: with_tensors(lambda t: {k: v.half() for k, v in t.items()}), "F16"),
    "missing tensor": (lambda: with_tensors(lambda t: dict(sorted(t.items())[1:])), "missing tensors"),
    "extra tensor": (lambda: with_tensors(lambda t: {**t, "extra": torch.zeros(3)}), "unexpected tensors"),
    "torch.save": (torch_save_file, "pickle / torch.save"),
    "pickle": (lambda: pickle.dumps({"weights": [1.0, 2.0]}, protocol=4), "pickle / torch.save"),
    "zip": (zip_file, "pickle / torch.save"),
    "empty": (lambda: b"", "not a shotstyle model"),
    "garbage": (lambda: bytes(range(256)) * 64, "not a shotstyle model"),
    "huge header claim": (huge_header_claim, "cut short"),
}


def every_header_length() -> Dict[int, bytes]:
    """Valid models whose safetensors header length takes each value mod 256 that the 8-byte padding
    allows (32 of them): the length's first byte is any of those, 0x80 included."""
    tensors, metadata = honest_model()
    found: Dict[int, bytes] = {}
    for pad in range(600):
        data = forge(tensors, {**metadata, "note": "x" * pad})
        found.setdefault(struct.unpack("<Q", data[:8])[0] % 256, data)
        if len(found) == 32:
            break
    return found
