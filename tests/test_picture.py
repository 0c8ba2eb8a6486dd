"""Transparent keyframes and style images: what their alpha leaves uncovered is not learnt from
(engine/picture.py). A CG element on a transparent background, or a cut-out style frame, trains
the look of its picture, not of the black its empty pixels read as."""

from __future__ import annotations

import json

import numpy as np
import OpenImageIO as oiio
import pytest
import torch

from shotstyle.cli.main import main
from shotstyle.media.frame import Frame
from shotstyle.media.reading import read_frame
from shotstyle.server.engine.colourmath import acescct_to_linear
from shotstyle.server.engine.correspondence import _samples
from shotstyle.server.engine.lut import REPORT_KEYS, effect_report, measure
from shotstyle.server.engine.modelfile import load_model
from shotstyle.server.engine.modelheader import read_metadata
from shotstyle.server.engine.networks.base import grade_of
from shotstyle.server.engine.pipeline import picture_alpha, working_rgb
from shotstyle.server.engine.picture import picture_of
from shotstyle.server.engine.target import make_target
from shotstyle.server.engine.training import TrainConfig, to_training_tensor, to_training_tensors, train
from shotstyle.server.errors import TrainingInputError

from test_bars import picture, working
from testfiles import write_image

MAGENTA = working(np.array([[1.0, 0.0, 1.0]]))[0]
BLACK = working(np.zeros((1, 3)))[0]
CUT_SHARE = round(1 - (40 * 50 + 26 * 38) / (96 * 128), 4)     # what `cut_out` leaves of a 96×128 image


def frame_of(pixels: np.ndarray, channels: list[str]) -> Frame:
    height, width = pixels.shape[:2]
    return Frame(pixels=pixels.astype(np.float32), channels=channels, channel_formats=["float"] * len(channels),
                 data_window=(0, 0, width, height), display_window=(0, 0, width, height), attributes={},
                 colourspace="ACEScg")


def cut_out(image: np.ndarray, fill: np.ndarray = BLACK) -> tuple[np.ndarray, np.ndarray]:
    """`image` with two corners transparent (alpha 0, RGB `fill`): a picture that is no rectangle."""
    out, alpha = image.copy(), np.ones(image.shape[:2], np.float32)
    alpha[:40, :50] = 0
    alpha[70:, 90:] = 0
    out[alpha == 0] = fill
    return out, alpha


def tensor(image: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None]


@pytest.mark.parametrize("alpha, expected", [
    (None, None),                              # no alpha channel
    (1.0, None),                               # an alpha of 1 everywhere
    (0.0, None),                               # an unused one: 0 everywhere, as some writers store
])
def test_an_alpha_that_covers_every_pixel_or_none_says_nothing(alpha, expected):
    rgb = np.full((4, 6, 3), 0.3, np.float32)
    frame = frame_of(rgb, ["R", "G", "B"]) if alpha is None else \
        frame_of(np.dstack([rgb, np.full((4, 6), alpha, np.float32)]), ["R", "G", "B", "A"])
    assert picture_alpha(frame) is expected


def test_a_partial_alpha_is_read_within_0_and_1_and_nan_is_uncovered():
    alpha = np.array([[0.0, 0.5, 1.0, 1.5, np.nan, -0.2]], np.float32)
    frame = frame_of(np.dstack([np.full((1, 6, 3), 0.3, np.float32), alpha]), ["R", "G", "B", "A"])
    assert picture_alpha(frame).tolist() == [[0.0, 0.5, 1.0, 1.0, 0.0, 0.0]]


def test_a_transparent_png_reads_as_black_where_it_is_uncovered(tmp_path):
    """Why uncovered pixels must not be learnt from: a straight PNG's RGB there, whatever it holds,
    reads as 0 (OpenImageIO associates the alpha), and so counts as black."""
    pixels = np.zeros((8, 8, 4), np.float32)
    pixels[:, :, :3] = (0.9, 0.8, 0.7)            # a white background stored under alpha 0
    pixels[2:6, 2:6, 3] = 1.0
    path = str(tmp_path / "cutout.png")
    spec = oiio.ImageSpec(8, 8, 4, "uint8")
    spec.attribute("oiio:UnassociatedAlpha", 1)  # write the values as they are: a straight PNG
    out = oiio.ImageOutput.create(path)
    assert out.open(path, spec) and out.write_image(pixels) and out.close()
    read = read_frame(path)
    assert np.array_equal(read.pixels[0, 0], [0, 0, 0, 0])
    assert picture_alpha(read)[2:6, 2:6].min() == 1.0 and picture_alpha(read).sum() == 16
    black = working_rgb(frame_of(np.zeros((1, 1, 3)), ["R", "G", "B"]))
    assert working_rgb(read)[0, 0].tolist() == black[0, 0].tolist()


