"""Stylizer (mix, determinism, tiling) and the frame pipeline (alpha, other channels, metadata)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from shotstyle import examples
from shotstyle.media.metadata import MIX_ATTRIBUTE, MODEL_ATTRIBUTE
from shotstyle.media.reading import read_frame
from shotstyle.media.writing import write_frame
from shotstyle.server.engine.grade import identity_lattice
from shotstyle.server.engine.inference import TILE_OVERLAP, InferenceError, Stylizer, tile_spans
from shotstyle.server.engine.modelfile import StyleModel
from shotstyle.server.engine.networks import build_network
from shotstyle.server.engine.pipeline import load_working, stylize_frame
from tolerances import rounding_tolerance


def graded_model(name: str, plate: np.ndarray, steps: int = 10) -> StyleModel:
    """A small network briefly trained towards a colour grade of `plate` (a realistic model)."""
    torch.manual_seed(0)
    kwargs = {"width": 8, "blocks": 1} | ({"low_res": 64} if name == "hrnet-fast" else {})
    network = build_network(name, bound=0.1, **kwargs)   # a strong local term: its tiles must still agree
    lattice = identity_lattice(network.grade.size)
    network.grade.set(lattice * torch.tensor([0.8, 1.0, 1.2]).view(3, 1, 1, 1))  # and a grade under it
    x = F.interpolate(torch.from_numpy(plate).permute(2, 0, 1)[None], size=(36, 64), mode="area")
    target = x * torch.tensor([0.8, 1.0, 1.2]).view(1, 3, 1, 1) + 0.05 * torch.sin(12 * x)
    optimiser = torch.optim.Adam(network.parameters(), lr=3e-3)
    for _ in range(steps):
        loss = (network(x) - target).abs().mean()
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    return StyleModel(network.eval(), {"loss": "test"})


@pytest.fixture(scope="module")
def plate() -> np.ndarray:
    return load_working(examples.PLATE.replace("####", "0001"))  # real footage, 500×281, in ACEScct


@pytest.fixture(scope="module")
def fast_model(plate) -> StyleModel:
    return graded_model("hrnet-fast", plate)


def test_load_working_gives_acescct(plate):
    assert plate.shape == (281, 500, 3) and plate.dtype == np.float32
    assert 0.05 < plate.min() and plate.max() < 0.7  # an sRGB JPEG encodes to 0.07..0.55 in ACEScct


def test_mix_zero_is_the_input_exactly_and_mix_blends(fast_model, plate):
    stylizer = Stylizer(fast_model, device="cpu")
    assert np.array_equal(stylizer(plate, mix=0.0), plate)
    full = stylizer(plate)
    assert np.abs(full - plate).mean() > 5e-3
    # The same three roundings (subtract, scale, add) on values below 1, in torch and in numpy.
    assert np.allclose(stylizer(plate, mix=0.25), plate + 0.25 * (full - plate), rtol=0, atol=rounding_tolerance(1.0, 2 * 3))
    assert np.array_equal(stylizer(plate), full)  # deterministic on CPU
    with pytest.raises(InferenceError, match="parameter .mix. = 1.5 is outside its range"):
        stylizer(plate, mix=1.5)
    with pytest.raises(InferenceError, match=r"H×W×3 float32.*\(281, 500\)"):
        stylizer(plate[:, :, 0])


def test_batch_of_mixed_sizes(fast_model, plate):
    frames = [plate, np.ascontiguousarray(plate[:101, :77]), plate]
    outputs = Stylizer(fast_model, device="cpu").batch(frames)
    assert [o.shape for o in outputs] == [f.shape for f in frames]
    assert np.array_equal(outputs[0], outputs[2])


def test_hrnet_fast_never_tiles_and_its_strips_are_exact(fast_model, plate, monkeypatch):
    """hrnet-fast bounds its own memory: the full-resolution step runs in strips that change no
    pixel, and the stylizer never cuts it into tiles, however small its budget."""
    from shotstyle.server.engine.networks import hrnet_fast
    whole = Stylizer(fast_model, device="cpu")(plate)  # 500×281: one strip
    monkeypatch.setattr(hrnet_fast, "STRIP_PIXELS", 500 * 7)  # 7-row strips, the last one row
    monkeypatch.setattr(Stylizer, "_tiled", lambda *args: pytest.fail("hrnet-fast was tiled"))
    assert np.array_equal(Stylizer(fast_model, device="cpu", tile_pixels=128 * 128)(plate), whole)


def test_tile_spans_cover_and_cross_fade():
    for length, tile in [(500, 150), (281, 150), (1000, 333), (90, 150)]:
        spans = tile_spans(length, tile)
        total = torch.zeros(length)
        for start, stop, weights in spans:
            assert start % 4 == 0 and min(tile, length) <= stop - start == len(weights) < tile + 4
            total[start:stop] += weights
        assert torch.allclose(total, torch.ones(length))
        for (_, stop, _), (start, _, _) in zip(spans, spans[1:]):
            assert stop - start >= TILE_OVERLAP


def test_tiled_hrnet_matches_untiled_on_a_real_frame(plate):
    """Threshold: max |tiled − untiled| below 0.005 ACEScct (≈ 0.09 stop, invisible) and the
    mean below 0.1% of the network's mean change; measured ≈ 0.001 and 0.01%."""
    model = graded_model("hrnet", plate)
    untiled = Stylizer(model, device="cpu")(plate)
    tiled = Stylizer(model, device="cpu", tile_pixels=160 * 160)(plate)  # 2×4 tiles
    effect = np.abs(untiled - plate).mean()
    difference = np.abs(tiled - untiled)
    assert effect > 0.01
    assert difference.max() < 0.005
    assert difference.mean() < 1e-3 * effect


