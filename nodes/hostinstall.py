"""Install the ShotStyle host nodes into Nuke and DaVinci Resolve / Fusion, for a user or a studio.

`python install.py nuke|resolve|all [--uninstall] [--dry-run] [--nuke-version 14,15] [--host-python X.Y]
[--site DIR] [--no-pyzmq] [--check]` lands in ``main`` (install.py only dispatches; it loads this
file by path, before any venv exists). Standard library only.

What gets added, per host:
- a *host library* folder holding a copy of the host-side package (``shotstyle/plugin``,
  ``shotstyle/nodes/<host>`` and the shared bridge) and, unless ``--no-pyzmq``, a pyzmq binary
  wheel per host Python and OS in ``wheels/<platform>-py<X.Y>`` (``pip install --target``):
  the host's own Python (see hostpython.py), so one library serves Nuke 14, 15 and 16 side by
  side and a studio folder serves several operating systems (install once from each);
- Nuke: a marked block in ``init.py`` (puts the library on the plugin path and registers the
  render checks; it never stops Nuke starting: a failure prints one line and leaves the node
  out) and in ``menu.py`` (Nodes menu + toolbar entry), in the user's ``.nuke`` (``HOME``, on
  Windows too when set, else ``USERPROFILE``) or, with ``--site DIR``, in a studio folder to
  put on ``NUKE_PATH``;
- Resolve: a launcher ``ShotStyle.py`` in the per-user Fusion ``Scripts/Comp`` folder
  (Workspace > Scripts > Comp > ShotStyle), and in Fusion Studio's when it is installed.

Everything added is listed in a manifest inside the host library, so ``--uninstall`` removes
exactly that (blocks, files, folders it created) and nothing else. Re-running an install
replaces the previous one: installs are idempotent. ``--check`` prints a self-test to paste
into the host instead of installing.
"""

import functools
import json
import os
import platform
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Mapping, Optional, Sequence, Tuple

try:
    from shotstyle.nodes import hostpython
except ImportError:   # install.py loads this file by path, before shotstyle is installed anywhere
    import importlib.util
    _spec = importlib.util.spec_from_file_location("shotstyle_hostpython", str(Path(__file__).with_name("hostpython.py")))
    assert _spec is not None and _spec.loader is not None
    hostpython = importlib.util.module_from_spec(_spec)
    _spec.loader.exec_module(hostpython)

HOSTS = ("nuke", "resolve")
REPO = Path(__file__).resolve().parent.parent
MANIFEST_NAME = "shotstyle-install.json"
BLOCK_START = "# >>> shotstyle >>>"
BLOCK_BEGIN = BLOCK_START + " (added by shotstyle install.py; remove with `python install.py {host} --uninstall`)"
BLOCK_END = "# <<< shotstyle <<<"
# sys.platform inside the host, which names the wheel folder the host loads.
HOST_PLATFORM = {"Linux": "linux", "Darwin": "darwin", "Windows": "win32"}
# pip --platform tags when the wheel is for another operating system than this one.
PIP_PLATFORMS = {"Linux": ["manylinux2014_x86_64"], "Windows": ["win_amd64"],
                 "Darwin": ["macosx_10_15_universal2", "macosx_11_0_arm64", "macosx_10_9_x86_64"]}


# Not under plugin.errors.ClientError: install.py loads this file before shotstyle is installed.
class HostInstallError(Exception):
    """An install/uninstall step cannot be done; the message names the path and the fix."""


@dataclass
class HostLayout:
    """Where one host's files go for one user (or one studio folder) on one operating system."""

    host: str
    os_name: str
    library: Path                                  # host library folder (ours entirely)
    blocks: Dict[Path, str] = field(default_factory=dict)      # file -> marked block text
    launchers: Dict[Path, str] = field(default_factory=dict)   # file -> full content (ours)


def fusion_script_roots(os_name: str, home: Path, env: Mapping[str, str]) -> List[Path]:
    """Per-user Fusion roots (parents of ``Scripts/``): Resolve's, then Fusion Studio's if present.

    Paths follow Blackmagic's scripting README (per-user "Specific user" locations).
    """
    if os_name == "Windows":
        appdata = Path(env.get("APPDATA") or home / "AppData" / "Roaming")
        resolve = appdata / "Blackmagic Design" / "DaVinci Resolve" / "Support" / "Fusion"
        studio = appdata / "Blackmagic Design" / "Fusion"
    elif os_name == "Darwin":
        support = home / "Library" / "Application Support" / "Blackmagic Design"
        resolve = support / "DaVinci Resolve" / "Fusion"
        studio = support / "Fusion"
    else:
        resolve = home / ".local" / "share" / "DaVinciResolve" / "Fusion"
        studio = home / ".fusion" / "BlackmagicDesign" / "Fusion"
    return [resolve] + ([studio] if studio.is_dir() else [])


