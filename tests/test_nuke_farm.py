"""Farm renders of a script with a ShotStyle node: render callbacks only check, `nuke-prerender` prepares.

Real Nuke refuses ``nuke.execute`` inside a render ("I'm already executing something else"), so
the node's render callbacks must not render plates, edit nodes or talk to a server: a render
reads frames prepared before it and fails, naming the node and frame, on one that is missing.
"""

from __future__ import annotations

import numpy as np
import OpenImageIO as oiio
import pytest

from hostdata import FRAMES, read
from nukehost import nuke, shot  # noqa: F401
from shotstyle.plugin.sequences import SequencePattern


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
        import os
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
        assert np.allclose(rendered, expected[frame], atol=2e-3)            # the prepared frame, not the plate
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
