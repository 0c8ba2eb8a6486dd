"""A model's grade exported as a LUT: the .cube through OpenColorIO's own processor equals the
model's global part, the OCIO look snippet parses and does the same on scene-linear ACEScg,
`shotstyle export-lut` writes both files and reports, and the server hands them out."""

from __future__ import annotations

import json

import numpy as np
import PyOpenColorIO as ocio
import pytest
import torch

from serverproc import ServerProcess
from shotstyle.cli.main import main as cli
from shotstyle.media.frame import Frame
from shotstyle.media.writing import write_frame
from shotstyle.plugin.client import Client, ServerError
from shotstyle.server.engine.colour import from_working, to_working
from shotstyle.server.engine.colourmath import delta_e_2000, working_to_lab
from shotstyle.server.engine.lut import cube_text, export_look
from shotstyle.server.engine.modelfile import save_model
from shotstyle.server.engine.training import TrainConfig, train

from test_losses import scene


def as_array(image: torch.Tensor) -> np.ndarray:
    return image[0].permute(1, 2, 0).numpy().copy()


@pytest.fixture(scope="module")
def trained():
    """(model, keyframe): a small look model trained on a warm scene towards a cool style."""
    keyframe = as_array(scene(72, 96))
    model = train([keyframe], as_array(scene(64, 96, warm=False)),
                  TrainConfig(loss="look", steps=6, resolution=96))
    return model, keyframe


def cube_rows(text: str) -> list[str]:
    return [line for line in text.splitlines() if line[:1].isdigit() or line[:1] == "-"]


