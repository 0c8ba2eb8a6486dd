"""`shotstyle demo` end to end: it starts a local server, trains on the built-in example with
the weights-free loss (and says so), stylizes every frame through the server and writes the
EXRs and the before/after contact sheet."""

import subprocess
import sys

import numpy as np

from shotstyle.plugin import localserver
from shotstyle.plugin.client import Client


def test_demo_on_the_built_in_example(tmp_path):
    from shotstyle.server.frameio import read_frame

    out = tmp_path / "demo"
    try:
        proc = subprocess.run([sys.executable, "-m", "shotstyle.nodes.farm.cli", "demo", "-o", str(out),
                               "--steps", "4", "--resolution", "32"], capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stdout + proc.stderr
    finally:
        address = localserver.find_local_server()
        if address is not None:
            with Client(address) as client:
                client.shutdown()
    assert "training with the weights-free 'look' loss" in proc.stdout
    plates = sorted((out / "plate").glob("demo.*.exr"))
    results = sorted((out / "stylized").glob("demo.*.exr"))
    assert len(plates) == len(results) == 8
    for plate_path, result_path in zip(plates, results):
        assert plate_path.name == result_path.name
        plate, result = read_frame(str(plate_path)), read_frame(str(result_path))
        assert result.channels == ["R", "G", "B", "A"] and result.channel_formats == ["half"] * 4
        assert np.array_equal(result.pixels[..., 3], plate.pixels[..., 3])  # alpha passes through
        assert not np.array_equal(result.pixels[..., :3], plate.pixels[..., :3])
        assert result.attributes.get("shotstyle/model")
    sheet = read_frame(str(out / "contact_sheet.png"))
    assert sheet.pixels.shape == (4 * 144 + 3 * 4, 2 * 256 + 4, 3)
    assert str(out / "contact_sheet.png") in proc.stdout
