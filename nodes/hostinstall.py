"""Install the ShotStyle host nodes into the current user's Nuke and DaVinci Resolve / Fusion.

`python install.py nuke|resolve|all [--uninstall] [--dry-run] [--host-python 3.11] [--no-pyzmq]`
lands in ``main`` (install.py only dispatches; it loads this file by path, before any venv
exists).  Standard library only.

What gets added, per host:
- a *host library* folder holding a copy of the host-side package (``shotstyle/plugin`` plus
  ``shotstyle/nodes/<host>``) and, unless ``--no-pyzmq``, a pyzmq binary wheel built for the
  host's embedded Python (``pip install --target``);
- Nuke: a marked block in ``~/.nuke/init.py`` (puts the library on the plugin path, registers
  the farm render callbacks) and in ``~/.nuke/menu.py`` (Nodes menu + toolbar entry);
- Resolve: a launcher ``ShotStyle.py`` in the documented per-user Fusion ``Scripts/Comp``
  folder (Workspace > Scripts > Comp > ShotStyle), and in Fusion Studio's when it is installed.

Everything added is listed in a manifest inside the host library, so ``--uninstall`` removes
exactly that (blocks, files, folders it created) and nothing else.  Re-running an install
replaces the previous one: installs are idempotent.
"""

import functools
import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Mapping, Optional, Sequence

HOSTS = ("nuke", "resolve")
REPO = Path(__file__).resolve().parent.parent
MANIFEST_NAME = "shotstyle-install.json"
BLOCK_START = "# >>> shotstyle >>>"
BLOCK_BEGIN = BLOCK_START + " (added by shotstyle install.py; remove with `python install.py {host} --uninstall`)"
BLOCK_END = "# <<< shotstyle <<<"
# Nuke 16 embeds Python 3.11; Resolve uses the system's Python 3, like this interpreter.
DEFAULT_HOST_PYTHON = {"nuke": "3.11", "resolve": "{}.{}".format(*sys.version_info[:2])}


class HostInstallError(Exception):
    """An install/uninstall step cannot be done; the message names the path and the fix."""


@dataclass
class HostLayout:
    """Where one host's files go for one user on one operating system."""

    host: str
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
    """``~/.nuke`` (on Windows under %USERPROFILE%, which is what Nuke calls home there)."""
    if os_name == "Windows":
        return Path(env.get("USERPROFILE") or home) / ".nuke"
    return home / ".nuke"


def server_python_lines(server_python: Optional[str]) -> List[str]:
    """Lines telling the host which Python runs the local server (the host's own cannot)."""
    if not server_python:
        return []
    return ["import os",
            "os.environ.setdefault('SHOTSTYLE_SERVER_PYTHON', {})".format(repr(str(server_python)))]


def _nuke_layout(os_name: str, home: Path, env: Mapping[str, str], server_python: Optional[str]) -> HostLayout:
    dot_nuke = nuke_home(os_name, home, env)
    library = dot_nuke / "shotstyle_host"
    lib = repr(str(library))
    init_block = "\n".join(server_python_lines(server_python) + [
        "import nuke",
        "nuke.pluginAddPath({})".format(lib),
        # the icon's folder: on the plugin path for ShotStyle.png, not on sys.path (module names like menu.py)
        "nuke.pluginAddPath({}, addToSysPath=False)".format(repr(str(library / "shotstyle" / "nodes" / "nuke"))),
        "import shotstyle.nodes.nuke.callbacks",
        "shotstyle.nodes.nuke.callbacks.register()",
    ])
    menu_block = "\n".join([
        "import shotstyle.nodes.nuke.menu",
        "shotstyle.nodes.nuke.menu.register()",
    ])
    return HostLayout("nuke", library, blocks={dot_nuke / "init.py": init_block,
                                               dot_nuke / "menu.py": menu_block})