def nuke_home(os_name: str, home: Path, env: Mapping[str, str]) -> Path:
    """``~/.nuke``: on Windows under ``HOME`` when it is set, else ``USERPROFILE`` (what Nuke does:
    learn.foundry.com/nuke/8.0/content/user_guide/configuring_nuke/loading_gizmos_plugins_scripts.html)."""
    if os_name == "Windows":
        return Path(env.get("HOME") or env.get("USERPROFILE") or home) / ".nuke"
    return home / ".nuke"


def wheel_folder(library: Path, os_name: str, python: str) -> Path:
    """Where the pyzmq wheel for ``python`` on ``os_name`` goes; the init block / launcher look there."""
    return library / "wheels" / "{}-py{}".format(HOST_PLATFORM[os_name], python)


# The lines that find the library and its wheel inside the host; Python 2-readable, so an old
# host gets a clear sentence instead of a SyntaxError.
def _path_lines(library: Path, server_python: Optional[str], minimum: str) -> List[str]:
    lines = ["    import os, sys",
             "    _ss_lib = {}".format(repr(str(library))),
             "    if sys.version_info < {}:".format(tuple(hostpython.MIN_HOST_PYTHON)),
             "        raise ImportError('this host runs Python %d.%d; ShotStyle needs {} (Python {}.{} or newer)' % "
             "tuple(sys.version_info[:2]))".format(minimum, *hostpython.MIN_HOST_PYTHON),
             "    _ss_wheels = os.path.join(_ss_lib, 'wheels', '%s-py%d.%d' % ((sys.platform,) + "
             "tuple(sys.version_info[:2])))",
             "    for _ss_path in (_ss_wheels, _ss_lib):",
             "        if os.path.isdir(_ss_path) and _ss_path not in sys.path:",
             "            sys.path.insert(0, _ss_path)"]
    if server_python:
        lines.append("    os.environ.setdefault('SHOTSTYLE_SERVER_PYTHON', {})".format(repr(str(server_python))))
    lines += ["    try:",
              "        import zmq",
              "    except ImportError:",
              "        raise ImportError('no pyzmq for this Python (%d.%d) in %s: run `python3 install.py {host}` "
              "for it' % (sys.version_info[0], sys.version_info[1], _ss_wheels))"]
    return lines


def _nuke_layout(os_name: str, home: Path, env: Mapping[str, str], server_python: Optional[str],
                 site: Optional[Path]) -> HostLayout:
    dot_nuke = site if site is not None else nuke_home(os_name, home, env)
    library = dot_nuke / "shotstyle_host"
    init_block = "\n".join(["try:"] + [line.replace("{host}", "nuke") for line in _path_lines(
        library, server_python, "Nuke 13 or newer")] + [
        "    import nuke",
        # the icon's folder: on the plugin path for ShotStyle.png, not on sys.path (module names like menu.py)
        "    nuke.pluginAddPath({}, addToSysPath=False)".format(repr(str(library / "shotstyle" / "nodes" / "nuke"))),
        "    import shotstyle.nodes.nuke.callbacks",
        "    shotstyle.nodes.nuke.callbacks.register()",
        "except Exception as _ss_error:",
        "    print('ShotStyle is not available in this Nuke: %s' % (_ss_error,))",
    ])
    menu_block = "\n".join([
        "import sys",
        "if 'shotstyle.nodes.nuke.callbacks' in sys.modules:   # init.py set it up (else it said why)",
        "    try:",
        "        import shotstyle.nodes.nuke.menu",
        "        shotstyle.nodes.nuke.menu.register()",
        "    except Exception as _ss_error:",
        "        print('ShotStyle: no menu entry: %s' % (_ss_error,))",
    ])
    return HostLayout("nuke", os_name, library, blocks={dot_nuke / "init.py": init_block,
                                                        dot_nuke / "menu.py": menu_block})