def test_the_picture_is_the_box_its_alpha_covers_and_the_mask_in_it():
    image = tensor(picture(60, 80))
    alpha = torch.zeros(1, 1, 60, 80)
    alpha[0, 0, 10:50, 20:70] = 1.0
    alpha[0, 0, 20:30, 30:40] = 0.4                 # a hole, less than half covered
    found = picture_of(image, alpha)
    assert (found.rows, found.columns) == (slice(10, 50), slice(20, 70))
    assert found.mask is not None and found.mask.shape == (1, 1, 40, 50)
    assert int((~found.mask).sum()) == 100 and not bool(found.mask[0, 0, 10:20, 10:20].any())
    assert found.size() == (40, 50, 2000 - 100) and found.share_of(image) == pytest.approx(1900 / 4800)
    alpha[0, 0, 20:30, 30:40] = 1.0
    assert picture_of(image, alpha).mask is None    # a covered rectangle is its box
    assert picture_of(image, torch.zeros(1, 1, 60, 80)).size()[2] == 0


def test_a_soft_edge_downscales_to_its_own_colour_not_towards_the_background():
    image, alpha = cut_out(picture(96, 128))
    alpha[40:44, :50] = 0.5                         # the sky's soft edge along the empty corner
    small, small_alpha = to_training_tensors(image, alpha, 48, torch.device("cpu"))
    assert small.shape[-2:] == (36, 48) and small_alpha.shape == (1, 1, 36, 48)
    sky = torch.from_numpy(image[:40, 60:].reshape(-1, 3).mean(0))[:, None]
    cells = small[0, :, :14][:, small_alpha[0, 0, :14] > 0]     # every sky cell with some cover
    # Grain of 0.01 scene-linear is about 0.0014 ACEScct a pixel; a cell half black would be 0.057 darker.
    assert float((cells - sky).abs().max()) < 0.01
    plain = to_training_tensor(image, 48, torch.device("cpu"))[0, :, :14][:, small_alpha[0, 0, :14] > 0]
    assert float((plain - sky).abs().max()) > 0.05
    assert torch.equal(to_training_tensors(image, None, 48, torch.device("cpu"))[0],
                       to_training_tensor(image, 48, torch.device("cpu")))


def test_the_grade_is_fitted_on_the_covered_pixels_only():
    image = tensor(picture(8, 8))
    mask = torch.zeros(1, 1, 8, 8, dtype=torch.bool)
    mask[0, 0, 2:5, 1:7] = True
    rows = _samples([image], torch.Generator().manual_seed(0), [mask])
    every = _samples([image], torch.Generator().manual_seed(0), [None])
    assert rows.shape == (18, 5) and torch.equal(rows, every[mask.reshape(-1)])


def test_what_uncovered_pixels_hold_does_not_change_the_grade():
    """A cut-out keyframe and style whose empty corners hold black or magenta give one grade;
    learnt from as picture, the corners moved the grade's lattice by more than 0.5 ACEScct."""
    plate, style = picture(96, 128), picture(96, 128, seed=2)[:, :, ::-1].copy()
    config = TrainConfig(arch="grade", resolution=200)   # none of them downscaled
    luts = []
    for fill in (BLACK, MAGENTA):
        (cut_plate, plate_alpha), (cut_style, style_alpha) = cut_out(plate, fill), cut_out(style, fill)
        luts.append(train([cut_plate], cut_style, config, alphas=[plate_alpha], style_alpha=style_alpha))
    blind = train([cut_out(plate, MAGENTA)[0]], cut_out(style, MAGENTA)[0], config)
    first, second = (model.network.grade.lut for model in luts)
    # The corners reach the picture's pixels only through their texture (a 7×7 window of lightness)
    # along the 3 pixels next to them; the bound is the bars test's, a thousandth of a code value.
    assert float((first - second).abs().max()) < 1e-3
    assert float((blind.network.grade.lut - second).abs().max()) > 0.1
    assert luts[0].metadata["picture_share"] == {"keyframes": [CUT_SHARE], "style": CUT_SHARE}
    assert "picture_share" not in blind.metadata


