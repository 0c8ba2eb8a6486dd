"""The stylization networks: registry, any input size, identity at start, reflection padding,
the global grade first with an honest local change on top (both networks: exposure bounded,
colour only along the grade's own colour change), and hrnet-fast's
full-resolution colour transform (detail from the plate, exact strips)."""

from __future__ import annotations

import pytest
import torch

from shotstyle.server.engine.networks import ARCHITECTURES, UnknownArchitectureError, build_network
from shotstyle.server.engine.networks import hrnet_fast, local
from shotstyle.server.engine.networks.hrnet_fast import apply_affine, fit_local_affine
from tolerances import accumulation_steps, rounding_tolerance

# A trilinear lookup's roundings: 3 coordinates scaled and offset (2 each), 8 corner weights
# (2 products each), the 8 weighted corners summed (8 products, 7 additions).
TRILINEAR_STEPS = 3 * 2 + 8 * 2 + 8 + 7

SMALL = {"hrnet": {"width": 8, "blocks": 1}, "hrnet-fast": {"width": 8, "blocks": 1, "low_res": 64},
         "grade": {"grade_size": 9}}
LOCAL = ("hrnet", "hrnet-fast")  # the networks with a local term on top of the grade


def perturbed(name: str) -> torch.nn.Module:
    """A small network whose output is not the identity (random decoder and norm offsets)."""
    torch.manual_seed(0)
    network = build_network(name, bound=0.1, **SMALL[name]).eval()
    for module in network.modules():
        if isinstance(module, torch.nn.InstanceNorm2d):
            torch.nn.init.uniform_(module.bias, -0.2, 0.2)
    decode = network.net.decode if name == "hrnet-fast" else network.decode
    torch.nn.init.normal_(decode.weight, std=0.5)
    return network


def test_registry_names_and_errors():
    assert ARCHITECTURES == ("hrnet", "hrnet-fast", "grade")
    network = build_network("hrnet-fast", low_res=128)
    assert network.architecture == "hrnet-fast" and network.arch_kwargs == {"low_res": 128}
    with pytest.raises(UnknownArchitectureError, match="unknown network architecture 'unet'.*hrnet, hrnet-fast, grade"):
        build_network("unet")
    with pytest.raises(UnknownArchitectureError, match="bad arguments .*'depth'"):
        build_network("hrnet", depth=3)


@pytest.mark.parametrize("name", ARCHITECTURES)
@pytest.mark.parametrize("size", [(1, 1), (7, 5), (33, 62), (90, 161)])
def test_untrained_network_is_identity_at_any_size(name, size):
    x = torch.rand(2, 3, *size) * 0.6
    with torch.inference_mode():
        y = build_network(name, **SMALL[name]).eval()(x)
    assert y.shape == x.shape
    assert torch.allclose(y, x, rtol=0, atol=rounding_tolerance(0.6, TRILINEAR_STEPS))  # an identity lookup


@pytest.mark.parametrize("name", LOCAL)
def test_constant_frame_stays_constant_to_the_border(name):
    # Zero padding would make border pixels differ from the interior (bright edges).
    # (Below low_res, so hrnet-fast's downscale does not add rounding noise to the flat frame.)
    x = torch.full((1, 3, 45, 62), 0.4)
    network = perturbed(name)
    with torch.inference_mode():
        y = network(x)
    assert (y - x).abs().max() > 1e-3  # the network does change the colour...
    # ...the same everywhere: border and interior pixels may only sum in another order (kernels' edges)
    assert (y - y[:, :, 20:21, 30:31]).abs().max() < rounding_tolerance(1.0, accumulation_steps(network))


def unseen_frame() -> torch.Tensor:
    """Content unlike anything a keyframe held: saturated stripes, noise and a flat grey field."""
    torch.manual_seed(1)
    x = torch.rand(1, 3, 40, 56) * 0.7
    x[:, :, :, :12] = torch.tensor([0.7, 0.1, 0.2]).view(1, 3, 1, 1) * (torch.arange(40) % 4 < 2).view(1, 1, 40, 1)
    x[:, :, 25:, 30:] = 0.4
    return x


def split_change(plate, graded, output):
    """(exposure change, colour change along the grade's own colour change, the rest of it)."""
    change = output - graded
    exposure = change.mean(1, keepdim=True)
    tint = change - exposure
    direction = graded - plate
    direction = direction - direction.mean(1, keepdim=True)
    along = (tint * direction).sum(1, keepdim=True) / (direction ** 2).sum(1, keepdim=True).clamp(min=1e-12)
    return exposure, along, tint - along * direction


