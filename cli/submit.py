"""`shotstyle submit`: write (and optionally submit) render-farm jobs that run `shotstyle render` in chunks.

Two farm managers, each in its own documented format:

``shotstyle submit deadline``
    One job per shot for Deadline's *CommandLine* plugin: a job info file (``Plugin=CommandLine``,
    ``Frames=``, ``ChunkSize=``, ``BatchName=`` grouping the shots, ``OutputDirectory0``/
    ``OutputFilename0`` so the Monitor can browse the frames...) and a plugin info file
    (``Executable``, ``Arguments`` with Deadline's ``<STARTFRAME>``/``<ENDFRAME>`` tokens,
    ``StartupDirectory``, ``ShellExecute=False``, ``SingleFramesOnly=False``). With ``--submit``
    each pair is handed to ``deadlinecommand JOBINFO PLUGININFO`` and the job ids are printed.

``shotstyle submit opencue``
    One OpenCue job spec (CJSL XML, DTD ``cjsl-1.14``: ``spec``/``job``/``layers``/``layer`` with
    ``cmd``, ``range``, ``chunk``, ``cores``, ``memory``, ``services``...) holding one layer per
    shot; the command uses cuebot's ``#FRAME_START#``/``#FRAME_END#`` tokens. With ``--submit``
    it is launched through the OpenCue Python API (``opencue.api.launchSpec``).

``--nuke-script SCRIPT.nk --frames R`` (either manager)
    A Nuke script with ShotStyle nodes instead of shots: a pre-job running ``shotstyle
    nuke-prerender`` over each chunk (it writes the chunk's plates with Nuke and stylizes them),
    then the Nuke render of the script, which waits for it: Deadline's Nuke plugin job with
    ``JobDependencies`` set to the pre-job's id at submission; an OpenCue layer depending on the
    pre-job layer (``LAYER_ON_LAYER``).

One shot comes from ``--name/--model/--in/--out/--frames``; several from ``--shots FILE.json``
(a list of objects with the keys ``name``, ``model``, ``in``, ``out``, ``frames`` and optionally
``mix``, ``colourspace``). Paths are made absolute, since farm workers start elsewhere.
Exit status: 0 written (and submitted), 2 bad arguments, 5 the farm manager refused or is absent.
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from typing import Optional

from shotstyle.cli import nukeprerender
from shotstyle.cli.connection import add_key_options, server_list
from shotstyle.cli.render.command import frame_flags, positive_int
from shotstyle.plugin import params
from shotstyle.plugin.errors import ClientError
from shotstyle.plugin.exitcodes import ExitCode
from shotstyle.plugin.sequences import SequencePattern, parse_frame_range, refuse_overwriting

DEADLINE_START, DEADLINE_END = "<STARTFRAME>", "<ENDFRAME>"
OPENCUE_START, OPENCUE_END = "#FRAME_START#", "#FRAME_END#"
CJSL_VERSION = "1.14"
# Cuebot requires job and layer names to be XML NMTOKENs; we keep to a portable subset.
_NAME_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")
# A frame number no real sequence reaches: its digits mark where the frame token sits.
_MARKER_FRAME = 987654321


class SubmitError(ClientError):
    """A shot description or an option is wrong; the message says which and what to do."""

    @property
    def exit_code(self) -> ExitCode:
        return ExitCode.USAGE


@dataclass
class Shot:
    """One shot to render: which model, which plate sequence, where to, which frames."""
    name: str
    model: str
    input: str
    output: str
    frames: str
    mix: Optional[float] = None
    colourspace: Optional[str] = None

    def frame_args(self, out_colourspace: Optional[str] = None) -> params.FrameArgs:
        """What the shot's frames are stylized with (the render's defaults where it says nothing);
        ValueError names a bad value."""
        given = {"mix": self.mix, "colourspace": self.colourspace, "out_colourspace": out_colourspace}
        return params.FrameArgs.from_values({k: v for k, v in given.items() if v is not None})

    def validated(self) -> "Shot":
        """This shot with absolute paths and a farm-safe name; SubmitError naming the bad value."""
        for label, pattern in (("--in", self.input), ("--out", self.output)):
            try:
                SequencePattern(pattern)
            except ValueError as exc:
                raise SubmitError(f"shot {self.name!r}: {label} {exc}") from None
        try:
            frames = parse_frame_range(self.frames)
        except ValueError as exc:
            raise SubmitError(f"shot {self.name!r}: {exc}") from None
        source = SequencePattern(self.input)
        try:
            refuse_overwriting(SequencePattern(self.output), [source.path(f) for f in frames] + [self.model], frames)
        except ValueError as exc:
            raise SubmitError(f"shot {self.name!r}: {exc}") from None
        try:
            self.frame_args()
        except ValueError as exc:
            raise SubmitError(f"shot {self.name!r}: {exc}") from None
        name = _NAME_UNSAFE.sub("_", self.name).strip("_") or "shot"
        return Shot(name, os.path.abspath(self.model), os.path.abspath(self.input),
                    os.path.abspath(self.output), self.frames.replace(" ", ""), self.mix, self.colourspace)


def configure(parser: argparse.ArgumentParser) -> None:
    managers = parser.add_subparsers(dest="manager", metavar="MANAGER", required=True)
    deadline = managers.add_parser("deadline", help="Deadline CommandLine-plugin jobs, one per shot",
                                   formatter_class=parser.formatter_class)
    opencue = managers.add_parser("opencue", help="an OpenCue job spec with one layer per shot",
                                  formatter_class=parser.formatter_class)
    for sub in (deadline, opencue):
        _add_common(sub)
    deadline.add_argument("--pool", default="none")
    deadline.add_argument("--secondary-pool", default="")
    deadline.add_argument("--group", default="none")
    deadline.add_argument("--priority", type=int, default=50, help="0-100 (default 50)")
    deadline.add_argument("--department", default="")
    deadline.add_argument("--comment", default="shotstyle render")
    deadline.add_argument("--machine-limit", type=int, default=0, help="0 = no limit")
    deadline.add_argument("--timeout-minutes", type=int, default=0, help="task timeout, 0 = none")
    deadline.add_argument("--suspended", action="store_true", help="submit with InitialStatus=Suspended")
    deadline.add_argument("--deadlinecommand", default="deadlinecommand",
                          help="path of deadlinecommand (default: found on PATH)")
    opencue.add_argument("--show", default=os.environ.get("SHOW"),
                         help="the OpenCue show (default $SHOW; required without it)")
    opencue.add_argument("--cue-shot", default="shotstyle", help="the spec's <shot>")
    opencue.add_argument("--facility", default="local")
    opencue.add_argument("--user", default=_login_name(),
                         help="the job's owner (default: this login, $USER)")
    opencue.add_argument("--priority", type=int, default=100)
    opencue.add_argument("--max-retries", type=int, default=2)
    opencue.add_argument("--service", default="shell", help="OpenCue service for the layers (default shell)")
    opencue.add_argument("--cores", type=float, default=1.0)
    opencue.add_argument("--memory", default="4g", help="memory per frame, e.g. 4g")
    opencue.add_argument("--gpus", type=int, default=0)
    opencue.add_argument("--gpu-memory", default="", help="e.g. 8g (with --gpus)")
    opencue.add_argument("--tags", default="", help="layer tags, e.g. 'gpu | general'")


def _login_name() -> Optional[str]:
    """The account submitting ($LOGNAME, $USER... else the password database), or None when there is none."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return None


