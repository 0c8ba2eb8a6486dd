"""No silent wrong frames: a render re-renders whatever changed, and its EXRs hold honest, tagged colour.

A frame's identity (model, mix, colour spaces, compression, the input frame) is recorded in each
output and compared on resume; `--force` and `--no-overwrite` are the two explicit choices. EXR
outputs are scene-linear (ACEScg unless the plate already was linear) and say so in their header;
display-encoded outputs need `--allow-display-output`, and then resume too. Small sRGB JPEG plates
(tests/testfiles.py) and a tiny untrained network stand in for a shot and its model.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from shotstyle.cli.main import main
from shotstyle.media.metadata import COLOURSPACE_ATTRIBUTE, MIX_ATTRIBUTE
from shotstyle.media.reading import read_frame
from shotstyle.plugin.exitcodes import ExitCode
from testfiles import paths_of, write_image
from tolerances import LOG_DECODE_GAIN, accumulation_steps, half_rounding, rounding_tolerance

IDENTITY = "shotstyle/identity"   # the header attribute holding a rendered frame's identity (JSON)


@pytest.fixture
def plates(plate_clip, tmp_path) -> str:
    """Frames 1-3 of the made clip, copied so a test may change them."""
    folder = tmp_path / "plates"
    folder.mkdir()
    for path in paths_of(plate_clip, (1, 2, 3)):
        shutil.copy2(path, folder)
    return str(folder / os.path.basename(plate_clip))


def render(model: str, source: str, out: Path, *extra: str, frames: str = "1-3") -> int:
    return main(["render", "--model", model, "--in", source, "--out", str(out / "style.####.exr"),
                 "--frames", frames, "--in-process", "--threads", "1", "--json-progress", *extra])


def records(capsys) -> list[dict]:
    return [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]


def statuses(found: list[dict]) -> dict[int, str]:
    return {r["frame"]: r["status"] for r in found if r["event"] == "frame"}


def summary(found: list[dict]) -> dict:
    (last,) = [r for r in found if r["event"] == "summary"]
    return last


def test_a_new_mix_rerenders_every_frame_and_the_summary_says_why(tiny_model, plates, tmp_path, capsys):
    out = tmp_path / "out"
    assert render(tiny_model, plates, out) == 0
    capsys.readouterr()
    assert render(tiny_model, plates, out, "--mix", "0.5") == 0
    found = records(capsys)
    assert statuses(found) == {1: "rendered", 2: "rendered", 3: "rendered"}
    assert summary(found)["replaced"] == {"mix 1 -> 0.5": 3}
    assert any("re-rendering" in r.get("message", "") and "mix 1 -> 0.5" in r["message"] for r in found)
    frame = read_frame(str(out / "style.0002.exr"))
    assert frame.attributes[MIX_ATTRIBUTE] == 0.5 and json.loads(frame.attributes[IDENTITY])["mix"] == 0.5
    assert render(tiny_model, plates, out, "--mix", "0.5") == 0  # now complete
    assert set(statuses(records(capsys)).values()) == {"skipped"}


def test_an_updated_plate_frame_is_rerendered_and_only_it(tiny_model, plates, tmp_path, capsys):
    out = tmp_path / "out"
    assert render(tiny_model, plates, out) == 0
    capsys.readouterr()
    before = read_frame(str(out / "style.0002.exr")).pixels
    plate = paths_of(plates, [2])[0]
    shutil.copyfile(paths_of(plates, [3])[0], plate)   # the comp team delivered a new frame 2
    assert render(tiny_model, plates, out) == 0
    found = records(capsys)
    assert statuses(found) == {1: "skipped", 2: "rendered", 3: "skipped"}
    assert summary(found)["replaced"] == {"input frame changed": 1}
    assert not np.array_equal(read_frame(str(out / "style.0002.exr")).pixels, before)


def test_verify_pixels_compares_plates_by_content_not_by_time(tiny_model, plates, tmp_path, capsys):
    out = tmp_path / "out"
    assert render(tiny_model, plates, out) == 0
    plate = paths_of(plates, [1])[0]
    os.utime(plate, ns=(1_000_000_000, 1_000_000_000))   # copied with other times, same bytes
    capsys.readouterr()
    assert render(tiny_model, plates, out, "--verify-pixels") == 0
    assert statuses(records(capsys)) == {1: "skipped", 2: "skipped", 3: "skipped"}
    assert render(tiny_model, plates, out) == 0             # by size and time: it may have changed
    assert statuses(records(capsys))[1] == "rendered"


def test_force_rerenders_everything_and_no_overwrite_refuses(tiny_model, plates, tmp_path, capsys):
    out = tmp_path / "out"
    assert render(tiny_model, plates, out) == 0
    capsys.readouterr()
    assert render(tiny_model, plates, out, "--force") == 0
    found = records(capsys)
    assert statuses(found) == {1: "rendered", 2: "rendered", 3: "rendered"}
    assert summary(found)["replaced"] == {"--force": 3}
    times = {p.name: p.stat().st_mtime_ns for p in out.glob("style.*.exr")}
    assert render(tiny_model, plates, out, "--mix", "0.25", "--no-overwrite") == ExitCode.USAGE
    message = " ".join(r.get("message", "") for r in records(capsys))
    assert "--no-overwrite" in message and "1 (mix 1 -> 0.25)" in message and "nothing rendered" in message
    assert {p.name: p.stat().st_mtime_ns for p in out.glob("style.*.exr")} == times


def test_exr_from_an_srgb_plate_is_scene_linear_acescg_and_tagged(tiny_model, plates, tmp_path, capsys):
    """Nuke and Resolve read EXR as scene-linear: an 8-bit sRGB plate's result must not stay sRGB-encoded."""
    out = tmp_path / "out"
    assert render(tiny_model, plates, out, "--mix", "0", frames="1") == 0
    written = read_frame(str(out / "style.0001.exr"))
    assert written.attributes[COLOURSPACE_ATTRIBUTE] == "ACEScg"
    assert written.attributes["colorInteropID"] == "lin_ap1_scene"
    np.testing.assert_allclose(written.attributes["chromaticities"],
                               (0.713, 0.293, 0.165, 0.830, 0.128, 0.044, 0.32168, 0.33767), atol=1e-6)
    import torch
    from shotstyle.server.engine.colourtensors import from_working_tensor, to_working_tensor
    plate = read_frame(paths_of(plates, [1])[0])
    # Mix 0: the plate itself, in ACEScg, by the colour functions the render uses (float32, exact
    # at mix 0: plate + 0·(result − plate)). Only the order of the float32 work may differ (a kernel's
    # vector body or tail: the ~6 ops of sRGB → ACEScct → ACEScg, each within 2 ulps, the decode
    # multiplying them by LOG_DECODE_GAIN), then one rounding to half.
    expected = from_working_tensor(to_working_tensor(torch.from_numpy(plate.rgb()), "sRGB"), "ACEScg").numpy()
    tolerance = half_rounding(expected) + rounding_tolerance(np.abs(expected), 6 * 2 * LOG_DECODE_GAIN)
    assert np.all(np.abs(written.rgb() - expected) <= tolerance)
    assert written.rgb().max() < 1.01 and not np.allclose(written.rgb(), plate.rgb(), atol=0.02)
    # Another space on request; the identity changed, so the frame is made again.
    capsys.readouterr()
    assert render(tiny_model, plates, out, "--mix", "0", "--out-colourspace", "lin_rec709", frames="1") == 0
    assert summary(records(capsys))["replaced"] == {"output colour space ACEScg -> Linear Rec.709 (sRGB)": 1}
    written = read_frame(str(out / "style.0001.exr"))
    assert written.attributes["colorInteropID"] == "lin_rec709_scene"


