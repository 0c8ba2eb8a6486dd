"""install.py's host part: per-OS layouts in a temporary HOME, idempotent installs, uninstall leaves no trace,
the host's own Python for its pyzmq wheel, studio (NUKE_PATH) installs, blocks that never stop a host
starting, and the self-test printed by --check."""

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


CANNED_REPORT = ('WARNING: noise\n{"install": [{"download_info": {"url": "https://files/pyzmq-27.3.0-cp%s-cp%s-%s.whl"}}]}')


def fake_pip_query(command):
    """What `pip install --dry-run --report -` prints, for the Python and platform asked."""
    python = command[command.index("--python-version") + 1].replace(".", "")
    tag = command[command.index("--platform") + 1] if "--platform" in command else "manylinux2014_x86_64"
    return 0, CANNED_REPORT % (python, python, tag)


def run(home: Path, os_name: str, target: str, **options) -> int:
    env = {"APPDATA": str(home / "AppData" / "Roaming"), "USERPROFILE": str(home)} if os_name == "Windows" else {}
    env = dict(env, **options.pop("env", {}))
    options.setdefault("query_command", fake_pip_query)
    options.setdefault("probe", lambda command: "3.11")
    options.setdefault("nuke_roots", [])
    if options.get("pyzmq", True) and not options.get("uninstall") and "host_python" not in options:
        options.setdefault("nuke_version", "15")
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
    assert "--target " + str(home / ".nuke" / "shotstyle_host" / "wheels" / "linux-py3.10") in pip[0]
    assert "pip would fetch for Python 3.10: pyzmq-27.3.0-cp310-cp310-manylinux2014_x86_64.whl" in printed


@pytest.mark.parametrize("nuke_version, python", [("14", "3.9"), ("15", "3.10"), ("16", "3.11")])
def test_each_nuke_gets_a_wheel_for_its_own_python(tmp_path, capsys, nuke_version, python):
    assert run(tmp_path, "Linux", "nuke", dry_run=True, nuke_version=nuke_version) == 0
    printed = capsys.readouterr().out
    assert "Nuke {} runs Python {}".format(nuke_version, python) in printed
    tag = python.replace(".", "")
    assert "pip would fetch for Python {}: pyzmq-27.3.0-cp{}-cp{}-".format(python, tag, tag) in printed
    assert "wheels/linux-py{}".format(python) in printed


def test_nuke_versions_are_found_from_the_installs(tmp_path, capsys):
    installs = tmp_path / "usr_local"
    for folder in ("Nuke14.0v6", "Nuke15.1v3", "Nuke15.2v1", "NukeStudio"):
        (installs / folder).mkdir(parents=True)
    assert run(tmp_path, "Linux", "nuke", dry_run=True, nuke_version="", nuke_roots=[installs]) == 0
    printed = capsys.readouterr().out
    assert "Nuke 14 runs Python 3.9" in printed and "Nuke 15 runs Python 3.10" in printed
    assert printed.count("pip would fetch") == 2                     # one wheel per Python, not per install
    assert run(tmp_path, "Linux", "nuke", dry_run=True, nuke_version="", nuke_roots=[tmp_path / "none"]) == 1
    assert "no Nuke install found" in capsys.readouterr().err


def test_hosts_older_than_python_3_7_are_refused(tmp_path, capsys):
    assert run(tmp_path, "Linux", "nuke", dry_run=True, nuke_version="12") == 1
    assert "Nuke 12 runs Python 2.7; ShotStyle needs Nuke 13 or newer" in capsys.readouterr().err
    assert run(tmp_path, "Linux", "resolve", dry_run=True, probe=lambda command: "3.6") == 1
    assert "runs Python 3.6; ShotStyle needs Python 3.7 or newer" in capsys.readouterr().err


def test_resolve_python_is_detected_or_asked(tmp_path, capsys):
    home = tmp_path / "py310"
    probed = []

    def probe(command):
        probed.append(command)
        return "3.10" if command[0].startswith(str(home)) else None
    assert run(tmp_path, "Windows", "resolve", dry_run=True, probe=probe, env={"FUSION_PYTHON3_HOME": str(home)}) == 0
    printed = capsys.readouterr().out
    assert probed[0] == [str(home / "python.exe")]
    assert "DaVinci Resolve / Fusion runs Python 3.10" in printed
    assert "--platform win_amd64" in printed and "pyzmq-27.3.0-cp310-cp310-win_amd64.whl" in printed
    assert run(tmp_path, "Linux", "resolve", dry_run=True, probe=lambda command: None) == 1
    assert "give it with --host-python" in capsys.readouterr().err
    assert run(tmp_path, "Linux", "resolve", dry_run=True, probe=lambda command: None, ask=lambda q: "3.12") == 0
    assert "runs Python 3.12 (as you said" in capsys.readouterr().out


