"""Training on keyframes: loss goes down for both loss families, determinism, events,
cancellation with a checkpoint, fine-tuning and the metadata a model file records."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from shotstyle.server.engine.colourmath import working_to_lab
from shotstyle.server.engine.losses import build_loss
from shotstyle.server.engine import training
from shotstyle.server.engine.modelfile import StyleModel, model_from_bytes, model_to_bytes
from shotstyle.server.engine.optimiserstate import restore as training_restore
from shotstyle.server.engine.training import (ADAPT_EVERY, ADAPT_FACTOR, ADAPT_RANGE, TrainConfig,
                                              TrainingInputError, sha256_of, train, to_training_tensor)
from shotstyle.server.errors import TrainingCancelled

from test_losses import scene

pytestmark = pytest.mark.filterwarnings("ignore:shotstyle. WARNING:UserWarning")


def as_array(image: torch.Tensor) -> np.ndarray:
    return image[0].permute(1, 2, 0).numpy().copy()


@pytest.fixture(scope="module")
def images() -> dict[str, np.ndarray]:
    return {"plate": as_array(scene(96, 128)), "style": as_array(scene(80, 128, warm=False)),
            "other": as_array(torch.flip(scene(96, 128), dims=[-1]))}


def network_output(model: StyleModel, image: np.ndarray) -> torch.Tensor:
    with torch.no_grad():
        return model.network(to_training_tensor(image, 128, torch.device("cpu")))


@pytest.mark.parametrize("loss, arch", [("look", "hrnet-fast"), ("vgg", "hrnet-fast"), ("look", "hrnet")])
def test_training_lowers_the_loss_and_moves_towards_the_style(images, loss, arch):
    events = []
    steps = 20 if loss == "vgg" else 30
    # A larger local budget than the default, so the local term has room to learn in 30 steps.
    config = TrainConfig(arch=arch, loss=loss, vgg="random" if loss == "vgg" else None,
                         steps=steps, resolution=128, lr=5e-3, preview_every=10, local_bound=0.05)
    model = train([images["plate"]], images["style"], config, on_event=events.append)
    progress = [e for e in events if e.kind == "progress"]
    assert [e.step for e in progress] == list(range(1, steps + 1))
    # The model starts as its fitted grade; training then lowers the loss from where the first
    # updates of the local term took it.
    assert progress[-1].losses["total"] < 0.7 * max(e.losses["total"] for e in progress[:5])
    # Judged afresh, with the same loss at a fixed step: the result is closer to the style than the plate.
    plate = to_training_tensor(images["plate"], 128, torch.device("cpu"))
    style = to_training_tensor(images["style"], 128, torch.device("cpu"))
    judge = build_loss(loss, style, [plate], vgg_weights="random" if loss == "vgg" else None)
    assert float(judge(network_output(model, images["plate"]), 0, 99)["style"]) < \
        0.7 * float(judge(plate, 0, 99)["style"])
    metadata = model.metadata
    assert metadata["loss"] == loss and metadata["steps"] == steps and metadata["resolution"] == 128
    assert metadata["vgg_source"] == ("random" if loss == "vgg" else None)
    assert metadata["strength"] == 0.5 and metadata["weights"]["style"] > 0 and metadata["local_bound"] == 0.05
    assert metadata["style_sha256"] == sha256_of(images["style"])
    assert metadata["keyframe_sha256"] == [sha256_of(images["plate"])]


def test_same_seed_same_model_other_seed_other_model(images):
    config = TrainConfig(loss="look", steps=4, resolution=64, seed=7)
    first = train([images["plate"]], images["style"], config)
    second = train([images["plate"]], images["style"], config)
    other = train([images["plate"]], images["style"], TrainConfig(loss="look", steps=4, resolution=64, seed=8))
    for name, tensor in first.network.state_dict().items():
        assert torch.equal(tensor, second.network.state_dict()[name]), name
    assert any(not torch.equal(t, other.network.state_dict()[n]) for n, t in first.network.state_dict().items())


def test_events_carry_previews_of_keyframe_and_extra_frame(images):
    events = []
    train([images["plate"], images["other"]], images["style"],
          TrainConfig(loss="look", steps=4, resolution=64, preview_every=2),
          preview_frame=images["other"], on_event=events.append)
    previews = [e for e in events if e.kind == "preview"]
    assert [e.step for e in previews] == [2, 4]
    assert previews[0].preview.shape == (48, 64, 3) and previews[0].preview_extra.shape == (48, 64, 3)
    assert np.isfinite(previews[-1].preview).all()
    progress = [e for e in events if e.kind == "progress"]
    assert set(progress[0].losses) == {"content", "style", "smooth", "local", "total"}
    assert progress[-1].eta_s == 0.0 and progress[0].steps_per_s > 0 and progress[0].eta_s > 0


def test_cancellation_checkpoints_then_raises(images):
    steps_seen, saved = [], []
    with pytest.raises(TrainingCancelled, match="cancelled at step 3 of 50"):
        train([images["plate"]], images["style"], TrainConfig(loss="look", steps=50, resolution=64),
              on_event=lambda e: steps_seen.append(e.step), should_cancel=lambda: len(steps_seen) >= 3,
              checkpoint=saved.append)
    assert len(saved) == 1 and isinstance(saved[0], StyleModel)
    assert saved[0].metadata["steps_done"] == 3


def test_fine_tune_starts_from_the_given_model(images):
    base = train([images["plate"]], images["style"], TrainConfig(loss="look", steps=3, resolution=64))
    tuned = train([images["other"]], images["style"], TrainConfig(loss="look", steps=2, resolution=64, lr=1e-9),
                  init=base)
    assert tuned.metadata["init_model"] == base.hash and tuned.metadata["steps_total"] == 5
    for name, tensor in base.network.state_dict().items():  # lr≈0: the weights barely move
        assert torch.allclose(tensor, tuned.network.state_dict()[name], atol=1e-6), name
    assert tuned.network is not base.network


def test_continuing_a_checkpoint_goes_on_with_its_step_count_and_adam_state(images, monkeypatch):
    """A run stopped at step 4 and continued from its saved file numbers its steps 5..8, starts
    from the Adam moments and step it stopped with, and ends where the uninterrupted run ends."""
    config = TrainConfig(loss="look", steps=8, resolution=64, preview_every=4)
    whole = train([images["plate"]], images["style"], config)
    seen, saved = [], []
    with pytest.raises(TrainingCancelled):
        train([images["plate"]], images["style"], config, on_event=lambda e: seen.append(e.step),
              should_cancel=lambda: len(seen) >= 4, checkpoint=saved.append)
    stopped = saved[0].optimiser
    assert stopped is not None and stopped.step == 4 and stopped.moments
    checkpoint = model_from_bytes(model_to_bytes(saved[0]))     # through the file, as `--init` reads it
    restored = {}

    def spy(optimiser, network, state):
        training_restore(optimiser, network, state)
        for name, parameter in network.named_parameters():
            restored[name] = {key: value.clone() for key, value in optimiser.state[parameter].items()}
    monkeypatch.setattr(training, "restore", spy)
    events = []
    resumed = train([images["plate"]], images["style"], TrainConfig(loss="look", steps=4, resolution=64,
                                                                     preview_every=4),
                    init=checkpoint, on_event=events.append)
    assert [(e.step, e.steps) for e in events if e.kind == "progress"] == [(5, 8), (6, 8), (7, 8), (8, 8)]
    assert set(restored) == {key[len("optimiser."):].rsplit(".", 1)[0] for key in stopped.moments}
    for name, state in restored.items():
        assert float(state["step"]) == 4
        for moment in ("exp_avg", "exp_avg_sq"):
            assert torch.equal(state[moment], stopped.moments[f"optimiser.{name}.{moment}"]), (name, moment)
    # The same arithmetic in the same order as the uninterrupted run: the same weights, bit for bit.
    for name, tensor in whole.network.state_dict().items():
        assert torch.equal(tensor, resumed.network.state_dict()[name]), name
    assert resumed.optimiser is None and whole.optimiser is None   # a finished model carries no moments


def test_early_stop_on_a_loss_plateau(images):
    model = train([images["plate"]], images["style"],
                  TrainConfig(loss="look", steps=200, resolution=48, lr=1e-9, early_stop=True))
    assert model.metadata["early_stopped_at"] < 200 and model.metadata["steps_done"] < 200


def test_adaptive_content_weight_moves_the_content_weight_in_bounded_steps(images):
    """With a learning rate that really trains, the content/style balance drifts and the weight follows it."""
    config = {"loss": "look", "steps": 40, "resolution": 48, "lr": 3e-2, "local_bound": 0.15}
    base = train([images["plate"]], images["style"], TrainConfig(**config)).metadata["weights"]["content"]
    adapted = train([images["plate"]], images["style"], TrainConfig(**config, adaptive_content=True))
    moved = adapted.metadata["weights"]["content"]
    factors = math.log(moved / base) / math.log(ADAPT_FACTOR)  # each adaptation multiplies or divides by it
    assert moved != base and abs(factors - round(factors)) < 1e-6, (base, moved)
    assert 1 <= abs(round(factors)) <= config["steps"] // ADAPT_EVERY
    assert base / ADAPT_RANGE <= moved <= base * ADAPT_RANGE


def test_bad_inputs_are_named(images):
    with pytest.raises(TrainingInputError, match="keyframe 2 of 2: expected an H×W×3"):
        train([images["plate"], images["plate"][..., 0]], images["style"], TrainConfig(steps=1))
    with pytest.raises(TrainingInputError, match="parameter .strength. = 1.5 is outside its range"):
        train([images["plate"]], images["style"], TrainConfig(strength=1.5))
    with pytest.raises(TrainingInputError, match="local_bound=0.*export the model's LUT"):
        train([images["plate"]], images["style"], TrainConfig(local_bound=0.0))
    with pytest.raises(TrainingInputError, match="no keyframes"):
        train([], images["style"], TrainConfig())


@pytest.mark.parametrize("keyframe, style, message", [
    ((3, 3), (64, 64), r"^the keyframe is 3×3 pixels: each side must be at least 8 pixels for training; use a larger"),
    ((64, 64), (1, 300), r"^the style image is 300×1 pixels, 128×1 at the training resolution 128: .*use a larger"),
    ((2000, 20), (64, 64), r"^the keyframe is 20×2000 pixels, 1×128 at .*resolution of at least 800 or crop it"),
])
def test_images_too_small_to_learn_from_are_refused_by_size(keyframe, style, message):
    """Narrower images failed inside the look's 7×7 windows, or diverged at the first step."""
    rng = np.random.default_rng(0)
    with pytest.raises(TrainingInputError, match=message):
        train([rng.random((*keyframe, 3), dtype=np.float32)], rng.random((*style, 3), dtype=np.float32),
              TrainConfig(steps=1, resolution=128))


