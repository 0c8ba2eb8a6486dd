"""install.py's host part: per-OS layouts in a temporary HOME, idempotent installs, uninstall leaves no trace."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from shotstyle.nodes import hostinstall

HOSTS = str(Path(__file__).parent / "hosts")
USER_INIT = "import os\nnuke.pluginAddPath('/studio/tools')\n"
LAUNCHER = {
    "Linux": ".local/share/DaVinciResolve/Fusion/Scripts/Comp/ShotStyle.py",
    "Darwin": "Library/Application Support/Blackmagic Design/DaVinci Resolve/Fusion/Scripts/Comp/ShotStyle.py",
    "Windows": "AppData/Roaming/Blackmagic Design/DaVinci Resolve/Support/Fusion/Scripts/Comp/ShotStyle.py",
}
STUDIO = {
    "Linux": ".fusion/BlackmagicDesign/Fusion",
    "Darwin": "Library/Application Support/Blackmagic Design/Fusion",
    "Windows": "AppData/Roaming/Blackmagic Design/Fusion",
}


def snapshot(root: Path) -> dict:
    """Every file and folder under ``root`` with file contents."""
    return {str(p.relative_to(root)): (p.read_bytes() if p.is_file() else None) for p in sorted(root.rglob("*"))}


def run(home: Path, os_name: str, target: str, **options) -> int:
    env = {"APPDATA": str(home / "AppData" / "Roaming"), "USERPROFILE": str(home)} if os_name == "Windows" else {}
    return hostinstall.main(target, home=home, os_name=os_name, env=env, **options)


@pytest.mark.parametrize("os_name", ["Linux", "Darwin", "Windows"])
def test_install_twice_then_uninstall_leaves_no_trace(tmp_path, os_name):
    home = tmp_path / "home"
    (home / ".nuke").mkdir(parents=True)
    (home / ".nuke" / "init.py").write_text(USER_INIT)
    (home / STUDIO[os_name]).mkdir(parents=True)          # Fusion Studio is installed too
    before = snapshot(home)

    assert run(home, os_name, "all", pyzmq=False) == 0
    installed = snapshot(home)
    init = (home / ".nuke" / "init.py").read_text()
    assert init.startswith(USER_INIT) and init.count("# >>> shotstyle >>>") == 1
    assert "shotstyle.nodes.nuke.callbacks.register()" in init
    assert "shotstyle.nodes.nuke.menu.register()" in (home / ".nuke" / "menu.py").read_text()
    library = home / ".nuke" / "shotstyle_host" / "shotstyle"
    for rel in ("nodes/nuke/node.py", "nodes/nuke/ShotStyle.png", "nodes/__init__.py", "plugin/client.py"):
        assert (library / rel).is_file(), rel
    assert (home / ".nuke" / "shotstyle_host" / "shotstyle" / "nodes" / "hostbridge.py").is_file()
    for launcher in (home / LAUNCHER[os_name], home / STUDIO[os_name] / "Scripts" / "Comp" / "ShotStyle.py"):
        assert "script.main(globals())" in launcher.read_text(), launcher

    assert run(home, os_name, "all", pyzmq=False) == 0   # idempotent
    assert snapshot(home) == installed

    assert run(home, os_name, "all", uninstall=True) == 0
    assert snapshot(home) == before


def test_dry_run_prints_every_file_and_the_pyzmq_wheel_command(tmp_path, capsys):
    home = tmp_path / "home"
    home.mkdir()
    assert run(home, "Linux", "all", dry_run=True, host_python="3.10") == 0
    printed = capsys.readouterr().out
    assert snapshot(home) == {}
    assert "would create " + str(home / ".nuke" / "init.py") in printed
    assert "would write " + str(home / LAUNCHER["Linux"]) in printed
    assert "would copy " in printed and "node.py" in printed
    pip = [line for line in printed.splitlines() if line.startswith("run: ")]
    assert len(pip) == 2 and all("--python-version 3.10 --only-binary=:all: pyzmq" in line for line in pip)
    assert "--target " + str(home / ".nuke" / "shotstyle_host") in pip[0]


def test_uninstall_keeps_what_the_user_added_since(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    assert run(home, "Linux", "nuke", pyzmq=False) == 0
    menu = home / ".nuke" / "menu.py"
    menu.write_text(menu.read_text() + "print('added later')\n")
    assert run(home, "Linux", "nuke", uninstall=True) == 0
    assert menu.read_text() == "print('added later')\n"
    assert not (home / ".nuke" / "init.py").exists() and not (home / ".nuke" / "shotstyle_host").exists()


def test_failed_pip_is_a_clear_error(tmp_path):
    layout = hostinstall.layout("resolve", "Linux", tmp_path, {})
    installer = hostinstall.Installer(layout, echo=lambda line: None, run_command=lambda command: 1)
    with pytest.raises(hostinstall.HostInstallError, match="--host-python"):
        installer.install("3.11")


def run_python(code: list, tmp_path: Path) -> list:
    env = dict(os.environ, SHOTSTYLE_RUNTIME_DIR=str(tmp_path / "run"))
    done = subprocess.run([sys.executable, "-c", "\n".join(["import sys, runpy", "sys.path.insert(0, {!r})".format(
        HOSTS)] + code)], capture_output=True, text=True, env=env, timeout=60, cwd=str(tmp_path))
    assert done.returncode == 0, done.stderr
    return done.stdout.split()


def test_installed_copies_run_without_the_repository(tmp_path):
    """The installed Fusion launcher and Nuke init block import the host library's copy, not the repo."""
    home = tmp_path / "home"
    home.mkdir()
    assert run(home, "Linux", "all", pyzmq=False) == 0
    resolve_file = run_python([
        "import fusionscript",
        "fusionscript.interact(lambda window: window.On['ShotStyle'].handlers['Close']({}))",
        "runpy.run_path({!r}, init_globals=fusionscript.script_globals(fusionscript.Comp()))".format(
            str(home / LAUNCHER["Linux"])),
        "print(sys.modules['shotstyle.nodes.resolve.script'].__file__)"], tmp_path)[-1]
    assert resolve_file.startswith(str(home / ".local/share/DaVinciResolve/Fusion/shotstyle_host/"))
    nuke_file, callbacks = run_python([
        "import nuke",
        "runpy.run_path({!r})".format(str(home / ".nuke" / "init.py")),
        "print(sys.modules['shotstyle.nodes.nuke.callbacks'].__file__)",
        "print(len(nuke._callbacks['beforeFrameRender']))"], tmp_path)[-2:]
    assert nuke_file.startswith(str(home / ".nuke" / "shotstyle_host/"))
    assert callbacks == "1"


