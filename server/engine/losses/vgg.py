"""The `vgg` loss: the research note's perceptual loss on torchvision's VGG-19.

Content: mean squared difference of relu4_2 features (conv4_2 after its ReLU) between the
output and the keyframe. Style: Gram matrices (normalised by channels × pixels) of relu1_1,
relu2_1, relu3_1, relu4_1 and relu5_1, per-layer weights, against the style image's. Optional
total variation. Features of the style image and keyframes are computed once.

Inputs are working-space (ACEScct) images; they are turned into display-referred sRGB with
`colourmath.working_to_display` (differentiable, approximate: no ACES view transform) and
ImageNet-normalised before VGG sees them.

The same weights, where they are found, also give the `target` loss its content term
(`VGGStructure`: relu2_1 and relu3_1, normalised per position, as the research note asks for a
perceptual content term); without them that term uses EfficientNet-Lite0 (engine/semantic.py).

Weights, in this order: an explicit path (argument, else $SHOTSTYLE_VGG_WEIGHTS), the torch hub
cache, a torchvision download when the caller allows it. "random" asks for a fixed-seed
randomly initialised VGG-19: for exercising the pipeline in tests only; it warns loudly.
"""

from __future__ import annotations

import os
import sys
import warnings

import torch
import torch.nn.functional as F
import torchvision

from shotstyle.server.errors import WeightsUnavailableError

from shotstyle.server.engine import semantic
from shotstyle.server.engine.colourmath import working_to_display

WEIGHTS_FILE = "vgg19-dcbb9e9d.pth"
ENV_VAR = "SHOTSTYLE_VGG_WEIGHTS"
FETCH_COMMAND = "python -c \"import torchvision; torchvision.models.vgg19(weights='IMAGENET1K_V1')\""
RANDOM_SEED = 19
# Indices in torchvision's vgg19().features of the ReLUs after conv1_1 … conv5_1 and conv4_2.
STYLE_LAYERS = {"conv1_1": 1, "conv2_1": 6, "conv3_1": 11, "conv4_1": 20, "conv5_1": 29}
CONTENT_LAYER = ("conv4_2", 22)
# The target loss's content layers: ReLUs after conv2_1 and conv3_1 (edges and textures; the
# deeper relu4_2 at stride 8 lets halos a few pixels wide through).
STRUCTURE_LAYERS = {"conv2_1": 6, "conv3_1": 11}
STRUCTURE_CHANNELS = (128, 256)
# Everything up to conv5_1's ReLU: later layers are never used, so never loaded.
_LAST_LAYER = 29
_IMAGENET_MEAN = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
_IMAGENET_STD = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)

DEFAULT_CONTENT_WEIGHT = 1.0
DEFAULT_STYLE_WEIGHT = 1e6
DEFAULT_LAYER_WEIGHTS = {name: 0.2 for name in STYLE_LAYERS}


def hub_cache_path() -> str:
    return os.path.join(torch.hub.get_dir(), "checkpoints", WEIGHTS_FILE)


def locate_vgg_weights(explicit: str | None = None) -> tuple[str | None, str]:
    """Where the ImageNet VGG-19 weights are: (path or None, a sentence saying how it was found)."""
    if explicit:
        if os.path.isfile(explicit):
            return explicit, f"VGG-19 weights at {explicit} (given explicitly)"
        return None, f"VGG-19 weights file {explicit} (given explicitly) does not exist"
    from_env = os.environ.get(ENV_VAR, "")
    if from_env:
        if os.path.isfile(from_env):
            return from_env, f"VGG-19 weights at {from_env} (from ${ENV_VAR})"
        return None, f"VGG-19 weights file {from_env} (from ${ENV_VAR}) does not exist"
    cached = hub_cache_path()
    if os.path.isfile(cached):
        return cached, f"VGG-19 weights at {cached} (torch hub cache)"
    return None, f"no VGG-19 ImageNet weights: ${ENV_VAR} is not set and {cached} does not exist"


def _unavailable(description: str) -> WeightsUnavailableError:
    return WeightsUnavailableError(
        f"{description}. Fetch them once with: {FETCH_COMMAND} (saves {hub_cache_path()}), "
        f"or point --vgg / ${ENV_VAR} at a copy of {WEIGHTS_FILE}; "
        "--vgg random runs with random features (pipeline tests only, not a usable look), "
        "and --loss look needs no weights.")


def _features() -> torch.nn.Sequential:
    # Only the convolutional part: building all of vgg19() would allocate its 0.5 GB classifier.
    features = torchvision.models.vgg.make_layers(torchvision.models.vgg.cfgs["E"])[:_LAST_LAYER + 1]
    for layer in features:
        if isinstance(layer, torch.nn.Conv2d) and layer.bias is not None:  # torchvision's VGG init
            torch.nn.init.kaiming_normal_(layer.weight, mode="fan_out", nonlinearity="relu")
            torch.nn.init.zeros_(layer.bias)
    return features


def _load_state(path: str) -> dict[str, torch.Tensor]:
    if path.endswith(".safetensors"):
        from safetensors.torch import load_file
        state = load_file(path)
    else:
        state = torch.load(path, map_location="cpu", weights_only=True)
    prefix = "features."
    return {key[len(prefix):]: value for key, value in state.items()
            if key.startswith(prefix) and int(key[len(prefix):].split(".")[0]) <= _LAST_LAYER}