def _add_common(sub: argparse.ArgumentParser) -> None:
    shot = sub.add_argument_group("one shot (or use --shots)")
    shot.add_argument("--name", help="shot name (default: the output file's stem)")
    shot.add_argument("--model")
    shot.add_argument("--in", dest="input", metavar="PATTERN")
    shot.add_argument("--out", dest="output", metavar="PATTERN")
    shot.add_argument("--frames", help="e.g. 1001-1100 or 1001-1100x2")
    sub.add_argument("--shots", metavar="FILE.json", help="several shots: a JSON list of "
                     '{"name","model","in","out","frames"[,"mix","colourspace"]}')
    sub.add_argument("--mix", type=float, help="passed to every shot's render")
    sub.add_argument("--colourspace", help="input colour space passed to render")
    sub.add_argument("--compression", help="EXR compression passed to render")
    sub.add_argument("--out-colourspace", metavar="COLOURSPACE", help="output colour space passed to render")
    sub.add_argument("--allow-display-output", action="store_true",
                     help="allow non-EXR outputs (passed to render, which refuses them otherwise)")
    sub.add_argument("--server", type=server_list, metavar="ADDR[,ADDR2...]",
                     help="render servers for the farm workers")
    add_key_options(sub)
    sub.add_argument("--in-process", action="store_true", help="workers render without a server")
    sub.add_argument("--threads", type=positive_int, help="CPU threads per --in-process task (render --threads)")
    sub.add_argument("--chunk", type=int, default=10, help="frames per task (default 10)")
    sub.add_argument("--job-name", default="shotstyle", help="job (Deadline: batch) name")
    sub.add_argument("--executable", help="the shotstyle command on the farm (default: this installation's)")
    sub.add_argument("-o", "--output-dir", default="shotstyle_jobs", help="where the job files go")
    sub.add_argument("--submit", action="store_true", help="hand the files to the farm manager")
    nuke = sub.add_argument_group("a Nuke script instead of shots: a nuke-prerender pre-job, then the Nuke render")
    nuke.add_argument("--nuke-script", metavar="SCRIPT.nk", help="the script to render (with --frames)")
    nuke.add_argument("--nuke", default="nuke", help="the Nuke executable on the farm (default: nuke)")
    nuke.add_argument("--nuke-version", default="", help="Deadline Nuke plugin Version, e.g. 15.1")
    nuke.add_argument("--write-node", default="", help="render only this Write node (default: all)")


