"""The training losses, chosen by name: "target" (regression to per-pixel keyframe targets,
engine/target.py; the default), "look" (a weights-free distribution loss against the style)
and "vgg" (the research note's VGG-19 perceptual loss); "auto" picks target and says why.

`target` is called as `loss(output, plate, target)` on a crop it chose (`loss.augment(index,
step)`). The others are called as `loss(output, keyframe_index, step, graded=None)` on a
N×3×H×W working-space output (`graded`: the keyframe through the model's grade as it is now,
for losses that judge the local change). Each returns its weighted terms ("content", "style",
…) and "total".
`look` judges the output against the plate↔style correspondence the model's grade came from
(engine/correspondence.py): give it that correspondence and the graded keyframes, or it fits
one itself and grades the keyframes with it.
Its `weights` dict holds the current term weights (the trainer's adaptive content weight
edits weights["content"]) and `metadata` what a model file records about it.
"""

from __future__ import annotations

import torch

from shotstyle.plugin import params
from shotstyle.server.engine.correspondence import Correspondence, fit_correspondence
from shotstyle.server.errors import UnknownLossError

from . import look, target, vgg
from .vgg import locate_vgg_weights

LOSSES = ("target", "look", "vgg")
DEFAULT_WEIGHTS = {
    "target": (target.DEFAULT_CONTENT_WEIGHT, target.DEFAULT_STYLE_WEIGHT),
    "look": (look.DEFAULT_CONTENT_WEIGHT, look.DEFAULT_STYLE_WEIGHT),
    "vgg": (vgg.DEFAULT_CONTENT_WEIGHT, vgg.DEFAULT_STYLE_WEIGHT),
}


def resolve_loss_name(name: str, vgg_weights: str | None = None) -> tuple[str, str]:
    """(a name of LOSSES, why): "auto" becomes target (per-pixel keyframe targets, ImageNet
    features that install with shotstyle), or vgg when --vgg random asks for the pipeline check."""
    if name in LOSSES:
        return name, f"loss {name!r} as asked"
    if name != "auto":
        raise UnknownLossError(f"unknown loss {name!r}: choose one of auto, {', '.join(LOSSES)}")
    if vgg_weights == "random":
        return "vgg", "loss 'auto' -> 'vgg' because --vgg random was asked for"
    return "target", ("loss 'auto' -> 'target': per-pixel keyframe targets from EfficientNet-Lite0 "
                      "ImageNet features (installed with shotstyle)")


def strength_weights(name: str, strength: float, content_weight: float | None = None,
                     style_weight: float | None = None) -> tuple[float, float]:
    """(content, style) weights: strength 0..1 scales the family's default style weight by
    10^(2·strength − 1), i.e. 0.1× at 0, 1× at 0.5, 10× at 1; raw weights override."""
    params.check("strength", strength)
    default_content, default_style = DEFAULT_WEIGHTS[name]
    scaled_style = default_style * 10.0 ** (2.0 * strength - 1.0)
    return (default_content if content_weight is None else content_weight,
            scaled_style if style_weight is None else style_weight)


def build_loss(name: str, style: torch.Tensor, keyframes: list[torch.Tensor], *,
               strength: float = 0.5, content_weight: float | None = None,
               style_weight: float | None = None, vgg_weights: str | None = None,
               allow_download: bool = False, seed: int = 0,
               correspondence: Correspondence | None = None,
               graded: list[torch.Tensor] | None = None,
               targets: list[torch.Tensor] | None = None) -> look.LookLoss | vgg.VGGLoss | target.TargetLoss:
    """A loss against `style` and `keyframes` (1×3×H×W working-space tensors, on the training device).

    `name`: one of LOSSES or "auto" (see resolve_loss_name); `vgg_weights`: None (search),
    a path, or "random"; `correspondence`, `graded`: see the module doc; `targets`: the
    keyframes' targets (the target loss needs them). The returned module's
    `.resolution_note` says how "auto" resolved."""
    resolved, note = resolve_loss_name(name, vgg_weights)
    content, style_w = strength_weights(resolved, strength, content_weight, style_weight)
    loss: look.LookLoss | vgg.VGGLoss | target.TargetLoss
    if resolved == "target":
        if targets is None:
            raise ValueError("the target loss needs the keyframes' targets (engine/target.py make_target)")
        # The research note's VGG-19 for the content term where its weights are found (or asked for).
        found = vgg_weights or locate_vgg_weights()[0]
        structure = vgg.VGGStructure(vgg_weights).to(keyframes[0].device) if found else None
        loss = target.TargetLoss(keyframes, targets, content_weight=content, style_weight=style_w, seed=seed,
                                 vgg_structure=structure)
    elif resolved == "look":
        if correspondence is None:
            correspondence = fit_correspondence(keyframes, style, seed)
        if graded is None:
            graded = [correspondence.grade_image(keyframe) for keyframe in keyframes]
        loss = look.LookLoss(style, keyframes, correspondence=correspondence, graded=graded,
                             content_weight=content, style_weight=style_w, seed=seed)
    else:
        loss = vgg.VGGLoss(style, keyframes, vgg=vgg_weights, allow_download=allow_download,
                           content_weight=content, style_weight=style_w)
    loss.resolution_note = note
    return loss


__all__ = ["LOSSES", "build_loss", "locate_vgg_weights", "resolve_loss_name", "strength_weights",
           "UnknownLossError"]
