"""`shotstyle demo` end to end, as a user runs it from an installed wheel (not the checkout).

It starts a local server, trains on the built-in walk clip with the weights-free loss (and says
so), stylizes all twelve frames through the server and writes the EXRs, the before/after
contact sheet and the animated preview; every output is checked against the plates.
"""

import os
import re
import subprocess

import numpy as np
import OpenImageIO as oiio
import pytest

from shotstyle import examples
from shotstyle.cli import demo, review
from shotstyle.media.frame import Frame
from shotstyle.media.reading import read_frame

FRAMES = list(range(1, 24, 2))
WIDTH, HEIGHT = 500, 281
SHEET_FRAMES = FRAMES[::3]          # 4 rows: 1, 7, 13, 19


def luminance_gradient(rgb: np.ndarray) -> np.ndarray:
    return np.diff(rgb @ np.array([0.2126, 0.7152, 0.0722], np.float32), axis=1).ravel()


def srgb_pixels(path: str) -> np.ndarray:
    """An 8-bit picture's RGB as 0..1 floats (OpenImageIO reads GIFs as RGBA, frame by frame: here the first)."""
    return np.asarray(oiio.ImageBuf(path).get_pixels(oiio.FLOAT))[..., :3]


@pytest.fixture(scope="module")
def demo_run(installed_wheel, tmp_path_factory):
    """The installed `shotstyle demo` (8 quick steps), run outside the checkout; its output folder and stdout."""
    out = tmp_path_factory.mktemp("demo") / "out"
    # Its own runtime and model folders (module fixtures run before the per-test isolation of conftest).
    env = {**os.environ, "SHOTSTYLE_RUNTIME_DIR": str(out.parent / "run"),
           "SHOTSTYLE_MODELS_DIR": str(out.parent / "models")}
    try:
        done = subprocess.run([str(installed_wheel / "shotstyle"), "demo", "-o", str(out), "--steps", "8",
                               "--resolution", "64"], capture_output=True, text=True, timeout=600, cwd=out.parent,
                              env=env)
    finally:  # the installed copy's own local server (its install, not this checkout's)
        stopped = subprocess.run([str(installed_wheel / "shotstyle"), "stop"], capture_output=True, text=True,
                                 timeout=120, env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert stopped.returncode == 0 and "stopped the shotstyle server at" in stopped.stdout, stopped.stdout
    return out, done.stdout, done.stderr


def test_demo_runs_the_installed_example_through_a_server(demo_run, installed_wheel):
    out, stdout, stderr = demo_run
    assert "steps at 64 px, loss auto)" in stdout   # the default target loss: nothing to download
    venv = str(installed_wheel.parent)
    (plate,) = re.findall(r"built-in example: 12 frames of real footage \((\S+)\)", stdout)
    assert plate.startswith(venv) and plate.endswith("shotstyle/examples/walk/walk.####.jpg")  # not the checkout
    assert "step 8/8" in stderr and "shotstyle demo: model 'demo' trained" in stderr
    assert re.search(r"server tcp://127\.0\.0\.1:\d+ \(started now; shotstyle ", stdout)
    assert f"before/after contact sheet (plate left, stylized right): {out / 'contact_sheet.png'}" in stdout
    assert f"before/after animation: {out / 'before_after.gif'}" in stdout


def test_stylized_frames_change_the_look_and_keep_the_picture(demo_run):
    from shotstyle.server.engine.colour import convert
    out, _, stderr = demo_run
    model_hash = re.search(r"trained \(hash ([0-9a-f]{12})\)", stderr).group(1)
    assert sorted(os.listdir(out / "stylized")) == [f"walk.{n:04d}.exr" for n in FRAMES]
    from shotstyle.server.engine.modelfile import load_model
    assert load_model(str(out / "demo.safetensors")).hash.startswith(model_hash)   # the model stays with the demo
    for number in FRAMES:
        plate = read_frame(examples.PLATE.replace("####", f"{number:04d}"))
        result = read_frame(str(out / "stylized" / f"walk.{number:04d}.exr"))
        assert result.channels == ["R", "G", "B"] and result.channel_formats == ["half"] * 3
        assert result.data_window == result.display_window == (0, 0, WIDTH, HEIGHT)
        assert result.attributes["shotstyle/model"].startswith(model_hash)
        assert result.attributes["shotstyle/mix"] == 1.0
        assert plate.colourspace == "sRGB" and result.colourspace == "ACEScg"   # EXRs hold scene-linear values
        assert result.attributes["colorInteropID"] == "lin_ap1_scene"
        result = result.with_rgb(convert(result.rgb(), "ACEScg", "sRGB"))       # compared as the plate is
        change = np.abs(result.rgb() - plate.rgb()).mean()
        assert change > 0.02, f"frame {number}: the look barely changed ({change:.4f})"
        correlation = np.corrcoef(luminance_gradient(plate.rgb()), luminance_gradient(result.rgb()))[0, 1]
        assert correlation > 0.9, f"frame {number}: the picture's structure was lost ({correlation:.3f})"


def test_contact_sheet_shows_plates_beside_their_results(demo_run):
    from shotstyle.server.engine.colour import to_display
    out, _, _ = demo_run
    sheet = srgb_pixels(str(out / "contact_sheet.png"))
    assert sheet.shape == (4 * HEIGHT + 3 * demo.GAP, 2 * WIDTH + demo.GAP, 3)
    for row, number in enumerate(SHEET_FRAMES):
        top = row * (HEIGHT + demo.GAP)
        left, right = sheet[top:top + HEIGHT, :WIDTH], sheet[top:top + HEIGHT, WIDTH + demo.GAP:]
        plate = to_display(read_frame(examples.PLATE.replace("####", f"{number:04d}")).rgb(), "sRGB")
        result = to_display(read_frame(str(out / "stylized" / f"walk.{number:04d}.exr")).rgb(), "ACEScg")
        assert np.abs(left - np.clip(plate, 0, 1)).max() <= 1 / 255 + 1e-6, f"row {row}: not frame {number}'s plate"
        assert np.abs(right - np.clip(result, 0, 1)).max() <= 1 / 255 + 1e-6, f"row {row}: not frame {number}"
        assert np.all(sheet[top:top + HEIGHT, WIDTH:WIDTH + demo.GAP] == 1.0)


def test_animation_plays_every_frame_before_and_after(demo_run):
    from shotstyle.server.engine.colour import to_display
    out, _, _ = demo_run
    path = str(out / "before_after.gif")
    reader = oiio.ImageInput.open(path)
    count = 0
    while reader.seek_subimage(count, 0):
        assert (reader.spec().width, reader.spec().height) == (2 * WIDTH + demo.GAP, HEIGHT)
        count += 1
    assert reader.seek_subimage(0, 0)
    rate = reader.spec().getattribute("FramesPerSecond")  # GIF delays are in 1/100 s: 12 fps is stored as 12.5
    assert abs(rate[0] / rate[1] - examples.FRAMES_PER_SECOND) < 1
    reader.close()
    assert count == len(FRAMES)
    first = srgb_pixels(path)  # a palette of 256 colours: close to the pictures, not equal
    plate = to_display(read_frame(examples.PLATE.replace("####", "0001")).rgb(), "sRGB")
    result = to_display(read_frame(str(out / "stylized" / "walk.0001.exr")).rgb(), "ACEScg")
    assert np.abs(first[:, :WIDTH] - np.clip(plate, 0, 1)).mean() < 0.03
    assert np.abs(first[:, WIDTH + demo.GAP:] - np.clip(result, 0, 1)).mean() < 0.03


def test_plate_without_style_and_missing_frames_are_usage_errors(tmp_path, capsys):
    from shotstyle.cli.main import main

    assert main(["demo", "--plate", examples.PLATE, "-o", str(tmp_path)]) == 2
    assert "give both --plate and --style" in capsys.readouterr().err
    assert main(["demo", "--plate", str(tmp_path / "shot.####.exr"), "--style", examples.STYLE,
                 "-o", str(tmp_path)]) == 3
    assert "no frames of this sequence on disk" in capsys.readouterr().err
    assert main(["demo", "--plate", examples.PLATE, "--style", str(tmp_path / "nope.jpg"), "-o", str(tmp_path)]) == 3
    assert "nope.jpg: no such file" in capsys.readouterr().err


def test_previews_of_large_plates_are_scaled_down():
    wide = Frame(np.full((540, 1920, 3), 0.5, np.float32), ["R", "G", "B"], ["half"] * 3, (0, 0, 1920, 540),
                 (0, 0, 1920, 540), {}, colourspace="sRGB")
    preview = demo._display(wide)
    assert preview.shape == (180, review.PREVIEW_WIDTH, 3)
    from shotstyle.server.engine.colour import to_display
    assert np.abs(preview - to_display(wide.pixels[:1, :1], "sRGB")).max() <= 1e-3


def test_review_pictures_roll_highlights_off_through_the_display_view(tmp_path):
    """Scene-linear 1, 2, 4, 8 and 16 (a sky, a lamp, a specular) stay apart in a review PNG: the
    display view tone-maps them below the display's peak, where a plain sRGB encode clips all to 1."""
    from shotstyle.server.engine.colour import convert

    linear = np.array([[[0.18] * 3, [1.0] * 3, [2.0] * 3, [4.0] * 3, [8.0] * 3, [16.0] * 3]], np.float32)
    assert np.all(np.clip(convert(linear, "ACEScg", "sRGB"), 0, 1)[0, 1:] == 1.0)   # what it was
    path = str(tmp_path / "ramp.png")
    review.write_png(review.display_rgb(linear, "ACEScg"), path)
    written = srgb_pixels(path)[0, :, 0]
    assert np.all(np.diff(written) >= 2 / 255), written            # every step still tells apart in 8 bits
    assert written[-1] < 1.0 and written[0] > 0.2                  # no flat white; mid grey not crushed
