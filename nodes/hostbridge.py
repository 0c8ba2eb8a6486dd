"""What every host node does with the server, on files: train on keyframe files, stylize frame files.

Nuke and Resolve both write their plate frames as EXR files with their own writers, then call
this module: it sends the file bytes through ``shotstyle.plugin.client``, writes the stylized
EXRs it gets back (atomically) and reports progress through callbacks, so the host code only
deals with its own UI. Each host node keeps one bridge (``bridges.get``), so its connection
is made once and reused by every action; a bridge runs one action at a time (``session``).
Standard library + pyzmq + shotstyle.plugin only (it runs inside hosts, Python 3.7+).
"""

import atexit
import contextlib
import hashlib
import json
import os
import re
import threading
from typing import Any, Callable, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple, TypeVar

from shotstyle.plugin import codec, localserver, mattes, params, protocol
from shotstyle.plugin.address import address_or_local
from shotstyle.plugin.client import Client, ServerError, follow
from shotstyle.plugin.errors import ClientError
from shotstyle.plugin.userconfig import curve_keys

T = TypeVar("T")
# (frame number, EXR path written by the host, EXR path to write the result to)
FrameJob = Tuple[int, str, str]
# Groups of the description whose values go to training / to stylizing.
TRAIN_GROUPS = ("Training", "Colour")
RENDER_GROUPS = ("Render", "Colour")


CONNECT_TIMEOUT_S = 5.0


class HostBridgeError(ClientError):
    """A server round trip failed; the message is for the artist (names the server/file and a fix)."""


class HostBridgeBusy(HostBridgeError):
    """The node's bridge is already running an action (one at a time per node)."""


def values_for(groups: Sequence[str], values: Dict[str, Any], description: Dict[str, Any]) -> Dict[str, Any]:
    """The subset of ``values`` whose parameters belong to ``groups`` (buttons, keyframes and mattes excluded)."""
    names = {p["name"] for p in description["params"]
             if p["group"] in groups and p["kind"] not in ("button", "frames", "mattes")}
    return {name: value for name, value in values.items() if name in names}


def render_key(model: str, render_values: Dict[str, Any]) -> str:
    """Cache folder name for one model + render settings, so changed settings never show stale frames."""
    digest = hashlib.sha1(json.dumps(render_values, sort_keys=True).encode("utf-8")).hexdigest()
    return "{}-{}".format(safe_name(model), digest[:10])


def safe_name(text: str) -> str:
    """``text`` usable as a file or model name."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("._") or "model"


def frame_runs(frames: Iterable[int]) -> List[Tuple[int, int]]:
    """Consecutive runs of frames as (first, last) pairs: what hosts' render calls take."""
    runs = []  # type: List[Tuple[int, int]]
    for frame in sorted(set(frames)):
        if runs and frame == runs[-1][1] + 1:
            runs[-1] = (runs[-1][0], frame)
        else:
            runs.append((frame, frame))
    return runs


