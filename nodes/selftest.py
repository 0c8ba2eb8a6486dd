"""A one-minute check of a host install, run inside the host (``python3 install.py nuke --check``).

``run()`` reports each step on its own line, ``ok`` or ``FAIL`` with the reason, and stops at
the first failure: the host's Python, pyzmq, the shotstyle package, a connection to the
server (the local one, started if needed, unless an address is given), its description, a
2-step training on a small synthetic frame and the stylizing of that frame, then it deletes
the test model. Frames travel as raw buffers, so the check needs nothing from the host but
its Python. Standard library + pyzmq + shotstyle.plugin only.
"""

import array
import sys
import time
from typing import Any, Callable, List, Optional

from shotstyle.plugin import __version__, codec, protocol
from shotstyle.plugin.client import Client, ServerError

MODEL = "shotstyle_selftest"
SIZE = 48


def _frame(tint: List[float], number: Optional[int] = None) -> codec.EncodedFrame:
    """A SIZE x SIZE float RGB gradient with ``tint``, as a raw frame."""
    pixels = array.array("f")
    for y in range(SIZE):
        for x in range(SIZE):
            pixels.extend([tint[0] * x / SIZE, tint[1] * y / SIZE, tint[2] * (x + y) / (2 * SIZE)])
    window = [0, 0, SIZE, SIZE]
    header = {"width": SIZE, "height": SIZE, "channels": ["R", "G", "B"], "formats": ["float"] * 3,
              "dtype": "float32", "data_window": window, "display_window": window}
    return codec.encode_raw(pixels, header, number)


def run(host: str, address: str = "", echo: Callable[[str], None] = print, timeout: float = 20.0) -> bool:
    """Check this host's ShotStyle install step by step; True when every step passed.

    ``timeout``: seconds a step may wait for the server to answer.
    """
    state = {}  # type: dict

    def step(name: str, action: Callable[[], Any]) -> None:
        started = time.monotonic()
        result = action()
        echo("ok    {}{}  ({:.1f} s)".format(name, ": {}".format(result) if result not in (None, "") else "",
                                            time.monotonic() - started))

    def connect() -> str:
        state["client"] = Client(address or None, autostart=not address, timeout=timeout, retries=0)
        return state["client"].address

    def describe() -> str:
        hello = state["client"].hello()
        return "shotstyle {} on {}, protocol {}, {} parameters".format(
            hello.get("version"), hello.get("device"), protocol.PROTOCOL_VERSION, len(hello["params"]["params"]))

    def train() -> str:
        job = state["client"].train([_frame([1.0, 0.9, 0.8], 1)], _frame([0.2, 0.5, 1.0]), MODEL,
                                    {"steps": 2, "resolution": 32, "loss": "look"})
        final = job.wait()
        if final.get("type") != protocol.EVENT_DONE:
            raise RuntimeError("training ended with {}".format(final))
        return "model {}".format(final.get("model", MODEL))

    def stylize() -> str:
        plate = _frame([1.0, 0.9, 0.8], 1)
        (result,) = state["client"].stylize([plate], MODEL)
        if result.frame != 1 or result.kind != "raw" or result.nbytes != plate.nbytes:
            raise RuntimeError("the result is not the frame sent back: frame {}, {} bytes".format(
                result.frame, result.nbytes))
        before = array.array("f", bytes(plate.data))
        after = array.array("f", bytes(result.data))
        return "mean change {:.4f} per channel value".format(
            sum(abs(a - b) for a, b in zip(before, after)) / len(before))

    steps = [("{} runs Python {}.{}".format(host, *sys.version_info[:2]), lambda: None),
             ("pyzmq", lambda: "pyzmq {}, libzmq {}".format(*_zmq_versions())),
             ("shotstyle package", lambda: __version__),
             ("connect", connect), ("describe", describe), ("train (2 steps)", train),
             ("stylize one frame", stylize),
             ("clean up", lambda: state["client"].delete_model(MODEL))]
    try:
        for name, action in steps:
            try:
                step(name, action)
            except (ServerError, RuntimeError, OSError, ImportError, ValueError) as exc:
                echo("FAIL  {}: {}".format(name, exc))
                return False
    finally:
        if "client" in state:
            state["client"].close()
    echo("ShotStyle works in {}.".format(host))
    return True


def _zmq_versions() -> List[str]:
    import zmq
    return [zmq.pyzmq_version(), zmq.zmq_version()]
