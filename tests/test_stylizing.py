"""A worker's frame pipeline (server.stylizing) in this process: many requests in flight over
several decode and finishing threads, each answered exactly once, a damaged frame failing only
its own request, results equal to the in-process engine, nothing left counted afterwards."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
import torch
import zmq

import testfiles
from serverproc import MODEL, save_tiny_model
from shotstyle.media import frame as media_frame
from shotstyle.plugin import codec, protocol
from shotstyle.plugin.params import FrameArgs
from shotstyle.server.jobs import DeviceWorker
from shotstyle.server.store import ModelStore
from tolerances import EPS16, accumulation_steps, rounding_tolerance


@pytest.fixture
def worker(tmp_path, monkeypatch):
    """A CPU worker with four decode and four finishing threads, its replies on a PULL socket."""
    monkeypatch.setattr(media_frame, "CORES_PER_IO_THREAD", 0.5)
    save_tiny_model(tmp_path / "models")
    context = zmq.Context()
    results = context.socket(zmq.PULL)
    address = f"inproc://results-{id(tmp_path)}"
    results.bind(address)
    worker = DeviceWorker(ModelStore(str(tmp_path / "models")), "cpu", context, address)
    yield worker, results
    worker.request_stop()
    worker.close()
    results.close(0)
    context.term()


def replies(results: zmq.Socket, count: int) -> dict:
    """request id -> (header, payloads) of the next `count` replies (each id at most once)."""
    got = {}
    poller = zmq.Poller()
    poller.register(results, zmq.POLLIN)
    while len(got) < count:
        assert poller.poll(120_000), f"only {len(got)} of {count} replies came"
        identity, *parts = results.recv_multipart()
        header, payloads = protocol.unpack(parts)
        assert identity == b"client" and header["id"] not in got
        got[header["id"]] = (header, payloads)
    return got


def test_requests_in_flight_are_each_answered_once(worker, exr_sequence, damaged_exrs):
    from shotstyle.media.reading import decode_image_bytes, read_frame
    from shotstyle.server.engine.inference import Stylizer
    from shotstyle.server.engine.pipeline import stylize_frame

    device_worker, results = worker
    paths = testfiles.paths_of(exr_sequence, testfiles.SEQUENCE_FRAMES)
    damaged = next(path for name, path in damaged_exrs.items() if name != "good")
    sent = {f"r{n}": codec.encode_file(str(paths[n % len(paths)]), frame=n) for n in range(9)}
    sent["r4"] = codec.encode_file(damaged, frame=4)
    for request_id, ef in sent.items():
        device_worker.stylize(b"client", request_id, [ef], MODEL, FrameArgs())
    answers = replies(results, len(sent))

    assert not answers["r4"][0]["ok"] and answers["r4"][0]["error"]["code"] == "bad_frame"
    assert "frame 4" in answers["r4"][0]["error"]["message"]
    stylizer = Stylizer(device_worker.store.get(MODEL), "cpu")
    for request_id, (header, payloads) in answers.items():
        if request_id == "r4":
            continue
        assert header["ok"], header
        (ef,) = codec.frames_from_message(header["frames"], payloads)
        assert ef.frame == sent[request_id].frame
        expected = stylize_frame(stylizer, read_frame(str(paths[ef.frame % len(paths)])))
        got = decode_image_bytes(bytes(ef.data), "exr")
        # Half in the file (one rounding: eps16/2 relative), and the worker's batches against
        # single frames: the network's sums in another order.
        path = rounding_tolerance(float(np.abs(expected.pixels).max()), accumulation_steps(stylizer.network))
        np.testing.assert_allclose(got.pixels, expected.pixels, rtol=EPS16, atol=path)
        assert set(header["result"]["timings_ms"]) == {"decode", "stylize", "encode"}
    assert device_worker.queued_renders() == 0 and device_worker.renders_in_flight(b"client") == 0
    assert len([t for t in threading.enumerate() if t.name.startswith("shotstyle-decode")]) > 1


def test_a_stopping_worker_answers_what_is_queued(worker, exr_sequence):
    device_worker, results = worker
    path = testfiles.paths_of(exr_sequence, testfiles.SEQUENCE_FRAMES)[0]
    device_worker.request_stop()
    device_worker.stylize(b"client", "late", [codec.encode_file(path, frame=1)], MODEL, FrameArgs())
    (header, _), = replies(results, 1).values()
    assert header["error"]["code"] == "shutting_down"
    # The request is counted out just after its reply is sent (so a stopping server never closes
    # before sending it): give that thread its moment.
    deadline = time.monotonic() + 10
    while device_worker.alive() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not device_worker.alive()


@pytest.mark.slow
def test_two_workers_share_the_frames_and_the_trainings(tmp_path, exr_sequence, style_image):
    """`serve --devices cpu,cpu`: one worker per device; requests in flight are spread over both
    (each reply says which), the two trainings go one to each, and the frames are the same
    whichever worker made them."""
    from serverproc import ServerProcess
    from shotstyle.plugin.client import Client, follow

    save_tiny_model(tmp_path / "models")
    paths = testfiles.paths_of(exr_sequence, testfiles.SEQUENCE_FRAMES)
    with ServerProcess(tmp_path, ["--devices", "cpu,cpu"]) as server:
        with Client(server.address, timeout=120) as client:
            assert client.hello()["device"] == "cpu,cpu"
            keyframe = codec.encode_file(str(paths[0]), frame=1)
            style = codec.encode_file(style_image, frame=0)
            jobs = [client.train([keyframe], style, f"look{n}", {"steps": 4, "resolution": 48, "loss": "look"})
                    for n in range(2)]
            running = client.status()["jobs"]
            sent = {client._send(protocol.OP_STYLIZE, {"model": MODEL}, [codec.encode_file(str(paths[n % 3]), frame=n)]): n
                    for n in range(8)}  # all in flight at once
            results = {}
            while len(results) < len(sent):
                request_id = client._await(set(sent) - set(results), 120)
                assert request_id is not None
                results[request_id] = client._result(request_id)
            finals = [follow(job, timeout=300) for job in jobs]
    assert sorted(job["worker"] for job in running) == [0, 1]
    assert [final["type"] for final in finals] == ["done", "done"]
    assert {result["worker"] for result, _ in results.values()} == {0, 1}
    assert {result["device"] for result, _ in results.values()} == {"cpu"}
    by_frame = {frames[0].frame: bytes(frames[0].data) for _, frames in results.values()}
    for n in range(3, 8):  # the same input gives the same bytes whichever worker made it
        assert by_frame[n] == by_frame[n % 3]


def test_a_half_raw_frame_stays_half_until_the_device(worker, monkeypatch):
    """Half raw buffers are staged as half and converted on the device (where the colour is
    done there, as on a GPU), both ways: the reply is bit for bit what the float32 path gives
    rounded to half, and no float32 copy of the frame is made on the host."""
    from shotstyle.media.frame import Frame
    from shotstyle.media.payloads import frame_from_raw, frame_to_raw
    from shotstyle.server.engine import pipeline
    from shotstyle.server.engine.inference import Stylizer

    from shotstyle.server.engine.device import execution_for

    device_worker, results = worker
    accelerated = execution_for(torch.device("cpu"), accelerator_path=True)  # colour on the device too
    monkeypatch.setattr(device_worker, "execution", accelerated)
    staged = []
    prepare = pipeline.prepare
    monkeypatch.setattr(pipeline, "prepare", lambda *a, **k: staged.append(prepare(*a, **k)) or staged[-1])
    rng = np.random.default_rng(4)
    pixels = np.concatenate([rng.uniform(0, 2, (32, 48, 3)), rng.uniform(0, 1, (32, 48, 1))], 2).astype(np.float16)
    window = (0, 0, 48, 32)
    frame = Frame(pixels, ["R", "G", "B", "A"], ["half"] * 4, window, window, {}, colourspace="ACEScg")
    device_worker.stylize(b"client", "half", [frame_to_raw(frame, "float16", 7)], MODEL, FrameArgs(0.7))
    (header, payloads), = replies(results, 1).values()
    (ef,) = codec.frames_from_message(header["frames"], payloads)
    got = frame_from_raw(ef).pixels
    assert got.dtype == np.float16 and staged[0].views[0].tensor.dtype == torch.float16
    as_float = Frame(pixels.astype(np.float32), *frame_args(frame))
    expected = pipeline.stylize_frame(Stylizer(device_worker.store.get(MODEL), execution=accelerated), as_float, 0.7).pixels
    assert np.array_equal(got.view(np.uint16), expected.astype(np.float16).view(np.uint16))


def frame_args(frame) -> tuple:
    return (frame.channels, frame.channel_formats, frame.data_window, frame.display_window, {}, None, frame.colourspace)
