"""The command line as a new pipeline TD meets it: help that shows defaults, a description for users,
and one exit-status table that covers every command."""

from __future__ import annotations

import pytest

from conftest import REPO
from shotstyle.nodes.farm.cli import SUBCOMMANDS, main
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
