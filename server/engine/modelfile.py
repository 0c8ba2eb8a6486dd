"""Style model files: one safetensors file holding the weights and a JSON metadata record.

safetensors cannot run code when loaded (unlike a pickle / torch.save file), so a model file
from a stranger is safe to open. The metadata travels in the safetensors header under the
key "shotstyle" (`modelheader` reads it without torch) and records how the model was made:

    architecture, arch_kwargs        which network (networks.build_network) and its arguments
    loss, vgg_source                 loss family and where its VGG-19 came from ("random", path…)
    strength, weights, steps         the artist knob, the raw loss weights, this run's training steps
    steps_done                       the steps this run did (fewer when cancelled or stopped early)
    steps_total, steps_trained       over every run (`init_model` chains them): the aim, and the steps had
    resolution, working_space        training long side, the network's colour space
    style_sha256, keyframe_sha256    hashes of the style image and the keyframes (a list)
    grade, lut_report                the global grade's lattice size and strength, and how much of
                                     the keyframe effect it carries (engine/lut.py)
    shotstyle_version, format_version
    optimiser                        a checkpoint's Adam record, {algorithm, step}; its moments are
                                     the ``optimiser.*`` tensors (`optimiserstate`; a finished model has none)
    checksum                         sha256 of everything else: weights (and moments) + metadata

Format 2 models are a grade plus a local term (networks hold a `grade.lut` lattice). Format 1
models (shotstyle 0.1, the network alone) are refused with a message to retrain: their weights
were trained without a grade in front, so they cannot be rendered the way they were approved.

The trainer fills the training fields; `save_model` fills the architecture, versions and the
checksum. On load, a checksum that does not match means the file was edited after saving.

One loader (`check_model_bytes`, under `model_from_bytes` and `load_model`) serves render, the
server's store and ``model.put``, so they accept and refuse the same files. It checks, before
anything large is built or loaded: the structure and the metadata schema (`modelheader`), the
architecture and its arguments against the registry's bounds (`networks.check_arguments`) and
its work per frame (`networks.work_problem`), and every tensor's name, shape and dtype against
the network the architecture builds (built on torch's ``meta`` device: no memory, no time; a
checkpoint's optimiser moments against its parameters); then the checksum, that every weight is finite
(a NaN weight would turn every frame black), and that the grade's lattice holds colours within
`GRADE_RANGE` (a finite but absurd node, 3e38, turns frames black just the same), and that
optimiser moments come with a sound record (`optimiserstate.from_file`).
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import uuid
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_tensors
from safetensors.torch import save as save_tensors
from torch import nn

from shotstyle.plugin import __version__
from shotstyle.plugin.quoting import brief
from shotstyle.server.engine.modelheader import (FORMAT_VERSION, METADATA_KEY, WORKING_SPACE, header_size,
                                                 metadata_from_bytes)
from shotstyle.server.engine.networks import StyleNetwork, build_network, check_arguments, work_problem
from shotstyle.server.engine.optimiserstate import PREFIX as OPTIMISER_PREFIX
from shotstyle.server.engine.optimiserstate import OptimiserState, from_file, tensor_names
from shotstyle.server.errors import ModelFileError, UnknownArchitectureError

# safetensors' names of the dtypes a network's tensors can have.
SAFETENSORS_DTYPES = {torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16", torch.float64: "F64",
                      torch.int64: "I64", torch.int32: "I32", torch.uint8: "U8", torch.bool: "BOOL"}


@dataclass
class StyleModel:
    """A trained (or training) network plus the metadata that says how it was made."""

    network: StyleNetwork
    metadata: dict[str, Any] = field(default_factory=dict)
    optimiser: OptimiserState | None = None  # a checkpoint's, for `--init` to continue

    @property
    def architecture(self) -> str:
        name = self.network.architecture or self.metadata.get("architecture")
        if name is None:
            raise ModelFileError("the network has no architecture name: build it with "
                                 "shotstyle.server.engine.networks.build_network")
        return name

    @property
    def hash(self) -> str:
        """sha256 of weights + metadata: what farm resume and EXR metadata record."""
        return checksum(self._tensors(), full_metadata(self))

    def _tensors(self) -> dict[str, torch.Tensor]:
        # Row-major copies: a network may run channels-last (see device.Execution), and
        # safetensors stores bytes in memory order.
        tensors = {name: tensor.detach().to("cpu", memory_format=torch.contiguous_format)
                   for name, tensor in self.network.state_dict().items()}
        return tensors if self.optimiser is None else {**tensors, **self.optimiser.moments}


# What a grade lattice node (an output colour, ACEScct) may hold: scene-linear about -0.10 to
# 96,700, past the half-float range at both ends of anything a plate or a grade makes.
GRADE_RANGE = (-1.0, 1.5)
GRADE_TENSOR = "grade.lut"


def sha256_of(image: np.ndarray) -> str:
    """The hash a model records of an image it was trained on (its float32 working-space pixels)."""
    return hashlib.sha256(np.ascontiguousarray(image, dtype=np.float32).tobytes()).hexdigest()


def full_metadata(model: StyleModel) -> dict[str, Any]:
    """The model's metadata with architecture and versions filled in (no checksum)."""
    metadata = {key: value for key, value in model.metadata.items() if key not in ("checksum", "optimiser")}
    if model.optimiser is not None:
        metadata["optimiser"] = model.optimiser.record()
    metadata["architecture"] = model.architecture
    metadata["arch_kwargs"] = model.network.arch_kwargs or metadata.get("arch_kwargs", {})
    metadata.setdefault("working_space", WORKING_SPACE)
    metadata.setdefault("shotstyle_version", __version__)
    metadata["format_version"] = FORMAT_VERSION
    return metadata


