"""Farm renders of a script with a ShotStyle node: render callbacks only check, `nuke-prerender` prepares.

Real Nuke refuses ``nuke.execute`` inside a render ("I'm already executing something else"), so
the node's render callbacks must not render plates, edit nodes or talk to a server: a render
reads frames prepared before it and fails, naming the node and frame, on one that is missing.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import OpenImageIO as oiio
import pytest

from hostdata import FRAMES, host_server, read  # noqa: F401
from nukehost import nuke, shot  # noqa: F401
from shotstyle.plugin.sequences import SequencePattern
from tolerances import half_rounding


def prepared_frames(group, plate, frames=FRAMES):
    """Write 'stylized' frames (the plate's RGB halved) where the node reads its results."""
    from shotstyle.nodes.nuke import node as ssnode
    pattern = SequencePattern(ssnode.result_pattern(group))
    written = {}
    for frame in frames:
        buf = oiio.ImageBuf(SequencePattern(plate["file"].value()).path(frame))
        pixels = buf.get_pixels(oiio.FLOAT)
        pixels[..., :3] *= 0.5
        out = oiio.ImageBuf(buf.spec())
        out.set_pixels(buf.roi, pixels)
        path = pattern.path(frame)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        assert out.write(path), out.geterror()
        written[frame] = pixels
    return written


@pytest.fixture
def no_network(monkeypatch):
    """Any attempt to reach a server during the test fails it."""
    from shotstyle.plugin import client

    def refuse(*args, **kwargs):
        raise AssertionError("a render callback tried to reach a shotstyle server")
    monkeypatch.setattr(client.Client, "__init__", refuse)


def farm_render(nuke, group, tmp_path):
    from shotstyle.nodes.nuke import callbacks
    callbacks.register()
    out = nuke.nodes.Write(file=str(tmp_path / "render" / "out.####.exr"), file_type="exr", channels="all")
    out.setInput(0, group)
    (tmp_path / "render").mkdir(exist_ok=True)
    nuke.execute(out, FRAMES[0], FRAMES[-1])
    return out


def test_farm_render_reads_prepared_frames_without_executing_editing_or_connecting(shot, nuke, tmp_path,
                                                                                    no_network):
    plate, group = shot
    group["model"].setValue("farm_look")
    expected = prepared_frames(group, plate)
    farm_render(nuke, group, tmp_path)
    assert nuke.render_edits == [], "render callbacks edited knobs: {}".format(nuke.render_edits)
    for frame in FRAMES:
        rendered, spec = read(str(tmp_path / "render" / "out.{:04d}.exr".format(frame)))
        # The prepared frame, not the plate: written once more as half, so within one rounding to half.
        assert np.all(np.abs(rendered - expected[frame]) <= half_rounding(expected[frame]))
        assert spec.get_string_attribute("nuke/warning") == ""             # no warning burned in


def test_farm_render_of_a_missing_frame_is_an_error_naming_node_and_frame(shot, nuke, tmp_path, no_network):
    plate, group = shot
    group["model"].setValue("farm_look")
    prepared_frames(group, plate, frames=[1, 3])
    with pytest.raises(Exception) as failure:
        farm_render(nuke, group, tmp_path)
    message = str(failure.value)
    assert group.name() in message and "frame 2" in message and "nuke-prerender" in message, message
    assert not (tmp_path / "render" / "out.0002.exr").exists()              # never the plate instead
    assert nuke.render_edits == []


def farm_script(nuke, tmp_path, chained=True):
    """plate -> ShotStyle1 [-> ShotStyle2] -> Out (Write), each node with its model copy; saved as shot.nk."""
    from hostdata import write_plate, write_tiny_model
    from shotstyle.nodes.nuke import node as ssnode
    plate = nuke.nodes.Read(file=write_plate(tmp_path / "plate"), first=FRAMES[0], last=FRAMES[-1])
    nodes, source = [], plate
    for index in range(2 if chained else 1):
        group = nuke.nodes.Group()
        ssnode.build(group, __import__("shotstyle.plugin.params", fromlist=["params"]).describe())
        group.setInput(0, source)
        group["model"].setValue("farm_tiny")
        write_tiny_model(Path(ssnode.model_file(group, "farm_tiny")))
        nodes.append(group)
        source = group
    out = nuke.nodes.Write(name="Out", file=str(tmp_path / "render" / "out.####.exr"), file_type="exr",
                           channels="all")
    out.setInput(0, source)
    (tmp_path / "render").mkdir()
    script = tmp_path / "shot.nk"
    nuke.scriptSave(str(script))
    return script, nodes


def test_nuke_prerender_then_nuke_x_reads_only_prepared_frames(nuke, host_server, tmp_path, monkeypatch):
    """The farm pair: `shotstyle nuke-prerender shot.nk` (Nuke's -t writes plates, `render` stylizes, chained
    nodes in a second pass), then `nuke -x shot.nk` renders from prepared frames, and fails naming node and
    frame when one is missing."""
    from nukehost import fake_nuke_executable
    from shotstyle.nodes import hostinstall
    from shotstyle.cli.main import main
    from shotstyle.nodes.nuke import node as ssnode
    site = tmp_path / "studio_nuke"
    assert hostinstall.main("nuke", home=tmp_path, os_name="Linux", env={}, pyzmq=False, site=site) == 0
    script, (first, second) = farm_script(nuke, tmp_path)
    results = [SequencePattern(ssnode.result_pattern(node)) for node in (first, second)]
    exe = fake_nuke_executable(tmp_path / "bin")
    monkeypatch.setenv("NUKE_PATH", str(site))
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("SHOTSTYLE_RUNTIME_DIR", str(host_server.runtime))

    assert main(["nuke-prerender", str(script), "--nuke", str(exe), "--server", host_server.address]) == 0
    assert results[0].scan() == list(FRAMES) and results[1].scan() == list(FRAMES)
    assert not SequencePattern(ssnode.plate_pattern(first)).scan()                 # plates cleaned up
    assert main(["nuke-prerender", str(script), "--nuke", str(exe)]) == 0          # nothing left to do

    import subprocess
    render = subprocess.run([str(exe), "-x", "-F", "1-3", str(script)], capture_output=True, text=True, timeout=120)
    assert render.returncode == 0, render.stderr
    for frame in FRAMES:
        rendered, _ = read(str(tmp_path / "render" / "out.{:04d}.exr".format(frame)))
        assert np.array_equal(rendered, read(results[1].path(frame))[0])
        assert not np.array_equal(rendered, read(results[0].path(frame))[0])     # both nodes applied

    os.remove(results[1].path(2))
    (tmp_path / "render" / "out.0002.exr").unlink()
    render = subprocess.run([str(exe), "-x", "-F", "1-3", str(script)], capture_output=True, text=True, timeout=120)
    assert render.returncode == 1
    assert "{}: frame 2 is not stylized".format(second.name()) in render.stderr, render.stderr
    assert not (tmp_path / "render" / "out.0002.exr").exists()


def test_nuke_prerender_names_a_node_without_its_model_copy(nuke, tmp_path, monkeypatch):
    from nukehost import fake_nuke_executable
    from shotstyle.nodes import hostinstall
    from shotstyle.cli.main import main
    from shotstyle.nodes.nuke import node as ssnode
    site = tmp_path / "studio_nuke"
    assert hostinstall.main("nuke", home=tmp_path, os_name="Linux", env={}, pyzmq=False, site=site) == 0
    script, (group,) = farm_script(nuke, tmp_path, chained=False)
    os.remove(ssnode.model_file(group, "farm_tiny"))
    monkeypatch.setenv("NUKE_PATH", str(site))
    monkeypatch.setenv("HOME", str(tmp_path))
    assert main(["nuke-prerender", str(script), "--nuke", str(fake_nuke_executable(tmp_path / "bin"))]) == 4
    assert main(["nuke-prerender", str(script), "--nuke", str(tmp_path / "no-nuke")]) == 2
