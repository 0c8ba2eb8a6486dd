"""Reliability benchmark: a server under a stream of hostile, broken and ordinary requests.

Starts a real server (a tiny model in its store) and sends it ``--messages`` requests (10,000 by
default), drawn in turn from every kind issue 15 found trouble with: malformed and oversized
headers, error replies that would exceed the header limit (names of 300,000 backslashes, ops of
1 MB), deeply nested JSON, bad frame descriptors and payloads, damaged EXR bytes, bad stylize
and train arguments (tiles, mixes, huge frame ranges, roles), hostile model files (every one of
tests/hostile.py: wrong shapes and dtypes, NaN weights, out-of-range arguments, pickles, ...),
garbage uploads, hostile model names, control ops without authority, and ordinary requests
(hello, status, stylize of small frames). Every request must be answered.

Every ``--check-every`` messages (1,000) it checks that the process lives, times a ``hello``
and reads the server's resident memory, and prints a row; at the end a table of replies per
kind and error code, and the verdict against the targets: 0 deaths, 0 hangs (a request with no
reply within ``--timeout``), 0 ``internal`` codes, RSS growth under 50 MB from after the warm-up
to the end. Then the bounds, a row each: a burst of ``--clients`` clients x 2 stylize requests
of 1920x1080 frames at once (RSS back within 300 MB of before it, 3 s after the last reply), a
model at every argument's bound (refused `bad_model`: too much work per frame), and uploads
at once past the bound on uploads in flight (protocol.MAX_UPLOAD_BYTES_IN_FLIGHT): `STORED_UPLOADS`
real grade models (the largest lattice; each holds the task thread about 2 s as it is checked)
and behind them `LARGE_UPLOADS` uploads of half the bound each: those past the bound are refused
`busy`, none is lost, and RSS comes back. Exit status 0 when every target is met.

    .venv/bin/python bench/robustness.py [--messages 10000] [--short]

``--short`` (1,000 messages, checks every 250, a burst of 8 clients, the upload bound lowered to
`SHORT_UPLOAD_BOUND` in its server so the uploads stay small) is what the test suite runs.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Dict, List, Tuple

import numpy as np
import zmq

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))  # the test helpers: a server process, hostile model files

import hostile  # noqa: E402
from serverproc import MODEL, ServerProcess, save_tiny_model  # noqa: E402

from shotstyle.plugin import codec, protocol  # noqa: E402

RSS_GROWTH_LIMIT_MB = 50.0
BURST_RSS_LIMIT_MB = 300.0
STORED_UPLOADS = 4      # grade models of 24 MB, each its own client and name: 96 MB, the --short bound
LARGE_UPLOADS = 3       # then half the bound each, from their own clients
SHORT_UPLOAD_BOUND = 96 << 20
LOWERED_BOUND = """
import shotstyle.plugin.protocol as protocol
protocol.MAX_UPLOAD_BYTES_IN_FLIGHT = {bound}
"""
Parts = List[bytes]


def header(op: str, args: object = None, frames: object = (), **extra: object) -> bytes:
    fields = {"v": protocol.PROTOCOL_VERSION, "id": "fuzz", "op": op, "args": {} if args is None else args,
              "frames": list(frames) if isinstance(frames, (list, tuple)) else frames}
    return json.dumps({**fields, **extra}).encode()


def raw_frame(size: int, dtype: str = "float16", value: float = 0.18) -> Tuple[dict, bytes]:
    with np.errstate(over="ignore"):  # 7e4 as float16 is +Inf: an input the server must take
        pixels = np.full((size, size, 3), value, dtype)
    head = {"width": size, "height": size, "channels": ["R", "G", "B"], "formats": ["half"] * 3, "dtype": dtype,
            "data_window": [0, 0, size, size], "display_window": [0, 0, size, size]}
    return head, pixels.tobytes()


def frame_desc(head: dict, data: bytes, part: int = 0, **change: object) -> dict:
    return {"kind": "raw", "frame": 1, "size": len(data), "header": head, "part": part, **change}


class Messages:
    """Makers of each kind of message; ``kind -> rng -> parts``."""

    def __init__(self, rng: random.Random):
        self.rng = rng
        self.models = [make() for make, _ in hostile.HOSTILE_MODELS.values()]
        self.kinds: Dict[str, Callable[[], Parts]] = {
            "ordinary": self.ordinary, "malformed header": self.malformed, "oversize error": self.oversize,
            "deep json": self.deep, "bad frame": self.bad_frame, "damaged exr": self.damaged_exr,
            "bad stylize args": self.bad_stylize, "bad train": self.bad_train, "hostile model": self.hostile_model,
            "garbage upload": self.garbage_upload, "hostile name": self.hostile_name,
            "control without authority": self.control, "small stylize": self.small_stylize,
        }

    def ordinary(self) -> Parts:
        op = self.rng.choice(["hello", "status", "models"])
        return [header(op)] if op != "models" else [header("model.describe", {"name": MODEL})]

    def malformed(self) -> Parts:
        choices: List[Parts] = [
            [bytes(self.rng.getrandbits(8) for _ in range(self.rng.randint(0, 64)))],
            [b"{not json"], [b"[]"], [b'"text"'], [b"{}"],
            [json.dumps({"v": 0, "id": "fuzz", "op": "hello"}).encode()],
            [json.dumps({"v": 1, "id": "x" * 500, "op": "hello"}).encode()],
            [json.dumps({"v": 1, "id": 7, "op": "hello"}).encode()],
            [json.dumps({"v": 1, "id": "fuzz", "op": 7}).encode()],
            [json.dumps({"v": 1, "id": "fuzz", "op": "hello", "args": []}).encode()],
            [json.dumps({"v": 1, "id": "fuzz", "op": "hello", "frames": {}}).encode()],
            [b"\xff\xfe\x00 not utf-8"], [b'{"v": 1, "id": "fuzz", "op": "hello", "args": {"n": 1e999999}}'],
            [b'{"v": 1, "id": "fuzz", "op": "hello", "args": {"n": ' + b"9" * 5000 + b"}}"],
        ]
        return self.rng.choice(choices)

    def oversize(self) -> Parts:
        size = self.rng.choice([300_000, 600_000, 1_000_000])
        return self.rng.choice([
            [header("model.describe", {"name": "\\" * size})],
            [json.dumps({"v": 1, "id": "fuzz", "op": "x" * size}).encode()],
            [header("stylize", {"model": "\\" * size})],
            [header("cancel", {"job": "\\" * size})],
            [header("train", {"name": "n", "params": {"colourspace": "\\" * size}})],
            [header("stylize", {"model": MODEL, "colourspace": "\\" * size})],
        ])

    def deep(self) -> Parts:
        depth = self.rng.choice([40, 1000, 100_000])
        return [b'{"v":1,"id":"fuzz","op":"hello","args":{"a":' + b"[" * depth + b"]" * depth + b"}}"]

    def bad_frame(self) -> Parts:
        head, data = raw_frame(4)
        variants = [
            ([frame_desc(head, data, part=3)], [data]),
            ([frame_desc(head, data, size=10 ** 15)], [data]),
            ([frame_desc(head, data, kind="pickle")], [data]),
            ([frame_desc({**head, "width": 10 ** 7, "data_window": [0, 0, 10 ** 7, 4]}, data)], [data]),
            ([frame_desc({**head, "dtype": "float64"}, data)], [data]),
            ([frame_desc({**head, "channels": []}, data)], [data]),
            ([frame_desc({**head, "channels": ["R"] * 300, "formats": ["half"] * 300}, data)], [data]),
            ([frame_desc(head, data[:-2], size=len(data) - 2)], [data[:-2]]),
            ([frame_desc(head, data, frame="one")], [data]),
            ([frame_desc(head, data, extra=[1])], [data]),
            ([{"kind": "file", "frame": 1, "size": 0, "header": {"format": "exr"}, "part": 0}], [b""]),
            ([frame_desc({**head, "channels": ["X", "Y", "Z"]}, data)], [data]),
        ]
        descs, payloads = self.rng.choice(variants)
        return [header("stylize", {"model": MODEL}, descs), *payloads]

    def damaged_exr(self) -> Parts:
        data = bytearray(b"\x76\x2f\x31\x01\x02\x00\x00\x00" + bytes(self.rng.getrandbits(8) for _ in range(200)))
        desc = {"kind": "file", "frame": 1, "size": len(data), "header": {"format": "exr"}, "part": 0}
        return [header("stylize", {"model": MODEL}, [desc]), bytes(data)]

    def bad_stylize(self) -> Parts:
        head, data = raw_frame(16)
        args = self.rng.choice([{"tile": 1}, {"tile": 100}, {"tile": -3}, {"tile": "big"}, {"mix": 7},
                                {"mix": "half"}, {"mix": None}, {"colourspace": "no such space"},
                                {"colourspace": 5}, {"model": None}, {"model": "nope"}, {"unknown": 1}])
        return [header("stylize", {"model": MODEL, **args}, [frame_desc(head, data)]), data]

    def bad_train(self) -> Parts:
        head, data = raw_frame(16)
        key, style = frame_desc(head, data, 0, extra={"role": "keyframe"}), frame_desc(head, data, 1,
                                                                                        extra={"role": "style"})
        params = self.rng.choice([{"keyframes": "0-20000000"}, {"keyframes": "1-" + "9" * 30}, {"steps": -1},
                                  {"steps": 10 ** 9}, {"resolution": 1}, {"loss": "pickle"}, {"arch": "unet"},
                                  {"strength": float("nan")}, {"unknown": 1}, [], "steps"])
        frames = self.rng.choice([[key, style], [key], [style], [key, {**style, "extra": {"role": "evil"}}]])
        return [header("train", {"name": "fuzz-train", "params": params}, frames), data, data]

    def hostile_model(self) -> Parts:
        return [header("model.put", {"name": "fuzz-model"}), self.rng.choice(self.models)]

    def garbage_upload(self) -> Parts:
        size = self.rng.choice([1, 1000, 1 << 20, 8 << 20])
        return [header("model.put", {"name": "fuzz-garbage"}), os.urandom(size)]

    def hostile_name(self) -> Parts:
        name = self.rng.choice(["evil\n", "../../etc/passwd", "a/b", "..", ".hidden", "x" * 129, "é", "", None, 5,
                                "tiny\n", "nul\0name", "con", "a" * 128 + "\n"])
        op = self.rng.choice(["model.describe", "model.get", "model.delete", "stylize"])
        return [header(op, {"name": name, "model": name})]

    def control(self) -> Parts:
        return self.rng.choice([[header("shutdown")], [header("model.delete", {"name": MODEL})],
                                [header("shutdown", token="guess")],
                                [header("model.put", {"name": MODEL}), self.models[0]]])

    def small_stylize(self) -> Parts:
        head, data = raw_frame(self.rng.choice([1, 2, 8, 16]), self.rng.choice(["float16", "float32"]),
                               self.rng.choice([0.18, 1e4, 7e4, -7e4]))
        return [header("stylize", {"model": MODEL, "mix": self.rng.random()}, [frame_desc(head, data)]), data]


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as handle:
        return next(int(line.split()[1]) for line in handle if line.startswith("VmRSS:")) / 1024


def stylize_1080p() -> Parts:
    """A stylize request of one 1920×1080 half frame (the tiny model)."""
    head, data = raw_frame(1, "float16")
    head = {**head, "width": 1920, "height": 1080, "data_window": [0, 0, 1920, 1080],
            "display_window": [0, 0, 1920, 1080]}
    data = np.full((1080, 1920, 3), 0.18, np.float16).tobytes()
    return [header("stylize", {"model": MODEL}, [frame_desc(head, data)]), data]


def at_once(server: ServerProcess, sends: List[Tuple[str, int, Parts]], timeout: float) \
        -> Tuple[float, float, float, Dict[str, collections.Counter]]:
    """Send every (kind, client, parts) of ``sends`` at once, client N from its own connection (one kind
    per client), and wait for every reply: (RSS before, peak while they run, 3 s after the last reply,
    in MB; reply codes by kind)."""
    context = zmq.Context.instance()
    sockets: Dict[int, zmq.Socket] = {}
    kinds: Dict[zmq.Socket, str] = {}
    left: Dict[zmq.Socket, int] = collections.Counter()
    before = peak = rss_mb(server.process.pid)
    codes: Dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    try:
        for kind, client, parts in sends:
            if client not in sockets:
                sockets[client] = context.socket(zmq.DEALER)
                sockets[client].setsockopt(zmq.LINGER, 0)
                sockets[client].connect(server.address)
            sock = sockets[client]
            sock.send_multipart(parts, copy=False)
            kinds[sock], left[sock] = kind, left[sock] + 1
        poller = zmq.Poller()
        for sock in sockets.values():
            poller.register(sock, zmq.POLLIN)
        deadline = time.monotonic() + timeout
        while any(left.values()) and time.monotonic() < deadline:
            for sock, _ in poller.poll(100):
                reply = json.loads(sock.recv_multipart()[0])
                codes[kinds[sock]]["ok" if reply.get("ok") else reply["error"]["code"]] += 1
                left[sock] -= 1
            peak = max(peak, rss_mb(server.process.pid))
        for sock, count in left.items():
            codes[kinds[sock]]["HANG"] += count
    finally:
        for sock in sockets.values():
            sock.close()
    time.sleep(3.0)
    return before, peak, rss_mb(server.process.pid), codes


def bounds(server: ServerProcess, clients: int, timeout: float, upload_bound: int) -> Dict[str, bool]:
    """The rows of the memory and work bounds (issue 21); their verdicts."""
    print()
    print("| bound | sent at once | replies | RSS before / peak / 3 s after, MB | s |")
    print("|---|---|---|---|---:|")

    def row(name: str, what: str, sends: List[Tuple[str, int, Parts]]) -> Tuple[float, float, Dict]:
        started = time.monotonic()
        before, peak, after, codes = at_once(server, sends, timeout * len(sends))
        replies = "; ".join(f"{kind}: {', '.join(f'{c} {n}' for c, n in counts.most_common())}"
                            for kind, counts in codes.items())
        print(f"| {name} | {what} | {replies} | {before:.0f} / {peak:.0f} / {after:.0f} | "
              f"{time.monotonic() - started - 3:.1f} |", flush=True)
        return before, after, codes

    frame = stylize_1080p()
    before, after, codes = row("memory after a burst", f"{clients} clients x 2 stylize of 1920x1080",
                               [("stylize", client, frame) for client in range(clients) for _ in range(2)])
    verdict = {f"RSS {after - before:+.0f} MB after the burst (< {BURST_RSS_LIMIT_MB:.0f})":
               after - before < BURST_RSS_LIMIT_MB and set(codes["stylize"]) <= {"ok", "too_many_jobs", "HANG"}
               and not codes["stylize"]["HANG"]}
    heavy = hostile.HOSTILE_MODELS["every bound at once"][0]()
    _, _, codes = row("work per model", "model.put of hrnet-fast at every argument's bound",
                      [("model.put", 0, [header("model.put", {"name": "heavy"}), heavy])])
    verdict["heavy model refused"] = codes["model.put"]["bad_model"] == 1
    grade = largest_grade_model()
    large = bytes(upload_bound // 2)   # not a model: refused once checked
    sends = [("model.put", n, [header("model.put", {"name": f"grade{n}"}), grade]) for n in range(STORED_UPLOADS)]
    sends += [("model.put", STORED_UPLOADS + n, [header("model.put", {"name": f"large{n}"}), large])
              for n in range(LARGE_UPLOADS)]
    before, after, codes = row("uploads in flight", f"{STORED_UPLOADS} x model.put of {len(grade) >> 20} MB models, "
                               f"then {LARGE_UPLOADS} x {len(large) >> 20} MB (bound {upload_bound >> 20} MB)", sends)
    puts = codes["model.put"]
    verdict["uploads past the bound refused busy"] = puts["busy"] >= 1 and not puts["HANG"] \
        and not puts["internal"] and after - before < BURST_RSS_LIMIT_MB
    return verdict


def largest_grade_model() -> bytes:
    """The file of a grade-only model with the registry's largest lattice (129³): a real upload."""
    from shotstyle.server.engine.modelfile import StyleModel, model_to_bytes
    from shotstyle.server.engine.networks import build_network

    return model_to_bytes(StyleModel(build_network("grade", grade_size=129).eval(), {"loss": "closed form"}))


