"""Training a style model on one or more keyframes of a shot.

`train` first fits the model's global grade in closed form (engine/correspondence.py; the
`grade` architecture stops there: no steps, seconds), from the images' pictures: inside any
letterbox or pillarbox bars, where their alpha covers them (engine/picture.py). With the
default `target` loss it then makes each keyframe's per-pixel target (engine/target.py:
region-wise transfer on top of the grade, guided by semantic features and the artist's mattes)
and optimises the network (new, or a copy of an `init` model to resume / fine-tune) to
reproduce the targets on random crops of the keyframes; the local term's budget is what the
targets need. The `look` and `vgg` losses instead judge the output against the style image
itself. Every step uses all keyframes (several keyframes are how long shots whose background
changes are covered). It reports progress and previews through a callback, stops
cooperatively when asked (after handing the current model to `checkpoint`), can stop early on
a loss plateau, and records in the model's metadata everything needed to know how the model
was made.

Deterministic for a given seed on the CPU (with the same torch thread count): the network's
initial weights come from the seed, the target's regions, the crops and the look loss's random
projections from (seed, step); nothing else is random. Steps count over every run, and a
checkpoint carries Adam's state (engine/optimiserstate.py), so continuing one (`init`) goes on
as the uninterrupted run would have.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Mapping

import numpy as np
import torch
import torch.nn.functional as F

from shotstyle.plugin import params
from shotstyle.server.engine import semantic
from shotstyle.server.engine.correspondence import fit_correspondence
from shotstyle.server.engine.device import execution_for, pick_device
from shotstyle.server.engine.mattes import Matte, check_mattes, matte_tensor
from shotstyle.server.engine.losses import build_loss, resolve_loss_name
from shotstyle.server.engine.losses.target import TargetLoss
from shotstyle.server.engine.lut import effect_report
from shotstyle.server.engine.modelfile import StyleModel, sha256_of
from shotstyle.server.engine.networks import REGISTRY, StyleNetwork, build_network
from shotstyle.server.engine.networks.base import grade_of
from shotstyle.server.engine.networks.local import DEFAULT_BOUND
from shotstyle.server.engine.optimiserstate import capture, restore
from shotstyle.server.engine.picture import Picture, picture_of
from shotstyle.server.engine.target import Lightness, make_target
from shotstyle.server.engine.resume import trained_steps
from shotstyle.server.errors import TrainingCancelled, TrainingInputError

# The shortest side, in pixels at the training resolution, a keyframe or style image may have
# (the look's 7×7 context windows need 4; narrower ones failed inside the loss, or diverged).
MIN_SIDE = 8
# Adaptive content weight: every ADAPT_EVERY steps, keep weighted content / weighted style
# within [ADAPT_LOW, ADAPT_HIGH] × its ratio at the first step, moving the content weight by
# ADAPT_FACTOR at a time and never beyond ADAPT_RANGE× its starting value (either way).
ADAPT_EVERY = 10
ADAPT_LOW, ADAPT_HIGH = 0.5, 2.0
ADAPT_FACTOR = 1.25
ADAPT_RANGE = 10.0
# Early stopping: stop when the smoothed total loss has not improved by PLATEAU_TOLERANCE
# (relative) over the last `plateau_window(steps)` steps.
PLATEAU_TOLERANCE = 0.005
LOSS_SMOOTHING = 0.9
# The local budget of a target-trained model: this multiple of the 99.9th percentile of the
# targets' change from the grade (ACEScct), within [DEFAULT_BOUND, MAX_TARGET_BOUND].
BOUND_MARGIN = 1.25
MAX_TARGET_BOUND = 0.6
# Seeding torch's global generator to build a network is one job at a time (a GPU server trains
# several at once), or another job's draws would change this one's starting weights.
_SEEDING = threading.Lock()


@dataclass
class TrainConfig:
    arch: str = "hrnet-fast"
    loss: str = "auto"                  # "auto": target (see losses/__init__.py)
    vgg: str | None = None              # None = search, a weights path, or "random"
    strength: float = 0.5               # 0..1 content/style balance; raw weights override
    content_weight: float | None = None
    style_weight: float | None = None
    steps: int = 300
    resolution: int = 512               # long side the keyframes are trained at
    lr: float = 2e-3
    local_bound: float | None = None    # the local term's budget (networks/local.py); None = its default
    seed: int = 0
    early_stop: bool = False
    adaptive_content: bool = False
    preview_every: int = 25
    allow_download: bool = False        # may the vgg loss download ImageNet weights?
    device: str | None = None           # None = best available (see device.pick_device)


def config_from_params(values: Mapping[str, Any], *, vgg: str | None = None, lr: float | None = None,
                       device: str | None = None) -> TrainConfig:
    """The `TrainConfig` of the effect's training parameters (plugin.params, named alike), the one way
    the server and the in-process command make it; `vgg`, `lr` and `device` are the engine's own
    (None: the defaults)."""
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    config = TrainConfig(**{k: v for k, v in values.items() if k in fields}, vgg=vgg, device=device)
    if lr is not None:
        config.lr = lr
    if config.preview_every == 0:  # "never" in the effect's description: only the final result
        config.preview_every = config.steps
    return config


@dataclass
class TrainEvent:
    kind: str                           # "progress" | "preview"
    step: int
    steps: int
    losses: dict[str, float]
    steps_per_s: float
    eta_s: float
    preview: np.ndarray | None = None        # H×W×3 float32 working space (keyframe result)
    preview_extra: np.ndarray | None = None  # the same on the extra preview frame


def grade_amount(strength: float) -> float:
    """How much of the fitted grade a model applies: all of it from strength 0.5 (the default)
    up, fading to none at 0 (stronger strengths weigh the style's colours more against the plate's
    structure instead, and move lightness further: target.Lightness.at)."""
    return min(1.0, 2.0 * strength)


def plateau_window(steps: int) -> int:
    return max(20, steps // 10)


def _check_image(image: np.ndarray, what: str) -> None:
    if not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[2] != 3:
        shape = getattr(image, "shape", type(image).__name__)
        raise TrainingInputError(f"{what}: expected an H×W×3 working-space array, got {shape}")
    if not np.isfinite(image).all():
        raise TrainingInputError(f"{what}: contains NaN or Inf values; load it with "
                                 "engine.pipeline.load_working, which replaces them")


def _check_size(image: np.ndarray, what: str, resolution: int) -> None:
    """Refuse an image too small, or too narrow, to learn from once scaled to the training
    resolution: the look's context windows and the network's downsamplings need MIN_SIDE pixels."""
    height, width = image.shape[:2]
    small_height, small_width = training_size(height, width, resolution)
    if min(small_height, small_width) >= MIN_SIDE:
        return
    if min(height, width) < MIN_SIDE:
        remedy = "use a larger image"
    else:
        remedy = (f"train at a resolution of at least {math.ceil(MIN_SIDE * max(height, width) / min(height, width))} "
                  "or crop it nearer to square")
    scaled = "" if (small_height, small_width) == (height, width) else \
        f", {small_width}×{small_height} at the training resolution {resolution}"
    raise TrainingInputError(f"{what} is {width}×{height} pixels{scaled}: each side must be at least {MIN_SIDE} "
                             f"pixels for training; {remedy}")


def _check_picture(picture: Picture, what: str, resolution: int) -> None:
    """Refuse an image whose alpha leaves too little picture to learn from at the training resolution."""
    height, width, pixels = picture.size()
    if min(height, width) >= MIN_SIDE and pixels >= MIN_SIDE ** 2:
        return
    raise TrainingInputError(f"{what}: its alpha leaves {pixels} pixels of picture ({width}×{height} at most) at the "
                             f"training resolution {resolution}; at least {MIN_SIDE} pixels a side are needed: train "
                             f"at a higher resolution, or give an image its alpha covers more of")


def _check_config(config: TrainConfig) -> None:
    if config.steps < 1:
        raise TrainingInputError(f"steps={config.steps}: train for at least 1 step")
    if config.resolution < 16:
        raise TrainingInputError(f"resolution={config.resolution}: use a long side of at least 16 pixels")
    params.check("strength", config.strength, TrainingInputError)
    if config.lr <= 0:
        raise TrainingInputError(f"lr={config.lr}: the learning rate must be positive")
    problem = (None if config.local_bound is None or not network_trains(config.arch)
               else REGISTRY[config.arch].bounds["bound"].problem(config.local_bound))
    if problem is not None:
        raise TrainingInputError(f"local_bound={config.local_bound}: the local term's budget {problem} "
                                 "(for the grade alone, train --arch grade or export the model's LUT)")


def training_size(height: int, width: int, resolution: int) -> tuple[int, int]:
    """(h, w) of an image of `height`×`width` pixels at the training resolution: its long side at
    most `resolution`, the aspect kept."""
    scale = resolution / max(height, width)
    if scale >= 1:
        return height, width
    return max(round(height * scale), 1), max(round(width * scale), 1)


def to_training_tensor(image: np.ndarray, resolution: int, device: torch.device) -> torch.Tensor:
    """H×W×C array → 1×C×h×w tensor at `training_size` (area downscale)."""
    tensor = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32)).permute(2, 0, 1)[None]
    height, width = tensor.shape[-2:]
    size = training_size(height, width, resolution)
    if size != tuple(tensor.shape[-2:]):
        tensor = F.interpolate(tensor, size=size, mode="area")
    return tensor.to(device)


def to_training_tensors(image: np.ndarray, alpha: np.ndarray | None, resolution: int,
                        device: torch.device) -> tuple[torch.Tensor, torch.Tensor | None]:
    """A straight-colour image and its alpha (H×W, or None) at the training resolution: each
    pixel's colour the average of the covered colours it is made from, weighted by their alpha
    (downscaled premultiplied, then divided), so a soft edge is not darkened by the background."""
    if alpha is None:
        return to_training_tensor(image, resolution, device), None
    small_alpha = to_training_tensor(alpha[:, :, None], resolution, device)
    if small_alpha.shape[-2:] == alpha.shape:
        return to_training_tensor(image, resolution, device), small_alpha
    weighted = to_training_tensor(image * alpha[:, :, None], resolution, device)
    plain = to_training_tensor(image, resolution, device)
    return torch.where(small_alpha > 0, weighted / small_alpha.clamp(min=1e-12), plain), small_alpha


def _to_array(tensor: torch.Tensor) -> np.ndarray:
    return tensor[0].detach().permute(1, 2, 0).float().cpu().numpy().copy()


def _starting_network(config: TrainConfig, init: StyleModel | None, device: torch.device,
                      targeted: bool) -> StyleNetwork:
    if init is not None:
        return copy.deepcopy(init.network).to(device).train()
    with _SEEDING, torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(config.seed)
        kwargs = REGISTRY[config.arch].build.training_arguments(config.resolution, targeted)
        if config.local_bound is not None and network_trains(config.arch):
            kwargs["bound"] = config.local_bound
        network = build_network(config.arch, **kwargs)
    return network.to(device).train()


def network_trains(arch: str) -> bool:
    """Whether architecture `arch` has a network to train (False: the grade alone)."""
    return REGISTRY[arch].build.trains


def target_bound(graded: list[torch.Tensor], targets: list[torch.Tensor]) -> float:
    """The local budget the targets need (see BOUND_MARGIN)."""
    change = torch.cat([(t - g).abs().flatten() for g, t in zip(graded, targets)])
    if change.numel() > 1 << 22:
        change = change[torch.linspace(0, change.numel() - 1, 1 << 22, device=change.device).long()]
    needed = float(torch.quantile(change.float(), 0.999)) * BOUND_MARGIN
    return round(min(max(needed, DEFAULT_BOUND), MAX_TARGET_BOUND), 4)


def _made_from(config: TrainConfig, init: StyleModel | None, network: StyleNetwork, amount: float,
               moved: float, style: np.ndarray, keyframes: list[np.ndarray],
               picture_share: dict[str, Any] | None) -> dict[str, Any]:
    """What every model records of how it was made: its start, the artist's settings, the grade
    and the images it came from; with transparent images, the share of each that was picture."""
    metadata = {
        **(init.metadata if init is not None else {}),
        "strength": config.strength,
        "resolution": config.resolution,
        "seed": config.seed,
        "local_bound": network.bound,
        "grade": {"size": grade_of(network).size, "amount": amount, "moved": round(moved, 4)},
        "style_sha256": sha256_of(style),
        "keyframe_sha256": [sha256_of(k) for k in keyframes],
    }
    metadata.pop("checksum", None)
    if picture_share is not None:
        metadata["picture_share"] = picture_share
    return metadata


def _grade_model(network: StyleNetwork, metadata: dict[str, Any], plates: list[torch.Tensor],
                 covered: list[torch.Tensor | None]) -> StyleModel:
    """A `grade` model: the fitted lattice and no training (its metadata says so)."""
    network.eval()
    with torch.no_grad():
        results = [network(p) for p in plates]
    metadata.update({"loss": None, "loss_note": "the grade alone: fitted in closed form, no training",
                     "steps": 0, "steps_total": 0, "steps_done": 0, "steps_trained": 0,
                     "lut_report": effect_report(plates, results, results, covered)})
    return StyleModel(network=network, metadata=metadata)


def train(keyframes: list[np.ndarray], style: np.ndarray, config: TrainConfig, *,
          preview_frame: np.ndarray | None = None,
          on_event: Callable[[TrainEvent], None] | None = None,
          should_cancel: Callable[[], bool] | None = None,
          init: StyleModel | None = None,
          checkpoint: Callable[[StyleModel], None] | None = None,
          mattes: list[Matte] | None = None,
          alphas: list[np.ndarray | None] | None = None,
          style_alpha: np.ndarray | None = None) -> StyleModel:
    """Train (or fine-tune `init`) on `keyframes` to the look of `style`; see the module doc.
    `mattes` pair the artist's plate regions with style regions (engine/mattes.py; `target` loss).
    `alphas` (one per keyframe) and `style_alpha`: H×W alphas saying which pixels are picture
    (engine/pipeline.picture_alpha; None: all of them).

    Raises TrainingCancelled when `should_cancel()` turns true, after `checkpoint(model)`."""
    if not keyframes:
        raise TrainingInputError("no keyframes given: train needs at least one frame of the shot")
    names = [f"keyframe {number} of {len(keyframes)}" if len(keyframes) > 1 else "the keyframe"
             for number in range(1, len(keyframes) + 1)]
    for name, keyframe in zip(names, keyframes):
        _check_image(keyframe, name)
    _check_image(style, "the style image")
    if preview_frame is not None:
        _check_image(preview_frame, "preview frame")
    _check_config(config)
    for name, keyframe in zip(names, keyframes):
        _check_size(keyframe, name, config.resolution)
    _check_size(style, "the style image", config.resolution)
    mattes = list(mattes or [])
    check_mattes(mattes, keyframes, style)
    grade_only = not network_trains(config.arch if init is None else init.architecture)
    loss_name, loss_note = resolve_loss_name(config.loss, config.vgg)
    if mattes and loss_name != "target":
        raise TrainingInputError(f"mattes guide the per-pixel target: train with loss 'target' or 'auto', "
                                 f"not {config.loss!r}")
    alphas = list(alphas or [None] * len(keyframes))
    if len(alphas) != len(keyframes):
        raise TrainingInputError(f"{len(alphas)} alphas for {len(keyframes)} keyframes: "
                                 "give one per keyframe (None: opaque)")
    all_names = [*names, "the style image"]
    images = list(zip(all_names, [*keyframes, style], [*alphas, style_alpha]))
    for name, image, alpha in images:
        if alpha is not None and getattr(alpha, "shape", None) != image.shape[:2]:
            raise TrainingInputError(f"{name}: its alpha is {getattr(alpha, 'shape', type(alpha).__name__)}, "
                                     f"not the image's {image.shape[0]}×{image.shape[1]}")
    transparent = [name for name, _, alpha in images if alpha is not None]
    if transparent and not grade_only and loss_name != "target":
        raise TrainingInputError(f"{transparent[0]} has transparent pixels, which the {loss_name!r} loss would learn "
                                 "as black: train with loss 'target' or 'auto', or give images without alpha")

    device = pick_device(config.device)  # CPU thread count is the calling process's policy
    made = [to_training_tensors(k, a, config.resolution, device) for k, a in zip(keyframes, alphas)]
    plates, small_alphas = [plate for plate, _ in made], [alpha for _, alpha in made]
    whole_style, small_style_alpha = to_training_tensors(style, style_alpha, config.resolution, device)
    extra = None if preview_frame is None else to_training_tensor(preview_frame, config.resolution, device)
    # The look is learnt from the images' pictures (engine/picture.py: inside letterbox or
    # pillarbox bars, where the alpha covers them): the grade and the targets from them; the
    # network on whole keyframes, whose other pixels' target is their grade, as every frame of
    # the shot has bars and its renders keep uncovered pixels as they are.
    pictures = [picture_of(plate, alpha, MIN_SIDE) for plate, alpha in zip(plates, small_alphas)]
    style_picture = picture_of(whole_style, small_style_alpha, MIN_SIDE)
    for name, picture in zip(all_names, [*pictures, style_picture]):
        _check_picture(picture, name, config.resolution)
    style_tensor = style_picture.crop(whole_style)
    covered = [None if alpha is None else alpha > 0 for alpha in small_alphas]   # what renders stylize
    picture_share = None if not transparent else {  # recorded in the model (at the training resolution)
        "keyframes": [round(p.share_of(plate), 4) for p, plate in zip(pictures, plates)],
        "style": round(style_picture.share_of(whole_style), 4)}

    network = _starting_network(config, init, device, targeted=loss_name == "target")
    grade = grade_of(network)
    # The grade first: fitted in closed form from the keyframes and the style, and kept fixed
    # while the network learns the local term on top of it. (Training the lattice too, with a
    # smoothness and a monotonicity penalty, was tried: the style term then splits near-uniform
    # regions between the several style colours a cluster corresponds to — a mountain half
    # green, half pink.) Fine-tuning keeps the starting model's (approved) grade.
    correspondence = fit_correspondence([p.crop(plate) for p, plate in zip(pictures, plates)], style_tensor,
                                        config.seed, [p.mask for p in pictures], style_picture.mask)
    amount = grade_amount(config.strength)
    if init is None:
        grade.set(correspondence.lattice(grade.size, amount))
    with torch.no_grad():
        graded = [grade(plate) for plate in plates]
    if grade_only:
        return _grade_model(network, _made_from(config, init, network, amount, correspondence.moved, style,
                                                keyframes, picture_share), plates, covered)
    targets = None
    lightness = Lightness.at(config.strength)
    if loss_name == "target":
        with torch.no_grad():
            style_mattes = matte_tensor([m.style for m in mattes], tuple(whole_style.shape[-2:]), device)
            style_mattes = None if style_mattes is None else style_picture.crop(style_mattes)
            targets = []
            for i, (plate, g, picture) in enumerate(zip(plates, graded, pictures)):
                plate_mattes = matte_tensor([m.plate[i] for m in mattes], tuple(plate.shape[-2:]), device)
                target = g.clone(memory_format=torch.contiguous_format)   # as make_target's own: the same steps
                target[:, :, picture.rows, picture.columns] = make_target(
                    picture.crop(plate), picture.crop(g), style_tensor, lightness, config.seed,
                    None if plate_mattes is None else picture.crop(plate_mattes), style_mattes,
                    picture.mask, style_picture.mask)
                targets.append(target)
        if init is None and config.local_bound is None and not grade_only:
            # The budget is what the targets need: the same network (same seed) built with it.
            lattice = grade.lut.clone()
            config = dataclasses.replace(config, local_bound=target_bound(graded, targets))
            network = _starting_network(config, init, device, targeted=True)
            grade = grade_of(network)
            grade.set(lattice)
    loss = build_loss(config.loss, style_tensor, plates, strength=config.strength,
                      content_weight=config.content_weight, style_weight=config.style_weight,
                      vgg_weights=config.vgg, allow_download=config.allow_download, seed=config.seed,
                      correspondence=correspondence, graded=graded, targets=targets)
    optimiser = torch.optim.Adam(network.parameters(), lr=config.lr)
    if init is not None and init.optimiser is not None:  # a checkpoint: Adam goes on where it stopped
        restore(optimiser, network, init.optimiser)
    base_content = loss.weights["content"]
    metadata = _made_from(config, init, network, amount, correspondence.moved, style, keyframes, picture_share)
    metadata.update({**loss.metadata, "loss_note": loss.resolution_note, "steps": config.steps, "lr": config.lr,
                     "early_stop": config.early_stop, "adaptive_content": config.adaptive_content})
    if targets is not None:
        metadata["target"] = {"features": semantic.NAME, "lightness": dataclasses.asdict(lightness),
                              "mattes": [m.name for m in mattes]}
    metadata.pop("early_stopped_at", None)
    prior = 0  # steps `init` has had (see resume.py: steps_total is the aim, steps_trained what was done)
    if init is not None:
        metadata["init_model"] = init.hash
        prior = trained_steps(init.metadata)
    metadata["steps_total"] = prior + config.steps
    model = StyleModel(network=network, metadata=metadata)

    def finish(steps_done: int, last: dict[str, float]) -> StyleModel:
        network.eval()
        with torch.no_grad():
            metadata["lut_report"] = effect_report(plates, [network(p) for p in plates],
                                                   [grade(p) for p in plates], covered)
        metadata.update(loss.metadata)
        metadata["steps_done"] = steps_done
        metadata["steps_trained"] = prior + steps_done
        metadata["final_losses"] = last
        return model

    def emit(event: TrainEvent) -> None:
        if on_event is not None:
            on_event(event)

    def previews() -> tuple[np.ndarray, np.ndarray | None]:
        with torch.no_grad():
            keyframe_result = _to_array(network(plates[0]))
            extra_result = None if extra is None else _to_array(network(extra))
        return keyframe_result, extra_result

    smoothed = math.inf
    history: list[float] = []
    first_ratio = None
    last: dict[str, float] = {}
    # Each step's loss terms stay on the device until read (reading waits for the device), every
    # `reads_every` steps and wherever a decision needs them; then every unread step is
    # handled in order, as if read at once.
    reads_every = execution_for(device).loss_reads_every
    unread: list[dict[str, torch.Tensor]] = []
    started = time.perf_counter()

    def read_losses(done: int) -> bool:
        """Handle the unread steps (the last is step `done`); True if the loss has plateaued."""
        nonlocal smoothed, first_ratio, last
        plateaued = False
        for step_done, values in zip(range(done - len(unread) + 1, done + 1), _host_values(unread)):
            last = values
            if not math.isfinite(last["total"]):
                raise TrainingInputError(f"training diverged at step {step_done - 1} (loss {last['total']}): "
                                         f"lower the learning rate (lr={config.lr})")
            if config.adaptive_content and "content" in last and last.get("style", 0.0) > 0:
                ratio = last["content"] / last["style"]
                first_ratio = first_ratio or ratio
                if step_done % ADAPT_EVERY == 0 and first_ratio > 0:
                    weight = loss.weights["content"]
                    if ratio < ADAPT_LOW * first_ratio:
                        weight *= ADAPT_FACTOR
                    elif ratio > ADAPT_HIGH * first_ratio:
                        weight /= ADAPT_FACTOR
                    loss.weights["content"] = min(max(weight, base_content / ADAPT_RANGE),
                                                  base_content * ADAPT_RANGE)
            emit(TrainEvent("progress", prior + step_done, prior + config.steps, dict(last), *rate_and_eta(step_done)))
            smoothed = last["total"] if not math.isfinite(smoothed) else (
                LOSS_SMOOTHING * smoothed + (1 - LOSS_SMOOTHING) * last["total"])
            history.append(smoothed)
            window = plateau_window(config.steps)
            if config.early_stop and len(history) > window:
                before = history[-window - 1]
                plateaued = plateaued or before - smoothed < PLATEAU_TOLERANCE * abs(before)
        unread.clear()
        return plateaued

    def rate_and_eta(done: int) -> tuple[float, float]:
        elapsed = time.perf_counter() - started
        rate = done / elapsed if elapsed > 0 else 0.0
        return rate, (config.steps - done) / rate if rate > 0 else 0.0

    for step in range(config.steps):
        if should_cancel is not None and should_cancel():
            read_losses(step)
            cancelled = finish(step, last)
            cancelled.optimiser = capture(optimiser, network)
            if checkpoint is not None:
                checkpoint(cancelled)
            raise TrainingCancelled(f"training cancelled at step {step} of {config.steps}")
        optimiser.zero_grad(set_to_none=True)
        summed: dict[str, torch.Tensor] = {}
        for index, plate in enumerate(plates):
            if isinstance(loss, TargetLoss):
                crop, wanted = loss.augment(index, prior + step)
                terms = loss(network(crop), crop, wanted)
            else:
                terms = loss(network(plate), index, prior + step, graded=grade(plate))
            (terms["total"] / len(plates)).backward()
            for name, value in terms.items():
                summed[name] = summed.get(name, 0.0) + value.detach() / len(plates)
        optimiser.step()
        unread.append(summed)

        done = step + 1
        preview_due = done % config.preview_every == 0 or done == config.steps
        if not (preview_due or done % reads_every == 0 or (config.adaptive_content and done % ADAPT_EVERY == 0)):
            continue
        plateaued = read_losses(done)
        if preview_due or plateaued:
            keyframe_result, extra_result = previews()
            rate, eta = rate_and_eta(done)
            emit(TrainEvent("preview", prior + done, prior + config.steps, dict(last), rate, 0.0 if plateaued else eta,
                            keyframe_result, extra_result))
        if plateaued:
            metadata["early_stopped_at"] = done
            return finish(done, last)
    return finish(config.steps, last)


def _host_values(steps: list[dict[str, torch.Tensor]]) -> list[dict[str, float]]:
    """Every step's loss terms as numbers, read from the device at once."""
    if not steps:
        return []
    names = list(steps[0])
    table = torch.stack([torch.stack([terms[name] for name in names]) for terms in steps]).tolist()
    return [dict(zip(names, row)) for row in table]


__all__ = ["TrainConfig", "TrainEvent", "TrainingInputError", "train", "sha256_of"]