class HostBridge:
    """One host node's connection to a server (the local one unless ``address`` is given).

    The connection is made on first use and kept. The client is not thread-safe, so every use
    goes through ``session()``, which lets one action at a time have it (the lock also hands
    the socket safely from one worker thread to the next).
    """

    def __init__(self, address: str = "", autostart: bool = True, timeout: float = 30.0, server_key: str = "",
                 client_key: str = ""):
        self.address = address.strip()
        self.autostart = autostart and not self.address
        self.timeout = timeout
        self.keys = (server_key.strip(), client_key.strip())  # CURVE key files for ``address`` ("": the defaults)
        self._client = None  # type: Optional[Client]
        self._lock = threading.Lock()
        self._doing = ""
        self._retired = False

    @contextlib.contextmanager
    def session(self, doing: str) -> Iterator["HostBridge"]:
        """Hold the bridge for one action; HostBridgeBusy (naming the running action) when taken."""
        if not self._lock.acquire(blocking=False):
            raise HostBridgeBusy("busy {}; wait for it to finish or cancel it".format(self._doing or "with another action"))
        self._doing = doing
        try:
            yield self
        finally:
            self._doing = ""
            if self._retired:
                self.close()
            self._lock.release()

    def retire(self) -> None:
        """Close now if idle, else when the running action ends (the node now uses another server)."""
        self._retired = True
        if self._lock.acquire(blocking=False):
            try:
                self.close()
            finally:
                self._lock.release()

    # -- connection -------------------------------------------------------------------------
    @property
    def client(self) -> Client:
        if self._client is not None and not self.address \
                and localserver.find_local_server(check=False) != self._client.address:
            self.close()  # the local server exited (idle) or was replaced: reach the current one
        if self._client is None:
            self._client = self.call("cannot reach it", self._connect)
        return self._client

    def _connect(self) -> Client:
        """A client to the node's server: its address parsed, with CURVE keys (given, environment, config)."""
        address = address_or_local(self.address)
        keys = curve_keys(*(key or None for key in self.keys)) if address is not None else None
        return Client(address, timeout=self.timeout, autostart=self.autostart,
                      **({} if keys is None else keys.client_options()))

    def call(self, doing: str, function: Callable[[], T]) -> T:
        """``function()``, with the client's errors turned into a HostBridgeError naming the server."""
        try:
            return function()
        except ServerError as exc:
            raise HostBridgeError("shotstyle server {}: {}: {}".format(self.address or "(local)", doing, exc)) \
                from exc

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def hello(self, timeout: float = CONNECT_TIMEOUT_S) -> Dict[str, Any]:
        return self.call("hello failed", lambda: self.client.call(protocol.OP_HELLO, timeout=timeout)[0])

    def _no_server_yet(self) -> bool:
        """No connection yet, and no local server to make one to without starting it."""
        return self._client is None and not self.address and localserver.find_local_server() is None

    def status_line(self) -> str:
        """One line for a node's status knob; never raises and never starts a local server."""
        if self._no_server_yet():
            return "not connected: no local server is running (a local server starts on Train/Stylize)"
        try:
            info = self.hello()
        except HostBridgeError as exc:
            return "not connected: {} ({})".format(exc, "check the server address" if self.address
                                                   else "a local server starts on Train/Stylize")
        line = "connected: shotstyle {} on {}, {} model(s)".format(
            info.get("version", "?"), info.get("device", "?"), len(info.get("models", [])))
        mismatch = localserver.install_mismatch(info)
        return line + ("; warning: " + mismatch if mismatch else "")

    def describe(self) -> Dict[str, Any]:
        """The server's effect description, or this package's own when no server answers (never starts one)."""
        if self._no_server_yet():
            return params.describe()
        try:
            return self.hello()["params"]
        except HostBridgeError:
            return params.describe()

    def model_names(self) -> List[str]:
        models = self.call("listing models failed", lambda: self.client.list_models())
        return sorted(str(model.get("name")) for model in models)

    # -- training --------------------------------------------------------------------------
    def train(self, keyframes: Sequence[Tuple[int, str]], style_path: str, name: str,
              values: Dict[str, Any], description: Dict[str, Any],
              preview: Optional[Tuple[int, str]] = None,
              on_progress: Callable[[Dict[str, Any]], None] = lambda event: None,
              on_preview: Callable[[int, codec.EncodedFrame], None] = lambda step, image: None,
              should_cancel: Callable[[], bool] = lambda: False) -> Dict[str, Any]:
        """Train model ``name`` on keyframe EXR files; returns the final event (done/cancelled).

        ``values["mattes"]`` (plugin.mattes' syntax; a plate matte's channel is one of the keyframe
        EXRs') go with the request. ``on_preview`` gets each preview image (keyframe result, EXR bytes
        when EXRs were sent). A failed job raises HostBridgeError with the server's message.
        """
        frames = [codec.encode_file(path, frame=frame) for frame, path in keyframes]
        style = _encode_style(style_path)
        mattes = _encode_mattes(str(values.get("mattes") or ""), len(frames))
        preview_frame = codec.encode_file(preview[1], frame=preview[0]) if preview else None
        train_values = values_for(TRAIN_GROUPS, values, description)
        return self.call("training {!r} failed".format(name), lambda: follow(
            self.client.train(frames, style, name, train_values, preview=preview_frame, mattes=mattes),
            on_progress, on_preview, should_cancel))

    # -- stylizing -------------------------------------------------------------------------
    def stylize_files(self, jobs: Iterable[FrameJob], model: str, values: Dict[str, Any],
                      on_frame: Callable[[int, str], None] = lambda frame, path: None,
                      should_cancel: Callable[[], bool] = lambda: False) -> List[int]:
        """Stylize host-written EXR files with ``model``; writes each result file; returns frames done."""
        targets = {}  # type: Dict[int, str]

        def sources() -> Iterable[codec.EncodedFrame]:
            for frame, source, target in jobs:
                if should_cancel():
                    return
                targets[frame] = target
                yield codec.encode_file(source, frame=frame)

        def run() -> List[int]:
            done = []
            for result in self.client.stylize_stream(sources(), model, params.FrameArgs.from_values(values)):
                frame = int(result.frame or 0)   # the client guarantees the number we sent
                target = targets[frame]
                os.makedirs(os.path.dirname(target), exist_ok=True)
                codec.write_file(result, target)
                done.append(frame)
                on_frame(frame, target)
            return done

        return self.call("stylizing with model {!r} failed".format(model), run)

    # -- models travelling to farm servers -------------------------------------------------
    def fetch_model(self, name: str, path: str) -> None:
        """Download model ``name`` to ``path`` (kept next to the script for farm renders)."""
        os.makedirs(os.path.dirname(path), exist_ok=True)
        self.call("downloading model {!r} failed".format(name), lambda: self.client.get_model(name, path))

    def export_lut(self, model: str, path: str, size: int = 33) -> Dict[str, Any]:
        """Write model ``model``'s grade as a .cube at ``path`` and its OCIO look beside it (see
        `Client.export_lut`); the server's report, with ``paths`` (the files written)."""
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        return self.call("exporting the LUT of model {!r} failed".format(model),
                         lambda: self.client.export_lut(model, path, size))