class Bench:
    def __init__(self, server: ServerProcess, timeout: float):
        self.server = server
        self.timeout = timeout
        self.context = zmq.Context.instance()
        self.sockets = [self._socket() for _ in range(4)]  # several clients, fresh identities
        self.codes: Dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
        self.hangs = 0

    def _socket(self) -> zmq.Socket:
        sock = self.context.socket(zmq.DEALER)
        sock.setsockopt(zmq.LINGER, 0)
        sock.connect(self.server.address)
        return sock

    def send(self, kind: str, parts: Parts, index: int) -> str:
        sock = self.sockets[index % len(self.sockets)]
        sock.send_multipart(parts)
        if not sock.poll(int(self.timeout * 1000)):
            self.hangs += 1
            self.sockets[index % len(self.sockets)] = self._socket()  # a late reply must not be read as the next
            sock.close(0)
            code = "HANG"
        else:
            reply = sock.recv_multipart()
            try:
                answer = json.loads(reply[0])
                code = "ok" if answer.get("ok") else str(answer.get("error", {}).get("code"))
            except ValueError:
                code = "UNREADABLE"
        self.codes[kind][code] += 1
        return code

    def hello_ms(self) -> float:
        started = time.perf_counter()
        code = self.send("liveness hello", [header("hello")], 0)
        return (time.perf_counter() - started) * 1000 if code == "ok" else float("nan")