def test_a_linear_exr_plate_keeps_its_space_bit_exact_at_mix_0(tiny_model, tmp_path):
    rgb = np.random.default_rng(3).uniform(0, 4, (20, 30, 3)).astype(np.float32)
    source = tmp_path / "lin"
    source.mkdir()
    write_image(source / "p.0001.exr", rgb, ("R", "G", "B"), "half", display=(0, 0, 30, 20),
                attributes={COLOURSPACE_ATTRIBUTE: ("string", "lin_rec709")})
    assert render(tiny_model, str(source / "p.####.exr"), tmp_path / "out", "--mix", "0", frames="1") == 0
    written = read_frame(str(tmp_path / "out" / "style.0001.exr"))
    assert written.attributes.get("colorInteropID") == "lin_rec709_scene"
    assert written.attributes[COLOURSPACE_ATTRIBUTE] == "Linear Rec.709 (sRGB)"
    np.testing.assert_array_equal(written.rgb(), read_frame(str(source / "p.0001.exr")).rgb())


def test_display_output_is_refused_unless_asked_for_and_then_resumes(tiny_model, plates, tmp_path, capsys):
    jpeg = str(tmp_path / "review" / "style.####.jpg")
    argv = ["render", "--model", tiny_model, "--in", plates, "--out", jpeg, "--frames", "1-2", "--in-process",
            "--threads", "1", "--json-progress"]
    assert main(argv) == ExitCode.USAGE
    assert "--allow-display-output" in " ".join(r.get("message", "") for r in records(capsys))
    assert not (tmp_path / "review").exists()
    assert main([*argv, "--allow-display-output"]) == 0
    assert statuses(records(capsys)) == {1: "rendered", 2: "rendered"}
    assert main([*argv, "--allow-display-output"]) == 0
    assert statuses(records(capsys)) == {1: "skipped", 2: "skipped"}


