"""Plate mattes from a keyframe's cryptomatte: `--matte NAME=crypto:LAYER/OBJECT:STYLE_MATTE`.

The IDs follow the Cryptomatte specification 1.1.0 (its manifest example gives three names' IDs);
a matte is the sum of a name's coverage over the ranks; a layer stored in half floats, a layer or
a name that is not there are refused in one line naming the file and what it holds. Tiny images
(64×48), 3 training steps.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from shotstyle.cli.main import main
from shotstyle.media import cryptomatte
from shotstyle.media.reading import read_frame
from shotstyle.plugin import codec, mattes
from shotstyle.plugin.protocol import ProtocolError
from shotstyle.server.engine.modelheader import read_metadata
from testfiles import write_image

SIZE = (48, 64)
LAYER = "CryptoObject"


def _bits(value: np.float32) -> str:
    return f"{int(np.array([value], np.float32).view(np.uint32)[0]):08x}"


def test_ids_are_the_specifications():
    """The specification's manifest example: {"bunny": "13851a76", "default": "42c9679f"} and
    {"bunny_porcelain_mat": "b24b26d4"}; and MurmurHash3_x86_32's published value for "hello"."""
    assert [_bits(cryptomatte.name_id(n)) for n in ("bunny", "default", "bunny_porcelain_mat")] == \
        ["13851a76", "42c9679f", "b24b26d4"]
    assert cryptomatte.murmur3_32(b"hello") == 613153351 and cryptomatte.murmur3_32(b"") == 0


def test_an_id_is_never_zero_denormal_infinite_or_nan():
    """Hashes whose exponent bits are 0 or 255 get the exponent clamped to 1 or 254."""
    clamped = {}
    for i in range(5000):
        exponent = (cryptomatte.murmur3_32(f"n{i}".encode()) >> 23) & 0xFF
        if exponent in (0, 255):
            clamped.setdefault(exponent, f"n{i}")
        if len(clamped) == 2:
            break
    assert set(clamped) == {0, 255}
    for exponent, name in clamped.items():
        value = cryptomatte.name_id(name)
        assert np.isfinite(value) and abs(value) >= np.finfo(np.float32).tiny
        assert (int(np.array([value]).view(np.uint32)[0]) >> 23) & 0xFF == (1 if exponent == 0 else 254)


def _coverage() -> tuple[np.ndarray, np.ndarray]:
    """The sky's and the ground's true coverage: the sky above row 24, the boundary row 24 shared 0.7/0.3
    (ground ranked first in its left half, the sky in its right half)."""
    sky = (np.arange(SIZE[0]) < 24).astype(np.float32)[:, None] * np.ones(SIZE, np.float32)
    sky[24, :32], sky[24, 32:] = 0.3, 0.7
    return sky, 1 - sky


def _crypto_plate(path, formats="float", attributes=True, names=("sky_geo", "ground_geo"), suffixes="RGBA") -> str:
    """A keyframe EXR: RGBA and a two-rank-pair CryptoObject layer holding the sky and the ground by these names."""
    sky, ground = _coverage()
    sky_id, ground_id = (cryptomatte.name_id(n) for n in names)
    sky_first = sky >= ground
    rank0_id = np.where(sky_first, sky_id, ground_id)
    rank0 = np.where(sky_first, sky, ground)
    rank1_id = np.where(sky_first, ground_id, sky_id)
    rank1 = np.where(sky_first, ground, sky)
    rank1_id = np.where(rank1 > 0, rank1_id, 0)
    zeros = np.zeros(SIZE, np.float32)
    rgb = [0.2 + 0.5 * sky, 0.3 + 0 * sky, 0.6 - 0.4 * sky, np.ones(SIZE, np.float32)]
    layer = [rank0_id, rank0, rank1_id, rank1, zeros, zeros, zeros, zeros]
    channels = ["R", "G", "B", "A"] + [f"{LAYER}{n:02d}.{c}" for n in (0, 1) for c in suffixes]
    manifest = json.dumps({name: _bits(cryptomatte.name_id(name)) for name in names})
    header = {"cryptomatte/a1b2c3d/name": ("string", LAYER), "cryptomatte/a1b2c3d/hash": ("string", "MurmurHash3_32"),
              "cryptomatte/a1b2c3d/conversion": ("string", "uint32_to_float32"),
              "cryptomatte/a1b2c3d/manifest": ("string", manifest)} if attributes else None
    return write_image(path, np.stack(rgb + layer, axis=2), channels, formats, display=(0, 0, SIZE[1], SIZE[0]),
                       attributes=header)