def test_the_narrowest_images_allowed_train(images):
    rng = np.random.default_rng(0)
    model = train([rng.random((8, 128, 3), dtype=np.float32)], rng.random((128, 8, 3), dtype=np.float32),
                  TrainConfig(steps=2, resolution=128))
    assert model.metadata["steps"] == 2


@pytest.mark.parametrize("arch", ["hrnet-fast", "hrnet"])
def test_trained_local_term_keeps_a_flat_region_one_colour_on_an_unseen_frame(images, arch):
    # The look loss rewards painting a few pixels a style colour they do not correspond to; the
    # local term's limits (networks/local.py) must keep that below what a viewer can find, also
    # on a frame laid out unlike the keyframe.
    config = TrainConfig(arch=arch, loss="look", steps=30, resolution=128, lr=5e-3)
    model = train([images["plate"]], images["style"], config)
    unseen = to_training_tensor(images["other"], 128, torch.device("cpu"))
    with torch.no_grad():
        change = working_to_lab(model.network(unseen)) - working_to_lab(model.network.grade(unseen))
    ground = change[:, :, 60:]                       # flat ground (plus noise) below the buildings
    spread = (ground - ground.mean(dim=(2, 3), keepdim=True)).norm(dim=1)
    assert float(spread.max()) < 2.5                 # ΔE76: one colour, not two
    assert float(change.norm(dim=1).max()) < 4.0     # and nothing far from the grade anywhere