def run(args: argparse.Namespace) -> int:
    try:
        if args.nuke_script:
            return _nuke_script(args, *_render_command(args.executable))
        shots = [shot.validated() for shot in _shots_from(args)]
        for shot in shots:
            if not shot.output.lower().endswith(".exr") and not args.allow_display_output:
                raise SubmitError(f"shot {shot.name!r}: --out {shot.output}: farm renders write EXR; give "
                                  "--allow-display-output for display-encoded files (every task would refuse)")
        if args.chunk < 1:
            raise SubmitError(f"--chunk {args.chunk}: give 1 or more frames per task")
        if args.server and args.in_process:
            raise SubmitError("give --server or --in-process, not both")
        executable, prefix = _render_command(args.executable)
        os.makedirs(args.output_dir, exist_ok=True)
        if args.manager == "deadline":
            return _deadline(args, shots, executable, prefix)
        return _opencue(args, shots, executable, prefix)
    except SubmitError as exc:
        print(f"shotstyle submit: {exc}", file=sys.stderr)
        return exc.exit_code
    except OSError as exc:
        print(f"shotstyle submit: {exc}", file=sys.stderr)
        return ExitCode.USAGE


def _shots_from(args: argparse.Namespace) -> list[Shot]:
    shots: list[Shot] = []
    if args.shots:
        try:
            with open(args.shots, encoding="utf-8") as handle:
                entries = json.load(handle)
            if not isinstance(entries, list):
                raise TypeError("not a list")
            for entry in entries:
                shots.append(Shot(entry.get("name") or _stem(entry["out"]), entry["model"], entry["in"],
                                  entry["out"], str(entry["frames"]), entry.get("mix", args.mix),
                                  entry.get("colourspace", args.colourspace)))
        except (OSError, ValueError, TypeError, KeyError, AttributeError) as exc:
            raise SubmitError(f"--shots {args.shots}: cannot read it ({exc!r}); give a JSON list of objects "
                              'with "name", "model", "in", "out", "frames"') from None
    single = [args.model, args.input, args.output, args.frames]
    if any(single):
        if not all(single):
            raise SubmitError("a shot needs --model, --in, --out and --frames together")
        shots.append(Shot(args.name or _stem(args.output), args.model, args.input, args.output, args.frames,
                          args.mix, args.colourspace))
    if not shots:
        raise SubmitError("nothing to submit: give --model/--in/--out/--frames or --shots FILE.json")
    names = [shot.name for shot in shots]
    if len(set(names)) != len(names):
        raise SubmitError(f"shot names repeat ({', '.join(names)}); give each shot its own name")
    return shots