@pytest.fixture(params=["made", "sample"])
def frame_with_aovs(request, made_exrs):
    """RGBA with uncovered areas, depth and other AOVs, the data window inside the display window."""
    if request.param == "made":
        return read_frame(made_exrs["aovs"])
    return read_frame(str(request.getfixturevalue("shared_data") / "exr" / "Beachball" / "singlepart.0001.exr"))


def test_stylize_frame_keeps_alpha_other_channels_and_windows(frame_with_aovs, fast_model, tmp_path):
    frame = frame_with_aovs
    stylizer = Stylizer(fast_model, device="cpu")
    out = stylize_frame(stylizer, frame, mix=0.8)
    rgb = list(frame.rgb_indices())
    every_view = [index for view in frame.views() for index in view.rgb]   # the sample is stereo: left.R...
    others = [i for i in range(len(frame.channels)) if i not in every_view]
    assert np.array_equal(out.pixels[:, :, others], frame.pixels[:, :, others], equal_nan=True)
    for view in frame.views()[1:]:  # no view passes through unstylized
        assert np.abs(out.pixels[..., list(view.rgb)] - frame.pixels[..., list(view.rgb)]).mean() > 1e-3, view
    alpha = frame.pixels[:, :, frame.alpha_index()]
    empty, covered = alpha <= 0, alpha > 0
    assert empty.any() and covered.any()
    assert np.array_equal(out.pixels[empty][:, rgb], frame.pixels[empty][:, rgb])
    assert np.abs(out.pixels[covered][:, rgb] - frame.pixels[covered][:, rgb]).mean() > 1e-3
    assert (out.data_window, out.display_window) == (frame.data_window, frame.display_window)
    assert out.attributes[MODEL_ATTRIBUTE] == fast_model.hash
    assert out.attributes[MIX_ATTRIBUTE] == pytest.approx(0.8)
    path = str(tmp_path / "out.exr")
    write_frame(path, out)
    assert read_frame(path).attributes[MODEL_ATTRIBUTE] == fast_model.hash

    unchanged = stylize_frame(stylizer, frame, mix=0.0)
    assert np.array_equal(unchanged.pixels, frame.pixels, equal_nan=True)
    assert unchanged.attributes[MIX_ATTRIBUTE] == 0.0