@pytest.mark.parametrize("name", LOCAL)
def test_both_networks_grade_first_and_keep_their_local_change_honest(name):
    network = perturbed(name)
    # A strong grade in the lattice: the local change is measured from it, not from the plate.
    network.grade.set(network.grade.lut.flip(0) * 0.8 + 0.1)
    with torch.no_grad():
        torch.nn.init.normal_((network.net.decode if name == "hrnet-fast" else network.decode).weight, std=5.0)
    x = unseen_frame()
    with torch.inference_mode():
        graded, y = network.grade(x), network(x)
    exposure, along, across = split_change(x, graded, y)
    slack = rounding_tolerance(1.0, accumulation_steps(network))        # exact in exact arithmetic
    assert (graded - x).abs().max() > 0.2
    assert exposure.abs().max() > 0.5 * network.bound                   # the local term is strong...
    assert exposure.abs().max() <= network.bound + slack                # ...never beyond its bound,
    direction = graded - x
    tint = (along * (direction - direction.mean(1, keepdim=True))).norm(dim=1)
    assert tint.max() > 0.5 * network.bound                             # it grades colour more or less...
    assert tint.max() <= network.bound + slack                          # ...by at most the bound,
    assert along.abs().max() <= local.TINT_REACH + slack                # a share of the grade's change...
    assert across.abs().max() < slack                                   # ...and only toward the grade's hue


@pytest.mark.parametrize("name", LOCAL)
def test_where_the_grade_adds_no_colour_the_local_term_adds_none(name):
    network = perturbed(name)          # identity grade, a strong local proposal
    with torch.no_grad():
        torch.nn.init.normal_((network.net.decode if name == "hrnet-fast" else network.decode).weight, std=5.0)
    x = unseen_frame()
    with torch.inference_mode():
        y = network(x)
    change = y - x
    assert change.abs().max() > 0.5 * network.bound
    slack = rounding_tolerance(1.0, accumulation_steps(network))       # exact in exact arithmetic
    assert (change - change.mean(1, keepdim=True)).abs().max() < slack  # exposure only: greys stay grey


@pytest.mark.parametrize("name", LOCAL)
def test_network_trains(name):
    torch.manual_seed(0)
    network = build_network(name, bound=0.05, **SMALL[name])
    x = torch.rand(1, 3, 40, 56) * 0.6
    target = x + 0.03  # a local brightening within the bound (the grade is the identity here)
    optimiser = torch.optim.Adam(network.parameters(), lr=2e-3)
    losses = []
    for _ in range(6):
        loss = (network(x) - target).abs().mean()
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        losses.append(loss.item())
    assert losses[-1] < 0.6 * losses[0]


def test_local_affine_fit_recovers_a_colour_matrix_and_keeps_plate_detail():
    torch.manual_seed(0)
    matrix = torch.tensor([[0.8, 0.2, 0.0], [0.1, 0.7, 0.1], [0.0, 0.3, 0.9]])
    offset = torch.tensor([0.05, -0.02, 0.1])

    def grade(x):
        return torch.einsum("ij,njhw->nihw", matrix, x) + offset.view(1, 3, 1, 1)

    low = torch.rand(1, 3, 24, 40)
    coefficients = fit_local_affine(low, grade(low), radius=2, eps=1e-6)
    plate = torch.rand(1, 3, 96, 160)  # full-resolution noise: detail the low-res copy never saw
    assert torch.allclose(apply_affine(coefficients, plate), grade(plate), atol=2e-3)


def test_full_resolution_strips_are_exact(monkeypatch):
    coefficients = torch.rand(1, 12, 9, 13)
    plate = torch.rand(1, 3, 101, 77)
    whole = apply_affine(coefficients, plate)
    monkeypatch.setattr(hrnet_fast, "STRIP_PIXELS", 77 * 7)
    assert torch.equal(apply_affine(coefficients, plate), whole)
    # Training's path (the rows of a strip gathered in one blend) gives the same values, and gradients.
    trained = coefficients.clone().requires_grad_(True)
    gathered = apply_affine(trained, plate)
    assert torch.equal(gathered.detach(), whole)
    gathered.sum().backward()
    assert trained.grad is not None and bool(torch.isfinite(trained.grad).all()) and float(trained.grad.abs().sum()) > 0
    reference = torch.nn.functional.interpolate(coefficients, size=(101, 77), mode="bilinear")
    # Values up to 4 (3 coefficients × plate + offset, all ≤ 1); each path: a bilinear lookup
    # (2 coordinates × 2, 4 weights × 2, 4 products, 3 additions) then 3 products and 3 additions.
    atol = rounding_tolerance(4.0, 2 * (2 * 2 + 4 * 2 + 4 + 3 + 3 + 3))
    assert torch.allclose(whole[:, 0], (reference[:, :3] * plate).sum(1) + reference[:, 3], rtol=0, atol=atol)


def test_the_effect_description_offers_exactly_the_registered_networks_and_losses():
    from shotstyle.plugin import params
    from shotstyle.server.engine.losses import LOSSES
    assert set(params.choices("arch")) == set(ARCHITECTURES)
    assert set(params.choices("loss")) == {params.AUTO, *LOSSES}
    assert params.defaults()["arch"] in ARCHITECTURES


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_the_grade_in_batched_strips_is_one_lookup_bit_for_bit(monkeypatch, threads):
    from shotstyle.server.engine import grade as grade_module
    torch.manual_seed(1)
    lattice = grade_module.identity_lattice(9) + 0.05 * torch.randn(3, 9, 9, 9)
    grade = grade_module.LatticeGrade(9)
    grade.set(lattice)
    monkeypatch.setattr(grade_module, "STRIP_PIXELS", 53 * 4)   # strips of a few rows, a padded last one
    monkeypatch.setattr(torch, "get_num_threads", lambda: threads)
    x = torch.rand(2, 3, 37, 53) * 1.4 - 0.2                      # beyond the domain too
    expected = grade_module.sample_lattice(lattice, x) + (x - x.clamp(0, 1))
    assert torch.equal(grade.in_torch(x), expected)