def _stem(pattern: str) -> str:
    return os.path.basename(pattern).split(".")[0] or "shot"


def _render_command(executable: Optional[str]) -> tuple[str, list[str]]:
    """The program farm workers run and the arguments before `render`."""
    if executable:
        return executable, []
    installed = shutil.which("shotstyle") or shutil.which("shotstyle", path=os.path.dirname(sys.executable))
    if installed:
        return os.path.abspath(installed), []
    return sys.executable, ["-m", "shotstyle.cli"]


def render_arguments(args: argparse.Namespace, shot: Shot, start: str, end: str) -> list[str]:
    """`shotstyle render` arguments for one chunk, the chunk's bounds given as the manager's tokens."""
    argv = ["render", "--model", shot.model, "--in", shot.input, "--out", shot.output,
            "--frames", f"{start}-{end}"]
    if not re.fullmatch(r"-?\d+-?\d*", shot.frames):  # a step or a list: keep each chunk to the shot's own frames
        argv += ["--within", shot.frames]
    argv += frame_flags(shot.frame_args(args.out_colourspace))
    if args.compression:
        argv += ["--compression", args.compression]
    if args.allow_display_output:
        argv += ["--allow-display-output"]
    return argv + nukeprerender.server_options(args)


def hash_padded(pattern: str) -> str:
    """``pattern`` spelled with ``#`` padding, the form Deadline's OutputFilename keys read."""
    sequence = SequencePattern(pattern)
    marked = sequence.path(_MARKER_FRAME)
    return marked.replace(str(_MARKER_FRAME), "#" * max(sequence.padding, 1))


# ---------------------------------------------------------------- Deadline


def deadline_job_info(args: argparse.Namespace, shot: Shot) -> dict[str, str]:
    info = _deadline_base_info(args, "CommandLine", shot.name, shot.frames)
    info.update({
        "OutputDirectory0": os.path.dirname(shot.output),
        "OutputFilename0": os.path.basename(hash_padded(shot.output)),
    })
    return info


def _deadline_base_info(args: argparse.Namespace, plugin: str, name: str, frames: str) -> dict[str, str]:
    """Job info keys every job we write has: plugin, names, scheduling, frames."""
    info = {
        "Plugin": plugin,
        "Name": f"{args.job_name} - {name}",
        "BatchName": args.job_name,
        "Comment": args.comment,
        "Department": args.department,
        "Pool": args.pool,
        "SecondaryPool": args.secondary_pool,
        "Group": args.group,
        "Priority": str(args.priority),
        "Frames": frames,
        "ChunkSize": str(args.chunk),
        "MachineLimit": str(args.machine_limit),
        "TaskTimeoutMinutes": str(args.timeout_minutes),
    }
    if args.suspended:
        info["InitialStatus"] = "Suspended"
    return info


def deadline_plugin_info(args: argparse.Namespace, shot: Shot, executable: str, prefix: list[str]) -> dict[str, str]:
    arguments = prefix + render_arguments(args, shot, DEADLINE_START, DEADLINE_END)
    info = {"Executable": executable, "Arguments": subprocess.list2cmdline(arguments), "ShellExecute": "False",
            "SingleFramesOnly": "False"}
    # Deadline fails a task whose startup folder does not exist, and the output folder is made
    # only by the render itself: the first that exists now (paths in the command are absolute).
    folders = [os.path.dirname(path) for path in (shot.output, shot.input, shot.model)]
    startup = next((folder for folder in folders if os.path.isdir(folder)), None)
    if startup is not None:
        info["StartupDirectory"] = startup
    return info


