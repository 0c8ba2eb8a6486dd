"""A stand-in for the ``nuke`` executable's command line, over the stand-in ``nuke`` module.

Tests run it as ``python nuke_cli.py ARGS`` (or through a small wrapper named ``nuke``). What it
copies from real Nuke:

* start-up runs ``init.py`` from every plug-in path folder, in reverse plug-in path order:
  ``NUKE_PATH`` folders first, the user's ``.nuke`` (under ``HOME``) last; an exception there
  stops Nuke (learn.foundry.com/nuke/developers/12.2/pythondevguide/startup.html, and the user
  guide's warning that "mistakes could stop Nuke from running");
* ``-t SCRIPT.py ARGS``: runs the script as ``__main__`` with ``sys.argv = [SCRIPT.py, ARGS]``,
  except that a last argument that is a number or frame range is taken off ``sys.argv``
  (learn.foundry.com/nuke/developers/80/pythondevguide/command_line.html);
* ``-x [-F RANGE] [-X NODE] SCRIPT.nk``: opens the script and renders its Write nodes (or only
  NODE) for RANGE (default: the script's frame range); exit status 1 and the error on stderr
  when a render fails.
"""

from __future__ import annotations

import os
import re
import runpy
import sys
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import nuke  # noqa: E402  (the stand-in beside this file)

FRAME_RANGE = re.compile(r"^-?\d+(?:[-,x]-?\d+)*$")


def run_init_files() -> None:
    home = Path(os.environ.get("HOME", str(Path.home()))) / ".nuke"
    folders = [p for p in os.environ.get("NUKE_PATH", "").split(os.pathsep) if p] + [str(home)]
    for folder in reversed(folders[:-1]):
        _run_init(folder)
    _run_init(folders[-1])


def _run_init(folder: str) -> None:
    init = os.path.join(folder, "init.py")
    if os.path.isfile(init):
        runpy.run_path(init, init_globals={"nuke": nuke}, run_name="__main__")


def frames_of(text: str) -> list:
    first, _, last = text.partition("-")
    return list(range(int(first), int(last or first) + 1))


def main(argv: list) -> int:
    nuke.GUI = False
    try:
        run_init_files()
    except Exception:
        traceback.print_exc()
        print("nuke: start-up failed in init.py", file=sys.stderr)
        return 1
    if argv[:1] == ["-t"]:
        script, args = argv[1], argv[2:]
        if args and FRAME_RANGE.match(args[-1]):
            args = args[:-1]
        sys.argv = [script] + args
        try:
            runpy.run_path(script, run_name="__main__")
        except SystemExit as exc:
            return int(exc.code or 0)
        except Exception:
            traceback.print_exc()
            return 1
        return 0
    frames, only, script = None, None, None
    rest = list(argv)
    while rest:
        arg = rest.pop(0)
        if arg == "-x":
            continue
        if arg == "-F":
            frames = frames_of(rest.pop(0))
        elif arg == "-X":
            only = rest.pop(0)
        else:
            script = arg
    if script is None:
        print("nuke: give -t SCRIPT.py or -x SCRIPT.nk", file=sys.stderr)
        return 2
    try:
        nuke.scriptOpen(script)
        writes = [w for w in nuke.allNodes("Write") if only is None or w.name() == only]
        chosen = frames or list(range(nuke.root().firstFrame(), nuke.root().lastFrame() + 1))
        for write in writes:
            nuke.execute(write, chosen[0], chosen[-1])
    except Exception as exc:
        print("nuke: render failed: {}".format(exc), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
