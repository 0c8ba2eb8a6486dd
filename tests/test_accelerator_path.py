"""The code a GPU runs, run on the CPU: channels-last networks, same-size frames batched,
colour as torch ops, page-locked staging where there is CUDA, several trainings at once.

`execution_for(cpu, accelerator_path=True)` (or SHOTSTYLE_ACCELERATOR_PATH=1 for a server
process) makes the CPU take every choice a CUDA GPU takes; the precision is the GPU's too
(IEEE float32), so what differs between a GPU render and a CPU one is exercised here: results
must agree within the issue's bound (mean |difference| ≤ 1% of the mean effect, max ≤ 0.01
ACEScct) for both networks, end to end through model hashing, saving, loading and a server.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import testfiles
from serverproc import MODEL, ServerProcess, save_tiny_model
from shotstyle import examples
from shotstyle.media.frame import Frame
from shotstyle.media.reading import decode_image_bytes, read_frame
from shotstyle.plugin import codec
from shotstyle.plugin.client import Client, follow
from shotstyle.plugin.exitcodes import ExitCode
from shotstyle.server.engine.device import execution_for
from shotstyle.server.engine.inference import Stylizer
from shotstyle.server.engine.modelfile import load_model, model_to_bytes, save_model
from shotstyle.server.engine.pipeline import load_working, stylize_frame, stylize_frames, working_rgb
from test_inference import graded_model
from tolerances import accumulation_steps, rounding_tolerance

CPU = torch.device("cpu")


def accelerated() -> object:
    return execution_for(CPU, accelerator_path=True)


def check_agreement(plates: list[np.ndarray], reference: list[np.ndarray], other: list[np.ndarray]) -> None:
    """The issue's bound, on working-space (ACEScct) frames."""
    effect = np.mean([np.abs(r - p).mean() for p, r in zip(plates, reference)])
    difference = np.concatenate([np.abs(o - r).ravel() for r, o in zip(reference, other)])
    assert effect > 0.01, "the model must change the frames for the comparison to mean anything"
    assert difference.mean() <= 0.01 * effect, (difference.mean(), effect)
    assert difference.max() <= 0.01, difference.max()


@pytest.fixture(scope="module")
def plate() -> np.ndarray:
    return load_working(examples.PLATE.replace("####", "0001"))


@pytest.fixture(scope="module", params=["hrnet-fast", "hrnet"])
def model(request, plate):
    return graded_model(request.param, plate)


def test_the_accelerator_path_is_what_a_gpu_gets():
    path = accelerated()
    assert path.channels_last and path.batch_frames and path.torch_colour and path.concurrent_training
    assert not path.pinned  # no CUDA here: plain tensors, the same code
    plain = execution_for(CPU, accelerator_path=False)
    assert not (plain.channels_last or plain.batch_frames or plain.torch_colour or plain.concurrent_training)


def test_accelerator_path_agrees_with_the_cpu_path(model, plate, made_exrs):
    """Real footage as working-space arrays, and an EXR with alpha and AOVs through the frame
    pipeline (colour as torch ops, un/premultiply on the device): within the bound."""
    cpu, gpu_like = Stylizer(model, device="cpu"), Stylizer(model, execution=accelerated())
    small = np.ascontiguousarray(plate[:141, :250])
    plates = [plate, small, plate]  # two sizes: a batch of two and a batch of one
    check_agreement(plates, cpu.batch(plates), gpu_like.batch(plates))

    frame = read_frame(made_exrs["aovs"])
    frames = [frame, frame]
    reference = stylize_frames(cpu, frames, mix=0.8)
    other = stylize_frames(gpu_like, frames, mix=0.8)
    as_working = [working_rgb(f) for f in frames]
    check_agreement(as_working, [working_rgb(f) for f in reference], [working_rgb(f) for f in other])
    rgb = list(frame.rgb_indices())
    others = [i for i in range(len(frame.channels)) if i not in rgb]
    alpha = frame.pixels[:, :, frame.alpha_index()]
    for out in other:  # the pipeline's promises hold on this path too
        assert np.array_equal(out.pixels[:, :, others], frame.pixels[:, :, others], equal_nan=True)
        assert np.array_equal(out.pixels[alpha <= 0][:, rgb], frame.pixels[alpha <= 0][:, rgb])