def write_key_values(path: str, values: dict[str, str]) -> None:
    with open(path, "w", encoding="utf-8") as handle:
        handle.writelines(f"{key}={value}\n" for key, value in values.items())


def _deadline(args: argparse.Namespace, shots: list[Shot], executable: str, prefix: list[str]) -> int:
    pairs = []
    for shot in shots:
        job_file = os.path.join(args.output_dir, f"{shot.name}.job_info.job")
        plugin_file = os.path.join(args.output_dir, f"{shot.name}.plugin_info.job")
        write_key_values(job_file, deadline_job_info(args, shot))
        write_key_values(plugin_file, deadline_plugin_info(args, shot, executable, prefix))
        print(f"shotstyle submit: Deadline job for {shot.name}: {job_file} {plugin_file}")
        pairs.append((job_file, plugin_file))
    if not args.submit:
        return ExitCode.OK
    command = _deadlinecommand(args)
    if command is None:
        return ExitCode.SERVER_UNREACHABLE
    for job_file, plugin_file in pairs:
        if _deadline_send(command, job_file, plugin_file) is None:
            return ExitCode.SERVER_UNREACHABLE
    return ExitCode.OK


def _deadlinecommand(args: argparse.Namespace) -> Optional[str]:
    command = shutil.which(args.deadlinecommand)
    if command is None:
        print(f"shotstyle submit: {args.deadlinecommand!r} not found; install the Deadline client or pass "
              "--deadlinecommand PATH (the job files above can also be submitted by hand)", file=sys.stderr)
    return command


def _deadline_send(command: str, job_file: str, plugin_file: str) -> Optional[str]:
    """Submit one job info / plugin info pair; its Deadline job id, or None (said why) when refused."""
    result = subprocess.run([command, job_file, plugin_file], capture_output=True, text=True)
    job_id = re.search(r"^JobID=(\S+)", result.stdout, re.MULTILINE)
    if result.returncode != 0 or job_id is None:
        print(f"shotstyle submit: deadlinecommand refused {job_file} (exit {result.returncode}):\n"
              f"{result.stdout}{result.stderr}", file=sys.stderr)
        return None
    print(f"shotstyle submit: submitted {job_file} as Deadline job {job_id.group(1)}")
    return job_id.group(1)


# ---------------------------------------------------------------- OpenCue


def opencue_spec(args: argparse.Namespace, shots: list[Shot], executable: str, prefix: list[str]) -> str:
    """The CJSL job spec text: one Render layer per shot."""
    spec, layers = _cjsl_job(args)
    for shot in shots:
        command = [executable, *prefix, *render_arguments(args, shot, OPENCUE_START, OPENCUE_END)]
        _cjsl_layer(args, layers, shot.name, command, shot.frames, hash_padded(shot.output))
    ET.SubElement(spec, "depends")
    return _cjsl_text(spec)


def _cjsl_job(args: argparse.Namespace) -> tuple[ET.Element, ET.Element]:
    """A spec element with its job, and the job's (empty) layers element."""
    for flag, value, variable in (("--show", args.show, "SHOW"), ("--user", args.user, "USER")):
        if not value:
            raise SubmitError(f"OpenCue needs {flag[2:]}: give {flag} (or set ${variable}); cuebot files the "
                              "job under it")
    spec = ET.Element("spec")
    for tag, text in (("facility", args.facility), ("show", args.show), ("shot", args.cue_shot),
                      ("user", args.user)):
        ET.SubElement(spec, tag).text = text
    job = ET.SubElement(spec, "job", {"name": _NAME_UNSAFE.sub("_", args.job_name)})
    for tag, text in (("paused", "False"), ("priority", str(args.priority)),
                      ("maxretries", str(args.max_retries)), ("autoeat", "False")):
        ET.SubElement(job, tag).text = text
    return spec, ET.SubElement(job, "layers")