def _resolve_layout(os_name: str, home: Path, env: Mapping[str, str], server_python: Optional[str],
                    site: Optional[Path]) -> HostLayout:
    if site is not None:
        raise HostInstallError("--site is for Nuke (a folder on NUKE_PATH); install Resolve per user")
    roots = fusion_script_roots(os_name, home, env)
    library = roots[0] / "shotstyle_host"
    launcher = "\n".join([
        '"""ShotStyle: photoreal style transfer (Workspace > Scripts > Comp > ShotStyle)."""',
        "try:"] + [line.replace("{host}", "resolve") for line in _path_lines(
            library, server_python, "DaVinci Resolve / Fusion with Python 3.7+")] + [
        "    from shotstyle.nodes.resolve import script as _ss_script",
        "except Exception as _ss_error:",
        "    print('ShotStyle cannot start: %s' % (_ss_error,))",
        "else:",
        "    _ss_script.main(globals())",
        "",
    ])
    return HostLayout("resolve", os_name, library,
                      launchers={root / "Scripts" / "Comp" / "ShotStyle.py": launcher for root in roots})


def layout(host: str, os_name: Optional[str] = None, home: Optional[Path] = None,
           env: Optional[Mapping[str, str]] = None, server_python: Optional[str] = None,
           site: Optional[Path] = None) -> HostLayout:
    """The layout for ``host`` on ``os_name`` ("Linux" | "Darwin" | "Windows") for the user at ``home``
    (or, Nuke only, the studio folder ``site``)."""
    os_name = os_name or platform.system()
    home = Path(home) if home is not None else Path.home()
    env = os.environ if env is None else env
    if host == "nuke":
        return _nuke_layout(os_name, home, env, server_python, site)
    if host == "resolve":
        return _resolve_layout(os_name, home, env, server_python, site)
    raise HostInstallError("unknown host {!r}: choose one of {}".format(host, ", ".join(HOSTS + ("all",))))


