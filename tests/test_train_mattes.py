"""`shotstyle train --matte/--labels` and `--arch grade`, in-process and through a server.

Mattes name where the look goes: a channel of the keyframe EXR or a matte image, paired with a
matte of the style image, or label images (one flat colour a region). The model records the
mattes it was trained with; a matte not the size of its image is refused in one line naming the
file; the grade-only network trains no steps and renders what its exported LUT holds. Tiny
images (64×48), 3 steps.
"""

from __future__ import annotations

import numpy as np
import OpenImageIO as oiio
import PyOpenColorIO as ocio
import pytest

from shotstyle.cli.main import main
from shotstyle.plugin import codec, mattes
from shotstyle.plugin.protocol import MAX_MATTES, ProtocolError
from shotstyle.server.engine.modelheader import read_metadata
from testfiles import write_image

QUICK = ["--steps", "3", "--resolution", "64"]
SIZE = (48, 64)            # height, width of the keyframe
STYLE_SIZE = (40, 80)      # the style image is another size: its mattes follow it, not the keyframe


def _png(path, pixels: np.ndarray) -> str:
    """An 8-bit PNG of ``pixels`` (0..1)."""
    return write_image(path, pixels, ["R", "G", "B"], "uint8", display=(0, 0, pixels.shape[1], pixels.shape[0]))