def run(messages: int, check_every: int, timeout: float, seed: int, clients: int, upload_bound: int) -> int:
    rng = random.Random(seed)
    with tempfile.TemporaryDirectory(prefix="shotstyle-robustness-") as root:
        save_tiny_model(Path(root) / "models")
        makers = Messages(rng)
        env = None
        if upload_bound != protocol.MAX_UPLOAD_BYTES_IN_FLIGHT:   # the server's, lowered (--short)
            site = Path(root) / "site"
            site.mkdir()
            (site / "sitecustomize.py").write_text(LOWERED_BOUND.format(bound=upload_bound))
            env = {"PYTHONPATH": os.pathsep.join(p for p in (str(site), os.environ.get("PYTHONPATH", "")) if p)}
        with ServerProcess(Path(root), env=env) as server:
            bench = Bench(server, timeout)
            kinds = list(makers.kinds)
            for index, kind in enumerate(kinds * 3):  # warm-up: every kind, so what loads once is loaded
                bench.send(kind, makers.kinds[kind](), index)
            bench.codes.clear()
            baseline = rss_mb(server.process.pid)
            print(f"server pid {server.process.pid}, RSS after warm-up {baseline:.0f} MB; {messages} messages of "
                  f"{len(kinds)} kinds", flush=True)
            print("| messages | alive | hello ms | RSS MB | growth MB | internal | hangs | s |")
            print("|---:|---|---:|---:|---:|---:|---:|---:|")
            deaths, started, peak = 0, time.monotonic(), baseline
            for index in range(messages):
                kind = kinds[index % len(kinds)] if index % 2 else rng.choice(kinds)
                if bench.send(kind, makers.kinds[kind](), index) == "HANG" and not server.alive():
                    print(f"the server died on message {index + 1}, a {kind!r}")
                if (index + 1) % check_every == 0 or index + 1 == messages or not server.alive():
                    alive = server.alive()
                    deaths += not alive
                    hello = bench.hello_ms() if alive else float("nan")
                    rss = rss_mb(server.process.pid) if alive else float("nan")
                    peak = max(peak, rss) if alive else peak
                    internal = sum(c["internal"] for c in bench.codes.values())
                    print(f"| {index + 1} | {'yes' if alive else 'DEAD'} | {hello:.1f} | {rss:.0f} | "
                          f"{rss - baseline:+.0f} | {internal} | {bench.hangs} | {time.monotonic() - started:.0f} |",
                          flush=True)
                    if not alive:
                        print(server.log()[-3000:])
                        break
            final = rss_mb(server.process.pid) if server.alive() else float("nan")
            health = None
            if server.alive():
                sock = bench.sockets[0]
                sock.send_multipart([header("status")])
                if sock.poll(int(timeout * 1000)):
                    health = json.loads(sock.recv_multipart()[0]).get("result", {}).get("health")
            bounded = bounds(server, clients, timeout, upload_bound) if server.alive() \
                else {"bounds measured": False}
        print()
        print("| kind | sent | replies by code |")
        print("|---|---:|---|")
        for kind in [*kinds, "liveness hello"]:
            counts = bench.codes[kind]
            print(f"| {kind} | {sum(counts.values())} | "
                  f"{', '.join(f'{code} {n}' for code, n in counts.most_common())} |")
        internal = sum(c["internal"] for c in bench.codes.values())
        unreadable = sum(c["UNREADABLE"] for c in bench.codes.values())
        growth = final - baseline
        verdict = {"deaths": deaths == 0, "hangs": bench.hangs == 0, "internal codes": internal == 0,
                   "unreadable replies": unreadable == 0, f"RSS growth < {RSS_GROWTH_LIMIT_MB:.0f} MB":
                   growth < RSS_GROWTH_LIMIT_MB, "health ok": health == protocol.HEALTH_OK, **bounded}
        print()
        print(f"deaths {deaths}, hangs {bench.hangs}, internal {internal}, unreadable {unreadable}, "
              f"RSS {baseline:.0f} -> {final:.0f} MB (growth {growth:+.0f} MB, peak {peak:.0f}), health {health}")
        failed = [name for name, ok in verdict.items() if not ok]
        print("PASS" if not failed else f"FAIL: {', '.join(failed)}")
        return 0 if not failed else 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--check-every", type=int, default=1_000)
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds a reply may take before it is a hang")
    parser.add_argument("--seed", type=int, default=15)
    parser.add_argument("--clients", type=int, default=20, help="clients of the burst of 1080p frames")
    parser.add_argument("--short", action="store_true", help="1,000 messages, checked every 250, a burst of 8 "
                                                             "clients (the test suite's)")
    args = parser.parse_args()
    upload_bound = protocol.MAX_UPLOAD_BYTES_IN_FLIGHT
    if args.short:
        args.messages, args.check_every, args.clients = 1_000, 250, 8
        upload_bound = SHORT_UPLOAD_BOUND
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    sys.exit(run(args.messages, args.check_every, args.timeout, args.seed, args.clients, upload_bound))


if __name__ == "__main__":
    main()
