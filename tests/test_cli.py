"""The command line as a new pipeline TD meets it: help that shows defaults, a description for users,
and one exit-status table that covers every command."""

from __future__ import annotations

import os
import re

import pytest

from conftest import REPO
from shotstyle.cli.main import SUBCOMMANDS, main
from shotstyle.plugin.exitcodes import ExitCode


def help_of(argv: list[str], capsys) -> str:
    with pytest.raises(SystemExit) as done:
        main([*argv, "--help"])
    assert done.value.code == 0
    return " ".join(capsys.readouterr().out.split())   # argparse wraps lines


def test_top_level_help_is_for_users(capsys):
    text = help_of([], capsys)
    assert "style frame" in text and "shotstyle train" in text and "shotstyle render" in text
    assert "console command" not in text and "sub-command module" not in text   # not a developer note


@pytest.mark.parametrize("argv, shown", [
    (["train"], ["(default: 0.5)", "(default: 512)", "(default 300)", "(default hrnet-fast", "(default auto"]),
    (["render"], ["0 = plate, 1 = full effect (default: 1.0)", "frames in flight per server (default: 4)",
                  "output sequence: EXR (other types only with"]),
    (["submit", "deadline"], ["frames per task (default 10)", "--pool POOL default: none"]),
    (["serve"], ["TCP port on 127.0.0.1 (0: any free port) (default: 5599)"]),
])
def test_help_shows_defaults(argv, shown, capsys):
    text = help_of(argv, capsys)
    for expected in shown:
        assert expected in text, expected


@pytest.mark.parametrize("command", ["train", "demo"])
def test_loss_help_says_what_auto_picks(command, capsys):
    """The help of --loss is the parameter's one description: "auto" is the per-pixel target, whatever
    VGG-19 weights are installed (server/engine/losses resolve_loss_name)."""
    from shotstyle.server.engine.losses import resolve_loss_name
    assert resolve_loss_name("auto")[0] == "target"
    text = help_of([command], capsys)
    assert "auto: target." in text and "else look" not in text


def test_the_exit_status_table_covers_every_command():
    from shotstyle.plugin.exitcodes import BY_COMMAND
    assert set(BY_COMMAND) == set(SUBCOMMANDS)
    readme = (REPO / "README.md").read_text()
    table = readme[readme.index("| command | exit statuses |"):].split("\n\n")[0].splitlines()[2:]
    documented = {}
    for row in table:
        command, statuses = (cell.strip() for cell in row.strip("|").split("|")[:2])
        documented[command.strip("`")] = {ExitCode(int(code)) for code in statuses.split(", ")}
    assert documented == {name: set(codes) for name, codes in BY_COMMAND.items()}


def train_argv(plate_clip: str, style_image: str, output, *extra: str) -> list[str]:
    return ["train", "--content", plate_clip.replace("####", "0001"), "--style", style_image, "-o", str(output),
            "--in-process", "--steps", "30", "--resolution", "32", "--loss", "look", *extra]


def test_quiet_verbose_and_log_file_apply_to_every_command(plate_clip, style_image, tiny_model, tmp_path, capsys):
    """-v: a progress line at every step (a log gets one every 5% by default); -q: none, no notes,
    errors still; --log-file: a time-stamped copy of what was said, errors included."""
    assert main(train_argv(plate_clip, style_image, tmp_path / "a.safetensors")) == 0
    default = capsys.readouterr().err
    assert main(train_argv(plate_clip, style_image, tmp_path / "b.safetensors", "-v")) == 0
    verbose = capsys.readouterr().err
    steps = [line for line in verbose.splitlines() if line.startswith("step ")]
    assert [line.split()[1] for line in steps] == [f"{n}/30" for n in range(1, 31)]
    assert len([line for line in default.splitlines() if line.startswith("step ")]) < len(steps)
    assert main(train_argv(plate_clip, style_image, tmp_path / "c.safetensors", "--quiet")) == 0
    assert capsys.readouterr().err == ""
    assert main(train_argv(plate_clip, style_image, tmp_path / "no" / "d.safetensors", "-q")) == ExitCode.USAGE
    assert "does not exist" in capsys.readouterr().err                      # an error is said even so

    out = tmp_path / "frames"
    render = ["render", "--model", tiny_model, "--in", plate_clip, "--out", str(out / "s.####.exr"),
              "--frames", "1-2", "--in-process", "--threads", "1"]
    log = tmp_path / "logs" / "render.log"
    log.parent.mkdir()
    assert main([*render, "--quiet", "--log-file", str(log)]) == 0
    said = capsys.readouterr()
    assert said.out == said.err == "" and sorted(os.listdir(out)) == ["s.0001.exr", "s.0002.exr"]
    assert main([*render, "--log-file", str(log)]) == 0                      # appends; says what it did
    said = capsys.readouterr()
    lines = log.read_text().splitlines()
    assert "PROGRESS: 100%" in said.out and lines and all(re.match(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d \S", line)
                                                          for line in lines)
    # Both streams, in the order written (here they are captured apart): the same lines.
    assert sorted(line[20:] for line in lines) == sorted(line for line in (said.err + said.out).splitlines() if line)
    assert main(["info", str(tmp_path / "nothing.exr"), "--log-file", str(log)]) == ExitCode.MISSING_INPUT
    assert "nothing.exr" in log.read_text().splitlines()[-1]                # the error is in the log too
    with pytest.raises(SystemExit) as refused:
        main(["info", str(tmp_path), "-q", "-v"])
    assert refused.value.code == ExitCode.USAGE
