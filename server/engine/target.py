"""The keyframe target: what each pixel of a keyframe should become, region by region.

A global grade (engine/grade.py) gives equal plate colours equal new colours; a look often
needs more — a sky turned to a sunset while the lake under it stays a lake, buildings that
darken for dusk while the sky goes deep blue. This module makes, for one keyframe, a per-pixel
target image the network then learns to reproduce (and so carries to every other frame):

1. Regions. The plate is split into soft regions (`plate_regions`): k-means over positions of
   its semantic features (engine/semantic.py), with a little colour and position so one object
   class in two places and two different surfaces of one class stay apart. Where the artist
   gave mattes (engine/mattes.py), matted pixels belong to their matte, hard. Pixels that are
   not picture (alpha-uncovered: engine/picture.py) are a region of their own that keeps the
   grade, and the style's take no part.
2. Correspondence. Each plate region finds the style positions it corresponds to
   (`style_weights`): the style's positions whose features are most similar to the region's
   (soft top-k attention averaged over the region's positions, with a mild position prior:
   sky is more often above ground in both), so a region takes the colours of what it *is* in
   the style, not of what has its colour. A matte's region takes only its style matte's pixels.
3. Transfer. Each region's colours, as the grade left them, are moved to its style
   positions' colour statistics in CIELAB (mean and spread per channel, Reinhard et al. 2001,
   per region as in Tai, Jia & Tang 2005): a region's own texture and shading survive, its
   mean and contrast become the style's — lightness only in part (FRAME_LIGHTNESS), and colour
   only as far as the region's plate colour has a hue (NEUTRAL_CHROMA: greys keep the grade's
   grey balance) or the style holds a true counterpart of it (COUNTERPART: a grey sky takes the
   style sky's colour; a road the style has no road for stays grey). A region nothing in the
   style resembles keeps the grade (FOUND: a partial transport).
4. Locally affine in the plate. Region memberships spread edge-aware over the plate (`spread`:
   freely within an area of one colour, never across the plate's edges), then each pixel near a
   region boundary joins the region whose colours it fits (`colour_posterior`: the feature grid
   is coarse, and a church's region must not spread a plume into the sky), and the final target
   is refitted as a local affine function of the graded plate (a guided filter, He, Sun & Tang,
   TPAMI 2013 — the same fit as `hrnet-fast`'s head), so the target has no edge the plate does
   not have and a flat area stays flat: a lit window or a relit sky is possible; an invented
   blob, vignette or halo is not.

Everything runs at the training resolution on the training device, once per keyframe.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from shotstyle.server.engine import semantic
from shotstyle.server.engine.colourmath import lab_to_working, working_to_lab
from shotstyle.server.engine.correspondence import kmeans
from shotstyle.server.engine.networks.hrnet_fast import fit_local_affine

# Automatic regions per keyframe.
REGIONS = 8
# Weights of colour (CIELAB / 100) and position (frame heights) beside the unit feature vectors.
REGION_COLOUR = 0.6
REGION_POSITION = 0.25
# Soft top-k attention from a plate position to style positions: the share of style positions
# kept, and the temperature on cosine similarity.
TOP_SHARE = 0.08
TEMPERATURE = 0.05
# Position prior of the attention: similarity lowered by this × squared height gap (frame heights).
POSITION_PRIOR = 0.15
# Per-channel contrast change of a region, limited (a region's spread can be nearly zero) ...
GAIN_LIMITS = (0.5, 2.0)
# ... and a region's colour spread (a*, b*) may narrow but never widen: widened around a mean
# that moves, small colour differences of the plate cross the neutral axis into the opposite hue
# (pair 1's warm shadows turned teal under a red look; at 1: no teal, 3 of 5 pairs' flat areas
# stay flat instead of 2, colour coherence 2.15 -> 1.75, region ΔE 11.34 -> 11.40, style SWD
# 5.74 -> 6.03, measured on the targets at 256 px).
CHROMA_GAIN_LIMITS = (0.5, 1.0)
# Lightness. The frame's lightness follows one affine map fitted to the regions' wanted means
# (slope within SLOPE_LIMITS), making FRAME_LIGHTNESS of that move, and each automatic region makes
# LIGHTNESS_SHARE of its own move beyond it. Moving lightness to the counterparts' reaches the
# regions (a bright sky made dark over a city made bright) but costs the plate's tonal order, which
# reads as lost structure; where the correspondence is weak it also lifts shadows or darkens a
# window the grade had right. Measured on the targets at 256 px (7 shared pairs / the 52 other
# Deep Photo Style Transfer pairs with masks), with the region share at 0.1 and the frame's at
#   1:   region ΔE 11.6 / 11.4, accuracy 0.78 / 0.63, SSIM 0.889 / 0.877, style SWD 5.97 / 6.55,
#        region-wrong 0 / 7 pairs;
#   0.5: 12.5 / 11.8, 0.86 / 0.64, 0.916 / 0.892, 5.08 / 5.54, 0 / 5 pairs;
#   0:   14.2 / 12.9, 0.67 / 0.67, 0.912 / 0.883, 4.58 / 4.94, 1 / 6 pairs.
# (The region share: 0.3 gave SSIM 0.70 and 1 gave 0.37 on the shared pairs.) Matted regions
# (the artist said where) make all of their own move.
FRAME_LIGHTNESS = 0.5
LIGHTNESS_SHARE = 0.1
# A region whose plate colour has this chroma (CIELAB) moves half of its colour move; greys keep
# the grade's grey balance (6: the walk clip's road target b* +2.1; 4 gave +4.1 once colour spreads
# stopped widening, 0 gave +18; the shared pairs' region accuracy is the same at 0, 4 and 6) ...
NEUTRAL_CHROMA = 6.0
# ... unless the style holds a true counterpart of the region: a grey region whose kept style
# positions resemble it by at least the first similarity moves part of its colour, all of it from
# the second (an overcast sky matched to the style's sky: on the shared pairs the skies score
# 0.50-0.70; the walk clip's road, which the style has no road for, 0.35; pair 8's daylight
# statues, whose counterparts are a sunset's silhouettes, 0.15-0.33).
COUNTERPART = (0.42, 0.55)
# Partial transport: an automatic region whose kept style positions resemble it below the first
# similarity has no counterpart in the style and keeps the grade (the global backbone), and weighs
# nothing in the frame's lightness map; from the second it makes its whole own move. Colour noise
# as a style scores 0.10-0.27, the walk clip's regions against a city photograph 0.15-0.30, the
# shared pairs' regions 0.15-0.70 (pair 8's daylight statues, whose counterparts are a sunset's
# silhouettes, the lowest): the feature resemblance cannot tell a weak counterpart from none, so
# the ramp is low. On the shared pairs' targets: region ΔE 11.56 -> 11.64, accuracy unchanged,
# structure SSIM 0.875 -> 0.881, colour coherence 1.62 -> 1.58; (0.2, 0.4) gave SSIM 0.906 but
# region ΔE 12.16 and accuracy 0.78 -> 0.71.
FOUND = (0.15, 0.3)
SLOPE_LIMITS = (0.5, 2.0)
# Edge-aware spreading of the memberships (domain transform): spatial reach (share of the long
# side); steps between neighbours (CIELAB, summed over L*, a*, b*, of the plate blurred over
# 3×3 pixels) up to SPREAD_FLOOR are grain and gradients and do not stop it, and each SPREAD_EDGE
# beyond counts as the whole reach.
SPREAD_REACH = 0.5
SPREAD_FLOOR = 1.5
SPREAD_EDGE = 4.0
SPREAD_ITERATIONS = 3
# Each region's colour model (colour_posterior) is at least this wide per CIELAB axis: a flat
# region's grain must not read as a different colour. (The colour models, at frame share 1 on the
# targets: colour coherence 1.58 -> 1.21 on the shared pairs and 1.80 -> 1.54 on the other 52,
# region ΔE 11.6 -> 11.6 and 11.5 -> 11.4.)
COLOUR_FLOOR = 3.0
COLOUR_ITERATIONS = 2
# Below this much spread certainty a pixel keeps the plain (blurred) membership of its cells.
SURE_FLOOR = 1e-3
# Final local affine refit of the target on the graded plate.
FIT_RADIUS = 0.015
FIT_EPS = 1e-4


@dataclass
class Regions:
    """Soft regions of one image: memberships N×K×H×W (summing to 1 per pixel)."""
    membership: Tensor


def _grid(features: Tensor) -> tuple[Tensor, Tensor]:
    """Rows of the feature grid (M×C) and their heights (M, 0 top … 1 bottom)."""
    _, channels, h, w = features.shape
    rows = features[0].reshape(channels, -1).T
    heights = torch.linspace(0, 1, h, device=features.device)[:, None].expand(h, w).reshape(-1)
    return rows, heights


def _cells_inside(picture: Tensor, h: int, w: int) -> Tensor:
    """Which cells of an h×w feature grid (flattened) are mostly in the picture (1×1×H×W bool), or
    where none is, which hold any of it."""
    share = F.adaptive_avg_pool2d(picture.float(), (h, w)).reshape(-1)
    return share >= 0.5 if bool((share >= 0.5).any()) else share > 0


def _recursive_pass(x: Tensor, weights: Tensor) -> Tensor:
    """One left-to-right and right-to-left recursive filter along the last axis (weights: the
    feedback of each pixel from its left neighbour, N×1×H×W)."""
    columns = list(x.unbind(-1))
    w = weights.unbind(-1)
    for i in range(1, len(columns)):
        columns[i] = columns[i] + w[i] * (columns[i - 1] - columns[i])
    for i in range(len(columns) - 2, -1, -1):
        columns[i] = columns[i] + w[i + 1] * (columns[i + 1] - columns[i])
    return torch.stack(columns, dim=-1)


def spread(x: Tensor, lab: Tensor) -> Tensor:
    """Edge-aware smoothing of `x` guided by the plate's CIELAB: the recursive-filter domain
    transform of Gastal & Oliveira (SIGGRAPH 2011). Within an area of one plate colour values
    spread over SPREAD_REACH of the frame, so a flat sky ends up with one membership and no
    gradient, blob or vignette can be made in it; across the plate's edges they do not spread."""
    sigma_s = SPREAD_REACH * max(lab.shape[-2:])
    ratio = sigma_s / SPREAD_EDGE
    lab = F.avg_pool2d(F.pad(lab, (1, 1, 1, 1), mode="replicate"), 3, stride=1)
    dx = 1 + ratio * ((lab[..., :, 1:] - lab[..., :, :-1]).abs().sum(1, keepdim=True) - SPREAD_FLOOR).clamp(min=0)
    dy = 1 + ratio * ((lab[..., 1:, :] - lab[..., :-1, :]).abs().sum(1, keepdim=True) - SPREAD_FLOOR).clamp(min=0)
    dx = F.pad(dx, (1, 0))
    dy = F.pad(dy, (0, 0, 1, 0))
    for i in range(SPREAD_ITERATIONS):
        sigma = sigma_s * math.sqrt(3) * 2 ** (SPREAD_ITERATIONS - i - 1) / math.sqrt(4 ** SPREAD_ITERATIONS - 1)
        feedback = math.exp(-math.sqrt(2) / sigma)
        x = _recursive_pass(x, feedback ** dx)
        x = _recursive_pass(x.transpose(-1, -2), (feedback ** dy).transpose(-1, -2)).transpose(-1, -2)
    return x


