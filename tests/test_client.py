"""The client against real server processes: frames through the server equal the in-process
engine bit for bit (EXR bytes with AOVs and windows, and raw buffers), the model store round-trips and persists,
training streams events and can be cancelled, a second client keeps getting frames while
another trains, SIGTERM during training leaves a usable checkpoint, and autostart works."""

from __future__ import annotations

import os
import time

import numpy as np
import pytest

import testfiles
from serverproc import serving_tiny_model, MODEL, ServerProcess, save_tiny_model
from shotstyle.plugin import codec, localserver, protocol
from shotstyle.plugin.client import Client, ServerError
from shotstyle.plugin.params import FrameArgs

TRAIN = {"steps": 12, "resolution": 64, "loss": "look", "preview_every": 5}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    yield from serving_tiny_model(tmp_path_factory)


@pytest.fixture(scope="module")
def stylizer(server):
    from shotstyle.server.engine.inference import Stylizer
    from shotstyle.server.engine.modelfile import load_model

    return Stylizer(load_model(str(server.models / (MODEL + ".safetensors"))), "cpu")


def same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    return a.shape == b.shape and a.dtype == b.dtype and np.array_equal(a.view(np.uint8), b.view(np.uint8))


def test_exr_bytes_through_the_server_equal_the_in_process_result(server, stylizer, exr_sequence, tmp_path):
    from shotstyle.media.reading import decode_image_bytes, read_frame
    from shotstyle.media.writing import write_frame
    from shotstyle.server.engine.pipeline import stylize_frame

    paths = testfiles.paths_of(exr_sequence, testfiles.SEQUENCE_FRAMES)
    with Client(server.address, timeout=120) as client:
        results = client.stylize([codec.encode_file(str(p), frame=n) for n, p in enumerate(paths, 1)], MODEL)
    for n, (path, ef) in enumerate(zip(paths, results), 1):
        assert ef.frame == n and ef.kind == "file" and ef.header["format"] == "exr"
        expected = stylize_frame(stylizer, read_frame(str(path)))
        write_frame(str(tmp_path / "expected.exr"), expected)
        want = read_frame(str(tmp_path / "expected.exr"))
        got = decode_image_bytes(bytes(ef.data), "exr")
        assert got.channels == want.channels and len(got.channels) > 4  # AOVs came back too
        assert got.data_window == want.data_window and got.display_window == want.display_window
        assert got.channel_formats == want.channel_formats
        assert same_bits(got.pixels, want.pixels)
        assert got.attributes.get("shotstyle/model") == stylizer.model_hash


def test_plates_as_raw_buffers_equal_the_in_process_result(server, stylizer, plate_clip):
    from shotstyle.media.payloads import frame_from_raw, frame_to_raw
    from shotstyle.media.reading import read_frame
    from shotstyle.server.engine.pipeline import stylize_frame

    paths = testfiles.paths_of(plate_clip, (1, 20, 40))
    frames = {n: read_frame(str(p)) for n, p in enumerate(paths, 1001)}
    with Client(server.address, timeout=120) as client:
        sent = [frame_to_raw(f, "float32", n) for n, f in frames.items()]
        results = list(client.stylize_stream(sent, MODEL, FrameArgs(mix=0.75), in_flight=3))
    assert sorted(ef.frame for ef in results) == sorted(frames)
    for ef in results:
        assert ef.kind == "raw" and ef.header["dtype"] == "float32"
        expected = stylize_frame(stylizer, frames[ef.frame], mix=0.75)
        got = frame_from_raw(ef)
        assert same_bits(got.pixels, expected.pixels.astype(np.float32))
        assert got.channels == expected.channels


def test_half_raw_replies_stay_half_and_keep_alpha(server):
    pixels = np.random.default_rng(1).uniform(0, 1, (16, 24, 4)).astype(np.float16)
    pixels[..., 3] = np.linspace(0, 1, 24, dtype=np.float16)
    header = {"width": 24, "height": 16, "channels": ["R", "G", "B", "A"], "formats": ["half"] * 4,
              "dtype": "float16", "data_window": [0, 0, 24, 16], "display_window": [0, 0, 24, 16]}
    with Client(server.address) as client:
        (out,) = client.stylize([codec.encode_raw(pixels, header)], MODEL)
    assert out.frame is None and out.header["dtype"] == "float16"
    back = np.frombuffer(out.data, np.float16).reshape(16, 24, 4)
    assert same_bits(back[..., 3].copy(), pixels[..., 3].copy())
    assert not np.array_equal(back[..., :3], pixels[..., :3])