def test_a_stylizer_leaves_the_shared_model_alone(model, tmp_path):
    """The network runs channels-last in the stylizer's own copy: the model others share keeps
    its layout and device, and hashing, saving and loading work from either."""
    before = model_to_bytes(model)
    stylizer = Stylizer(model, execution=accelerated())
    assert stylizer.network is not model.network
    assert any(p.dim() == 4 and not p.is_contiguous() for p in stylizer.network.parameters())
    assert all(p.is_contiguous() and p.device == CPU for p in model.network.parameters())
    assert stylizer.model_hash == model.hash and model_to_bytes(model) == before
    save_model(model, str(tmp_path / "m.safetensors"))
    again = Stylizer(load_model(str(tmp_path / "m.safetensors")), execution=accelerated())
    assert again.model_hash == stylizer.model_hash


def test_an_alpha_channel_with_no_coverage_is_ignored_on_the_device(model, plate):
    """A plate whose alpha is 0 everywhere is stylized everywhere, like one with no alpha,
    also when it shares a batch with a frame that has coverage (the rule is per frame)."""
    height, width = 64, 96
    rgb = np.ascontiguousarray(plate[:height, :width])
    empty = np.zeros((height, width, 1), np.float32)
    covered = np.ones((height, width, 1), np.float32)
    window = (0, 0, width, height)

    def frame(alpha: np.ndarray) -> Frame:
        pixels = np.concatenate([rgb, alpha], axis=2)
        return Frame(pixels, ["R", "G", "B", "A"], ["float"] * 4, window, window, {}, colourspace="ACEScct")

    stylizer = Stylizer(model, execution=accelerated())
    no_alpha = Frame(rgb.copy(), ["R", "G", "B"], ["float"] * 3, window, window, {}, colourspace="ACEScct")
    expected = stylize_frame(stylizer, no_alpha).pixels
    # A batch of two runs other kernels than a single frame (summing in another order, and
    # differently on each CPU): the network's sums in another order, on values up to max|expected|.
    atol = rounding_tolerance(float(np.abs(expected).max()), accumulation_steps(model.network))
    for out in stylize_frames(stylizer, [frame(empty), frame(covered)]):
        np.testing.assert_allclose(out.pixels[:, :, :3], expected, rtol=0, atol=atol)
        assert np.abs(out.pixels[:, :, :3] - rgb).mean() > 1e-3


@pytest.mark.slow
def test_a_server_on_the_accelerator_path_stylizes_and_trains(tmp_path, exr_sequence, style_image):
    """A whole server taking the GPU's path on the CPU: its frames agree with the in-process CPU
    engine within the bound, and two trainings run at once (a GPU's worker does) and finish."""
    model = save_tiny_model(tmp_path / "models")
    paths = testfiles.paths_of(exr_sequence, testfiles.SEQUENCE_FRAMES)
    with ServerProcess(tmp_path, env={"SHOTSTYLE_ACCELERATOR_PATH": "1"}) as server:
        with Client(server.address, timeout=120) as client:
            results = client.stylize([codec.encode_file(str(p), frame=n) for n, p in enumerate(paths, 1)], MODEL)
            style = codec.encode_file(style_image, frame=0)
            jobs = [client.train([codec.encode_file(str(paths[0]), frame=1)], style, f"job{n}",
                                 {"steps": 6, "resolution": 48, "loss": "look"}) for n in range(2)]
            finals = [follow(job, timeout=300) for job in jobs]
        assert server.alive()
    stylizer = Stylizer(load_model(str(model)), device="cpu")
    frames = [read_frame(str(p)) for p in paths]
    reference = [working_rgb(stylize_frame(stylizer, f)) for f in frames]
    got = [working_rgb(decode_image_bytes(bytes(ef.data), "exr")) for ef in results]
    check_agreement([working_rgb(f) for f in frames], reference, got)
    assert [final["type"] for final in finals] == ["done", "done"]
    assert all(load_model(str(tmp_path / "models" / f"job{n}.safetensors")).hash == finals[n]["hash"]
               for n in range(2))