def test_the_targeted_limit_in_place_is_the_same_steps_bit_for_bit():
    torch.manual_seed(2)
    graded = torch.rand(1, 3, 17, 29)
    proposed = graded + 0.02 * torch.randn(1, 3, 17, 29)   # changes within and beyond the bound
    expected = local.targeted(graded, proposed, 0.005)
    assert (proposed - graded).abs().max() > 2 * 0.005 and not torch.equal(expected, proposed)
    overwritten = proposed.clone()
    got = local.targeted(graded, overwritten, 0.005, in_place=True)
    assert got.data_ptr() == overwritten.data_ptr() and torch.equal(got, expected)


def test_hrnet_fast_applies_its_limits_strip_by_strip_exactly(monkeypatch):
    network = perturbed("hrnet-fast")
    x = torch.rand(1, 3, 101, 77)
    with torch.no_grad():
        graded = network.grade(x)
        small = hrnet_fast.downscale(graded, network.low_res)
        changed = small + network.bound * network.net.change(small)
        coefficients = fit_local_affine(small, changed, network.radius, network.eps)
        whole_frame = local.honest(x, graded, apply_affine(coefficients, graded), network.bound)
        monkeypatch.setattr(hrnet_fast, "STRIP_PIXELS", 77 * 7)
        assert torch.equal(network(x), whole_frame)


def whole_frame_reference(network: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """hrnet-fast's forward as plain whole-frame steps (the path before the strips): every 3×4
    transform bilinearly upsampled to the full frame at once, applied, then limited."""
    graded = network.grade(x)
    small = hrnet_fast.downscale(graded, network.low_res)
    changed = small + network.bound * network.net.change(network.inner_input(x, small))
    coefficients = fit_local_affine(small, changed, network.radius, network.eps)
    full = torch.nn.functional.interpolate(coefficients, size=x.shape[-2:], mode="bilinear", align_corners=False)
    m = full.view(x.shape[0], 3, 4, *x.shape[-2:])
    proposed = (m[:, :, :3] * graded[:, None]).sum(2) + m[:, :, 3]
    return local.limited(x, graded, proposed, network.bound, network.along_grade)


@pytest.mark.parametrize("targeted", [True, False])
def test_hrnet_fast_equals_its_whole_frame_steps_in_either_memory_layout(targeted):
    """The network as the default training builds it (semantic features, the `targeted` rule) and
    an older `honest` one, on a frame above its low resolution, against the plain whole-frame path;
    a channels-last frame gives a channels-last result with the same values."""
    torch.manual_seed(0)
    arguments = hrnet_fast.HRNetFast.training_arguments(512, targeted)
    network = build_network("hrnet-fast", **arguments).eval()
    for parameter in network.parameters():
        parameter.data += torch.randn_like(parameter) * 0.01
    network.grade.set(network.grade.lut.flip(0) * 0.8 + 0.1)
    x = torch.rand(1, 3, 270, 482) * 0.8
    threads = torch.get_num_threads()
    with torch.inference_mode():
        expected = whole_frame_reference(network, x)
        got = network(x)
        channels_last = network(x.contiguous(memory_format=torch.channels_last))
        torch.set_num_threads(1)  # as an in-process render on a small CPU runs it (cli.render.inprocess)
        try:
            one_thread = network(x)
        finally:
            torch.set_num_threads(threads)
    assert channels_last.is_contiguous(memory_format=torch.channels_last)
    assert (expected - x).abs().mean() > 5e-3
    # Both paths share the grade, the fit and its coefficients; they differ in how the upsampled
    # transform is applied: a bilinear lookup (2 coordinates × 2 roundings, 4 weights × 2,
    # 4 products, 3 additions) and 3 products and 3 additions, in another order, on values up to 4
    # (3 coefficients near the identity × colours below 1 + an offset). The limit after it moves an
    # error no further: tanh' ≤ 1 (targeted), the share along the grade's colour change ≤ 1
    # (honest); a few roundings of its own (6) on values below 2.
    atol = rounding_tolerance(4.0, 2 * (2 * 2 + 4 * 2 + 4 + 3 + 3 + 3)) + rounding_tolerance(2.0, 6)
    assert (got - expected).abs().max() <= atol
    # The low-resolution steps may run other kernels in the other layout: the same arithmetic in
    # another order, through every convolution of the inner network and the semantic features.
    assert (channels_last - got).abs().max() <= atol + rounding_tolerance(1.0, accumulation_steps(network))
    # Another thread count splits the convolutions' sums differently: the same arithmetic in another order.
    assert (one_thread - got).abs().max() <= rounding_tolerance(1.0, accumulation_steps(network))
