"""`shotstyle submit`: Deadline CommandLine job files and OpenCue CJSL specs, key by key.

The expected keys come from the managers' documentation: Deadline's manual submission page
(job info ``Plugin``/``Frames``/``ChunkSize``/``OutputDirectory0``..., CommandLine plugin info
``Executable``/``Arguments``/``StartupDirectory``/``ShellExecute``/``SingleFramesOnly``, tokens
``<STARTFRAME>``/``<ENDFRAME>``) and OpenCue's cjsl-1.14.dtd, whose content models for the
elements we write are checked as regular expressions over the child tags.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import stat
import xml.etree.ElementTree as ET

import pytest

from shotstyle.cli import render, submit
from shotstyle.cli.main import main

# Content models from OpenCue cuebot/src/main/resources/public/dtd/cjsl-1.14.dtd (order matters).
CJSL_CONTENT = {
    "spec": r"(facility )?(dept )?show shot user (email )?(uid )?(job )*(depends )*",
    "job": r"(paused )?(priority )?(maxretries )?(maxcores )?(maxgpus )?(autoeat )?(localbook )?(os )?(env )*"
           r"(layers )?",
    "layers": r"(layer )+",
    "layer": r"cmd range chunk (cores )?(threadable )?(memory )?(gpus )?(gpu )?(gpu_memory )?(timeout )?"
             r"(timeout_llu )?(tags )?(limits )?(env )*(services )?(outputs )*",
    "services": r"(service )+",
    "outputs": r"(output )*",
    "depends": r"(depend )*",
    "depend": r"depjob (deplayer )?(depframe )?onjob (onlayer )?(onframe )?",
}


def key_values(path) -> dict[str, str]:
    lines = [line for line in open(path, encoding="utf-8").read().splitlines() if line]
    assert all("=" in line for line in lines), lines
    return dict(line.split("=", 1) for line in lines)


def render_args(argv: list[str]):
    """Parse a generated render command line with the real `shotstyle render` parser."""
    import argparse
    parser = argparse.ArgumentParser()
    render.configure(parser)
    return parser.parse_args(argv[argv.index("render") + 1:])


@pytest.fixture
def shot_args(tmp_path):
    return ["--model", str(tmp_path / "look v2.safetensors"), "--in", str(tmp_path / "plates/sh010.####.exr"),
            "--out", str(tmp_path / "out/sh010_style.%04d.exr"), "--frames", "1001-1100"]


def test_deadline_job_and_plugin_info_keys(tmp_path, shot_args):
    jobs = tmp_path / "jobs"
    code = main(["submit", "deadline", *shot_args, "--name", "sh010", "--chunk", "10", "--pool", "gpu",
                 "--group", "cuda", "--priority", "70", "--job-name", "showA_style", "--mix", "0.8",
                 "--server", "tcp://gpu-01:5599", "--suspended", "-o", str(jobs),
                 "--executable", "/opt/shotstyle/bin/shotstyle"])
    assert code == 0
    job = key_values(jobs / "sh010.job_info.job")
    assert job["Plugin"] == "CommandLine"
    assert job["Name"] == "showA_style - sh010"
    assert job["BatchName"] == "showA_style"
    assert job["Frames"] == "1001-1100"
    assert job["ChunkSize"] == "10"
    assert job["Pool"] == "gpu"
    assert job["Group"] == "cuda"
    assert job["Priority"] == "70"
    assert job["InitialStatus"] == "Suspended"
    assert job["OutputDirectory0"] == str(tmp_path / "out")
    assert job["OutputFilename0"] == "sh010_style.####.exr"
    plugin = key_values(jobs / "sh010.plugin_info.job")
    assert set(plugin) == {"Executable", "Arguments", "StartupDirectory", "ShellExecute", "SingleFramesOnly"}
    assert plugin["Executable"] == "/opt/shotstyle/bin/shotstyle"
    assert plugin["ShellExecute"] == "False"
    assert plugin["SingleFramesOnly"] == "False"
    # The output folder is made by the render; Deadline refuses a startup folder that does not
    # exist yet, so the first existing one of output, plates, model folders (here the model's).
    assert not (tmp_path / "out").exists() and plugin["StartupDirectory"] == str(tmp_path)
    assert "--frames <STARTFRAME>-<ENDFRAME>" in plugin["Arguments"]
    # What a Deadline worker runs for the task 1011-1020: the paths survive quoting (a space in one).
    task = plugin["Arguments"].replace("<STARTFRAME>", "1011").replace("<ENDFRAME>", "1020")
    parsed = render_args(shlex.split(task))
    assert parsed.model == str(tmp_path / "look v2.safetensors")
    assert parsed.input == str(tmp_path / "plates/sh010.####.exr")
    assert parsed.mix == 0.8 and parsed.server == "tcp://gpu-01:5599"
    assert render.frames_from_args(parsed) == list(range(1011, 1021))


def test_deadline_chunk_of_a_stepped_range_keeps_the_step(tmp_path, shot_args):
    shot_args[-1] = "1001-1100x2"
    assert main(["submit", "deadline", *shot_args, "--name", "sh010", "-o", str(tmp_path / "j")]) == 0
    job = key_values(tmp_path / "j/sh010.job_info.job")
    assert job["Frames"] == "1001-1100x2"
    arguments = key_values(tmp_path / "j/sh010.plugin_info.job")["Arguments"]
    task = arguments.replace("<STARTFRAME>", "1001").replace("<ENDFRAME>", "1019")
    assert render.frames_from_args(render_args(shlex.split(task))) == list(range(1001, 1020, 2))


def test_deadline_submit_hands_each_job_to_deadlinecommand(tmp_path, shot_args):
    log = tmp_path / "calls.txt"
    fake = tmp_path / "deadlinecommand"
    fake.write_text(f"#!/bin/sh\necho \"$@\" >> {log}\necho Result=Success\necho JobID=65f0c0ffee\n")
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    shots = tmp_path / "shots.json"
    shots.write_text(json.dumps([
        {"name": "sh010", "model": "m.safetensors", "in": "a.####.exr", "out": "o/a.####.exr", "frames": "1-10"},
        {"name": "sh020", "model": "m.safetensors", "in": "b.####.exr", "out": "o/b.####.exr", "frames": "5-9"},
    ]))
    code = main(["submit", "deadline", "--shots", str(shots), "-o", str(tmp_path / "jobs"), "--submit",
                 "--deadlinecommand", str(fake)])
    assert code == 0
    calls = log.read_text().splitlines()
    assert calls == [f"{tmp_path}/jobs/sh010.job_info.job {tmp_path}/jobs/sh010.plugin_info.job",
                     f"{tmp_path}/jobs/sh020.job_info.job {tmp_path}/jobs/sh020.plugin_info.job"]
    assert key_values(tmp_path / "jobs/sh020.job_info.job")["Frames"] == "5-9"


def test_deadline_refusal_and_absence_exit_5(tmp_path, shot_args, capsys):
    fake = tmp_path / "deadlinecommand"
    fake.write_text("#!/bin/sh\necho 'Error: could not connect to the repository'\nexit 1\n")
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    out = str(tmp_path / "j")
    assert main(["submit", "deadline", *shot_args, "-o", out, "--submit", "--deadlinecommand", str(fake)]) == 5
    assert "could not connect to the repository" in capsys.readouterr().err
    missing = str(tmp_path / "nowhere/deadlinecommand")
    assert main(["submit", "deadline", *shot_args, "-o", out, "--submit", "--deadlinecommand", missing]) == 5


def _child_tags(element: ET.Element) -> str:
    return "".join(child.tag + " " for child in element)


def test_opencue_spec_follows_cjsl_with_one_layer_per_shot(tmp_path):
    shots = tmp_path / "shots.json"
    shots.write_text(json.dumps([
        {"name": "sh010", "model": "/m/a.safetensors", "in": "/p/sh010.####.exr", "out": "/o/sh010.####.exr",
         "frames": "1001-1050"},
        {"name": "sh 020", "model": "/m/b.safetensors", "in": "/p/sh020.$F4.exr", "out": "/o/sh020.$F4.exr",
         "frames": "1,5,9-12", "mix": 0.5},
    ]))
    code = main(["submit", "opencue", "--shots", str(shots), "--show", "showA", "--user", "td", "--chunk", "5",
                 "--job-name", "showA_style", "--gpus", "1", "--gpu-memory", "8g", "--memory", "6g",
                 "-o", str(tmp_path / "jobs"), "--executable", "/opt/ss/bin/shotstyle"])
    assert code == 0
    text = (tmp_path / "jobs/showA_style.cjsl.xml").read_text()
    assert text.startswith('<?xml version="1.0"?>\n<!DOCTYPE spec PUBLIC "SPI Cue  Specification Language" '
                           '"http://localhost:8080/spcue/dtd/cjsl-1.14.dtd">')
    spec = ET.fromstring(text.split("\n", 2)[2])
    for element in spec.iter():
        if element.tag in CJSL_CONTENT:
            assert re.fullmatch(CJSL_CONTENT[element.tag], _child_tags(element)), element.tag
    assert [spec.findtext(t) for t in ("facility", "show", "shot", "user")] == ["local", "showA", "shotstyle", "td"]
    job = spec.find("job")
    assert job.get("name") == "showA_style"
    assert job.findtext("paused") == "False"
    layers = job.findall("layers/layer")
    assert [(layer.get("name"), layer.get("type")) for layer in layers] == [("sh010", "Render"), ("sh_020", "Render")]
    first, second = layers
    assert first.findtext("range") == "1001-1050" and first.findtext("chunk") == "5"
    assert second.findtext("range") == "1,5,9-12"
    assert first.findtext("memory") == "6g" and first.findtext("gpus") == "1"
    assert first.findtext("gpu_memory") == "8g"
    assert first.findtext("services/service") == "shell"
    assert first.find("outputs/output").text == "/o/sh010.####.exr"
    # cuebot substitutes the chunk's bounds; the shell line then parses as our render command.
    command = first.findtext("cmd")
    assert "#FRAME_START#-#FRAME_END#" in command
    argv = shlex.split(command.replace("#FRAME_START#", "1006").replace("#FRAME_END#", "1010"))
    assert argv[0] == "/opt/ss/bin/shotstyle"
    assert render.frames_from_args(render_args(argv)) == list(range(1006, 1011))
    # A list range: a chunk spanning 1-9 renders only the listed frames; `$F4` survives the shell.
    argv = shlex.split(second.findtext("cmd").replace("#FRAME_START#", "1").replace("#FRAME_END#", "9"))
    parsed = render_args(argv)
    assert render.frames_from_args(parsed) == [1, 5, 9]
    assert parsed.input == "/p/sh020.$F4.exr" and parsed.mix == 0.5


def test_opencue_submit_without_pycue_says_so(tmp_path, shot_args, capsys, monkeypatch):
    monkeypatch.setitem(__import__("sys").modules, "opencue", None)
    code = main(["submit", "opencue", *shot_args, "--show", "showA", "-o", str(tmp_path / "j"), "--submit"])
    assert code == 5
    assert "OpenCue Python API" in capsys.readouterr().err
    assert os.path.isfile(tmp_path / "j/shotstyle.cjsl.xml")


@pytest.mark.parametrize("bad, message", [
    (["--model", "m", "--in", "a.####.exr", "--out", "b.exr", "--frames", "1-2"], "not a sequence pattern"),
    (["--model", "m", "--in", "a.####.exr", "--out", "b.####.exr", "--frames", "9-1"], "ends before it starts"),
    (["--model", "m", "--in", "a.####.exr", "--out", "./a.$F4.exr", "--frames", "1-2"], "would replace the input"),
    (["--model", "m", "--in", "a.####.exr"], "together"),
    (["--model", "m", "--in", "a.####.exr", "--out", "b.####.exr", "--frames", "1-2", "--mix", "3"], "mix"),
    ([], "nothing to submit"),
])
def test_bad_shots_are_usage_errors(tmp_path, bad, message, capsys):
    assert main(["submit", "deadline", *bad, "-o", str(tmp_path / "j")]) == 2
    assert message in capsys.readouterr().err


def test_hash_padded_spellings():
    assert submit.hash_padded("/o/a.%04d.exr") == "/o/a.####.exr"
    assert submit.hash_padded("/o/a.$F3.exr") == "/o/a.###.exr"
    assert submit.hash_padded("/o/a.@@@@@.exr") == "/o/a.#####.exr"


def nuke_farm_args(tmp_path):
    script = tmp_path / "sh010 comp_v003.nk"
    script.write_text("# a Nuke script\n")
    return script, ["--nuke-script", str(script), "--frames", "1001-1100", "--chunk", "20",
                    "--nuke", "/opt/Nuke15.1v3/Nuke15.1", "--server", "tcp://gpu-01:5599", "--job-name", "showA"]


def prerender_args(argv):
    """Parse a generated nuke-prerender command line with the real parser."""
    import argparse
    from shotstyle.cli import nukeprerender
    parser = argparse.ArgumentParser()
    nukeprerender.configure(parser)
    return parser.parse_args(argv[argv.index("nuke-prerender") + 1:])


def test_deadline_nuke_script_gets_a_prerender_pre_job_the_render_depends_on(tmp_path):
    script, args = nuke_farm_args(tmp_path)
    log = tmp_path / "calls.txt"
    fake = tmp_path / "deadlinecommand"
    fake.write_text(f"#!/bin/sh\necho \"$@\" >> {log}\necho Result=Success\n"
                    f"echo JobID=job-$(wc -l < {log} | tr -d ' ')\n")
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    jobs = tmp_path / "jobs"
    assert main(["submit", "deadline", *args, "-o", str(jobs)]) == 2          # Deadline's Nuke plugin needs it
    assert main(["submit", "deadline", *args, "--nuke-version", "15.1", "-o", str(jobs), "--submit",
                 "--deadlinecommand", str(fake), "--executable", "/opt/ss/bin/shotstyle"]) == 0
    pre_job, pre_plugin = key_values(jobs / "sh010_comp_v003.prerender.job_info.job"), \
        key_values(jobs / "sh010_comp_v003.prerender.plugin_info.job")
    assert pre_job["Plugin"] == "CommandLine" and pre_job["Frames"] == "1001-1100" and pre_job["ChunkSize"] == "20"
    assert pre_plugin["Executable"] == "/opt/ss/bin/shotstyle"
    task = shlex.split(pre_plugin["Arguments"].replace("<STARTFRAME>", "1021").replace("<ENDFRAME>", "1040"))
    parsed = prerender_args(task)
    assert parsed.script == str(script) and parsed.frames == "1021-1040"
    assert parsed.nuke == "/opt/Nuke15.1v3/Nuke15.1" and parsed.server == "tcp://gpu-01:5599"
    render_job = key_values(jobs / "sh010_comp_v003.nuke.job_info.job")
    assert render_job["Plugin"] == "Nuke" and render_job["Frames"] == "1001-1100"
    assert render_job["JobDependencies"] == "job-1"                            # the pre-job's id
    render_plugin = key_values(jobs / "sh010_comp_v003.nuke.plugin_info.job")
    assert render_plugin["SceneFile"] == str(script) and render_plugin["Version"] == "15.1"
    assert log.read_text().splitlines() == [
        f"{jobs}/sh010_comp_v003.prerender.job_info.job {jobs}/sh010_comp_v003.prerender.plugin_info.job",
        f"{jobs}/sh010_comp_v003.nuke.job_info.job {jobs}/sh010_comp_v003.nuke.plugin_info.job"]


def test_opencue_nuke_script_layers_the_render_after_the_prerender(tmp_path):
    script, args = nuke_farm_args(tmp_path)
    assert main(["submit", "opencue", *args, "--show", "showA", "--write-node", "Out", "-o", str(tmp_path / "jobs"),
                 "--executable", "/opt/ss/bin/shotstyle"]) == 0
    text = (tmp_path / "jobs/showA.cjsl.xml").read_text()
    spec = ET.fromstring(text.split("\n", 2)[2])
    for element in spec.iter():
        if element.tag in CJSL_CONTENT:
            assert re.fullmatch(CJSL_CONTENT[element.tag], _child_tags(element)), element.tag
    prerender, render_layer = spec.findall("job/layers/layer")
    assert prerender.get("name") == "sh010_comp_v003_prerender" and render_layer.get("name") == "sh010_comp_v003_nuke"
    argv = shlex.split(prerender.findtext("cmd").replace("#FRAME_START#", "1001").replace("#FRAME_END#", "1020"))
    assert argv[0] == "/opt/ss/bin/shotstyle" and prerender_args(argv).frames == "1001-1020"
    nuke_argv = shlex.split(render_layer.findtext("cmd").replace("#FRAME_START#", "1001").replace("#FRAME_END#",
                                                                                                    "1020"))
    assert nuke_argv == ["/opt/Nuke15.1v3/Nuke15.1", "-x", "-F", "1001-1020", "-X", "Out", str(script)]
    depend = spec.find("depends/depend")
    assert depend.get("type") == "LAYER_ON_LAYER"
    assert [depend.findtext(t) for t in ("depjob", "deplayer", "onjob", "onlayer")] == [
        "showA", "sh010_comp_v003_nuke", "showA", "sh010_comp_v003_prerender"]


def test_opencue_needs_a_show_and_takes_the_user_from_the_login(tmp_path, shot_args, monkeypatch, capsys):
    import getpass
    for name in ("SHOW", "USER", "LOGNAME"):
        monkeypatch.delenv(name, raising=False)
    assert main(["submit", "opencue", *shot_args, "-o", str(tmp_path / "j")]) == 2
    assert "OpenCue needs show: give --show (or set $SHOW)" in capsys.readouterr().err
    monkeypatch.setenv("SHOW", "showB")
    assert main(["submit", "opencue", *shot_args, "-o", str(tmp_path / "j")]) == 0
    spec = ET.fromstring((tmp_path / "j/shotstyle.cjsl.xml").read_text().split("\n", 2)[2])
    assert spec.findtext("show") == "showB" and spec.findtext("user") == getpass.getuser()
