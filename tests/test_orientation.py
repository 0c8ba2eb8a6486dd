"""A style frame stored sideways with an orientation tag is taken upright, as viewers show it.

A phone stores a portrait photograph sideways with EXIF Orientation 6; read as stored, the look's
correspondence saw the style's sky at the side (on the shared pairs, region accuracy 0.86 -> 0.64).
`upright` turns every tag 1 to 8 as Pillow's `ImageOps.exif_transpose` and OpenImageIO's
`ImageBufAlgo.reorient` do; training takes the style and its mattes upright, in-process and on a
server, and says so. Files are written here with OpenImageIO.
"""

from __future__ import annotations

import numpy as np
import OpenImageIO as oiio
import pytest

from shotstyle.cli.main import main
from shotstyle.media.orientation import ORIENTATION_ATTRIBUTE, upright
from shotstyle.media.reading import read_frame
from shotstyle.server.engine.modelheader import read_metadata
from testfiles import write_image

STORED = (5, 3)   # height, width as stored: distinct values everywhere, so any wrong turn shows


def _stored(path, tag: int) -> str:
    pixels = (np.arange(STORED[0] * STORED[1] * 3).reshape(*STORED, 3) / 64.0).astype(np.float32)
    return write_image(path, pixels, ["R", "G", "B"], "uint8", display=(0, 0, STORED[1], STORED[0]),
                       attributes={ORIENTATION_ATTRIBUTE: ("int", tag)}, compression="none")


@pytest.mark.parametrize("suffix", ["png", "tif"])
@pytest.mark.parametrize("tag", range(1, 9))
def test_every_tag_turns_as_viewers_and_openimageio_turn_it(tmp_path, tag, suffix):
    path = _stored(tmp_path / f"o{tag}.{suffix}", tag)
    frame = upright(read_frame(path))
    reoriented = oiio.ImageBufAlgo.reorient(oiio.ImageBuf(path)).get_pixels(oiio.FLOAT)
    np.testing.assert_array_equal(frame.pixels, reoriented)
    height, width = frame.pixels.shape[:2]
    assert frame.data_window == frame.display_window == (0, 0, width, height)
    assert frame.attributes[ORIENTATION_ATTRIBUTE] == 1 and (height, width) == (STORED if tag < 5 else STORED[::-1])
    image, image_ops = pytest.importorskip("PIL.Image"), pytest.importorskip("PIL.ImageOps")
    shown = np.asarray(image_ops.exif_transpose(image.open(path)))   # 8-bit code values
    np.testing.assert_array_equal(np.rint(frame.pixels * 255), shown)


def test_no_tag_or_a_tag_outside_1_to_8_leaves_the_frame_as_it_is(tmp_path):
    plain = read_frame(write_image(tmp_path / "plain.png", np.zeros((4, 2, 3), np.float32), ["R", "G", "B"], "uint8",
                                   display=(0, 0, 2, 4), compression="none"))
    assert upright(plain) is plain
    odd = read_frame(_stored(tmp_path / "odd.tif", 1))
    odd.attributes[ORIENTATION_ATTRIBUTE] = 9
    assert upright(odd) is odd


STYLE = (40, 80)   # the style as shown: height, width


@pytest.fixture
def sideways(tmp_path) -> dict:
    """A keyframe, a style stored sideways (tag 6: shown turned 90° clockwise) and a style matte
    painted on the style as shown (no tag, the size it is shown at)."""
    rows = np.linspace(0, 1, 48, dtype=np.float32)[:, None, None] * np.ones((48, 64, 1), np.float32)
    write_image(tmp_path / "plate.exr", np.concatenate([0.1 + 0.6 * rows, 0.3 + 0 * rows, 0.6 - 0.5 * rows], axis=2),
                ["R", "G", "B"], "half", display=(0, 0, 64, 48))
    shown = np.linspace(0, 1, STYLE[0], dtype=np.float32)[:, None, None] * np.ones((*STYLE, 1), np.float32)
    shown = np.concatenate([0.9 - 0.7 * shown, 0.3 + 0 * shown, 0.2 + 0.7 * shown], axis=2)
    stored = np.ascontiguousarray(np.rot90(shown, 1))   # what turning 90° clockwise shows as `shown`
    write_image(tmp_path / "style.png", stored, ["R", "G", "B"], "uint8", display=(0, 0, STYLE[0], STYLE[1]),
                attributes={ORIENTATION_ATTRIBUTE: ("int", 6)}, compression="none")
    sky = np.repeat(((np.arange(STYLE[0]) < STYLE[0] // 2)[:, None] * np.ones(STYLE))[..., None], 3, 2)
    write_image(tmp_path / "sky.png", sky.astype(np.float32), ["R", "G", "B"], "uint8", display=(0, 0, STYLE[1], STYLE[0]),
                compression="none")
    plate_sky = np.repeat(((np.arange(48) < 24)[:, None] * np.ones((48, 64)))[..., None], 3, 2)
    write_image(tmp_path / "plate_sky.png", plate_sky.astype(np.float32), ["R", "G", "B"], "uint8",
                display=(0, 0, 64, 48), compression="none")
    return {"content": str(tmp_path / "plate.exr"), "style": str(tmp_path / "style.png"), "sky": str(tmp_path / "sky.png"),
            "plate_sky": str(tmp_path / "plate_sky.png"), "model": str(tmp_path / "look.safetensors")}


def _train(shot: dict, *where: str) -> int:
    return main(["train", "--content", shot["content"], "--style", shot["style"], "-o", shot["model"], *where,
                 "--steps", "2", "--resolution", "64", "--matte", f"sky={shot['plate_sky']}:{shot['sky']}"])


def test_training_takes_a_sideways_style_upright_with_its_mattes(sideways, capsys):
    """The sky matte is the size of the style as shown: as stored (40 wide, 80 high) it would be refused."""
    assert _train(sideways, "--in-process") == 0
    said = capsys.readouterr().err
    assert f"{sideways['style']}: taken upright, turned 90° clockwise, as its orientation tag says" in said
    assert read_metadata(sideways["model"])["target"]["mattes"] == ["sky"]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    from serverproc import ServerProcess
    with ServerProcess(tmp_path_factory.mktemp("server")) as process:
        yield process


def test_a_server_takes_a_sideways_style_upright_too(server, sideways, capsys):
    assert _train(sideways, "--server", server.address) == 0, capsys.readouterr().err
    assert read_metadata(sideways["model"])["target"]["mattes"] == ["sky"]