class BridgePool:
    """One HostBridge per host node, by the node's stable id, reused by all of its actions."""

    def __init__(self) -> None:
        self._bridges = {}  # type: Dict[str, HostBridge]
        self._lock = threading.Lock()

    def get(self, key: str, address: str = "", server_key: str = "", client_key: str = "") -> HostBridge:
        """The node's bridge to ``address`` (empty: the local server) with those CURVE key files; a new one
        if the address or keys changed."""
        with self._lock:
            bridge = self._bridges.get(key)
            if bridge is not None and bridge.address == address.strip() \
                    and bridge.keys == (server_key.strip(), client_key.strip()):
                return bridge
            if bridge is not None:
                bridge.retire()
            bridge = self._bridges[key] = HostBridge(address, server_key=server_key, client_key=client_key)
            return bridge

    def release(self, key: str) -> None:
        """Forget ``key``'s bridge, closing it once its running action (if any) ends."""
        with self._lock:
            bridge = self._bridges.pop(key, None)
        if bridge is not None:
            bridge.retire()

    def close_all(self) -> None:
        with self._lock:
            for bridge in self._bridges.values():
                bridge.retire()
            self._bridges.clear()


bridges = BridgePool()
atexit.register(bridges.close_all)


def _encode_mattes(text: str, keyframes: int) -> "mattes.Mattes[codec.EncodedFrame]":
    try:
        given = mattes.parse(text)
        given.check(keyframes)
    except ValueError as exc:
        raise HostBridgeError("Mattes: {}".format(exc)) from None
    for path in given.images():
        if not os.path.isfile(path):
            raise HostBridgeError("Mattes: matte image {!r} not found: give an existing image file".format(path))
    return given.map(codec.encode_file)


def _encode_style(path: str) -> codec.EncodedFrame:
    if not path or not os.path.isfile(path):
        raise HostBridgeError("style image {!r} not found: pick an existing image file".format(path))
    return codec.encode_file(path)