def host_sources(host: str, repo: Path = REPO) -> Dict[str, Path]:
    """Files of the host-side package, as library-relative path -> repository file."""
    sources = {}
    for folder, target in ((repo / "plugin", "shotstyle/plugin"),
                           (repo / "nodes" / host, "shotstyle/nodes/" + host)):
        for path in sorted(folder.rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts and path.suffix in (".py", ".png"):
                sources[target + "/" + path.relative_to(folder).as_posix()] = path
    for shared in ("__init__.py", "hostbridge.py", "selftest.py"):
        sources["shotstyle/nodes/" + shared] = repo / "nodes" / shared
    return sources


def pyzmq_command(folder: Path, host_python: str, os_name: str) -> List[str]:
    """pip command putting a pyzmq binary wheel for ``host_python`` on ``os_name`` into ``folder``."""
    command = [sys.executable, "-m", "pip", "install", "--upgrade", "--no-deps", "--target", str(folder),
               "--python-version", host_python, "--only-binary=:all:"]
    if os_name != platform.system():
        for tag in PIP_PLATFORMS[os_name]:
            command += ["--platform", tag]
    return command + ["pyzmq"]


def pip_would_fetch(command: Sequence[str], query: Callable[[Sequence[str]], Tuple[int, str]]) -> str:
    """What ``command`` would install, asked of pip itself (``--dry-run --report``): wheel file names."""
    at = list(command).index("install") + 1
    code, output = query(list(command[:at]) + ["--dry-run", "--quiet", "--ignore-installed", "--report", "-"]
                         + list(command[at:]))
    try:
        report = json.loads(output[output.index("{"):]) if code == 0 else None
    except ValueError:
        report = None
    if not report:
        return "pip could not say (offline, or no wheel for that Python and OS)"
    return ", ".join(item["download_info"]["url"].rsplit("/", 1)[-1] for item in report.get("install", []))


def _query(command: Sequence[str]) -> Tuple[int, str]:
    done = subprocess.run(list(command), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, universal_newlines=True)
    return done.returncode, done.stdout


# ---------------------------------------------------------------- marked blocks
def strip_block(text: str) -> str:
    """``text`` without our marked block (and the blank line we put before it)."""
    lines = text.splitlines(keepends=True)
    out: List[str] = []
    inside = False
    for line in lines:
        if line.startswith(BLOCK_START):
            inside = True
            if out and out[-1].strip() == "":
                out.pop()
            continue
        if inside:
            inside = not line.startswith(BLOCK_END)
            continue
        out.append(line)
    return "".join(out)


def with_block(text: str, host: str, block: str) -> str:
    """``text`` with exactly one marked block holding ``block`` at its end."""
    base = strip_block(text)
    if base and not base.endswith("\n"):
        base += "\n"
    separator = "\n" if base else ""
    return "{}{}{}\n{}\n{}\n".format(base, separator, BLOCK_BEGIN.format(host=host), block, BLOCK_END)


# ---------------------------------------------------------------- actions
class Installer:
    """Carries out (or, dry, prints) one host's install or uninstall."""

    def __init__(self, host_layout: HostLayout, dry_run: bool = False,
                 echo: Callable[[str], None] = print,
                 run_command: Callable[[Sequence[str]], int] = lambda cmd: subprocess.call(list(cmd)),
                 repo: Path = REPO, query_command: Callable[[Sequence[str]], Tuple[int, str]] = _query):
        self.layout = host_layout
        self.dry_run = dry_run
        self.repo = repo
        self.echo = echo
        self.run_command = run_command
        self.query_command = query_command

    @property
    def manifest_path(self) -> Path:
        return self.layout.library / MANIFEST_NAME

    def _missing_dirs(self, path: Path) -> List[Path]:
        missing = []
        for parent in [path] + list(path.parents):
            if parent.exists():
                break
            missing.append(parent)
        return list(reversed(missing))

    def install(self, host_pythons: Sequence[str] = ()) -> None:
        """Install, with a pyzmq wheel for each of ``host_pythons`` (none: the host has pyzmq)."""
        if self.manifest_path.exists():
            self.uninstall()            # idempotent: a re-install replaces the previous one
        host = self.layout.host
        created_dirs: List[Path] = []
        created_files: List[Path] = []
        for target in list(self.layout.blocks) + list(self.layout.launchers) + [self.layout.library]:
            for folder in self._missing_dirs(target.parent if target != self.layout.library else target):
                if folder not in created_dirs:
                    created_dirs.append(folder)
        for folder in created_dirs:
            self._act("create folder", folder, folder.mkdir)
        for rel, source in host_sources(host, self.repo).items():
            dest = self.layout.library / rel
            self._act("copy {} ->".format(source), dest, functools.partial(_copy, source, dest))
        for python in host_pythons:
            folder = wheel_folder(self.layout.library, self.layout.os_name, python)
            command = pyzmq_command(folder, python, self.layout.os_name)
            self.echo("run: " + " ".join(command))
            if self.dry_run:
                self.echo("pip would fetch for Python {}: {}".format(python, pip_would_fetch(command, self.query_command)))
            elif self.run_command(command) != 0:
                raise HostInstallError(
                    "pip could not install a pyzmq wheel for Python {} into {}: check the host's Python "
                    "version (--host-python) or install pyzmq for the host yourself and pass --no-pyzmq"
                    .format(python, folder))
        for path, block in self.layout.blocks.items():
            existed = path.exists()
            if not existed:
                created_files.append(path)
            old = path.read_text(encoding="utf-8") if existed else ""
            self._act("add marked block to" if existed else "create", path,
                      functools.partial(path.write_text, with_block(old, host, block), encoding="utf-8"))
        for path, content in self.layout.launchers.items():
            created_files.append(path)
            self._act("write", path, functools.partial(path.write_text, content, encoding="utf-8"))
        manifest = {"host": host, "library": str(self.layout.library),
                    "created_dirs": [str(p) for p in created_dirs],
                    "created_files": [str(p) for p in created_files],
                    "blocks": [str(p) for p in self.layout.blocks]}
        self._act("write", self.manifest_path,
                  lambda: self.manifest_path.write_text(json.dumps(manifest, indent=2), encoding="utf-8"))

    def uninstall(self) -> None:
        if not self.manifest_path.exists():
            self.echo("{}: not installed (no {})".format(self.layout.host, self.manifest_path))
            return
        manifest = json.loads(self.manifest_path.read_text(encoding="utf-8"))
        created_files = {Path(p) for p in manifest["created_files"]}
        for name in manifest["blocks"]:
            path = Path(name)
            if not path.exists():
                continue
            rest = strip_block(path.read_text(encoding="utf-8"))
            if path in created_files and not rest.strip():
                self._act("remove", path, path.unlink)
            else:
                self._act("remove marked block from", path, functools.partial(path.write_text, rest, encoding="utf-8"))
        for path in created_files - {Path(p) for p in manifest["blocks"]}:
            if path.exists():
                self._act("remove", path, path.unlink)
        self._act("remove folder", self.layout.library, lambda: shutil.rmtree(str(self.layout.library)))
        for name in reversed(manifest["created_dirs"]):
            folder = Path(name)
            if folder.is_dir() and folder != self.layout.library and not any(folder.iterdir()):
                self._act("remove folder", folder, folder.rmdir)

    def _act(self, what: str, path: Path, action: Callable[[], object]) -> None:
        self.echo("{}{} {}".format("would " if self.dry_run else "", what, path))
        if not self.dry_run:
            action()


def _copy(source: Path, dest: Path) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(str(source), str(dest))


def check_script(host_layout: HostLayout) -> str:
    """The self-test to paste into Nuke's Script Editor or Fusion's Console (Py3): it finds the host
    library as the installed blocks do, then reports each step of nodes/selftest.py."""
    host = host_layout.host
    label = {"nuke": "Nuke", "resolve": "DaVinci Resolve / Fusion"}[host]
    where = {"nuke": "Nuke's Script Editor", "resolve": "the Fusion Console (Workspace > Console, Py3)"}[host]
    minimum = {"nuke": "Nuke 13 or newer", "resolve": "Python 3.7+"}[host]
    return "\n".join(
        ["# ShotStyle self-test: paste into {} and run it; it changes nothing in your script.".format(where),
         "try:"] + [line.replace("{host}", host) for line in _path_lines(host_layout.library, None, minimum)] + [
         "    from shotstyle.nodes import selftest",
         "except Exception as _ss_error:",
         "    print('FAIL  ShotStyle is not installed for this {}: %s' % (_ss_error,))".format(label),
         "else:",
         "    selftest.run({!r})".format(label), ""])


# ---------------------------------------------------------------- entry point
def host_pythons(host: str, os_name: str, env: Mapping[str, str], echo: Callable[[str], None],
                 host_python: Optional[str] = None, nuke_version: str = "",
                 nuke_roots: Optional[Sequence[Path]] = None, probe: hostpython.Probe = hostpython.probe_python,
                 ask: Optional[Callable[[str], str]] = None) -> List[str]:
    """The Pythons ``host`` runs here, for its pyzmq wheels: given, looked up or detected."""
    if host_python:
        return [hostpython.supported(host_python, "--host-python")]
    if host == "nuke":
        roots = nuke_roots if nuke_roots is not None else hostpython.nuke_install_roots(os_name, env)
        found = hostpython.nuke_pythons(nuke_version, roots)
        for label, python in found:
            echo("{} runs Python {}".format(label, python))
        return sorted({python for _, python in found})
    python, how = hostpython.resolve_python(os_name, env, probe, ask)
    echo("DaVinci Resolve / Fusion runs Python {} ({}; FUSION_PYTHON3_HOME chooses another)".format(python, how))
    return [python]


def main(target: str, uninstall: bool = False, dry_run: bool = False, host_python: Optional[str] = None,
         repo: Optional[Path] = None, pyzmq: bool = True, home: Optional[Path] = None,
         os_name: Optional[str] = None, env: Optional[Mapping[str, str]] = None,
         server_python: Optional[str] = None, nuke_version: str = "", site: Optional[Path] = None,
         check: bool = False, nuke_roots: Optional[Sequence[Path]] = None,
         probe: hostpython.Probe = hostpython.probe_python, ask: Optional[Callable[[str], str]] = None,
         query_command: Callable[[Sequence[str]], Tuple[int, str]] = _query) -> int:
    """Install (or uninstall) the nodes of ``target`` ("nuke" | "resolve" | "all"); the exit status.

    ``server_python`` is the Python (with shotstyle installed) that hosts use to autostart a
    local server. ``check`` prints the self-test script for the host instead.
    ``home``/``os_name``/``env`` default to this user and machine (tests give a temporary HOME).
    """
    hosts = HOSTS if target == "all" else (target,)
    os_name = os_name or platform.system()
    env = os.environ if env is None else env
    try:
        if check:
            for host in hosts:
                print(check_script(layout(host, os_name, home, env, None, site)))
            return 0
        for host in hosts:
            installer = Installer(layout(host, os_name, home, env, server_python, site), dry_run=dry_run,
                                  repo=Path(repo or REPO), query_command=query_command)
            if uninstall:
                installer.uninstall()
                continue
            pythons = host_pythons(host, os_name, env, print, host_python, nuke_version, nuke_roots, probe,
                                   ask) if pyzmq else []
            installer.install(pythons)
    except (HostInstallError, hostpython.HostPythonError, OSError) as exc:
        print("install.py: {}".format(exc), file=sys.stderr)
        return 1
    return 0