def test_the_target_keeps_the_grade_where_the_keyframe_is_uncovered_and_ignores_the_style_there():
    plate, style = picture(64, 96), picture(64, 96, seed=2)[:, :, ::-1].copy()
    cut_plate, plate_alpha = cut_out(plate)
    covered = torch.from_numpy(plate_alpha > 0)[None, None]
    graded = tensor(cut_plate) * 0.9
    targets = []
    for fill in (BLACK, MAGENTA):
        cut_style, style_alpha = cut_out(style, fill)
        targets.append(make_target(tensor(cut_plate), graded, tensor(cut_style), plate_picture=covered,
                                   style_picture=torch.from_numpy(style_alpha > 0)[None, None]))
    assert torch.equal(targets[0][covered.expand(1, 3, -1, -1).logical_not()],
                       graded[covered.expand(1, 3, -1, -1).logical_not()])
    # Without the style's alpha its empty corners' colour moves the target's picture by 0.035 ACEScct
    # on average; with it, by 0.0006 (through the semantic features of the positions beside them).
    blind = [make_target(tensor(cut_plate), graded, tensor(cut_out(style, fill)[0])) for fill in (BLACK, MAGENTA)]
    moved = (targets[1] - targets[0]).abs().amax(1)[covered[:, 0]].mean()
    assert float(moved) < 0.1 * float((blind[1] - blind[0]).abs().amax(1)[covered[:, 0]].mean())


@pytest.mark.parametrize("alphas, style_alpha, kwargs, message", [
    ([np.ones((96, 128), np.float32)], None, {"loss": "look"},
     "the keyframe has transparent pixels, which the 'look' loss would learn as black: train with loss 'target' or "
     "'auto', or give images without alpha"),
    ([np.ones((10, 10), np.float32)], None, {},
     "the keyframe: its alpha is (10, 10), not the image's 96×128"),
    ([None, None], None, {}, "2 alphas for 1 keyframes: give one per keyframe (None: opaque)"),
    (None, np.pad(np.ones((3, 3), np.float32), ((0, 93), (0, 125))), {},
     "the style image: its alpha leaves 9 pixels of picture (3×3 at most) at the training resolution 200; at least 8 "
     "pixels a side are needed: train at a higher resolution, or give an image its alpha covers more of"),
])
def test_refusals_name_the_image_and_what_to_do(alphas, style_alpha, kwargs, message):
    with pytest.raises(TrainingInputError) as refused:
        train([picture(96, 128)], picture(96, 128, seed=2), TrainConfig(steps=1, resolution=200, **kwargs),
              alphas=alphas, style_alpha=style_alpha)
    assert str(refused.value) == message


def test_the_network_learns_a_transparent_keyframe_with_its_empty_pixels_at_their_grade(monkeypatch):
    import shotstyle.server.engine.training as training
    seen = {}
    real = training.build_loss

    def spy(*args, **kwargs):
        seen.update(graded=kwargs["graded"], targets=kwargs["targets"])
        return real(*args, **kwargs)

    monkeypatch.setattr(training, "build_loss", spy)
    plate, alpha = cut_out(picture(96, 128))
    model = train([plate], picture(96, 128, seed=2), TrainConfig(steps=1, resolution=160), alphas=[alpha])
    empty = torch.from_numpy(alpha == 0)[None, None].expand(1, 3, -1, -1)
    assert torch.equal(seen["targets"][0][empty], seen["graded"][0][empty])
    assert not torch.equal(seen["targets"][0][~empty], seen["graded"][0][~empty])
    assert model.metadata["picture_share"] == {"keyframes": [CUT_SHARE], "style": 1.0}