def checksum(tensors: dict[str, torch.Tensor], metadata: dict[str, Any]) -> str:
    """sha256 of the metadata (canonical JSON) and every tensor's name, dtype, shape and bytes."""
    digest = hashlib.sha256(json.dumps(metadata, sort_keys=True).encode())
    for name in sorted(tensors):
        tensor = tensors[name]
        digest.update(f"\n{name}:{tensor.dtype}:{list(tensor.shape)}\n".encode())
        digest.update(tensor_bytes(tensor))
    return digest.hexdigest()


def tensor_bytes(tensor: torch.Tensor) -> bytes:
    """A tensor's elements in row-major order as bytes, whatever its strides or device.

    `is_contiguous()` is no guide: a channels-last 1×1 conv weight (O×I×1×1) is "contiguous"
    with stride(-1) = I, and viewing it as bytes fails. Flattening first gives stride 1."""
    if not tensor.numel():
        return b""
    return tensor.detach().to("cpu").reshape(-1).view(torch.uint8).numpy().tobytes()


def model_to_bytes(model: StyleModel) -> bytes:
    """The model file's bytes (safetensors with the metadata record in its header)."""
    tensors = model._tensors()
    metadata = full_metadata(model)
    metadata["checksum"] = checksum(tensors, metadata)
    return save_tensors(tensors, metadata={METADATA_KEY: json.dumps(metadata, sort_keys=True)})


def save_model(model: StyleModel, path: str) -> None:
    """Write the model file atomically: readers never see a half-written file."""
    write_atomically(path, model_to_bytes(model))