@pytest.mark.parametrize("out_space", ["ACEScg", "sRGB - Texture"])
@pytest.mark.parametrize("opaque", [False, True])
@pytest.mark.parametrize("planar", [False, True])
def test_the_host_colour_stages_are_the_whole_frame_steps_they_replaced(out_space, opaque, planar):
    """Colour in and out on the host (planes, one OCIO pass each) against the same steps on
    H×W×3 frames through OCIO (the host's path before): equal bit for bit, non-finite values,
    alpha 0 / partial / 1 (or 1 everywhere, which the host skips) and half-range clamping
    included, whether the working-space frame is packed or a view of planes (the frame
    pipeline's); and within 1e-3 of a device's torch-op colour (colourtensors' bound), where it
    differs only by its torch log and exp."""
    from shotstyle.media.frame import HALF_MAX
    from shotstyle.server.engine.colourtensors import (PROBE_TOLERANCE, from_working_tensor, tensor_transform,
                                                       to_working_tensor)
    from shotstyle.server.engine.pipeline import (colour_in, colour_out, half_range, host_colour_in, host_colour_out,
                                                  premultiply, unpremultiply)
    rng = np.random.default_rng(7)
    linear = rng.lognormal(-2.0, 1.5, (23, 41, 3)).astype(np.float32)
    linear[0, :4] = [[np.nan, 1.0, 1.0], [np.inf, -np.inf, 0.0], [-6e4, 5e4, 0.2], [-0.5, 0.1, 0.1]]
    alpha = rng.choice([1.0] if opaque else [0.0, 0.5, 1.0], (23, 41, 1)).astype(np.float32)
    staged = torch.from_numpy(np.concatenate([linear * np.where(alpha > 0, alpha, 1), alpha], axis=2).astype(np.float16))

    working, plate = host_colour_in(staged, "ACEScg", out_space, planar=planar)
    assert working.shape == (23, 41, 3) and (working.transpose(2, 0, 1) if planar else working).flags.c_contiguous
    rgb, kept_alpha = staged[None, ..., :3].float(), staged[None, ..., 3:].float()
    straight, covered = unpremultiply(rgb, kept_alpha)
    np.testing.assert_array_equal(working, to_working_tensor(straight, "ACEScg", in_torch=False)[0].numpy())
    on_device, device_plate = colour_in(staged[None], "ACEScg", out_space)
    assert (np.abs(on_device[0].numpy() - working) <= PROBE_TOLERANCE * np.maximum(1, np.abs(working))).all()

    stylized = working + np.float32(0.1) * np.sin(7 * working)
    stylized[5:7] = 1.6  # scene-linear 2^18.3: beyond half's range
    laid_out = np.array(stylized.transpose(2, 0, 1), order="C").transpose(1, 2, 0) if planar else stylized.copy()
    got, clamped = host_colour_out(laid_out, plate, torch.float16)  # converts planes in place
    expected = from_working_tensor(torch.from_numpy(stylized)[None], out_space, in_torch=False)
    kept = rgb if out_space == "ACEScg" else tensor_transform("ACEScg", out_space, in_torch=False)(
        torch.nan_to_num(rgb, nan=0.0, posinf=HALF_MAX, neginf=-HALF_MAX), consume=True)  # uncovered, as they came
    expected = premultiply(expected, kept, kept_alpha, covered)
    expected_clamped = half_range(expected)
    assert int(expected_clamped.sum()) > 0 and torch.equal(clamped, expected_clamped)
    np.testing.assert_array_equal(got, expected[0].half().numpy())
    # The device's colour out: its torch ops within PROBE_TOLERANCE of OCIO (relative to max(1, |v|)),
    # then each result rounded to half (EPS16/2 relative each, so the two by up to EPS16).
    device, _ = colour_out(torch.from_numpy(stylized)[None], device_plate, torch.float16)
    finite = np.isfinite(got) & (np.abs(got) < HALF_MAX)
    bound = (PROBE_TOLERANCE + float(np.finfo(np.float16).eps)) * np.maximum(1, np.abs(got[finite]))
    assert (np.abs(device[0].numpy()[finite] - got[finite]) <= bound).all()