def _upper(size: tuple[int, int]) -> np.ndarray:
    """H×W×3 white in the upper half ("sky"), black below."""
    matte = (np.arange(size[0]) < size[0] // 2).astype(np.float32)[:, None] * np.ones(size, np.float32)
    return np.repeat(matte[..., None], 3, axis=2)


@pytest.fixture
def shot(tmp_path) -> dict:
    """A keyframe EXR (RGBA + matte.sky), a style image and matte/label images of both."""
    height, width = SIZE
    ramp = np.linspace(0, 1, height, dtype=np.float32)[:, None, None] * np.ones((height, width, 1), np.float32)
    rgb = np.concatenate([0.1 + 0.6 * ramp, 0.2 + 0.1 * ramp, 0.5 - 0.4 * ramp], axis=2)
    sky = _upper(SIZE)[..., :1]
    write_image(tmp_path / "plate.exr", np.concatenate([rgb, np.ones_like(sky), sky], axis=2),
                ["R", "G", "B", "A", "matte.sky"], "half", display=(0, 0, width, height))
    style_ramp = np.linspace(0, 1, STYLE_SIZE[0])[:, None, None] * np.ones((*STYLE_SIZE, 1))
    red, blue = np.array([1.0, 0, 0]), np.array([0, 0, 1.0])
    return {
        "content": str(tmp_path / "plate.exr"),
        "style": _png(tmp_path / "style.png", np.concatenate([0.9 - 0.7 * style_ramp, 0.3 + 0 * style_ramp,
                                                              0.2 + 0.7 * style_ramp], axis=2)),
        "sky_style": _png(tmp_path / "sky_style.png", _upper(STYLE_SIZE)),
        "ground_plate": _png(tmp_path / "ground_plate.png", 1 - _upper(SIZE)),
        "ground_style": _png(tmp_path / "ground_style.png", 1 - _upper(STYLE_SIZE)),
        "small": _png(tmp_path / "small.png", np.ones((10, 10, 3))),
        "plate_labels": _png(tmp_path / "plate_labels.png", _upper(SIZE) * red + (1 - _upper(SIZE)) * blue),
        "style_labels": _png(tmp_path / "style_labels.png",
                             _upper(STYLE_SIZE) * red + (1 - _upper(STYLE_SIZE)) * blue),
        "model": str(tmp_path / "look.safetensors"),
    }


def train(shot: dict, *extra: str) -> int:
    return main(["train", "--content", shot["content"], "--style", shot["style"], "-o", shot["model"], *extra])


def test_in_process_training_takes_mattes_and_the_model_records_them(shot, capsys):
    code = train(shot, "--in-process", *QUICK, "--matte", f"sky=channel:matte.sky:{shot['sky_style']}",
                 "--matte", f"ground={shot['ground_plate']}:{shot['ground_style']}")
    err = capsys.readouterr().err
    assert code == 0, err
    first = err.splitlines()[0]
    assert "network hrnet-fast (the default); loss 'auto' -> 'target'" in first and "mattes: sky, ground" in first
    assert read_metadata(shot["model"])["target"]["mattes"] == ["sky", "ground"]


def test_label_images_become_one_matte_per_flat_colour(shot, capsys):
    assert train(shot, "--in-process", *QUICK, "--labels", f"{shot['plate_labels']}:{shot['style_labels']}") == 0
    assert read_metadata(shot["model"])["target"]["mattes"] == ["0000ff", "ff0000"]   # blue and red regions


@pytest.mark.parametrize("matte, message", [
    ("sky={small}:{sky_style}", "matte 'sky': its plate matte for keyframe 1 ({small}) is 10×10, its image 64×48: "
                                "a matte must be the size of the image it marks"),
    ("sky={ground_plate}:{small}", "matte 'sky': its style matte ({small}) is 10×10, its image 80×40"),
    ("sky=channel:matte.water:{sky_style}", "{content}: no channel 'matte.water' to take a plate matte from "
                                            "(its channels: R, G, B, A, matte.sky); name one of them"),
    ("sky={ground_plate},{ground_plate}:{sky_style}", "matte 'sky': 2 plate image(s) for 1 keyframe(s): give one per "
                                                      "keyframe, in keyframe order, separated by ',', or a channel of "
                                                      "the keyframes (channel:NAME) or their cryptomatte (crypto:LAYER/NAME)"),
    ("sky={ground_plate}", "write NAME=PLATE:STYLE"),
])
def test_a_bad_matte_is_one_line_naming_it_and_exit_2(shot, capsys, matte, message):
    assert train(shot, "--in-process", *QUICK, "--matte", matte.format(**shot)) == 2
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and message.format(**shot) in lines[0], lines


def test_the_grade_network_trains_no_steps_and_renders_what_its_lut_holds(shot, tmp_path, capsys):
    assert train(shot, "--in-process", "--arch", "grade", "--resolution", "64") == 0
    first = capsys.readouterr().err.splitlines()[0]
    assert "network grade (as asked): the closed-form grade alone, no loss and no training steps" in first
    metadata = read_metadata(shot["model"])
    assert metadata["architecture"] == "grade" and metadata["steps_trained"] == 0
    rendered = tmp_path / "rendered.exr"
    assert main(["render", "--model", shot["model"], "--in", shot["content"], "--out", str(rendered),
                 "--in-process"]) == 0
    assert main(["export-lut", shot["model"], "-o", str(tmp_path / "look.clf")]) == 0
    plate = oiio.ImageBuf(shot["content"]).get_pixels(oiio.FLOAT)
    result = oiio.ImageBuf(str(rendered)).get_pixels(oiio.FLOAT)
    through_lut = np.ascontiguousarray(plate[..., :3])   # ACEScg in and out, the .clf's own spaces
    transform = ocio.FileTransform(src=str(tmp_path / "look.clf"), interpolation=ocio.INTERP_LINEAR)
    ocio.Config.CreateRaw().getProcessor(transform).getDefaultCPUProcessor().applyRGB(through_lut)
    assert np.abs(result[..., :3] - plate[..., :3]).max() > 0.02          # the grade changes the plate
    assert np.abs(result[..., :3] - through_lut).max() < 0.005             # and the LUT is all of it (half out)
    assert np.array_equal(result[..., 3:], plate[..., 3:])                 # alpha and the matte pass through


def test_the_grade_network_refuses_mattes(shot, capsys):
    assert train(shot, "--in-process", "--arch", "grade", "--labels",
                 f"{shot['plate_labels']}:{shot['style_labels']}") == 2
    assert "the grade alone is one global colour map" in capsys.readouterr().err


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    from serverproc import ServerProcess
    with ServerProcess(tmp_path_factory.mktemp("server")) as process:
        yield process


def test_mattes_travel_to_a_server(server, shot, capsys):
    """A keyframe channel and matte files reach the server's training; a bad one comes back as the same line."""
    reach = ["--server", server.address]
    code = train(shot, *reach, *QUICK, "--matte", f"sky=channel:matte.sky:{shot['sky_style']}",
                 "--matte", f"ground={shot['ground_plate']}:{shot['ground_style']}")
    assert code == 0, capsys.readouterr().err
    assert read_metadata(shot["model"])["target"]["mattes"] == ["sky", "ground"]
    capsys.readouterr()
    other = {**shot, "model": shot["model"].replace("look", "refused")}   # another job name
    assert train(other, *reach, *QUICK, "--matte", f"sky={shot['small']}:{shot['sky_style']}") == 2
    assert f"its plate matte for keyframe 1 ({shot['small']}) is 10×10, its image 64×48" in capsys.readouterr().err


def test_mattes_on_the_wire_round_trip_and_are_bounded():
    def image(tag: str) -> codec.EncodedFrame:
        return codec.encode_file(tag.encode(), "png")

    given = mattes.Mattes([mattes.MattePair("sky", image("s"), channel="matte.sky"),
                           mattes.MattePair("road", image("r"), [image("r0"), image("r1")])],
                          ([image("l0"), image("l1")], image("ls")))
    args, frames = mattes.to_wire(given)
    back = mattes.from_wire(args, frames, keyframes=2)
    assert back.map(lambda f: bytes(f.data)) == given.map(lambda f: bytes(f.data))
    with pytest.raises(ProtocolError, match="matte 'road': 1 plate image"):
        mattes.from_wire(args, [f for f in frames if f.extra.get("of") != 1 or f.extra["role"] != "matte"], 2)
    with pytest.raises(ProtocolError, match="matte 'sky' has no style matte"):
        mattes.from_wire(args, [f for f in frames if f.extra.get("matte") != "sky"], 2)
    many = mattes.Mattes([mattes.MattePair(f"m{i}", image("s"), channel="A") for i in range(MAX_MATTES + 1)])
    with pytest.raises(ProtocolError, match=f"at most {MAX_MATTES} mattes") as refused:
        mattes.from_wire(*mattes.to_wire(many), keyframes=1)
    assert refused.value.code == "too_large"


@pytest.mark.parametrize("text, message", [
    ("sky=a.png:b.png; sky=c.png:d.png", "the name 'sky' is given twice"),
    ("sky a.png b.png", "write NAME=PLATE:STYLE"),
    ("s/ky=a.png:b.png", "matte name 's/ky'"),
    ("labels=a.png:b.png\nlabels=c.png:d.png", "label images are given twice"),
])
def test_the_matte_syntax_names_what_is_wrong(text, message):
    with pytest.raises(ValueError, match=message):
        mattes.parse(text)