def write_atomically(path: str, data: bytes | memoryview, replace: bool = True) -> None:
    """``data`` into ``path`` through a temporary file in the same folder, synced, then renamed.

    ``replace`` False: FileExistsError if ``path`` exists when the file is put in place (a hard
    link, which unlike a rename refuses an existing name in the same step).
    """
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    # Created like any file (0666 less the umask: readable by the farm), not mkstemp's 0600.
    temp = os.path.join(folder, f".shotstyle-{os.getpid()}-{uuid.uuid4().hex}.tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        if replace:
            os.replace(temp, path)
        else:
            os.link(temp, path)
    finally:
        if os.path.exists(temp):
            os.unlink(temp)


def load_model(path: str, device: str | torch.device = "cpu") -> StyleModel:
    """Read a model file; ModelFileError if it is not one, was edited, or is too new."""
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except OSError as exc:
        raise ModelFileError(f"{path}: cannot read the model file ({exc.strerror})") from exc
    return model_from_bytes(data, device=device, name=path)


def model_from_bytes(data: bytes | memoryview, device: str | torch.device = "cpu",
                     name: str = "model data") -> StyleModel:
    """The reverse of `model_to_bytes`; `name` labels error messages (a path, an upload)."""
    metadata, tensors, optimiser = check_model_bytes(data, name)
    network = build_network(metadata["architecture"], **metadata["arch_kwargs"])
    network.load_state_dict(tensors, strict=True)  # names, shapes and dtypes are checked: it fits
    return StyleModel(network=network.to(device).eval(), metadata=metadata, optimiser=optimiser)


def check_model_bytes(data: bytes | memoryview, name: str = "model data") \
        -> tuple[dict[str, Any], dict[str, torch.Tensor], OptimiserState | None]:
    """The metadata (without its checksum and optimiser record), network tensors and optimiser state
    (a checkpoint's, else None) of a model file, every check passed.

    ModelFileError says what is wrong; see the module docstring for what is checked, in order.
    """
    metadata = metadata_from_bytes(data, name)
    architecture = metadata["architecture"]
    try:
        check_arguments(architecture, metadata["arch_kwargs"])
    except UnknownArchitectureError as exc:
        raise ModelFileError(f"{name}: {exc}. A file from a newer shotstyle needs an upgrade; otherwise it is "
                             "damaged or was not written by shotstyle.") from None
    too_much = work_problem(architecture, metadata["arch_kwargs"])
    if too_much is not None:
        raise ModelFileError(f"{name}: {too_much}")
    expected, optional = expected_tensors(architecture, json.dumps(metadata["arch_kwargs"], sort_keys=True))
    _check_tensor_table(data, expected, optional, f"{name}: the weights do not fit a {architecture!r} network "
                                                  f"with {brief(metadata['arch_kwargs'])}")
    try:
        tensors = load_tensors(bytes(data))
    except (SafetensorError, ValueError, RuntimeError) as exc:
        raise ModelFileError(f"{name}: damaged model file, the weights cannot be read "
                             f"({brief(str(exc))})") from None
    recorded = metadata.pop("checksum")
    if recorded != checksum(tensors, metadata):
        raise ModelFileError(
            f"{name}: checksum mismatch, the model file was modified after it was saved; "
            "re-export it from the original or retrain.")
    for tensor_name, tensor in tensors.items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise ModelFileError(f"{name}: weight {tensor_name!r} holds NaN or infinite values: the training "
                                 "diverged and the model would turn frames black; retrain it")
    lattice = tensors[GRADE_TENSOR]
    low, high = GRADE_RANGE
    if float(lattice.min()) < low or float(lattice.max()) > high:
        raise ModelFileError(f"{name}: the grade lattice holds colours from {float(lattice.min()):.3g} to "
                             f"{float(lattice.max()):.3g} ACEScct; a grade's colours lie within {low:g} to {high:g} "
                             "(scene-linear about -0.1 to 96,700). The file is damaged or was not written by a "
                             "shotstyle training; retrain it")
    moments = {key: tensors.pop(key) for key in list(tensors) if key.startswith(OPTIMISER_PREFIX)}
    return metadata, tensors, from_file(metadata.pop("optimiser", None), moments, name)


@functools.lru_cache(maxsize=16)
def expected_tensors(architecture: str, kwargs_json: str) \
        -> tuple[dict[str, tuple[list[int], str]], dict[str, tuple[list[int], str]]]:
    """name -> (shape, safetensors dtype) of every tensor network ``architecture`` with those (checked)
    arguments has, and of the optimiser moments a checkpoint may add (one pair per parameter, shaped like
    it), from a build on torch's meta device (no memory is allocated, nothing initialised)."""
    with torch.device("meta"):
        network = build_network(architecture, **json.loads(kwargs_json))

    def entry(value: torch.Tensor) -> tuple[list[int], str]:
        return list(value.shape), SAFETENSORS_DTYPES.get(value.dtype, str(value.dtype))

    return ({key: entry(value) for key, value in network.state_dict().items()},
            {key: entry(value) for name, value in network.named_parameters() for key in tensor_names(name)})


def _check_tensor_table(data: bytes | memoryview, expected: dict[str, tuple[list[int], str]],
                        optional: dict[str, tuple[list[int], str]], what: str) -> None:
    """Compare the file's tensor table (its safetensors header) with ``expected`` (every one there) and
    ``optional`` (any), before any weight is read."""
    table = json.loads(bytes(data[8:8 + header_size(data, what)]))
    found = {key: (entry.get("shape"), entry.get("dtype")) for key, entry in table.items()
             if key != "__metadata__" and isinstance(entry, dict)}
    if len(found) != len(table) - ("__metadata__" in table):
        raise ModelFileError(f"{what}: the file's tensor table is damaged")
    missing, unexpected = sorted(set(expected) - set(found)), sorted(set(found) - set(expected) - set(optional))
    if missing or unexpected:
        raise ModelFileError(f"{what}: missing tensors {brief(missing)}, unexpected tensors {brief(unexpected)}")
    for key, (shape, dtype) in {**expected, **optional}.items():
        if key in found and found[key] != (shape, dtype):
            raise ModelFileError(f"{what}: tensor {key!r} is {brief(found[key][1])} of shape "
                                 f"{brief(found[key][0])}; the network has {dtype} of shape {shape}")