def colour_posterior(membership: Tensor, lab: Tensor, reach: int) -> Tensor:
    """Memberships (1×K×H×W) of the plate's pixels (CIELAB `lab`) weighed by how well each pixel's
    colour fits each region's colour model: a Gaussian fitted to the region's members, each axis
    at least COLOUR_FLOOR wide, refitted to the new members COLOUR_ITERATIONS times (a region that
    had taken in another's pixels models them too at first). A pixel may change to any region
    present within `reach` pixels of it (a feature cell: where the grid put a boundary one cell
    off), never to one further away; where regions share a colour the memberships stay."""
    k = membership.shape[1]
    weights = membership[0].reshape(k, -1)
    # A square window's maximum, taken along rows then columns: the same values at 2r+1 steps, not (2r+1)².
    nearby = F.max_pool2d(membership, (1, 2 * reach + 1), stride=1, padding=(0, reach))
    nearby = F.max_pool2d(nearby, (2 * reach + 1, 1), stride=1, padding=(reach, 0))[0].reshape(k, -1)
    log_prior = (weights + nearby).clamp(min=1e-12).log()
    pixels = lab[0].reshape(3, -1).T
    floor = COLOUR_FLOOR ** 2 * torch.eye(3, device=lab.device)
    for _ in range(COLOUR_ITERATIONS):
        log_fit = torch.empty_like(weights)
        for region, weight in enumerate(weights):   # one region at a time: P×3 temporaries, not K×P×3×3
            total = weight.sum().clamp(min=1e-6)
            centred = pixels - (weight @ pixels) / total
            cov = (centred * weight[:, None]).T @ centred / total + floor
            distance = ((centred @ torch.linalg.inv(cov)) * centred).sum(1)
            log_fit[region] = -0.5 * (distance + torch.logdet(cov))
        weights = torch.softmax(log_prior + log_fit, dim=0)
    return weights.reshape(membership.shape)