def test_a_names_matte_sums_its_coverage_over_the_ranks(tmp_path):
    frame = read_frame(_crypto_plate(tmp_path / "plate.exr"))
    sky, ground = _coverage()
    assert cryptomatte.layers(frame.channels) == [LAYER]
    np.testing.assert_array_equal(cryptomatte.matte(frame, LAYER, "sky_geo"), sky)
    np.testing.assert_array_equal(cryptomatte.matte(frame, LAYER, "ground_geo"), ground)
    assert not cryptomatte.matte(frame, LAYER, "tree_geo").any()
    assert cryptomatte.manifest_names(frame, LAYER) == ["ground_geo", "sky_geo"]


def test_a_pattern_takes_every_name_the_manifest_lists_that_matches_it(tmp_path):
    frame = read_frame(_crypto_plate(tmp_path / "plate.exr"))
    sky, ground = _coverage()
    np.testing.assert_array_equal(cryptomatte.matte(frame, LAYER, "sky*"), sky)
    np.testing.assert_array_equal(cryptomatte.matte(frame, LAYER, "*_geo"), np.clip(sky + ground, 0, 1))
    assert not cryptomatte.matte(frame, LAYER, "Sky*").any()          # case-sensitive, as names are
    bare = read_frame(_crypto_plate(tmp_path / "bare.exr", attributes=False))
    np.testing.assert_array_equal(cryptomatte.matte(bare, LAYER, "sky_geo"), sky)   # a name needs no manifest
    assert not cryptomatte.matte(bare, LAYER, "sky*").any()                         # a pattern does


def test_a_name_the_manifest_lists_is_itself_though_it_hold_pattern_characters(tmp_path):
    """The specification's sample names "has_*_asterisk" beside "has_n_asterisk", "rect_[_top"..."""
    frame = read_frame(_crypto_plate(tmp_path / "plate.exr", names=("has_*_asterisk", "has_n_asterisk")))
    sky, ground = _coverage()
    np.testing.assert_array_equal(cryptomatte.matte(frame, LAYER, "has_*_asterisk"), sky)
    np.testing.assert_array_equal(cryptomatte.matte(frame, LAYER, "has_?_asterisk"), np.clip(sky + ground, 0, 1))


def test_channel_suffixes_spelt_out_are_read_too(tmp_path):
    frame = read_frame(_crypto_plate(tmp_path / "plate.exr", suffixes="red green blue alpha".split()))
    assert cryptomatte.layers(frame.channels) == [LAYER]
    np.testing.assert_array_equal(cryptomatte.matte(frame, LAYER, "sky_geo"), _coverage()[0])


def test_a_half_float_layer_or_a_missing_one_is_refused_naming_the_file(tmp_path):
    formats = ["half"] * 4 + ["half", "float"] * 4      # IDs in half: lost
    half = read_frame(_crypto_plate(tmp_path / "half.exr", formats))
    with pytest.raises(ValueError, match=rf"{tmp_path / 'half.exr'}: cryptomatte layer 'CryptoObject' is not stored "
                                         r"as 32-bit float \(CryptoObject00.R is half\)"):
        cryptomatte.matte(half, LAYER, "sky_geo")
    frame = read_frame(_crypto_plate(tmp_path / "plate.exr"))
    with pytest.raises(ValueError, match="no cryptomatte layer 'CryptoMaterial' .*its layers: CryptoObject"):
        cryptomatte.matte(frame, "CryptoMaterial", "sky_geo")


@pytest.fixture
def shot(tmp_path) -> dict:
    style_rows = np.linspace(0, 1, 40)[:, None, None] * np.ones((40, 80, 1))
    style = np.concatenate([0.9 - 0.7 * style_rows, 0.3 + 0 * style_rows, 0.2 + 0.7 * style_rows], axis=2)
    upper = (np.arange(40) < 20).astype(np.float32)[:, None, None] * np.ones((40, 80, 3), np.float32)
    png = {"formats": "uint8", "display": (0, 0, 80, 40)}
    return {"content": _crypto_plate(tmp_path / "plate.exr"),
            "bare": _crypto_plate(tmp_path / "bare.exr", attributes=False),
            "style": write_image(tmp_path / "style.png", style, ["R", "G", "B"], **png),
            "sky_style": write_image(tmp_path / "sky_style.png", upper, ["R", "G", "B"], **png),
            "model": str(tmp_path / "look.safetensors")}


