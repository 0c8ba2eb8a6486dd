"""Finding, and when allowed starting, this install's local shotstyle server; stopping it.

One local server per install: a running server writes a small JSON *server file* into the
runtime folder (``$SHOTSTYLE_RUNTIME_DIR``, else the platform's runtime/cache folder) named by
`install_key` — the install's Python prefix (its venv) and the protocol version — so two
checkouts, two venvs or two versions never share a server (or its model store) by accident.
The file holds (`write_server_file`; mode 0600: only the server's user may read it)::

    pid, address, protocol, version, started     who and where
    install: {prefix, python, package}           which install runs it (what `hello` reports too)
    autostarted, idle_exit_s                     started on demand, and its idle time before exiting
    token                                        gives its user's clients authority over the server

Hosts and the farm commands read it to reach the local server (`token_for` gives a client the
token of the server it talks to); ``autostart`` spawns a detached
``python -m shotstyle.server --port 0 --idle-exit N`` (it exits after N idle minutes, see
`userconfig.idle_exit_minutes`) and waits until it answers ``hello``. `install_mismatch` is the
client's check of a server's ``hello`` against this install.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from typing import Any, Dict, List, Optional, Sequence, Tuple

import zmq

from shotstyle.plugin import __version__, protocol
from shotstyle.plugin.errors import ServerError
from shotstyle.plugin.userdirs import user_folder

SERVER_FILE_PREFIX = "server-"
DEFAULT_PORT = 5599


def runtime_dir() -> str:
    """The folder for the server files and the autostarted servers' logs."""
    return user_folder("runtime", "run", "SHOTSTYLE_RUNTIME_DIR")


def prefix_of(python: str) -> str:
    """The install prefix (venv) a Python executable belongs to: what `sys.prefix` is inside it."""
    folder = os.path.dirname(os.path.abspath(python))
    if os.path.basename(folder) in ("bin", "Scripts"):
        folder = os.path.dirname(folder)
    return os.path.normcase(folder)


def server_python() -> str:
    """The Python local servers of this install run under (hosts set SHOTSTYLE_SERVER_PYTHON: inside
    Nuke or Resolve ``sys.executable`` is the host itself)."""
    return os.environ.get("SHOTSTYLE_SERVER_PYTHON") or sys.executable


def install_key(python: Optional[str] = None) -> str:
    """The name part of this install's server file: protocol version + a hash of the install prefix."""
    prefix = prefix_of(python or server_python())
    return f"p{protocol.PROTOCOL_VERSION}-{hashlib.sha1(prefix.encode('utf-8')).hexdigest()[:12]}"


def install_info() -> Dict[str, str]:
    """What a server says about the install it runs from (server file and ``hello``)."""
    package = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    return {"prefix": prefix_of(sys.executable), "python": sys.executable, "package": package}


def server_file(key: Optional[str] = None) -> str:
    """This install's server file (``key``: another install's)."""
    return os.path.join(runtime_dir(), f"{SERVER_FILE_PREFIX}{key or install_key()}.json")


def own_server_file() -> str:
    """The server file a server process writes: its own install's (whatever SHOTSTYLE_SERVER_PYTHON says)."""
    return server_file(install_key(sys.executable))


def log_file(key: Optional[str] = None) -> str:
    """Where an autostarted server of this install writes its output."""
    return os.path.join(runtime_dir(), f"{SERVER_FILE_PREFIX}{key or install_key()}.log")


def server_files() -> List[str]:
    """Every install's server file in the runtime folder (for `shotstyle stop --all` and `doctor`)."""
    try:
        names = sorted(os.listdir(runtime_dir()))
    except OSError:
        return []
    return [os.path.join(runtime_dir(), n) for n in names if n.startswith(SERVER_FILE_PREFIX) and n.endswith(".json")]


