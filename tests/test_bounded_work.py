"""Issue 21, item 7: model.put uploads in flight are bounded all together; past the bound an
upload is refused with `busy` (its memory freed at once) instead of queueing until the server
is killed for memory."""

from __future__ import annotations

import os
import textwrap
import threading

from serverproc import ServerProcess, exchange, save_tiny_model
from test_robust_server import code_of, request

SLOW_SMALL_STORE = textwrap.dedent("""
    # The upload bound lowered to {limit} bytes, and storing a model made slow (2 s), so uploads stay in flight.
    import time
    import shotstyle.plugin.protocol as protocol
    import shotstyle.server.store as store
    protocol.MAX_UPLOAD_BYTES_IN_FLIGHT = {limit}
    _put = store.ModelStore.put_bytes
    def _slow(self, *args, **kwargs):
        time.sleep(2)
        return _put(self, *args, **kwargs)
    store.ModelStore.put_bytes = _slow
""")


def test_uploads_past_the_bound_in_flight_are_refused_busy(tmp_path):
    data = open(save_tiny_model(tmp_path / "src"), "rb").read()
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(SLOW_SMALL_STORE.format(limit=len(data) * 3 // 2))
    path = os.pathsep.join(p for p in (str(site), os.environ.get("PYTHONPATH", "")) if p)
    with ServerProcess(tmp_path / "srv", env={"PYTHONPATH": path}) as server:
        first: dict = {}
        sender = threading.Thread(target=lambda: first.update(
            exchange(server.address, [*request("model.put", {"name": "one"}), data], 60)))
        sender.start()
        while sender.is_alive() and not exchange(server.address, request("status"))["result"]["queued_requests"]:
            pass   # until the first upload is in flight (it is stored for 2 s)
        busy = exchange(server.address, [*request("model.put", {"name": "two"}), data], 60)
        sender.join(60)
        assert code_of(first) == "ok", first
        assert code_of(busy) == "busy", busy
        assert str(len(data)) in busy["error"]["message"] and "again" in busy["error"]["message"]
        # once it is stored, the room is back
        assert code_of(exchange(server.address, [*request("model.put", {"name": "two"}), data], 60)) == "ok"
        assert server.alive()


QUICK_CLIENT_HEARTBEAT = textwrap.dedent("""
    # The clients' heartbeat made 100 times quicker: a part that takes longer than 10 ms to arrive
    # outlasts it (ZeroMQ counts only whole frames as an answer to a ping).
    import shotstyle.plugin.protocol as protocol
    protocol.HEARTBEAT_IVL_MS, protocol.HEARTBEAT_TIMEOUT_MS = 5, 10
""")


def test_an_upload_slower_than_the_clients_heartbeat_is_still_answered(tmp_path):
    """Issue 21: three 900 MB model.put after four 1080p stylize requests were never answered: the
    uploads took seconds to arrive, longer than the heartbeat timeout, and the server dropped them
    mid-transfer. The server waits for a client's pong far longer than clients wait for its own."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(QUICK_CLIENT_HEARTBEAT)
    path = os.pathsep.join(p for p in (str(site), os.environ.get("PYTHONPATH", "")) if p)
    upload = bytes(384 << 20)   # well over 10 ms to copy through a socket (not a model: refused once whole)
    with ServerProcess(tmp_path / "srv", env={"PYTHONPATH": path}) as server:
        answer = exchange(server.address, [*request("model.put", {"name": "big"}), upload], 120)
        assert code_of(answer) == "bad_model", answer