def test_model_store_round_trip_and_persistence(tmp_path):
    source = save_tiny_model(tmp_path / "elsewhere")
    root = tmp_path / "srv"
    with ServerProcess(root) as server, Client(server.address) as client:
        assert client.put_model(source, "grade_A-1") == "grade_A-1"
        listed = {m["name"]: m for m in client.list_models()}
        assert "grade_A-1" in listed and listed["grade_A-1"]["metadata"]["architecture"] == "hrnet-fast"
        assert client.describe_model("grade_A-1")["hash"] == listed["grade_A-1"]["hash"]
        client.get_model("grade_A-1", str(tmp_path / "copy.safetensors"))
        assert (tmp_path / "copy.safetensors").read_bytes() == open(source, "rb").read()
        with pytest.raises(ServerError) as err:
            client.put_model(str(tmp_path / "copy.safetensors"), "../../escape")
        assert err.value.code == "bad_argument"
        assert not (tmp_path / "escape.safetensors").exists()
        with pytest.raises(ServerError) as err:
            client.describe_model("missing")
        assert err.value.code == "unknown_model"
    with ServerProcess(root) as server, Client(server.address, token=server.token) as client:  # a restart keeps it
        assert "grade_A-1" in client.hello()["models"]
        client.delete_model("grade_A-1")
        assert client.list_models() == []


def test_timeouts_and_retries_never_hang(tmp_path):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    client = Client(f"tcp://127.0.0.1:{port}", timeout=0.3, retries=2)
    start = time.monotonic()
    with pytest.raises(ServerError) as err:
        client.hello()  # idempotent: 3 attempts
    assert err.value.code == "timeout" and 0.8 < time.monotonic() - start < 5
    start = time.monotonic()
    with pytest.raises(ServerError):
        client.shutdown()  # not idempotent: one attempt only
    assert time.monotonic() - start < 0.9
    client.close()


def test_no_local_server_without_autostart_is_a_clear_error():
    with pytest.raises(ServerError) as err:
        Client()
    assert err.value.code == "unreachable" and "shotstyle serve" in err.value.message


def test_autostart_starts_one_local_server_and_clients_find_it():
    with Client(autostart=True, timeout=30) as client:
        hello = client.hello()
        assert hello["params"]["params"] and hello["protocol"] == protocol.PROTOCOL_VERSION
        pid = client.status()["pid"]
        assert localserver.find_local_server() == client.address
        with Client() as second:  # found through the server file, not started again
            assert second.status()["pid"] == pid
        client.shutdown()
    deadline = time.monotonic() + 30
    while localserver.pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not localserver.pid_alive(pid)


@pytest.fixture(scope="module")
def train_inputs(plate_clip, style_image):
    """Encoded keyframe (frame 1), style and preview frame (30)."""
    keyframe, preview = testfiles.paths_of(plate_clip, (1, 30))
    return codec.encode_file(keyframe, frame=1), codec.encode_file(style_image), codec.encode_file(preview, frame=30)


def test_training_streams_events_and_the_model_renders(server, train_inputs):
    keyframe, style, preview = train_inputs
    with Client(server.address, timeout=60) as client:
        job = client.train([keyframe], style, "plate_look", TRAIN, preview=preview)
        events = list(job.events())
        final = events[-1]
        assert final["type"] == "done" and final["model"] == "plate_look", final
        progress = [e for e in events if e["type"] == "progress"]
        assert progress and progress[-1]["step"] == TRAIN["steps"] and "eta_s" in progress[-1]
        assert all(isinstance(v, float) for v in progress[-1]["losses"].values())
        previews = [e for e in events if e["type"] == "preview"]
        assert previews and previews[0]["image"].kind == "file" and "extra" in previews[0]
        assert client.describe_model("plate_look")["hash"] == final["hash"]
        (out,) = client.stylize([keyframe], "plate_look")
        assert out.frame == 1


