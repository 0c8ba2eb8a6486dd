"""The grade-only model (`--arch grade`) and the grade at LUT speed: OpenColorIO's 3D-LUT
processor equals the torch lookup (grid_sample) it replaces on CPUs, beyond the lattice too;
a grade-only model saves, loads, exports its LUT and renders, with colour in, the grade, the mix
and colour out fused into one OCIO pass, equal to the chain of separate stages.

Tolerances: the lookups compute the same trilinear weights in float32 in different orders;
the lattice coordinate is x·(S−1), so a weight may differ by S·2⁻²⁴ (S ≤ 33: 2e-6) and an output
by that times the largest difference between neighbouring nodes (≤ 1 here) plus a few roundings
of values below 2: 1e-5 is a bound with room, below the 1e-4 the grade must keep. Through the
scene-linear conversions, values up to ~300 carry float32's relative 2⁻²⁴ per op (a dozen ops
in OCIO's log-camera curve and its inverse): 1e-5 relative, ×10 for OCIO's fast exp/log
approximations in both chains — within the 1e-3 the colour stages are held to.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from shotstyle.media.frame import Frame
from shotstyle.server.engine import grade as grade_module
from shotstyle.server.engine.colour import from_working
from shotstyle.server.engine.grade import LatticeGrade, identity_lattice
from shotstyle.server.engine.inference import Stylizer
from shotstyle.server.engine.lut import export_look
from shotstyle.server.engine.modelfile import StyleModel, load_model, save_model
from shotstyle.server.engine.networks import build_network
from shotstyle.server.engine.networks.grade_only import GradeOnly
from shotstyle.server.engine.pipeline import stylize_frame

LOOKUP_TOLERANCE = 1e-5
SCENE_TOLERANCE = 1e-4  # relative to max(1, |value|)


def hand_lattice(size: int) -> torch.Tensor:
    """A strong, non-separable grade: channels rotated, contrast, a colour-dependent twist."""
    lattice = identity_lattice(size)
    r, g, b = lattice
    return torch.stack([0.1 + 0.8 * g, 0.9 * b + 0.1 * r * g, 0.05 + 0.7 * r + 0.2 * b * b])


def hand_model(size: int = 9) -> StyleModel:
    network = build_network("grade", grade_size=size)
    network.grade.set(hand_lattice(size))
    return StyleModel(network.eval(), {"loss": "closed form"})


def frame_values(height: int, width: int, seed: int = 0) -> torch.Tensor:
    """ACEScct colours inside the lattice and beyond it on both sides."""
    return torch.from_numpy(np.random.default_rng(seed).uniform(-0.3, 1.4, (1, 3, height, width)).astype(np.float32))


@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last])
@pytest.mark.parametrize("size", [2, 9, 33])
def test_the_ocio_lookup_equals_the_torch_lookup_inside_and_beyond_the_lattice(layout, size):
    grade = LatticeGrade(size)
    torch.manual_seed(size)
    grade.set(identity_lattice(size) + 0.1 * torch.randn(3, size, size, size))
    x = torch.cat([frame_values(37, 53, 1), frame_values(37, 53, 2)]).contiguous(memory_format=layout)
    with torch.inference_mode():
        on_host, in_torch = grade(x), grade.in_torch(x)
    assert on_host.is_contiguous(memory_format=layout)
    assert (in_torch - x).abs().max() > 0.1
    assert ((x < 0) | (x > 1)).float().mean() > 0.2  # many pixels beyond the lattice (slope 1 there)
    assert (on_host - in_torch).abs().max() <= LOOKUP_TOLERANCE


def test_training_still_takes_the_differentiable_lookup():
    grade = LatticeGrade(5)
    x = frame_values(8, 8).requires_grad_(True)
    grade(x).sum().backward()
    assert x.grad is not None and torch.allclose(x.grad[(x > 0) & (x < 1)].mean(), torch.tensor(1.0), atol=1e-4)


def test_a_grade_only_model_saves_loads_exports_and_renders(tmp_path):
    model = hand_model(17)  # a size .cube files take
    save_model(model, str(tmp_path / "look.safetensors"))
    loaded = load_model(str(tmp_path / "look.safetensors"))
    assert isinstance(loaded.network, GradeOnly) and loaded.architecture == "grade"
    assert torch.equal(loaded.network.grade.lut, hand_lattice(17))

    plate = frame_values(21, 34)[0].permute(1, 2, 0).contiguous().numpy()
    with torch.inference_mode():
        expected = loaded.network.grade.in_torch(torch.from_numpy(plate).permute(2, 0, 1)[None])
    expected = expected[0].permute(1, 2, 0).numpy()
    stylizer = Stylizer(loaded, device="cpu")
    assert stylizer.host_lattice is not None
    assert np.abs(stylizer(plate) - expected).max() <= LOOKUP_TOLERANCE
    half = stylizer(plate, mix=0.5)
    assert np.abs(half - (plate + 0.5 * (expected - plate))).max() <= LOOKUP_TOLERANCE
    assert np.array_equal(stylizer(plate, mix=0.0), plate)

    export = export_look(loaded, "look.cube", keyframes=[plate])
    assert export.report["lut_vs_full_mean"] < 1e-3   # the LUT is the whole model
    cube = export.lut
    rows = [line for line in cube.splitlines() if line[:1].isdigit() or line[:1] == "-"]
    assert len(rows) == 17 ** 3
    # Red fastest, as the lattice stores it: row 1 is node (r=1/16, g=0, b=0).
    # Not two float paths but a text format: the .cube holds six decimals (rounding moves a value by
    # at most half its last digit), and a float32 value below 1 is within one eps of what it stands for.
    six_decimals = 0.5 * 10.0 ** -6
    assert np.allclose([float(v) for v in rows[1].split()], hand_lattice(17)[:, 0, 0, 1].numpy(),
                       rtol=0, atol=six_decimals + float(np.finfo(np.float32).eps))


def scene_frame(space: str) -> Frame:
    """A 1-row-tall RGBA plate in ``space``: ordinary colours, highlights above the lattice,
    negatives below it, alpha 0 / partial / 1."""
    working = frame_values(24, 40, 3)[0].permute(1, 2, 0).numpy().copy()
    working[0, :8] = [[1.3, 0.5, 0.2]] * 8  # about 2000 in scene-linear
    rgb = from_working(working, space)
    alpha = np.random.default_rng(4).choice([0.0, 0.5, 1.0], (24, 40, 1)).astype(np.float32)
    pixels = np.concatenate([rgb * np.where(alpha > 0, alpha, 1), alpha], axis=2).astype(np.float32)
    window = (0, 0, 40, 24)
    return Frame(pixels, ["R", "G", "B", "A"], ["float"] * 4, window, window, {}, colourspace=space)


@pytest.mark.parametrize("space, out_space", [("ACEScg", None), ("sRGB - Texture", "ACEScg"), ("ACEScct", None)])
@pytest.mark.parametrize("mix", [1.0, 0.6])
def test_the_fused_render_equals_the_stages_it_replaces(monkeypatch, space, out_space, mix):
    model = hand_model()
    frame = scene_frame(space)
    fused = stylize_frame(Stylizer(model, device="cpu"), frame, mix, out_colourspace=out_space)
    # Today's chain: colour in, the network's torch lookup, mix, colour out, as separate stages.
    stages = Stylizer(model, device="cpu")
    stages.host_lattice = None
    monkeypatch.setattr(grade_module.LatticeGrade, "forward", LatticeGrade.in_torch)
    separate = stylize_frame(stages, frame, mix, out_colourspace=out_space)
    got, expected = fused.pixels, separate.pixels
    assert np.abs(expected[..., :3] - frame.pixels[..., :3]).max() > 0.1
    assert np.array_equal(got[..., 3], frame.pixels[..., 3])
    assert (np.abs(got - expected) <= SCENE_TOLERANCE * np.maximum(1.0, np.abs(expected))).all()
    assert fused.colourspace == separate.colourspace



@pytest.mark.parametrize("space", ["ACEScg", "sRGB - Texture"])
def test_the_host_pass_applies_colour_ins_rule_and_writes_only_finite_values(monkeypatch, space):
    """The grade-only host pass reads straight from the plate into a new frame, strip by strip:
    non-finite and huge negative values are replaced as colour in replaces them (and the plate is
    left as it was), and nothing it writes is non-finite, exactly as the separate steps it replaced
    (transform_input, the grade in place, finite_output)."""
    from shotstyle.server.engine import colour
    from shotstyle.server.engine.colour import finite_output, transform_input
    monkeypatch.setattr(colour, "STRIP_MIN_PIXELS", 500)   # many strips, across the threads
    monkeypatch.setattr(colour, "STRIP_PIXELS", 96)
    monkeypatch.setattr(colour, "LINE_PIXELS", 32)
    stylizer = Stylizer(hand_model(), device="cpu")
    plate = from_working(frame_values(30, 41, 6)[0].permute(1, 2, 0).numpy().copy(), space)
    plate[3, :4] = [[np.nan, np.inf, -np.inf], [-1e38, 1e30, 0.2], [np.nan, np.nan, np.nan], [3e38, -3e38, 0.0]]
    kept = plate.copy()
    out = np.empty_like(plate)
    stylizer.grade_on_host(plate, space, "ACEScg", 0.8, out=out)
    np.testing.assert_array_equal(plate, kept)
    expected, _ = transform_input(plate)
    stylizer.grade_on_host(expected, space, "ACEScg", 0.8)
    finite_output(expected)
    np.testing.assert_array_equal(out, expected)
    assert np.isfinite(out).all() and np.abs(out[5:] - plate[5:]).max() > 0.1

    # A lattice whose colours no float32 holds in scene-linear (ACEScct 50: 2^866): made finite.
    overflowing = Stylizer(hand_model(), device="cpu")
    assert overflowing.host_lattice is not None
    overflowing.host_lattice = np.full_like(overflowing.host_lattice, 50.0)
    overflowing.grade_on_host(plate, space, "ACEScg", 1.0, out=out)
    assert (out == np.finfo(np.float32).max).mean() > 0.99 and np.isfinite(out).all()