def _cjsl_layer(args: argparse.Namespace, layers: ET.Element, name: str, command: list[str], frames: str,
                output: Optional[str] = None) -> None:
    layer = ET.SubElement(layers, "layer", {"name": name, "type": "Render"})
    ET.SubElement(layer, "cmd").text = _posix_command(command)
    ET.SubElement(layer, "range").text = frames
    ET.SubElement(layer, "chunk").text = str(args.chunk)
    ET.SubElement(layer, "cores").text = f"{args.cores:.1f}"
    ET.SubElement(layer, "memory").text = args.memory
    if args.gpus:
        ET.SubElement(layer, "gpus").text = str(args.gpus)
        ET.SubElement(layer, "gpu_memory").text = args.gpu_memory or "1g"
    if args.tags:
        ET.SubElement(layer, "tags").text = args.tags
    services = ET.SubElement(layer, "services")
    ET.SubElement(services, "service").text = args.service
    if output:
        outputs = ET.SubElement(layer, "outputs")
        ET.SubElement(outputs, "output", {"name": "frames"}).text = output


def _cjsl_text(spec: ET.Element) -> str:
    ET.indent(spec)
    return ('<?xml version="1.0"?>\n'
            f'<!DOCTYPE spec PUBLIC "SPI Cue  Specification Language" '
            f'"http://localhost:8080/spcue/dtd/cjsl-{CJSL_VERSION}.dtd">\n'
            + ET.tostring(spec, encoding="unicode") + "\n")


def _posix_command(argv: list[str]) -> str:
    """A shell line for RQD; frame tokens stay bare so cuebot can substitute them."""
    quoted = shlex.join(argv)
    for token in (OPENCUE_START, OPENCUE_END):
        quoted = quoted.replace(shlex.quote(token), token)
    return quoted


def _opencue(args: argparse.Namespace, shots: list[Shot], executable: str, prefix: list[str]) -> int:
    return _opencue_launch(args, opencue_spec(args, shots, executable, prefix), f"{len(shots)} layer(s)")


def _opencue_launch(args: argparse.Namespace, text: str, what: str) -> int:
    """Write the spec (and with --submit, launch it through pycue)."""
    path = os.path.join(args.output_dir, f"{_NAME_UNSAFE.sub('_', args.job_name)}.cjsl.xml")
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(text)
    print(f"shotstyle submit: OpenCue job spec with {what}: {path}")
    if not args.submit:
        return ExitCode.OK
    try:
        import opencue  # type: ignore[import-not-found]
    except ImportError:
        print("shotstyle submit: the OpenCue Python API (pycue, `import opencue`) is not installed here; "
              f"install it or launch {path} with your studio's OpenCue tools", file=sys.stderr)
        return ExitCode.SERVER_UNREACHABLE
    try:
        jobs = opencue.api.launchSpec(text)
    except Exception as exc:  # pycue raises grpc and its own errors; all mean "cuebot refused"
        print(f"shotstyle submit: cuebot refused {path}: {exc}", file=sys.stderr)
        return ExitCode.SERVER_UNREACHABLE
    print(f"shotstyle submit: launched OpenCue job(s): {', '.join(map(str, jobs))}")
    return ExitCode.OK


# ---------------------------------------------------------------- a Nuke script: pre-job, then the render


def nuke_prerender_arguments(args: argparse.Namespace, start: str, end: str) -> list[str]:
    """`shotstyle nuke-prerender` arguments for one chunk of the script's frames."""
    return (["nuke-prerender", os.path.abspath(args.nuke_script), "--frames", f"{start}-{end}", "--nuke", args.nuke]
            + nukeprerender.server_options(args))


def nuke_render_arguments(args: argparse.Namespace, start: str, end: str) -> list[str]:
    """The Nuke command line rendering one chunk (``-x``; ``-X`` for one Write node)."""
    argv = [args.nuke, "-x", "-F", f"{start}-{end}"]
    if args.write_node:
        argv += ["-X", args.write_node]
    return argv + [os.path.abspath(args.nuke_script)]