def write_server_file(address: str, path: Optional[str] = None, **extra: Any) -> str:
    """Record this process as the local server (atomic write) in ``path`` (default: this install's)."""
    path = path or server_file()
    os.makedirs(os.path.dirname(path), exist_ok=True)
    info = {"pid": os.getpid(), "address": address, "protocol": protocol.PROTOCOL_VERSION, "version": __version__,
            "install": install_info(), "started": time.time(), **extra}
    temp = f"{path}.{os.getpid()}.tmp"
    # Only the server's user may read it: it holds the token (protocol: who may do what).
    with open(os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w", encoding="utf-8") as handle:
        if hasattr(os, "fchmod"):  # an old temp file of another mode (POSIX; Windows keeps per-user folders)
            os.fchmod(handle.fileno(), 0o600)
        json.dump(info, handle, indent=1)
    os.replace(temp, path)
    return path


def token_for(address: str) -> Optional[str]:
    """The token of the local server listening at ``address`` (any install's of this user), when this
    user can read its server file."""
    for path in server_files():
        info = read_server_file(path)
        token = info.get("token") if info is not None and info.get("address") == address else None
        if isinstance(token, str):
            return token
    return None


def remove_server_file(pid: Optional[int] = None, path: Optional[str] = None) -> None:
    """Remove the server file (default: this install's) if it belongs to ``pid`` (default: this process)."""
    path = path or server_file()
    info = read_server_file(path)
    if info is not None and info.get("pid") == (os.getpid() if pid is None else pid):
        try:
            os.remove(path)
        except FileNotFoundError:
            pass


def read_server_file(path: Optional[str] = None) -> Optional[Dict[str, Any]]:
    """The server file's record (default: this install's), or None when there is none or it is unreadable."""
    try:
        with open(path or server_file(), encoding="utf-8") as handle:
            info = json.load(handle)
    except (OSError, ValueError):
        return None
    return info if isinstance(info, dict) and isinstance(info.get("address"), str) else None


def install_mismatch(hello: Dict[str, Any]) -> Optional[str]:
    """Why the server that sent ``hello`` runs other code than this client (a sentence), or None.

    A server of another shotstyle version answers the same protocol but may train and render
    differently; the caller warns (a different protocol is refused by the protocol itself).
    """
    install = hello.get("install")
    where = install.get("prefix") if isinstance(install, dict) else None
    if hello.get("version") != __version__:
        return (f"it runs shotstyle {hello.get('version', '?')} (from {where or 'an unknown install'}); "
                f"this is shotstyle {__version__}")
    return None


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
    return _ask(address, protocol.OP_HELLO, timeout, socket_options)


def _ask(address: str, op: str, timeout: float, socket_options: Optional[Dict[int, Any]] = None,
         token: Optional[str] = None) -> Optional[Dict[str, Any]]:
    """One request without a Client (no retries, no autostart): the result, or None without an answer."""
    sock: zmq.Socket = zmq.Context.instance().socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    for option, value in (socket_options or {}).items():
        sock.setsockopt(option, value)
    try:
        sock.connect(address)
        header = protocol.request(op, token=token)
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


def stop_server(path: Optional[str] = None, timeout: float = 150.0) -> Tuple[bool, str]:
    """Stop the local server a server file names (default: this install's) and wait for it to exit.

    It stops gracefully (a training job checkpoints first). Returns (stopped, what happened);
    nothing to stop is (True, ...). A stale file is removed.
    """
    path = path or server_file()
    info = read_server_file(path)
    if info is None:
        return True, f"no local shotstyle server is running for this install (no {path})"
    pid, address = info.get("pid"), info["address"]
    if not pid_alive(pid):
        remove_server_file(pid, path)
        return True, f"the server at {address} (pid {pid}) had already exited; removed its stale {path}"
    hello = ping(address, 5.0)
    if hello is None or hello.get("pid") != pid:
        return False, (f"the server recorded in {path} (pid {pid}, {address}) does not answer; if it is hung, "
                       f"end it with `kill {pid}`")
    token = info.get("token")
    if _ask(address, protocol.OP_SHUTDOWN, 5.0, token=token if isinstance(token, str) else None) is None:
        return False, f"the server at {address} (pid {pid}) did not accept the shutdown request"
    deadline = time.monotonic() + timeout
    while pid_alive(pid):
        if time.monotonic() > deadline:
            return False, f"the server at {address} (pid {pid}) is still stopping after {timeout:.0f} s"
        time.sleep(0.1)
    return True, f"stopped the shotstyle server at {address} (pid {pid}, shotstyle {hello.get('version', '?')})"


def find_local_server(check: bool = True, timeout: float = 2.0, path: Optional[str] = None) -> Optional[str]:
    """Address of this install's running local server (``path``: of that server file), or None.

    A stale server file is removed. With ``check``, the server must answer ``hello`` from the
    process the file names (not some other server that took over a stale address).
    """
    info = read_server_file(path)
    if info is None:
        return None
    if not pid_alive(info.get("pid")):
        remove_server_file(info.get("pid"), path)
        return None
    if check:
        hello = ping(info["address"], timeout)
        if hello is None or hello.get("pid") != info.get("pid"):
            return None
    return info["address"]


def server_command(extra_args: Sequence[str] = ()) -> List[str]:
    """The command that starts this install's local server on demand (it exits when idle).

    Inside a host (Nuke, Resolve) ``sys.executable`` is the host itself, so the host install
    sets SHOTSTYLE_SERVER_PYTHON to the Python that has shotstyle and torch installed. The
    server is told which server file to write, so the client finds it under this install's key
    even when the Python it was given is a link or shim to another.
    """
    from shotstyle.plugin.userconfig import idle_exit_minutes

    return [server_python(), "-m", "shotstyle.server", "--port", "0", "--autostarted",
            "--idle-exit", f"{idle_exit_minutes():g}", "--server-file", server_file(), *extra_args]


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


def autostart(command: Optional[Sequence[str]] = None, timeout: float = 60.0) -> Tuple[str, bool]:
    """This install's local server, started detached unless one already answers: (address, started).

    ``started`` is True when this call started it. Only one caller at a time starts a server (a
    lock file in the runtime folder); the others wait for its server file. The server's output
    goes to `log_file`.
    """
    folder = runtime_dir()
    os.makedirs(folder, exist_ok=True)
    lock = server_file()[:-len(".json")] + ".lock"
    log_path = log_file()
    deadline = time.monotonic() + timeout
    process: Optional[subprocess.Popen] = None
    have_lock = False
    try:
        while time.monotonic() < deadline:
            address = find_local_server(timeout=1.0)
            if address is not None:
                return address, process is not None
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