def plate_regions(plate: Tensor, features: Tensor, generator: torch.Generator,
                  mattes: Tensor | None = None, picture: Tensor | None = None) -> Regions:
    """Soft regions of a working-space plate (1×3×H×W) from its semantic feature grid; `mattes`
    (1×M×H×W, 0..1) are regions of their own, and automatic regions cover what they leave. Where
    `picture` (1×1×H×W bool, engine/picture.py) leaves pixels out, they are one more region,
    the last, and the automatic regions are clustered on the feature cells mostly in the picture."""
    height, width = plate.shape[-2:]
    h, w = features.shape[-2:]
    lab = working_to_lab(plate)
    rows, heights = _grid(features)
    colour = F.adaptive_avg_pool2d(lab, (h, w))[0].reshape(3, -1).T / 100.0
    points = torch.cat([rows, REGION_COLOUR * colour, REGION_POSITION * heights[:, None]], dim=1)
    if picture is None:
        memberships = kmeans(points, REGIONS, generator)[3]            # M×K one-hot, empty clusters dropped
    else:
        centres = kmeans(points[_cells_inside(picture, h, w)], REGIONS, generator)[0]
        memberships = F.one_hot(torch.cdist(points, centres).argmin(dim=1), len(centres)).float()
    count = memberships.shape[1]
    grid = memberships.T.reshape(1, count, h, w)
    # A cell whose neighbours all share its region is sure of it; a cell on a boundary between
    # regions straddles an edge somewhere inside it, and its pixels take the region that spreads
    # to them from their own side of that edge (normalised edge-aware propagation).
    neighbours = F.max_pool2d(F.pad(grid, (1, 1, 1, 1), mode="replicate"), 3, stride=1)
    sure = (neighbours.sum(1, keepdim=True) <= 1).float()
    sure_pixels = F.interpolate(sure, size=(height, width), mode="nearest")
    cells = F.interpolate(grid, size=(height, width), mode="nearest")
    spread_sure = spread(torch.cat([cells * sure_pixels, sure_pixels], dim=1), lab)
    propagated = spread_sure[:, :count] / spread_sure[:, count:].clamp(min=1e-6)
    fallback = spread(F.interpolate(grid, size=(height, width), mode="bilinear", align_corners=False), lab)
    snapped = torch.where(spread_sure[:, count:] > SURE_FLOOR, propagated, fallback).clamp(min=0)
    snapped = colour_posterior(snapped, lab, math.ceil(max(height / h, width / w)))
    outside = None if picture is None else (~picture).float()
    if mattes is not None:
        mattes = mattes if outside is None else mattes * (1 - outside)
        covered = mattes.sum(1, keepdim=True).clamp(max=1)
        snapped = torch.cat([mattes, snapped * (1 - covered)], dim=1)
    if outside is not None:
        snapped = torch.cat([snapped * (1 - outside), outside], dim=1)
    total = snapped.sum(1, keepdim=True)
    membership = torch.where(total > 1e-6, snapped / total.clamp(min=1e-6), torch.full_like(snapped, 1 / snapped.shape[1]))
    return Regions(membership)