def _resolve_layout(os_name: str, home: Path, env: Mapping[str, str], server_python: Optional[str]) -> HostLayout:
    roots = fusion_script_roots(os_name, home, env)
    library = roots[0] / "shotstyle_host"
    launcher = "\n".join([
        '"""ShotStyle: photoreal style transfer (Workspace > Scripts > Comp > ShotStyle)."""',
        *server_python_lines(server_python),
        "import sys",
        "_LIB = {}".format(repr(str(library))),
        "if _LIB not in sys.path:",
        "    sys.path.insert(0, _LIB)",
        "from shotstyle.nodes.resolve import script",
        "script.main(globals())",
        "",
    ])
    return HostLayout("resolve", library,
                      launchers={root / "Scripts" / "Comp" / "ShotStyle.py": launcher for root in roots})


def layout(host: str, os_name: Optional[str] = None, home: Optional[Path] = None,
           env: Optional[Mapping[str, str]] = None, server_python: Optional[str] = None) -> HostLayout:
    """The layout for ``host`` on ``os_name`` ("Linux" | "Darwin" | "Windows") for the user at ``home``."""
    import platform
    os_name = os_name or platform.system()
    home = Path(home) if home is not None else Path.home()
    env = os.environ if env is None else env
    if host == "nuke":
        return _nuke_layout(os_name, home, env, server_python)
    if host == "resolve":
        return _resolve_layout(os_name, home, env, server_python)
    raise HostInstallError("unknown host {!r}: choose one of {}".format(host, ", ".join(HOSTS + ("all",))))


def host_sources(host: str, repo: Path = REPO) -> Dict[str, Path]:
    """Files of the host-side package, as library-relative path -> repository file."""
    sources = {}
    for folder, target in ((repo / "plugin", "shotstyle/plugin"),
                           (repo / "nodes" / host, "shotstyle/nodes/" + host)):
        for path in sorted(folder.rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts and path.suffix in (".py", ".png"):
                sources[target + "/" + path.relative_to(folder).as_posix()] = path
    for shared in ("__init__.py", "hostbridge.py"):
        sources["shotstyle/nodes/" + shared] = repo / "nodes" / shared
    return sources


def pyzmq_command(library: Path, host_python: str) -> List[str]:
    """pip command putting a pyzmq binary wheel for ``host_python`` into the host library."""
    return [sys.executable, "-m", "pip", "install", "--upgrade", "--target", str(library),
            "--python-version", host_python, "--only-binary=:all:", "pyzmq"]


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
                 repo: Path = REPO):
        self.layout = host_layout
        self.dry_run = dry_run
        self.repo = repo
        self.echo = echo
        self.run_command = run_command

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

    def install(self, host_python: Optional[str] = None, pyzmq: bool = True) -> None:
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
        if pyzmq:
            command = pyzmq_command(self.layout.library, host_python or DEFAULT_HOST_PYTHON[host])
            self.echo("run: " + " ".join(command))
            if not self.dry_run and self.run_command(command) != 0:
                raise HostInstallError(
                    "pip could not install a pyzmq wheel for Python {} into {}: check the host's Python "
                    "version (--host-python) or install pyzmq for the host yourself and pass --no-pyzmq"
                    .format(host_python or DEFAULT_HOST_PYTHON[host], self.layout.library))
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


# ---------------------------------------------------------------- entry point
def main(target: str, uninstall: bool = False, dry_run: bool = False, host_python: Optional[str] = None,
         repo: Optional[Path] = None, pyzmq: bool = True, home: Optional[Path] = None,
         os_name: Optional[str] = None, env: Optional[Mapping[str, str]] = None,
         server_python: Optional[str] = None) -> int:
    """Install (or uninstall) the nodes of ``target`` ("nuke" | "resolve" | "all"); the exit status.

    ``server_python`` is the Python (with shotstyle installed) that hosts use to autostart a
    local server.

    ``home``/``os_name``/``env`` default to this user and machine (tests give a temporary HOME).
    """
    hosts = HOSTS if target == "all" else (target,)
    try:
        for host in hosts:
            installer = Installer(layout(host, os_name, home, env, server_python), dry_run=dry_run, repo=Path(repo or REPO))
            if uninstall:
                installer.uninstall()
            else:
                installer.install(host_python, pyzmq=pyzmq)
    except (HostInstallError, OSError) as exc:
        print("install.py: {}".format(exc), file=sys.stderr)
        return 1
    return 0