def test_through_a_server_the_output_is_scene_linear_and_resumes(tiny_model, plates, tmp_path, capsys):
    from serverproc import ServerProcess
    out = tmp_path / "out"
    with ServerProcess(tmp_path / "server") as server:
        argv = ["render", "--model", tiny_model, "--in", plates, "--out", str(out / "style.####.exr"),
                "--frames", "1-2", "--server", server.address, "--json-progress"]
        assert main(argv) == 0, server.log()
        assert statuses(records(capsys)) == {1: "rendered", 2: "rendered"}
        written = read_frame(str(out / "style.0001.exr"))
        assert written.attributes[COLOURSPACE_ATTRIBUTE] == "ACEScg"
        assert written.attributes["colorInteropID"] == "lin_ap1_scene"
        assert main(argv) == 0
        assert statuses(records(capsys)) == {1: "skipped", 2: "skipped"}
        assert main([*argv, "--mix", "0.5"]) == 0
        assert summary(records(capsys))["replaced"] == {"mix 1 -> 0.5": 2}


def test_every_view_of_a_stereo_exr_is_stylized(tmp_path):
    """A single-part stereo EXR (as Nuke writes one): the left view must not pass through unchanged."""
    from serverproc import save_tiny_model
    changing = save_tiny_model(tmp_path / "model")   # randomised weights: it visibly changes pixels
    channels = ("R", "G", "B", "A", "left.R", "left.G", "left.B", "left.A", "left.Z", "forward.left.u")
    pixels = np.random.default_rng(4).uniform(0.05, 1, (16, 24, len(channels))).astype(np.float32)
    pixels[..., 3] = pixels[..., 7] = 1.0
    pixels[..., 4:7] = pixels[..., 0:3]        # both eyes see the same picture here
    source = tmp_path / "stereo"
    source.mkdir()
    write_image(source / "s.0001.exr", pixels, channels, display=(0, 0, 24, 16),
                attributes={"multiView": ("string[2]", ("right", "left"))})
    assert render(changing, str(source / "s.####.exr"), tmp_path / "out", frames="1") == 0
    plate = read_frame(str(source / "s.0001.exr"))
    written = read_frame(str(tmp_path / "out" / "style.0001.exr"))

    def channels_of(frame, names):  # files may store channels in another order
        return frame.pixels[..., [frame.channels.index(n) for n in names]]
    right, left = channels_of(written, ("R", "G", "B")), channels_of(written, ("left.R", "left.G", "left.B"))
    assert np.abs(right - channels_of(plate, ("R", "G", "B"))).mean() > 0.01    # stylized...
    # ...and the left eye alike: the same pixels through the same network, its sums perhaps in another
    # order (another place in the batch), each a code-value error the decode to linear multiplies by
    # LOG_DECODE_GAIN; then each eye rounded to half once.
    from shotstyle.server.engine.modelfile import load_model
    steps = accumulation_steps(load_model(changing).network)
    tolerance = 2 * half_rounding(right) + rounding_tolerance(np.abs(right), LOG_DECODE_GAIN * steps)
    assert np.all(np.abs(left - right) <= tolerance)
    others = ("A", "left.A", "left.Z", "forward.left.u")
    np.testing.assert_array_equal(channels_of(written, others), channels_of(plate, others))
    assert [v.name for v in written.views()] == ["right", "left"]