def test_windows_nuke_home_follows_HOME_when_it_is_set(tmp_path):
    home, profile = tmp_path / "home", tmp_path / "profile"
    assert hostinstall.nuke_home("Windows", tmp_path, {"HOME": str(home), "USERPROFILE": str(profile)}) == \
        home / ".nuke"
    assert hostinstall.nuke_home("Windows", tmp_path, {"USERPROFILE": str(profile)}) == profile / ".nuke"


def test_studio_install_into_a_nuke_path_folder(tmp_path):
    site, home = tmp_path / "studio" / "nuke", tmp_path / "home"
    home.mkdir()
    assert run(home, "Linux", "nuke", pyzmq=False, site=site) == 0
    assert (site / "init.py").is_file() and (site / "menu.py").is_file()
    assert (site / "shotstyle_host" / "shotstyle" / "nodes" / "nuke" / "node.py").is_file()
    assert snapshot(home) == {}                                    # the user's .nuke is untouched
    assert run(home, "Linux", "nuke", uninstall=True, site=site) == 0
    assert not site.exists() or snapshot(site) == {}


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
        installer.install(["3.11"])


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
    assert "pip would fetch for Python 3.9: " in done.stdout      # a wheel name, or why pip could not say
    ours = {name for name in snapshot(home) if not name.startswith((".cache", ".config", ".rustup"))}
    assert ours == set()                                          # (pip's own caches aside) nothing written


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


def start_nuke(home: Path, tmp_path: Path, site: Path = None, extra_path: str = "") -> subprocess.CompletedProcess:
    """Start the stand-in `nuke -t` with a script that says it started and whether the node is there."""
    from nukehost import fake_nuke_executable
    script = tmp_path / "started.py"
    script.write_text("import sys\nprint('STARTED', 'shotstyle.nodes.nuke.callbacks' in sys.modules)\n")
    env = dict(os.environ, HOME=str(home), NUKE_PATH=str(site or ""), SHOTSTYLE_RUNTIME_DIR=str(tmp_path / "run"),
               PYTHONPATH=extra_path)
    return subprocess.run([str(fake_nuke_executable(tmp_path / "bin")), "-t", str(script)], capture_output=True,
                          text=True, timeout=60, env=env)


def test_a_broken_install_never_stops_nuke_starting(tmp_path):
    site, home = tmp_path / "site", tmp_path / "home"
    home.mkdir()
    assert run(home, "Linux", "nuke", pyzmq=False, site=site) == 0
    started = start_nuke(home, tmp_path, site)
    assert started.returncode == 0 and "STARTED True" in started.stdout, started.stdout + started.stderr

    no_zmq = tmp_path / "no_zmq"                      # a Python without pyzmq for this Nuke
    (no_zmq / "zmq").mkdir(parents=True)
    (no_zmq / "zmq" / "__init__.py").write_text("raise ImportError('No module named zmq')\n")
    started = start_nuke(home, tmp_path, site, extra_path=str(no_zmq))
    assert started.returncode == 0 and "STARTED False" in started.stdout, started.stdout + started.stderr
    lines = [line for line in started.stdout.splitlines() if "ShotStyle" in line]
    assert len(lines) == 1 and "no pyzmq for this Python" in lines[0] and "install.py nuke" in lines[0], lines

    broken = site / "shotstyle_host" / "shotstyle" / "nodes" / "nuke" / "callbacks.py"
    broken.write_text("raise RuntimeError('a damaged copy')\n")      # e.g. a half-copied studio folder
    started = start_nuke(home, tmp_path, site)
    assert started.returncode == 0 and "STARTED False" in started.stdout, started.stdout + started.stderr
    assert [line for line in started.stdout.splitlines() if "ShotStyle" in line] == [
        "ShotStyle is not available in this Nuke: a damaged copy"]


def test_blocks_and_launcher_parse_in_old_pythons(tmp_path):
    """An old host must reach our version check, not a SyntaxError: the generated code is plain Python."""
    import ast
    assert run(tmp_path, "Linux", "all", pyzmq=False) == 0
    for path in (tmp_path / ".nuke" / "init.py", tmp_path / ".nuke" / "menu.py",
                 tmp_path / LAUNCHER["Linux"]):
        ast.parse(path.read_text(), str(path), feature_version=(3, 4))
        assert "f'" not in path.read_text() and 'f"' not in path.read_text()


def test_check_prints_a_self_test_that_runs_in_the_host(tmp_path, capsys):
    from hostdata import host_server  # noqa: F401  (the module-level fixture is not needed here)
    assert run(tmp_path, "Linux", "all", check=True) == 0
    printed = capsys.readouterr().out
    assert printed.count("from shotstyle.nodes import selftest") == 2
    assert "selftest.run('Nuke')" in printed and "selftest.run('DaVinci Resolve / Fusion')" in printed
    assert snapshot(tmp_path) == {}                  # --check installs nothing