def test_install_py_dispatches_the_host_targets(tmp_path):
    """`python install.py nuke --dry-run` runs with the system Python, before any venv exists."""
    home = tmp_path / "home"
    home.mkdir()
    done = subprocess.run([sys.executable, str(hostinstall.REPO / "install.py"), "nuke", "--dry-run",
                           "--host-python", "3.9"], capture_output=True, text=True, timeout=60,
                          env=dict(os.environ, HOME=str(home), USERPROFILE=str(home)))
    assert done.returncode == 0, done.stderr
    assert "would create " + str(home / ".nuke" / "menu.py") in done.stdout
    assert "--python-version 3.9 --only-binary=:all: pyzmq" in done.stdout
    assert snapshot(home) == {}


def test_hosts_are_told_which_python_starts_the_local_server(tmp_path, monkeypatch):
    server_python = "/opt/shotstyle/.venv/bin/python"
    assert run(tmp_path, "Linux", "all", pyzmq=False, server_python=server_python) == 0
    init_py = (tmp_path / ".nuke" / "init.py").read_text()
    launcher = (tmp_path / ".local/share/DaVinciResolve/Fusion/Scripts/Comp/ShotStyle.py").read_text()
    expected = "os.environ.setdefault('SHOTSTYLE_SERVER_PYTHON', '/opt/shotstyle/.venv/bin/python')"
    assert expected in init_py and expected in launcher
    assert init_py.index(expected) < init_py.index("import shotstyle")

    from shotstyle.plugin import localserver
    monkeypatch.setenv("SHOTSTYLE_SERVER_PYTHON", server_python)
    assert localserver.server_command()[:3] == [server_python, "-m", "shotstyle.server"]
    monkeypatch.delenv("SHOTSTYLE_SERVER_PYTHON")
    assert localserver.server_command()[0] == sys.executable