def graded(model, image: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return as_array(model.network.grade(torch.from_numpy(image).permute(2, 0, 1)[None]))


def max_delta_e(a: np.ndarray, b: np.ndarray) -> float:
    lab = [working_to_lab(torch.from_numpy(np.ascontiguousarray(x)).permute(2, 0, 1)[None]) for x in (a, b)]
    return float(delta_e_2000(*lab).max())


@pytest.mark.parametrize("size", [33, 65])
def test_the_cube_through_ocio_equals_the_models_grade(trained, tmp_path, size):
    model, keyframe = trained
    path = tmp_path / "look.cube"
    path.write_text(export_look(model, "look.cube", size).lut)
    transform = ocio.FileTransform(src=str(path), interpolation=ocio.INTERP_LINEAR)
    processor = ocio.Config.CreateRaw().getProcessor(transform).getDefaultCPUProcessor()
    through_ocio = keyframe.copy()
    processor.applyRGB(through_ocio)
    ours = graded(model, keyframe)
    assert np.abs(ours - keyframe).max() > 0.02          # the grade does change the keyframe
    assert max_delta_e(through_ocio, ours) < 0.5
    assert f"LUT_3D_SIZE {size}" in path.read_text().splitlines()
    assert len(cube_rows(path.read_text())) == size ** 3


def test_the_ocio_look_snippet_parses_and_grades_scene_linear_plates(trained, tmp_path):
    model, keyframe = trained
    look = export_look(model, "shot.cube")
    (tmp_path / "shot.cube").write_text(look.lut)
    base = ocio.Config.CreateFromFile("ocio://default").serialize()
    entries = look.ocio.split("looks:\n", 1)[1].split("\n\n", 1)[0]
    config = ocio.Config.CreateFromStream(base.replace("looks:\n", "looks:\n" + entries + "\n", 1))
    config.setSearchPath(str(tmp_path))
    config.validate()
    name = next(line.split("name: ")[1] for line in entries.splitlines() if "name: " in line)
    processor = config.getProcessor(ocio.LookTransform(src="ACEScg", dst="ACEScg", looks=name))
    linear = from_working(keyframe, "ACEScg")
    through_look = linear.copy()
    processor.getDefaultCPUProcessor().applyRGB(through_look)
    expected = graded(model, keyframe)
    assert max_delta_e(to_working(through_look, "ACEScg")[0], expected) < 0.5
    assert np.abs(through_look - from_working(expected, "ACEScg")).max() < 0.005   # the bound, linear
    assert "# Interpolation: trilinear" in look.lut


def test_the_clf_carries_its_shaper_and_reproduces_the_render_on_scene_linear_plates(trained, tmp_path):
    """OpenColorIO loads the .clf (what `oiiotool --ociofiletransform look.clf` runs) and, from
    scene-linear ACEScg to ACEScg with no colour space around it, reproduces the model's grade
    within 0.005 linear; the look snippet applies it in ACEScg."""
    model, keyframe = trained
    look = export_look(model, "shot.clf")
    path = tmp_path / "shot.clf"
    path.write_text(look.lut)
    assert 'interpolation="trilinear"' in look.lut and 'style="cameraLinToLog"' in look.lut
    assert "process_space: ACEScg" in look.ocio and "src: shot.clf" in look.ocio
    linear = from_working(keyframe, "ACEScg")
    expected = from_working(graded(model, keyframe), "ACEScg")
    assert np.abs(expected - linear).max() > 0.02                     # the grade does change the keyframe
    for interpolation in (ocio.INTERP_LINEAR, ocio.INTERP_DEFAULT):   # stated in the file: honoured by default
        transform = ocio.FileTransform(src=str(path), interpolation=interpolation)
        through_ocio = linear.copy()
        ocio.Config.CreateRaw().getProcessor(transform).getDefaultCPUProcessor().applyRGB(through_ocio)
        assert np.abs(through_ocio - expected).max() < 0.005, interpolation


def test_a_65_cube_is_the_33_lattice_exactly_and_other_sizes_are_refused(trained):
    model, _ = trained
    lut = model.network.grade.lut.detach()
    fine, coarse = (np.loadtxt(cube_rows(cube_text(lut, size, "x"))) for size in (65, 33))
    # Every other node of the 65 lattice is a node of the 33 one (red fastest).
    assert np.abs(fine.reshape(65, 65, 65, 3)[::2, ::2, ::2] - coarse.reshape(33, 33, 33, 3)).max() < 2e-6
    with pytest.raises(ValueError, match="cube size 40"):
        cube_text(lut, 40, "x")


def test_the_training_report_says_how_much_of_the_effect_the_lut_carries(trained):
    model, keyframe = trained
    report = model.metadata["lut_report"]
    assert report["full_vs_plate_mean"] > 1.0 and 0 <= report["lut_vs_full_mean"] < report["full_vs_plate_mean"]
    assert report["reproduced"] == pytest.approx(1 - report["lut_vs_full_mean"] / report["full_vs_plate_mean"],
                                                 abs=2e-3)
    assert "reproduces" in export_look(model, "a.cube").describe()


def test_export_lut_command_writes_the_cube_and_the_look_and_measures_given_keyframes(trained, tmp_path, capsys):
    model, keyframe = trained
    save_model(model, str(tmp_path / "shot.safetensors"))
    assert cli(["export-lut", str(tmp_path / "shot.safetensors"), "-o", str(tmp_path / "out" / "shot.lut")]) == 2
    assert "shot.lut: name the LUT file .cube" in capsys.readouterr().err
    assert cli(["export-lut", str(tmp_path / "shot.safetensors"), "-o", str(tmp_path / "out" / "shot.cube")]) == 0
    printed = capsys.readouterr().out    # the missing folder was made
    assert "training keyframes at 96 px" in printed and "reproduces" in printed and "trilinear" in printed
    assert cli(["export-lut", str(tmp_path / "shot.safetensors"), "-o", str(tmp_path / "out" / "graded.clf")]) == 0
    assert "ACEScg in and out" in capsys.readouterr().out
    assert "src: graded.clf" in (tmp_path / "out" / "graded.ocio.yaml").read_text()
    (tmp_path / "file").write_text("")
    assert cli(["export-lut", str(tmp_path / "shot.safetensors"), "-o", str(tmp_path / "file" / "shot.cube")]) == 7
    assert f"cannot make the output folder {tmp_path / 'file'}" in capsys.readouterr().err
    assert (tmp_path / "out" / "shot.cube").read_text().count("\n") > 33 ** 3
    assert "src: shot.cube" in (tmp_path / "out" / "shot.ocio.yaml").read_text()
    exr = tmp_path / "key.exr"
    write_frame(str(exr), Frame(pixels=from_working(keyframe, "ACEScg"), channels=["R", "G", "B"],
                                channel_formats=["float"] * 3, data_window=(0, 0, 96, 72),
                                display_window=(0, 0, 96, 72), attributes={}, colourspace="ACEScg"))
    assert cli(["export-lut", str(tmp_path / "shot.safetensors"), "-o", str(tmp_path / "out" / "shot.cube"),
                "--keyframe", str(exr), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["where"].startswith("1 given frame") and report["full_vs_plate_mean"] > 1.0
    assert cli(["export-lut", "no-such-model", "-o", str(tmp_path / "x.cube")]) == 4
    assert "no-such-model: no such model file, and no model of that name in the store" in capsys.readouterr().err


def test_the_server_hands_out_a_stored_models_lut(trained, tmp_path):
    model, _ = trained
    with ServerProcess(tmp_path / "server") as server, Client(server.address, timeout=120) as client:
        save_model(model, str(server.models / "shot.safetensors"))
        result = client.export_lut("shot", str(tmp_path / "graded.cube"), size=65)
        assert result["cube"] == export_look(model, "shot.cube", 65).lut.encode()
        assert result["report"] == model.metadata["lut_report"] and "reproduces" in result["report_text"]
        assert (tmp_path / "graded.cube").read_bytes() == result["cube"]
        assert "src: graded.cube" in (tmp_path / "graded.ocio.yaml").read_text()
        with pytest.raises(ServerError) as raised:
            client.export_lut("shot", size=40)
        assert raised.value.code == "bad_argument" and "[17, 33, 65]" in str(raised.value)
        with pytest.raises(ServerError) as raised:
            client.export_lut("nothing")
        assert raised.value.code == "unknown_model"