def load_vgg_features(vgg: str | None = None, *, allow_download: bool = False) -> tuple[torch.nn.Sequential, str]:
    """VGG-19 feature layers up to relu5_1, frozen, and their source ("random" or a path).

    `vgg`: None (search), a weights path, or "random". Raises WeightsUnavailableError."""
    if vgg == "random":
        message = ("shotstyle: WARNING: using a randomly initialised VGG-19 (seed "
                   f"{RANDOM_SEED}); its features mean nothing, the look it trains is not usable. "
                   "For pipeline tests only.")
        warnings.warn(message, stacklevel=2)
        print(message, file=sys.stderr)
        with torch.random.fork_rng():
            torch.manual_seed(RANDOM_SEED)
            features = _features()
        source = "random"
    else:
        features = _features()
        path, description = locate_vgg_weights(vgg)
        if path is None and allow_download and not vgg:
            try:
                torchvision.models.VGG19_Weights.IMAGENET1K_V1.get_state_dict(progress=True)
            except Exception as exc:  # network errors come in many types
                raise _unavailable(f"{description}; the download failed ({exc})") from exc
            path = hub_cache_path()
        if path is None:
            raise _unavailable(description)
        try:
            features.load_state_dict(_load_state(path))
        except Exception as exc:
            raise WeightsUnavailableError(
                f"{path}: not a usable VGG-19 weights file ({exc}); fetch a fresh copy with "
                f"{FETCH_COMMAND}") from exc
        source = path
    for parameter in features.parameters():
        parameter.requires_grad_(False)
    return features.eval(), source


def _imagenet_input(image: torch.Tensor) -> torch.Tensor:
    """A working-space image as VGG's ImageNet-normalised display-referred input."""
    return (working_to_display(image) - _IMAGENET_MEAN.to(image)) / _IMAGENET_STD.to(image)


class VGGStructure(torch.nn.Module):
    """The target loss's content features on VGG-19: STRUCTURE_LAYERS of a working-space image,
    each normalised per position (its edges and textures, whatever their colour) to the length
    that makes a cosine distance cost, per element, what it costs in EfficientNet-Lite0's block
    at the same depth (semantic.structure: 24 and 40 channels, against VGG's 128 and 256), so the
    content weight tuned there holds. `source`: where the weights came from."""

    def __init__(self, vgg: str | None = None) -> None:
        super().__init__()
        features, self.source = load_vgg_features(vgg)
        self.layers = features[:max(STRUCTURE_LAYERS.values()) + 1]

    def forward(self, image: torch.Tensor) -> list[torch.Tensor]:
        x = _imagenet_input(image)
        found: list[torch.Tensor] = []
        for index, layer in enumerate(self.layers):
            x = layer(x)
            if index in STRUCTURE_LAYERS.values():
                depth = len(found)
                scale = (STRUCTURE_CHANNELS[depth] / semantic.STRUCTURE_CHANNELS[depth]) ** 0.5
                found.append(scale * F.normalize(x, dim=1))
        return found


def gram(features: torch.Tensor) -> torch.Tensor:
    """N×C×C Gram matrix normalised by C·H·W."""
    n, c, h, w = features.shape
    flat = features.reshape(n, c, h * w)
    return flat @ flat.transpose(1, 2) / (c * h * w)


class VGGLoss(torch.nn.Module):
    """Gatys-style perceptual loss; call with (output, keyframe index, step)."""

    name = "vgg"
    resolution_note = ""  # set by build_loss: how the name was chosen

    def __init__(self, style: torch.Tensor, keyframes: list[torch.Tensor], *,
                 vgg: str | None = None, allow_download: bool = False,
                 content_weight: float = DEFAULT_CONTENT_WEIGHT, style_weight: float = DEFAULT_STYLE_WEIGHT,
                 layer_weights: dict[str, float] | None = None, tv_weight: float = 0.0) -> None:
        super().__init__()
        self.features, self.vgg_source = load_vgg_features(vgg, allow_download=allow_download)
        self.features.to(style.device)
        self.weights = {"content": content_weight, "style": style_weight, "tv": tv_weight}
        self.layer_weights = dict(layer_weights or DEFAULT_LAYER_WEIGHTS)
        with torch.no_grad():
            self._style_grams = {name: gram(f) for name, f in self._activations(style).items()
                                 if name in STYLE_LAYERS}
            self._contents = [self._activations(k)[CONTENT_LAYER[0]] for k in keyframes]

    @property
    def metadata(self) -> dict:
        return {"loss": self.name, "vgg_source": self.vgg_source,
                "weights": {**self.weights, "layers": dict(self.layer_weights)}}

    def _activations(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        x = _imagenet_input(image)
        wanted = {index: name for name, index in STYLE_LAYERS.items()}
        wanted[CONTENT_LAYER[1]] = CONTENT_LAYER[0]
        found = {}
        for index, layer in enumerate(self.features):
            x = layer(x)
            if index in wanted:
                found[wanted[index]] = x
        return found

    def forward(self, output: torch.Tensor, index: int, step: int,
                graded: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        activations = self._activations(output)
        content = F.mse_loss(activations[CONTENT_LAYER[0]], self._contents[index])
        style = torch.stack([weight * F.mse_loss(gram(activations[name]), self._style_grams[name])
                             for name, weight in self.layer_weights.items()]).sum()
        terms = {"content": self.weights["content"] * content, "style": self.weights["style"] * style}
        if self.weights["tv"]:
            dx = output[..., :, 1:] - output[..., :, :-1]
            dy = output[..., 1:, :] - output[..., :-1, :]
            terms["tv"] = self.weights["tv"] * (dx.abs().mean() + dy.abs().mean())
        terms["total"] = torch.stack(list(terms.values())).sum()
        return terms
