"""Finding, and when allowed starting, the local shotstyle server.

A running server writes a small JSON *server file* (pid, address, versions, and the token that
gives its user's clients authority over it: the file is mode 0600) into the runtime folder:
``$SHOTSTYLE_RUNTIME_DIR``, else the platform's runtime/cache folder. Hosts and the farm command
read it to reach the local server (`token_for` gives a client the token of the server it talks
to); ``autostart`` spawns a detached ``python -m shotstyle.server --port 0`` and waits until it
answers ``hello``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from typing import Any, Dict, List, Optional, Sequence

import zmq

from shotstyle.plugin import protocol
from shotstyle.plugin.errors import ServerError
from shotstyle.plugin.userdirs import user_folder

SERVER_FILE_NAME = "server.json"
LOG_FILE_NAME = "server.log"
LOCK_FILE_NAME = "autostart.lock"
DEFAULT_PORT = 5599


def runtime_dir() -> str:
    """The folder for the server file and the autostarted server's log."""
    return user_folder("runtime", "run", "SHOTSTYLE_RUNTIME_DIR")


def server_file() -> str:
    return os.path.join(runtime_dir(), SERVER_FILE_NAME)


def write_server_file(address: str, **extra: Any) -> str:
    """Record this process as the local server (atomic write); returns the file's path."""
    folder = runtime_dir()
    os.makedirs(folder, exist_ok=True)
    path = server_file()
    info = {"pid": os.getpid(), "address": address, "protocol": protocol.PROTOCOL_VERSION,
            "started": time.time(), **extra}
    temp = f"{path}.{os.getpid()}.tmp"
    # Only the server's user may read it: it may hold the token (protocol: who may do what).
    with open(os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w", encoding="utf-8") as handle:
        if hasattr(os, "fchmod"):  # an old temp file of another mode (POSIX; Windows keeps per-user folders)
            os.fchmod(handle.fileno(), 0o600)
        json.dump(info, handle, indent=1)
    os.replace(temp, path)
    return path


def token_for(address: str) -> Optional[str]:
    """The token of the local server listening at ``address``, when this user can read its server file."""
    info = read_server_file()
    token = info.get("token") if info is not None and info.get("address") == address else None
    return token if isinstance(token, str) else None


def remove_server_file(pid: Optional[int] = None) -> None:
    """Remove the server file if it belongs to ``pid`` (default: this process)."""
    info = read_server_file()
    if info is not None and info.get("pid") == (os.getpid() if pid is None else pid):
        try:
            os.remove(server_file())
        except FileNotFoundError:
            pass


def read_server_file() -> Optional[Dict[str, Any]]:
    try:
        with open(server_file(), encoding="utf-8") as handle:
            info = json.load(handle)
    except (OSError, ValueError):
        return None
    return info if isinstance(info, dict) and isinstance(info.get("address"), str) else None


def pid_alive(pid: Any) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    if sys.platform == "win32":
        return True  # no cheap check; the hello ping decides
    try:
        if os.waitpid(pid, os.WNOHANG)[0] == pid:  # our own autostarted child that has exited (reaped now)
            return False
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def ping(address: str, timeout: float = 2.0, socket_options: Optional[Dict[int, Any]] = None) \
        -> Optional[Dict[str, Any]]:
    """The server's ``hello`` result, or None when nothing answers at ``address`` within ``timeout``."""
    sock: zmq.Socket = zmq.Context.instance().socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    for option, value in (socket_options or {}).items():
        sock.setsockopt(option, value)
    try:
        sock.connect(address)
        header = protocol.request(protocol.OP_HELLO)
        sock.send_multipart(protocol.pack(header))
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or not sock.poll(int(left * 1000)):
                return None
            try:
                answer, _ = protocol.unpack(sock.recv_multipart())
            except protocol.ProtocolError:
                return None
            if answer.get("id") == header["id"]:
                return answer.get("result") if answer.get("ok") else None
    except zmq.ZMQError:
        return None
    finally:
        sock.close(0)


def find_local_server(check: bool = True, timeout: float = 2.0) -> Optional[str]:
    """Address of the running local server, or None (a stale server file is removed)."""
    info = read_server_file()
    if info is None:
        return None
    if not pid_alive(info.get("pid")):
        remove_server_file(info.get("pid"))
        return None
    if check and ping(info["address"], timeout) is None:
        return None
    return info["address"]


def server_command(extra_args: Sequence[str] = ()) -> List[str]:
    """The command that starts a local server.

    Inside a host (Nuke, Resolve) ``sys.executable`` is the host itself, so the host install
    sets SHOTSTYLE_SERVER_PYTHON to the Python that has shotstyle and torch installed.
    """
    python = os.environ.get("SHOTSTYLE_SERVER_PYTHON") or sys.executable
    return [python, "-m", "shotstyle.server", "--port", "0", *extra_args]


def _take_lock(path: str, stale_after: float) -> bool:
    try:
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        return True
    except FileExistsError:
        try:
            if time.time() - os.path.getmtime(path) > stale_after:
                os.remove(path)
        except OSError:
            pass
        return False


class AutostartError(ServerError):
    """The local server could not be started (code "unreachable"); the message names the log file to read."""

    def __init__(self, message: str):
        super().__init__("unreachable", message)


def autostart(command: Optional[Sequence[str]] = None, timeout: float = 60.0) -> str:
    """Start a detached local server (unless one already answers) and return its address.

    Only one caller at a time starts a server (a lock file in the runtime folder); the others
    wait for its server file. The server's output goes to ``server.log`` in the runtime folder.
    """
    folder = runtime_dir()
    os.makedirs(folder, exist_ok=True)
    lock = os.path.join(folder, LOCK_FILE_NAME)
    log_path = os.path.join(folder, LOG_FILE_NAME)
    deadline = time.monotonic() + timeout
    process: Optional[subprocess.Popen] = None
    have_lock = False
    try:
        while time.monotonic() < deadline:
            address = find_local_server(timeout=1.0)
            if address is not None:
                return address
            if process is None and not have_lock:
                have_lock = _take_lock(lock, stale_after=timeout)
                if have_lock and find_local_server(timeout=1.0) is None:
                    process = _spawn(list(command or server_command()), log_path)
            if process is not None and process.poll() is not None:
                raise AutostartError(f"the local shotstyle server exited at start (status {process.returncode}); "
                                     f"see {log_path}")
            time.sleep(0.2)
        raise AutostartError(f"no local shotstyle server answered within {timeout:.0f} s; see {log_path}")
    finally:
        if have_lock:
            try:
                os.remove(lock)
            except OSError:
                pass


def _spawn(command: List[str], log_path: str) -> subprocess.Popen:
    log = open(log_path, "ab")
    try:
        kwargs: Dict[str, Any] = {"stdin": subprocess.DEVNULL, "stdout": log, "stderr": subprocess.STDOUT,
                                  "close_fds": True}
        if sys.platform == "win32":
            kwargs["creationflags"] = subprocess.DETACHED_PROCESS | subprocess.CREATE_NEW_PROCESS_GROUP
        else:
            kwargs["start_new_session"] = True
        return subprocess.Popen(command, **kwargs)
    finally:
        log.close()
