"""Which Python a host application runs, so the pyzmq wheel installed for it loads (standard library only).

* Nuke embeds its own Python: Nuke 13 runs 3.7, 14 runs 3.9, 15 runs 3.10, 16 runs 3.11 (Foundry's
  "Nuke as a Python Module" pages name the interpreter each release was built with, e.g. 3.10.10
  for 15.2 and 3.11.7 for 16.0; for 13 and 14 no Foundry page was at hand here: those two follow
  the VFX Reference Platform years the releases target, CY2020 = Python 3.7 and CY2022 = 3.9, and
  14 = 3.9 is what the audit in issue 12 measured). The version comes from ``--nuke-version`` or
  from the Nuke installs found in the standard folders (``Nuke15.1v2`` and the like).
* DaVinci Resolve and Fusion load a Python installed on the machine: the one in
  ``FUSION_PYTHON3_HOME`` when set, else on Windows the highest registered version (what
  ``py -3`` starts), else ``python3``. It is detected that way, or asked for.
* Hosts older than Python 3.7 are refused: the host-side package needs 3.7 (Nuke 12 and older
  run Python 2.7; Resolve 17 accepted any Python from 3.6).
"""

import os
import re
import subprocess
from pathlib import Path
from typing import Callable, List, Mapping, Optional, Sequence, Set, Tuple

NUKE_PYTHON = {13: "3.7", 14: "3.9", 15: "3.10", 16: "3.11"}
MIN_HOST_PYTHON = (3, 7)
NUKE_FOLDER = re.compile(r"^Nuke(\d+)\.(\d+)v\d+")
ASK_VERSION = ("Which Python does DaVinci Resolve use here (as X.Y, e.g. 3.11)? Resolve's Console "
               "(Workspace > Console > Py3) prints it with: import sys; print(sys.version)")

Probe = Callable[[Sequence[str]], Optional[str]]


# Not under plugin.errors.ClientError: install.py loads this file before shotstyle is installed.
class HostPythonError(Exception):
    """The host's Python is unknown or too old; the message says what to pass or install."""


def supported(version: str, host: str) -> str:
    """``version`` as "X.Y" if the host-side package runs on it; HostPythonError otherwise."""
    match = re.match(r"^(\d+)\.(\d+)", version.strip())
    if not match:
        raise HostPythonError("{}: {!r} is not a Python version; give it as X.Y, e.g. 3.10".format(host, version))
    found = (int(match.group(1)), int(match.group(2)))
    if found < MIN_HOST_PYTHON:
        raise HostPythonError("{} runs Python {}.{}; ShotStyle needs Python {}.{} or newer inside the host "
                              "(Nuke 13 or newer; Resolve/Fusion with Python 3.7+ installed)".format(
                                  host, found[0], found[1], *MIN_HOST_PYTHON))
    return "{}.{}".format(*found)


def nuke_python(major: int) -> str:
    """The Python Nuke ``major`` embeds."""
    if major in NUKE_PYTHON:
        return NUKE_PYTHON[major]
    if major < min(NUKE_PYTHON):
        raise HostPythonError("Nuke {} runs Python 2.7; ShotStyle needs Nuke 13 or newer".format(major))
    raise HostPythonError("Nuke {} is newer than this installer knows ({}); give its Python with "
                          "--host-python X.Y".format(major, ", ".join("Nuke {} = {}".format(k, v)
                                                                      for k, v in sorted(NUKE_PYTHON.items()))))


def nuke_install_roots(os_name: str, env: Mapping[str, str]) -> List[Path]:
    """Folders Nuke's installers put ``NukeX.YvZ`` folders in."""
    if os_name == "Windows":
        return [Path(env.get("ProgramFiles") or "C:\\Program Files")]
    if os_name == "Darwin":
        return [Path("/Applications")]
    return [Path("/usr/local"), Path("/opt")]


def find_nuke_versions(roots: Sequence[Path]) -> List[int]:
    """Major versions of the Nuke installs in ``roots``."""
    majors = set()  # type: Set[int]
    for root in roots:
        try:
            names = os.listdir(str(root))
        except OSError:
            continue
        majors.update(int(m.group(1)) for m in (NUKE_FOLDER.match(n) for n in names) if m)
    return sorted(majors)


def nuke_pythons(requested: str, roots: Sequence[Path]) -> List[Tuple[str, str]]:
    """(Nuke label, Python) for ``--nuke-version`` (e.g. "14,15.1") or, when empty, the installs found."""
    if requested.strip():
        majors = []
        for part in requested.split(","):
            match = re.match(r"^\s*(\d+)(\.\d+)?\s*$", part)
            if not match:
                raise HostPythonError("--nuke-version {!r}: give Nuke versions like 15 or 14,15.1".format(requested))
            majors.append(int(match.group(1)))
    else:
        majors = find_nuke_versions(roots)
        if not majors:
            raise HostPythonError("no Nuke install found in {}; give --nuke-version (e.g. 15) or --host-python "
                                  "X.Y".format(", ".join(str(r) for r in roots)))
    return [("Nuke {}".format(major), supported(nuke_python(major), "Nuke {}".format(major)))
            for major in sorted(set(majors))]


def resolve_candidates(os_name: str, env: Mapping[str, str]) -> List[List[str]]:
    """Commands for the Python DaVinci Resolve / Fusion would load, most specific first."""
    candidates = []
    home = env.get("FUSION_PYTHON3_HOME")
    if home:
        candidates.append([str(Path(home) / ("python.exe" if os_name == "Windows" else "bin/python3"))])
    if os_name == "Windows":
        candidates.append(["py", "-3"])
    elif os_name == "Darwin":
        candidates.append(["/Library/Frameworks/Python.framework/Versions/Current/bin/python3"])
    candidates.append(["python3"])
    return candidates


def probe_python(command: Sequence[str]) -> Optional[str]:
    """The "X.Y" version ``command`` runs, or None when it does not run."""
    try:
        done = subprocess.run(list(command) + ["-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, universal_newlines=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() if done.returncode == 0 and done.stdout.strip() else None


def resolve_python(os_name: str, env: Mapping[str, str], probe: Probe = probe_python,
                   ask: Optional[Callable[[str], str]] = None) -> Tuple[str, str]:
    """(Python version, how it was found) for DaVinci Resolve / Fusion on this machine."""
    for command in resolve_candidates(os_name, env):
        version = probe(command)
        if version:
            return supported(version, "DaVinci Resolve's Python ({})".format(" ".join(command))), \
                "found {} ({})".format(" ".join(command), version)
    if ask is None:
        raise HostPythonError("cannot tell which Python DaVinci Resolve uses here (none of {} runs); give it with "
                              "--host-python X.Y".format(", ".join(" ".join(c) for c in resolve_candidates(os_name,
                                                                                                           env))))
    return supported(ask(ASK_VERSION), "DaVinci Resolve's Python"), "as you said"