def _train(shot: dict, *extra: str, content: str = "content") -> int:
    return main(["train", "--content", shot[content], "--style", shot["style"], "-o", shot["model"],
                 "--steps", "3", "--resolution", "64", "--in-process", *extra])


def test_training_takes_a_cryptomatte_name_as_a_plate_matte(shot, capsys):
    assert _train(shot, "--matte", f"sky=crypto:{LAYER}/sky_geo:{shot['sky_style']}") == 0, capsys.readouterr().err
    assert read_metadata(shot["model"])["target"]["mattes"] == ["sky"]


@pytest.mark.parametrize("content, matte, message", [
    ("content", "sky=crypto:CryptoObject/tree_geo:{sky_style}",
     "{content}: no pixel holds 'tree_geo' in cryptomatte layer 'CryptoObject'; the names its manifest lists: "
     "ground_geo, sky_geo; give the object's or material's name as the renderer wrote it"),
    ("bare", "sky=crypto:CryptoObject/tree_geo:{sky_style}",
     "{bare}: no pixel holds 'tree_geo' in cryptomatte layer 'CryptoObject'; give the object's"),
    ("content", "sky=crypto:CryptoAsset/sky_geo:{sky_style}",
     "{content}: no cryptomatte layer 'CryptoAsset' (no CryptoAsset00.R channel); its layers: CryptoObject"),
    ("content", "sky=crypto:CryptoObject:{sky_style}", "write crypto:LAYER/NAME"),
    ("content", "sky=crypto:CryptoObject/tree*:{sky_style}",
     "{content}: no pixel holds 'tree*' in cryptomatte layer 'CryptoObject'; the names its manifest lists: ground_geo"),
    ("bare", "sky=crypto:CryptoObject/sky*:{sky_style}",
     "{bare}: no pixel holds 'sky*' in cryptomatte layer 'CryptoObject'; a pattern needs the layer's manifest in the "
     "header"),
])
def test_a_bad_cryptomatte_matte_is_one_line_and_exit_2(shot, capsys, content, matte, message):
    assert _train(shot, "--matte", matte.format(**shot), content=content) == 2
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and message.format(**shot) in lines[0], lines


def test_a_cryptomatte_name_may_hold_colons_and_slashes_and_travels_as_written():
    given = mattes.parse("car=crypto:CryptoObject/ns:car/body_geo:/looks/car.png")
    assert [(p.name, p.channel, p.style) for p in given.pairs] == \
        [("car", "crypto:CryptoObject/ns:car/body_geo", "/looks/car.png")]
    assert mattes.crypto_reference("crypto:CryptoObject/ns:car/body_geo") == ("CryptoObject", "ns:car/body_geo")
    assert mattes.crypto_reference("matte.sky") is None
    style = codec.encode_file(b"s", "png")
    args, frames = mattes.to_wire(mattes.Mattes([mattes.MattePair("car", style, channel="crypto:CryptoObject/a")]))
    assert mattes.from_wire(args, frames, keyframes=1).pairs[0].channel == "crypto:CryptoObject/a"
    with pytest.raises(ProtocolError, match="write crypto:LAYER/NAME") as refused:
        mattes.from_wire({"matte_channels": {"car": "crypto:CryptoObject/"}}, frames, keyframes=1)
    assert refused.value.code == "bad_argument"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    from serverproc import ServerProcess
    with ServerProcess(tmp_path_factory.mktemp("server")) as process:
        yield process


def test_a_cryptomatte_matte_travels_to_a_server(server, shot, capsys):
    """The keyframe's layer reaches the server's training as float32; a name it lacks comes back as the same line."""
    command = ["train", "--content", shot["content"], "--style", shot["style"], "--steps", "3", "--resolution", "64",
               "--server", server.address]
    assert main([*command, "-o", shot["model"], "--matte", f"sky=crypto:{LAYER}/sky_geo:{shot['sky_style']}"]) == 0, \
        capsys.readouterr().err
    assert read_metadata(shot["model"])["target"]["mattes"] == ["sky"]
    capsys.readouterr()
    refused = shot["model"].replace("look", "refused")
    assert main([*command, "-o", refused, "--matte", f"sky=crypto:{LAYER}/tree_geo:{shot['sky_style']}"]) == 2
    assert "no pixel holds 'tree_geo' in cryptomatte layer 'CryptoObject'" in capsys.readouterr().err