def test_render_in_process_on_the_accelerator_path(plate_clip, tmp_path, monkeypatch, capsys):
    """`render --in-process` as a GPU machine runs it: several reader and writer threads,
    frames that are ready together batched; a damaged frame among them fails alone, the others
    agree with the CPU path's render within the bound."""
    import json
    import shutil

    from shotstyle.cli.main import main
    from shotstyle.media import frame as media_frame

    graded = graded_model("hrnet-fast", load_working(examples.PLATE.replace("####", "0001")))
    model = str(tmp_path / "look.safetensors")
    save_model(graded, model)
    plates = tmp_path / "plates"
    plates.mkdir()
    for frame in range(1, 9):
        shutil.copy(plate_clip.replace("####", f"{frame:04d}"), plates)
    (plates / "plate.0005.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")

    def render(folder: str) -> list[dict]:
        argv = ["render", "--model", model, "--in", str(plates / "plate.####.jpg"), "--out",
                str(tmp_path / folder / "s.####.exr"), "--frames", "1-8", "--in-process", "--json-progress"]
        assert main(argv) == ExitCode.MISSING_INPUT   # an unreadable input frame (the README's table: 3)
        return [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]

    render("cpu")
    monkeypatch.setenv("SHOTSTYLE_ACCELERATOR_PATH", "1")
    monkeypatch.setattr(media_frame, "CORES_PER_IO_THREAD", 1)  # two readers and two writers on CI's 2 cores
    records = render("gpu-like")
    failed = [r["frame"] for r in records if r["event"] == "frame" and r["status"] == "missing"]
    assert failed == [5]
    done = [n for n in range(1, 9) if n != 5]
    plate = [working_rgb(read_frame(str(plates / f"plate.{n:04d}.jpg"))) for n in done]
    frames = {folder: [working_rgb(read_frame(str(tmp_path / folder / f"s.{n:04d}.exr"))) for n in done]
              for folder in ("cpu", "gpu-like")}
    check_agreement(plate, frames["cpu"], frames["gpu-like"])


def test_training_reads_its_losses_every_few_steps_and_decides_the_same(plate, monkeypatch):
    """A GPU's training step queues work and goes on: the loss values are read (waiting for the
    device) every `loss_reads_every` steps, not every step. Every step still reports its
    losses, in order, and the adaptive content weight moves exactly as when reading every step."""
    from shotstyle.server.engine import training
    from shotstyle.server.engine.losses import look
    from shotstyle.server.engine.training import TrainConfig, train

    reads = []
    host_values = training._host_values
    monkeypatch.setattr(training, "_host_values", lambda steps: reads.append(len(steps)) or host_values(steps))
    style = load_working(examples.STYLE)
    # A local term with room to move, so the content/style balance drifts and the weight follows it.
    config = TrainConfig(steps=40, resolution=40, loss="look", adaptive_content=True, strength=1.0,
                         local_bound=0.15, lr=3e-2)
    runs = {}
    for path in ("0", "1"):
        monkeypatch.setenv("SHOTSTYLE_ACCELERATOR_PATH", path)
        events: list = []
        reads.clear()
        model = train([plate], style, config, on_event=events.append)
        progress = [(e.step, e.losses["total"]) for e in events if e.kind == "progress"]
        runs[path] = (model.metadata["weights"]["content"], progress, list(reads))
    (cpu_weight, cpu_progress, cpu_reads), (gpu_weight, gpu_progress, gpu_reads) = runs["0"], runs["1"]
    assert [step for step, _ in gpu_progress] == list(range(1, 41))
    assert gpu_progress == cpu_progress  # the same training: reading later changes nothing
    assert gpu_weight == cpu_weight != look.DEFAULT_CONTENT_WEIGHT
    assert len(cpu_reads) == 40 and sum(gpu_reads) == 40 and len(gpu_reads) <= 5