@pytest.fixture(scope="module")
def cutouts(tmp_path_factory) -> dict[str, str]:
    """A CG element on a transparent background (RGBA EXR, premultiplied: RGB 0 where alpha is 0)
    and a cut-out style frame (RGBA PNG), as an artist's files, and a model path."""
    folder = tmp_path_factory.mktemp("cutouts")
    plate, alpha = cut_out(picture(96, 128))
    linear = np.clip(acescct_to_linear(torch.from_numpy(plate)).numpy(), 0, None) * alpha[:, :, None]
    style, style_alpha = cut_out(picture(96, 128, seed=2)[:, :, ::-1].copy())
    display = np.clip(acescct_to_linear(torch.from_numpy(style)).numpy(), 0, 1) ** (1 / 2.2)
    return {"content": write_image(folder / "element.exr", np.dstack([linear, alpha]), "RGBA", "half",
                                   display=(0, 0, 128, 96)),
            "style": write_image(folder / "cutout.png", np.dstack([display * style_alpha[:, :, None], style_alpha]),
                                 "RGBA", "uint8", display=(0, 0, 128, 96)),
            "model": str(folder / "look.safetensors")}


def _train(files: dict[str, str], *extra: str) -> int:
    return main(["train", "--content", files["content"], "--style", files["style"], "-o", files["model"],
                 "--steps", "2", "--resolution", "128", *extra])


@pytest.mark.parametrize("where", ["--in-process", "server"])
def test_a_transparent_keyframe_and_style_train_from_files_in_process_and_on_a_server(cutouts, where, capsys,
                                                                                     request):
    extra = ["--in-process"] if where == "--in-process" else ["--server", request.getfixturevalue("server").address]
    assert _train(cutouts, *extra) == 0, capsys.readouterr().err
    shares = read_metadata(cutouts["model"])["picture_share"]
    assert shares["keyframes"] == [CUT_SHARE] and shares["style"] == CUT_SHARE


def test_a_transparent_keyframe_with_the_look_loss_is_refused_in_a_line_and_exit_2(cutouts, capsys):
    assert _train(cutouts, "--in-process", "--loss", "look") == 2
    lines = capsys.readouterr().err.splitlines()
    assert lines[-1] == "shotstyle train: training failed: the keyframe has transparent pixels, which the 'look' " \
        "loss would learn as black: train with loss 'target' or 'auto', or give images without alpha", lines


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    from serverproc import ServerProcess
    with ServerProcess(tmp_path_factory.mktemp("server")) as process:
        yield process


def test_the_lut_report_is_measured_where_a_render_stylizes():
    """A render leaves pixels with alpha 0 as they are, so the report of how much of the effect the
    LUT carries leaves them out (as black, the network and the LUT move them alike)."""
    plate, alpha = cut_out(picture(96, 128))
    model = train([plate], picture(96, 128, seed=2), TrainConfig(steps=2, resolution=128), alphas=[alpha])
    network = model.network.eval()
    x, covered = tensor(plate), torch.from_numpy(alpha > 0)[None, None]
    with torch.no_grad():
        full, graded = network(x), grade_of(network)(x)
    assert model.metadata["lut_report"] == effect_report([x], [full], [graded], [covered])
    assert model.metadata["lut_report"] != effect_report([x], [full], [graded])
    left_out = torch.ones_like(covered)
    left_out[..., :64] = False
    # The same pixels, gathered in another order: their sums may round apart in float32, by at most
    # one unit of the report's third decimal.
    assert effect_report([x], [full], [graded], [left_out]) == \
        pytest.approx(effect_report([x[..., 64:]], [full[..., 64:]], [graded[..., 64:]]), abs=1.001e-3)


def test_export_lut_measures_a_transparent_keyframe_where_renders_stylize_it(cutouts, capsys, tmp_path):
    assert _train(cutouts, "--in-process") == 0, capsys.readouterr().err
    capsys.readouterr()
    assert main(["export-lut", cutouts["model"], "-o", str(tmp_path / "look.cube"), "--keyframe", cutouts["content"],
                 "--json"]) == 0
    report = {k: v for k, v in json.loads(capsys.readouterr().out).items() if k in REPORT_KEYS}
    frame = read_frame(cutouts["content"])
    model = load_model(cutouts["model"])
    assert report == measure(model, [working_rgb(frame)], [picture_alpha(frame)])
    assert report != measure(model, [working_rgb(frame)])
