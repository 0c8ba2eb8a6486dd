"""Small synthetic shots for the host-node tests: a plate EXR sequence with its data window inside the display
window and an extra channel, and the style image of `testfiles`.

Shared by the Nuke and Resolve node tests (stand-in hosts in tests/hosts/), with one real
server for both (``host_server``: import it into the test module to use it).
"""

from __future__ import annotations

from pathlib import Path
from typing import Dict, List

import numpy as np
import OpenImageIO as oiio
import pytest

from serverproc import ServerProcess
from testfiles import write_style  # noqa: F401  (the host tests' style image)

PLATE_CHANNELS = ("R", "G", "B", "A", "Z")
DATA_WINDOW = (4, 2, 56, 40)       # x, y, width, height: smaller than the display window
DISPLAY_SIZE = (64, 48)
FRAMES = (1, 2, 3)
TRAIN_SETTINGS = {"steps": 2, "resolution": 32, "loss": "look", "preview_every": 2}


def write_plate(folder: Path, frames=FRAMES) -> str:
    """``folder/plate.####.exr``: half RGBA + Z, data window inside the display window, per-frame content."""
    folder.mkdir(parents=True, exist_ok=True)
    x, y, width, height = DATA_WINDOW
    for frame in frames:
        yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
        pixels = np.stack([xx / width, yy / height, np.full_like(xx, 0.1 * frame), np.ones_like(xx),
                           xx + 100 * frame], axis=-1).astype(np.float32)
        spec = oiio.ImageSpec(width, height, len(PLATE_CHANNELS), "half")
        spec.x, spec.y = x, y
        spec.full_x, spec.full_y = 0, 0
        spec.full_width, spec.full_height = DISPLAY_SIZE
        spec.channelnames = PLATE_CHANNELS
        spec.attribute("compression", "zip")
        out = oiio.ImageOutput.create("exr")
        assert out.open(str(folder / "plate.{:04d}.exr".format(frame)), spec), oiio.geterror()
        out.write_image(pixels)
        out.close()
    return str(folder / "plate.####.exr")


def read(path: str) -> "tuple[np.ndarray, oiio.ImageSpec]":
    """Pixels (data window, float32) and spec of an image file."""
    buf = oiio.ImageBuf(path)
    assert not buf.has_error, buf.geterror()
    return buf.get_pixels(oiio.FLOAT), buf.spec()


def channel_names(spec: "oiio.ImageSpec") -> List[str]:
    return list(spec.channelnames)


def write_tiny_model(path: Path) -> str:
    """An untrained, tiny hrnet-fast model file: enough to exercise stylize paths without training."""
    import torch
    from shotstyle.server.engine.grade import identity_lattice
    from shotstyle.server.engine.modelfile import StyleModel, save_model
    from shotstyle.server.engine.networks import build_network
    torch.manual_seed(0)
    network = build_network("hrnet-fast", width=4, blocks=1, low_res=64, bound=0.1)
    with torch.no_grad():   # a fresh residual network is the identity: nudge it so results differ from plates
        for parameter in network.parameters():
            parameter.add_(0.01 * torch.randn_like(parameter))
    network.grade.set(identity_lattice(network.grade.size) * torch.tensor([0.8, 1.0, 1.2]).view(3, 1, 1, 1))
    path.parent.mkdir(parents=True, exist_ok=True)
    save_model(StyleModel(network, {"loss": "look", "steps": 0}), str(path))
    return str(path)


_shared: Dict[str, ServerProcess] = {}


@pytest.fixture(scope="session")
def host_server(tmp_path_factory):
    """One real server on 127.0.0.1 (random port) for all host-node tests: starting torch costs seconds.

    Each test module that imports this fixture gets its own fixture definition, so the process
    itself is kept here and stopped by whichever definition finishes first (at session end).
    """
    if "server" not in _shared:
        _shared["server"] = ServerProcess(tmp_path_factory.mktemp("host-server"))
    yield _shared["server"]
    process = _shared.pop("server", None)
    if process is not None:
        process.__exit__(None, None, None)