def test_a_float_tiff_keyframe_previews_in_the_space_it_was_read_in(server, tmp_path):
    """One default-colourspace rule: float data is ACEScg when read and when its preview is encoded."""
    from shotstyle.media.frame import Frame
    from shotstyle.media.metadata import COLOURSPACE_ATTRIBUTE
    from shotstyle.media.reading import decode_image_bytes
    from shotstyle.media.writing import write_frame
    rgb = np.random.default_rng(0).uniform(0, 1, (32, 48, 3)).astype(np.float32)
    window = (0, 0, 48, 32)
    write_frame(str(tmp_path / "key.tif"), Frame(rgb, ["R", "G", "B"], ["float"] * 3, window, window, {}))
    write_frame(str(tmp_path / "style.png"), Frame(rgb[::-1].copy(), ["R", "G", "B"], ["uint8"] * 3, window, window,
                                                   {}))
    with Client(server.address, timeout=60) as client:
        job = client.train([codec.encode_file(str(tmp_path / "key.tif"), frame=1)],
                           codec.encode_file(str(tmp_path / "style.png")), "tiff_look",
                           {"steps": 2, "resolution": 32, "loss": "look", "preview_every": 1})
        previews = [e["image"] for e in job.events() if e["type"] == "preview"]
    assert previews and job.final is not None and job.final["type"] == "done", job.final
    assert decode_image_bytes(bytes(previews[0].data)).attributes[COLOURSPACE_ATTRIBUTE] == "ACEScg"


def test_cancel_keeps_a_checkpoint(server, train_inputs):
    keyframe, style, _ = train_inputs
    with Client(server.address, timeout=60) as client:
        job = client.train([keyframe], style, "cancelled_look", {**TRAIN, "steps": 100000})
        for event in job.events():
            if event["type"] == "progress":
                job.cancel()
                break
        final = job.wait()
        assert final["type"] == "cancelled" and final["model"] == "cancelled_look"
        assert client.describe_model("cancelled_look")["metadata"]["architecture"] == "hrnet-fast"
        with pytest.raises(ServerError) as err:
            job.cancel()
        assert err.value.code == "unknown_job"


def test_one_client_trains_while_another_stylizes(server, train_inputs, plate_clip):
    keyframe, style, _ = train_inputs
    numbers = (2, 3, 4, 5)
    frames = [codec.encode_file(path, frame=n) for n, path in zip(numbers, testfiles.paths_of(plate_clip, numbers))]
    with Client(server.address, timeout=120) as trainer, Client(server.address, timeout=120) as renderer:
        job = trainer.train([keyframe], style, "concurrent_look", {**TRAIN, "steps": 30})
        first = next(job.events())
        assert first["type"] in ("progress", "preview")
        results = renderer.stylize(frames, MODEL)
        assert [r.frame for r in results] == [2, 3, 4, 5]
        running = [j for j in renderer.status()["jobs"] if j["id"] == job.id]
        final = job.wait()
        assert final["type"] == "done", final
        assert running and running[0]["state"] == "running"  # frames came back while it trained


def test_too_many_jobs_per_client(server, train_inputs):
    keyframe, style, _ = train_inputs
    with Client(server.address, timeout=60) as client:
        jobs = [client.train([keyframe], style, f"many_{n}", {**TRAIN, "steps": 100000})
                for n in range(protocol.MAX_JOBS_PER_CLIENT)]
        with pytest.raises(ServerError) as err:
            client.train([keyframe], style, "one_too_many", TRAIN)
        assert err.value.code == "too_many_jobs"
        for job in jobs:
            job.cancel()
        assert {job.wait()["type"] for job in jobs} == {"cancelled"}


def test_sigterm_during_training_leaves_a_usable_checkpoint_and_stops_cleanly(tmp_path, train_inputs):
    from shotstyle.server.engine.modelfile import load_model

    keyframe, style, _ = train_inputs
    server = ServerProcess(tmp_path)
    try:
        with Client(server.address, timeout=60) as client:
            job = client.train([keyframe], style, "interrupted", {**TRAIN, "steps": 100000})
            assert next(job.events())["type"] in ("progress", "preview")
            assert server.terminate(60) == 0
            types = [e["type"] for e in job.events(timeout=10)]
            assert types[-1] == "cancelled"
    finally:
        server.kill()
    assert not server.server_file.exists() and "stopped" in server.log()
    model = load_model(str(server.models / "interrupted.safetensors"))
    assert model.metadata["architecture"] == "hrnet-fast"
    assert os.listdir(server.models) == ["interrupted.safetensors"]  # no temporary files left