def deadline_nuke_plugin_info(args: argparse.Namespace) -> dict[str, str]:
    """Plugin info for Deadline's Nuke plugin (the keys its Nuke.py reads: SceneFile, Version, BatchMode, WriteNode)."""
    info = {"SceneFile": os.path.abspath(args.nuke_script), "Version": args.nuke_version, "BatchMode": "True",
            "Threads": "0", "NukeX": "False"}
    if args.write_node:
        info["WriteNode"] = args.write_node
    return info


def _nuke_script(args: argparse.Namespace, executable: str, prefix: list[str]) -> int:
    if not args.frames:
        raise SubmitError("--nuke-script needs --frames, e.g. 1001-1100")
    try:
        parse_frame_range(args.frames)
    except ValueError as exc:
        raise SubmitError(str(exc)) from None
    if not os.path.isfile(args.nuke_script):
        raise SubmitError(f"--nuke-script {args.nuke_script}: no such file")
    stem = _NAME_UNSAFE.sub("_", os.path.splitext(os.path.basename(args.nuke_script))[0]).strip("_") or "nuke"
    os.makedirs(args.output_dir, exist_ok=True)
    if args.manager == "opencue":
        spec, layers = _cjsl_job(args)
        prerender = [executable, *prefix, *nuke_prerender_arguments(args, OPENCUE_START, OPENCUE_END)]
        _cjsl_layer(args, layers, stem + "_prerender", prerender, args.frames)
        _cjsl_layer(args, layers, stem + "_nuke", nuke_render_arguments(args, OPENCUE_START, OPENCUE_END),
                    args.frames)
        depend = ET.SubElement(ET.SubElement(spec, "depends"), "depend", {"type": "LAYER_ON_LAYER"})
        job_name = _NAME_UNSAFE.sub("_", args.job_name)
        for tag, text in (("depjob", job_name), ("deplayer", stem + "_nuke"), ("onjob", job_name),
                          ("onlayer", stem + "_prerender")):
            ET.SubElement(depend, tag).text = text
        return _opencue_launch(args, _cjsl_text(spec), "a nuke-prerender layer and the Nuke render after it")
    if not args.nuke_version:
        raise SubmitError("Deadline's Nuke plugin needs the Nuke version: give --nuke-version, e.g. 15.1")
    files = {kind: os.path.join(args.output_dir, f"{stem}.{kind}.job") for kind in
             ("prerender.job_info", "prerender.plugin_info", "nuke.job_info", "nuke.plugin_info")}
    startup = os.path.dirname(os.path.abspath(args.nuke_script))
    write_key_values(files["prerender.job_info"], _deadline_base_info(args, "CommandLine", stem + " prerender",
                                                                      args.frames))
    write_key_values(files["prerender.plugin_info"], {
        "Executable": executable, "StartupDirectory": startup, "ShellExecute": "False", "SingleFramesOnly": "False",
        "Arguments": subprocess.list2cmdline(prefix + nuke_prerender_arguments(args, DEADLINE_START, DEADLINE_END))})
    nuke_job = _deadline_base_info(args, "Nuke", stem, args.frames)
    write_key_values(files["nuke.job_info"], nuke_job)
    write_key_values(files["nuke.plugin_info"], deadline_nuke_plugin_info(args))
    print("shotstyle submit: Deadline jobs for {}: the nuke-prerender pre-job {} {} and the Nuke render {} {}".format(
        args.nuke_script, files["prerender.job_info"], files["prerender.plugin_info"], files["nuke.job_info"],
        files["nuke.plugin_info"]))
    if not args.submit:
        print("shotstyle submit: submit the pre-job first, then the render with JobDependencies=<the pre-job's id> "
              "(--submit does both)")
        return ExitCode.OK
    command = _deadlinecommand(args)
    prerender_id = command and _deadline_send(command, files["prerender.job_info"], files["prerender.plugin_info"])
    if not command or not prerender_id:
        return ExitCode.SERVER_UNREACHABLE
    write_key_values(files["nuke.job_info"], dict(nuke_job, JobDependencies=prerender_id))
    if _deadline_send(command, files["nuke.job_info"], files["nuke.plugin_info"]) is None:
        return ExitCode.SERVER_UNREACHABLE
    return ExitCode.OK