def style_weights(plate_features: Tensor, style_features: Tensor, regions: Regions,
                  style_picture: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """K×S: for each plate region, weights over the style's feature positions (rows sum to 1);
    and K: how closely the region's counterparts resemble it (the mean similarity of its positions'
    kept style positions). With `style_picture` (1×1×H×W bool, the style's pixels that are
    picture), only positions mostly in the picture are counterparts."""
    plate_rows, plate_heights = _grid(plate_features)
    style_rows, style_heights = _grid(style_features)
    similarity = plate_rows @ style_rows.T - POSITION_PRIOR * (plate_heights[:, None] - style_heights[None]) ** 2
    positions = style_rows.shape[0]
    if style_picture is not None:
        inside = _cells_inside(style_picture, style_features.shape[-2], style_features.shape[-1])
        similarity = similarity.masked_fill(~inside[None], -math.inf)
        positions = int(inside.sum())
    keep = max(1, round(TOP_SHARE * positions))
    top = similarity.topk(keep, dim=1)
    attention = torch.zeros_like(similarity).scatter_(1, top.indices, torch.softmax(top.values / TEMPERATURE, dim=1))
    h, w = plate_features.shape[-2:]
    region_cells = F.adaptive_avg_pool2d(regions.membership, (h, w))[0].reshape(regions.membership.shape[1], -1)
    weights = region_cells @ attention
    resemblance = (region_cells @ top.values.mean(1)) / region_cells.sum(1).clamp(min=1e-12)
    return weights / weights.sum(1, keepdim=True).clamp(min=1e-12), resemblance


def _weighted_stats(lab: Tensor, weights: Tensor) -> tuple[Tensor, Tensor]:
    """Per row of `weights` (K×P over the P pixels of lab, 1×3×…): mean and std per channel (K×3)."""
    pixels = lab[0].reshape(3, -1).T
    mean = weights @ pixels
    var = weights @ pixels ** 2 - mean ** 2
    return mean, var.clamp(min=1e-6).sqrt()


@dataclass(frozen=True)
class Lightness:
    """How far a target's lightness moves beyond the grade: `frame`, the share of the frame's
    affine lightness map made; `region`, the share of each automatic region's own move beyond it."""
    frame: float = FRAME_LIGHTNESS
    region: float = LIGHTNESS_SHARE

    @classmethod
    def at(cls, strength: float) -> "Lightness":
        """At the artist's strength: the defaults at 0.5, none at 0, twice them at 1 (the frame's
        map at most all of its move)."""
        return cls(min(1.0, FRAME_LIGHTNESS * 2.0 * strength), LIGHTNESS_SHARE * 2.0 * strength)


def lightness_fit(own: Tensor, wanted: Tensor, area: Tensor) -> tuple[Tensor, Tensor]:
    """(slope, offset) of the affine lightness map closest to sending each region's mean L* `own`
    to `wanted` (least squares weighted by `area`), its slope within SLOPE_LIMITS; no change where
    the weights are all zero. Weights summing below 1 (regions without a counterpart weigh
    nothing) make only that share of the move."""
    covered = area.sum().clamp(max=1.0)
    if float(covered) < 1e-6:
        return torch.ones((), device=own.device), torch.zeros((), device=own.device)
    area = area / area.sum()
    mean_own, mean_wanted = (area * own).sum(), (area * wanted).sum()
    spread = (area * (own - mean_own) ** 2).sum().clamp(min=1e-6)
    slope = ((area * (own - mean_own) * (wanted - mean_wanted)).sum() / spread).clamp(*SLOPE_LIMITS)
    return 1 + covered * (slope - 1), covered * (mean_wanted - slope * mean_own)


def make_target(plate: Tensor, graded: Tensor, style: Tensor, lightness: Lightness = Lightness(),
                seed: int = 0, plate_mattes: Tensor | None = None, style_mattes: Tensor | None = None,
                plate_picture: Tensor | None = None, style_picture: Tensor | None = None) -> Tensor:
    """The keyframe's target (1×3×H×W working space) from the plate, the plate through the grade,
    and the style (see the module doc); `plate_mattes` and `style_mattes` (1×M×H×W each, the
    same M, 0..1) pair the artist's mattes. `lightness`: how much of the frame's and each automatic
    region's own lightness move is made (see FRAME_LIGHTNESS); matted regions make all of theirs.
    `plate_picture`, `style_picture` (1×1×H×W bool; None: all of it): which pixels of each are
    picture (engine/picture.py); the others take no part, and the plate's keep their grade."""
    generator = torch.Generator().manual_seed(seed)
    plate_features = semantic.features(plate)
    style_features = semantic.features(style)
    regions = plate_regions(plate, plate_features, generator, plate_mattes, plate_picture)
    k = regions.membership.shape[1]
    matted = 0 if plate_mattes is None else plate_mattes.shape[1]
    # Style side: for automatic regions, the style pixels of the positions they correspond to;
    # for matted regions, the style matte's own pixels.
    cells, resemblance = style_weights(plate_features, style_features, regions, style_picture)   # K×S, K
    sh, sw = style_features.shape[-2:]
    pixel_weights = F.interpolate(cells.reshape(1, k, sh, sw), size=style.shape[-2:], mode="nearest")[0].reshape(k, -1)
    if style_mattes is not None:
        pixel_weights[:matted] = style_mattes[0].reshape(matted, -1)
    if style_picture is not None:
        pixel_weights = pixel_weights * style_picture.reshape(1, -1)
    pixel_weights = pixel_weights / pixel_weights.sum(1, keepdim=True).clamp(min=1e-12)
    target_mean, target_std = _weighted_stats(working_to_lab(style), pixel_weights)
    graded_lab = working_to_lab(graded, floor=False)
    membership = regions.membership[0].reshape(k, -1)
    area = membership.sum(1) / membership.sum()
    own = membership / membership.sum(1, keepdim=True).clamp(min=1e-12)
    own_mean, own_std = _weighted_stats(graded_lab, own)
    gain = (target_std / own_std).clamp(*GAIN_LIMITS)
    gain[:, 1:] = gain[:, 1:].clamp(*CHROMA_GAIN_LIMITS)
    found = ((resemblance - FOUND[0]) / (FOUND[1] - FOUND[0])).clamp(0, 1)
    found[:matted] = 1.0
    if plate_picture is not None:
        found[-1] = 0.0   # what is not picture: no counterpart, no weight in the frame's lightness map
    # Lightness: a share of one affine map for the whole frame, plus a share of each region's own move.
    share = lightness.region * found
    share[:matted] = 1.0
    slope, offset = lightness_fit(own_mean[:, 0], target_mean[:, 0], area * found * lightness.frame)
    fitted = offset + slope * own_mean[:, 0]
    gain[:, 0] = slope + share * (gain[:, 0] - slope)
    target_mean[:, 0] = fitted + share * (target_mean[:, 0] - fitted)
    # Colour: a region's chroma moves as far as its plate colour is sure of a hue or the style has a
    # true counterpart for it; a grey region nothing in the style resembles (a road) keeps the
    # grade's grey balance (engine/correspondence.py) rather than taking the hue of whatever it is
    # nearest to (the walk clip's asphalt took the meadow's yellow-green, b* +18); a grey sky with a
    # sky in the style takes that sky's colour. Matted regions move all the way: the artist said where.
    plate_mean, _ = _weighted_stats(working_to_lab(plate, floor=False), own)
    chroma = plate_mean[:, 1:].norm(dim=1)
    sure = chroma ** 2 / (chroma ** 2 + NEUTRAL_CHROMA ** 2)
    counterpart = ((resemblance - COUNTERPART[0]) / (COUNTERPART[1] - COUNTERPART[0])).clamp(0, 1)
    sure = torch.maximum(sure, counterpart) * found
    sure[:matted] = 1.0
    target_mean[:, 1:] = own_mean[:, 1:] + sure[:, None] * (target_mean[:, 1:] - own_mean[:, 1:])
    gain[:, 1:] = 1 + sure[:, None] * (gain[:, 1:] - 1)
    # Each region's affine map in Lab, blended by the memberships.
    shifted = torch.einsum("khw,kc,nchw->nchw", regions.membership[0], gain, graded_lab) + \
        torch.einsum("khw,kc->chw", regions.membership[0], target_mean - gain * own_mean)[None]
    wanted = lab_to_working(shifted)
    radius = max(1, round(FIT_RADIUS * max(plate.shape[-2:])))
    coefficients = fit_local_affine(graded, wanted, radius, FIT_EPS)
    m = coefficients.view(1, 3, 4, *graded.shape[-2:])
    target = (m[:, :, :3] * graded[:, None]).sum(2) + m[:, :, 3]
    return target if plate_picture is None else torch.where(plate_picture, target, graded)
