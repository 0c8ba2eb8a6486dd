"""Colour correspondence between plate and style, and the global grade it defines.

A style frame says how a shot should look, not what each of its colours becomes: its grass
need not be anywhere in the plate, and the plate's grey road must not turn into the style's
most common colour at that brightness. Matching the whole plate distribution onto the whole
style distribution (balanced optimal transport, sliced or not) does exactly that — every
plate colour has to go somewhere and every style colour has to come from somewhere. This
module instead finds *corresponding* colours, as a colourist grading to a reference would:

1. Tonal zones (luminance grading with lift/gamma/gain, as colourists do). Every pixel gets
   its rank in its image's lightness distribution (`Tones`, a smoothed CDF), so shadows are
   compared with shadows and highlights with highlights whatever the two exposures. The tone
   curve maps plate lightness to the style's lightness at the same rank (histogram matching,
   blended with a mean/contrast match and limited in slope, relative to the overall contrast
   change: monotone, nothing crushed or torn).
2. Grey balance per zone (`neutral_axis`). Colour is compared relative to each image's own
   greys in that tonal range, and plate greys take the style's greys — its neutral balance —
   never its commonest hue. Where a style zone has no greys of its own (shadows filled by a
   meadow), it follows the style's greys elsewhere; an image with no greys anywhere (a red
   sunset) is tinted throughout, and its least saturated colours are that tint.
3. Colour clusters and context. Both images are clustered (k-means) on (rank, chroma relative
   to the grey balance); each cluster also carries its mean height in the frame and texture.
   This is the soft segmentation of Tai, Jia & Tang, "Local color transfer via probabilistic
   segmentation by expectation-maximization" (CVPR 2005), which transfers colour per matched
   segment rather than per image (Reinhard et al., "Color transfer between images", 2001).
4. A partial transport plan between the clusters (`partial_plan`). The cost of giving a plate
   cluster a style cluster's colour adds the tonal-zone gap, a hue change weighted by how sure
   both hues are (greys have none), a saturation change measured as a ratio (pale → saturated
   in the same hue is cheap), and the context gap (`match_cost`). Every plate cluster's mass
   must go somewhere, but a style cluster receives at most CAPACITY times its own mass and may
   receive less, down to nothing: a style colour nothing corresponds to is not used, and a
   small one (a red barn) is never spread over a large plate region (a tree line). A "stay"
   option (a dummy point, as in partial transport with dummies — Chapel, Alaya & Gasso,
   NeurIPS 2020) keeps a plate colour's own hue, cheaply for near-greys. Entropic
   regularisation, solved by iterative Bregman projections (Benamou, Carlier, Cuturi, Nenna &
   Peyré, SIAM J. Sci. Comput. 2015), which handle the inequality. This is the relaxation of
   colour-transfer transport argued for by Ferradans, Papadakis, Peyré & Aujol ("Regularized
   discrete optimal transport", SIAM J. Imaging Sci. 2014) and Rabin, Ferradans & Papadakis
   ("Adaptive color transfer with relaxed optimal transport", ICIP 2014), done between a few
   dozen clusters instead of pixels, which makes it cheap and the map smooth. A Kullback–Leibler
   relaxation of the style side (the unbalanced transport of Chizat, Peyré, Schmitzer &
   Vialard, Math. Comp. 2018) was tried first: weak, it lets the nearest style colour take any
   amount of plate (an orange mountain turned barn red in tests/test_correspondence.py); strong,
   it forces every style colour into the plate again. A capacity bounds the first without the
   second.
5. The grade (`Correspondence.grade_lab`). Each colour takes the tone curve, the style's grey
   balance at its rank, its own relative chroma (scaled with its lightness change, so a
   darkened colour stays a possible one), and the shift that brings each plate cluster onto
   the style colours its plan row sends it to, blended by soft (Gaussian) memberships so the
   map is smooth; colours far from every cluster (other frames' new objects) get the balance
   and tone change only. Last, against a monochrome style (black and white, or toned), chroma
   beyond the style's own range is bent into it (`capped`): no colour is left that it lacks.
   Evaluated on the lattice nodes it becomes the model's LUT (grade.py), fixed from then on:
   training it too (with smoothness and monotonicity penalties) let the style term split
   near-uniform regions between the several style colours a cluster corresponds to (a
   mountain half green, half pink), and cost structure.
6. The local term's loss (losses/look.py) asks each plate pixel for what the same plan sends
   its colour to, so network and grade follow one correspondence.

For comparison, Pitié, Kokaram & Dahyot ("Automated colour grading using colour distribution
transfer", CVIU 2007) transport the whole distribution exactly (balanced, iterated 1D
matchings), which is what makes a grey road olive; their result has the style's distribution
and a poor structure. Constants are in perceptual units (CIELAB, ranks) and were set on
synthetic scenes and on the walk clip; none depends on an image's size.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from shotstyle.server.engine.grade import lattice_colours
from shotstyle.server.engine.colourmath import lab_to_working, working_to_lab

MAX_SAMPLES = 1 << 16
ZONES = 9
ZONE_WIDTH = 0.08
NEUTRAL_CHROMA = 6.0
NEUTRAL_PRIOR = 0.02
DARK_LIGHTNESS = 30.0
GREY_REACH = 0.3
TONE_BLEND = 0.7
SLOPE_LIMITS = (0.3, 2.5)
SLOPE_RATIO = 1.25
TONE_GRID = torch.arange(-20.0, 800.0, 0.5)
TONE_SMOOTH = 3.0
RANK_SMOOTH = 4.0
RANK_WEIGHT = 30.0
PLATE_CLUSTERS = 12
STYLE_CLUSTERS = 16
KMEANS_STEPS = 15
ZONE_SCALE = 0.15
HUE_CERTAINTY = 2.0
HUE_SCALE = 0.6
SATURATION_SCALE = 1.5
POSITION_SCALE = 0.3
TEXTURE_SCALE = 0.7
STAY_NEUTRAL = 1.5
STAY_CHROMATIC = 8.0
EPSILON = 0.5
CAPACITY = 1.5
PLAN_ITERATIONS = 200
GAIN_LIMITS = (0.5, 2.0)
BACKGROUND_MASS = 0.02
BACKGROUND_SIGMA = 40.0
MIN_SIGMA = 8.0
CHROMA_FOLLOWS = 10.0
CHROMA_SCALE_LIMITS = (0.25, 2.0)
# A monochrome style's colour range. The range is the CHROMA_CEILING[0] quantile of the style's
# chroma relative to its grey balance (at least CHROMA_CEILING[1]); a style whose range is at most
# MONOCHROME[0] is black and white (or toned: its tint is its grey balance), and graded colours
# beyond CHROMA_KNEE[0] of its range are bent smoothly towards CHROMA_KNEE[1] of it (`capped`),
# less so up to MONOCHROME[1], not at all beyond: the plan lets a colour nothing corresponds to
# keep half of its chroma, and a cluster's spread around its centre is kept, so against a
# black-and-white style saturated plate colours stayed visibly coloured (the 99th percentile of
# the grade's chroma on the shared plates against black-and-white copies of their styles: 6.1,
# pair 1's sea 12.4; with the range 0.6 and 0.8 CIELAB units). Five of the 52 unseen pairs' styles
# are black and white (range under 1), one 4.0; colour styles' ranges are 22-125. A style with
# some colour (a bleached dusk city, 6.7) says less of what the look does to colours it does
# not have: bending the plate's into that range took the bleach-bypass regrade in2-bleach(in5)
# 0.3 ΔE further from its ideal.
CHROMA_CEILING = (0.999, 0.5)
CHROMA_KNEE = (1.0, 1.5)
MONOCHROME = (3.0, 6.0)
OUTPUT_LIMITS = (-0.1, 1.5)


def _interp(x: Tensor, xp: Tensor, fp: Tensor) -> Tensor:
    """Piecewise-linear interpolation of (xp, fp) at x (xp increasing), constant beyond the ends;
    fp may have trailing dims."""
    index = torch.searchsorted(xp.contiguous(), x.contiguous()).clamp(1, len(xp) - 1)
    x0, x1 = xp[index - 1], xp[index]
    t = ((x - x0) / (x1 - x0).clamp(min=1e-12)).clamp(0, 1)
    if fp.dim() > 1:
        t = t[..., None]
    return fp[index - 1] + t * (fp[index] - fp[index - 1])


def _context(lab: Tensor) -> Tensor:
    """N×2×H×W context of each pixel: its height in the frame (0 top … 1 bottom) and its
    texture (log of the local standard deviation of L* in a 7×7 window)."""
    n, _, height, width = lab.shape
    rows = torch.linspace(0, 1, height, device=lab.device).view(1, 1, height, 1).expand(n, 1, height, width)
    lightness = lab[:, :1]
    mean = F.avg_pool2d(F.pad(lightness, (3, 3, 3, 3), mode="reflect"), 7, stride=1)
    square = F.avg_pool2d(F.pad(lightness ** 2, (3, 3, 3, 3), mode="reflect"), 7, stride=1)
    texture = torch.log((square - mean ** 2).clamp(min=0) + 1.0) / 2
    return torch.cat([rows, texture], dim=1)


def _samples(images: list[Tensor], generator: torch.Generator, masks: list[Tensor | None]) -> Tensor:
    """M×5 rows (L*, a*, b*, height, texture) of a random subset of the images' pixels: of those
    in each image's mask (1×1×H×W bool; None: all of its pixels)."""
    rows = []
    for image, mask in zip(images, masks):
        lab = working_to_lab(image.float(), floor=False)
        pixels = torch.cat([lab, _context(lab)], dim=1).permute(0, 2, 3, 1).reshape(-1, 5)
        rows.append(pixels if mask is None else pixels[mask.reshape(-1)])
    samples = torch.cat(rows)
    if samples.shape[0] > MAX_SAMPLES:
        samples = samples[torch.randperm(samples.shape[0], generator=generator)[:MAX_SAMPLES].to(samples.device)]
    return samples


def _gaussian_smooth(values: Tensor, sigma_steps: float) -> Tensor:
    """A 1D signal blurred by a Gaussian of `sigma_steps` samples (edges replicated)."""
    radius = max(1, int(3 * sigma_steps))
    offsets = torch.arange(-radius, radius + 1, device=values.device, dtype=values.dtype)
    kernel = torch.exp(-(offsets / sigma_steps) ** 2 / 2)
    padded = F.pad(values[None, None], (radius, radius), mode="replicate")
    return F.conv1d(padded, (kernel / kernel.sum())[None, None])[0, 0]


@dataclass
class Tones:
    """An image's luminance distribution as a smooth rank function on TONE_GRID: the cumulative
    share of pixels darker than each level, from a histogram blurred by RANK_SMOOTH L* units
    (a raw empirical one jumps across the narrow lightness range of a flat sky, and so would
    every colour function built on ranks)."""
    cdf: Tensor

    @classmethod
    def of(cls, lightness: Tensor) -> "Tones":
        grid = TONE_GRID.to(lightness.device)
        step = float(grid[1] - grid[0])
        counts = torch.histc(lightness.clamp(float(grid[0]), float(grid[-1])), bins=len(grid),
                             min=float(grid[0]) - step / 2, max=float(grid[-1]) + step / 2)
        density = _gaussian_smooth(counts / counts.sum(), RANK_SMOOTH / step) + 1e-7
        cdf = torch.cumsum(density, 0) - density / 2
        return cls((cdf - cdf[0]) / (cdf[-1] - cdf[0]))

    def rank(self, lightness: Tensor) -> Tensor:
        return _interp(lightness, TONE_GRID.to(self.cdf.device), self.cdf)

    def level(self, rank: Tensor) -> Tensor:
        return _interp(rank, self.cdf, TONE_GRID.to(self.cdf.device))


def weighted_quantile(values: Tensor, weights: Tensor, q: float) -> Tensor:
    """Per column of `weights` (M×Z), the q-quantile of `values` (M) under those weights."""
    order = torch.argsort(values)
    cumulative = torch.cumsum(weights[order], dim=0)
    cumulative = cumulative / cumulative[-1:].clamp(min=1e-12)
    index = torch.searchsorted(cumulative.T.contiguous(), torch.full((weights.shape[1], 1), q,
                                                                     device=values.device))
    return values[order][index[:, 0].clamp(max=len(values) - 1)]


def neutral_axis(lab: Tensor, rank: Tensor) -> Tensor:
    """ZONES×2: the image's grey balance (a*, b*) per luminance zone, read as a colourist reads
    it: from what is grey in and near each tonal range.

    Greys are colours within about NEUTRAL_CHROMA of neutral (near-black pixels carry no colour
    and do not count). A zone takes the balance of the greys in it and in nearby zones
    (Gaussian in rank, GREY_REACH), as far as there are enough of them (NEUTRAL_PRIOR of a
    zone's pixels); a zone with no greys within reach is tinted, and its least saturated
    colours are its tint. So shadows filled by a meadow take the greys of the hills and clouds
    above them, while the bright half of a red sunset, where nothing is grey, stays red."""
    ab, chroma = lab[:, 1:], lab[:, 1:].norm(dim=1)
    visible = (lab[:, 0] / DARK_LIGHTNESS).clamp(0, 1)
    grey = torch.exp(-(chroma / NEUTRAL_CHROMA) ** 2) * visible
    centres = torch.linspace(0, 1, ZONES, device=lab.device)
    zone = torch.exp(-((rank[:, None] - centres[None]) / ZONE_WIDTH) ** 2 / 2) * visible[:, None]  # M×Z
    tau = weighted_quantile(chroma, zone, 0.1).clamp(min=NEUTRAL_CHROMA)                  # Z
    least = zone * torch.exp(-(chroma[:, None] / tau[None]) ** 2)
    tint = least.T @ ab / least.sum(0).clamp(min=1e-12)[:, None]
    reach = torch.exp(-((centres[:, None] - centres[None]) / GREY_REACH) ** 2 / 2)         # Z×Z
    greys = reach @ ((zone * grey[:, None]).T @ ab)                                        # Z×2
    evidence = reach @ (zone * grey[:, None]).sum(0)
    prior = NEUTRAL_PRIOR * (reach @ zone.sum(0))
    return (greys + prior[:, None] * tint) / (evidence + prior).clamp(min=1e-12)[:, None]


def chroma_scale(before: Tensor, after: Tensor) -> Tensor:
    """How a colour's own chroma scales when the tone curve takes its lightness from `before`
    to `after`: in proportion (saturation kept), softened near black and limited, so a darkened
    colour does not keep a chroma no surface of that lightness can have (out of gamut)."""
    return ((after + CHROMA_FOLLOWS) / (before + CHROMA_FOLLOWS).clamp(min=1e-3)).clamp(*CHROMA_SCALE_LIMITS)


def capped(ab: Tensor, ceiling: float) -> Tensor:
    """Chroma vectors `ab` (M×2, relative to the style's grey balance) softly limited to the style's
    range: unchanged up to CHROMA_KNEE[0] × `ceiling`, then bent smoothly towards CHROMA_KNEE[1] ×
    `ceiling`, their hue kept."""
    knee, top = CHROMA_KNEE[0] * ceiling, CHROMA_KNEE[1] * ceiling
    chroma = ab.norm(dim=1, keepdim=True)
    soft = knee + (top - knee) * torch.tanh((chroma - knee) / (top - knee))
    return ab * torch.where(chroma > knee, soft / chroma.clamp(min=1e-6), torch.ones_like(chroma))


def axis_at(axis: Tensor, rank: Tensor) -> Tensor:
    return _interp(rank, torch.linspace(0, 1, ZONES, device=axis.device), axis)


def tone_curve(plate: Tones, style: Tones, plate_lightness: Tensor, style_lightness: Tensor) -> Tensor:
    """Output lightness on TONE_GRID: rank matching blended with a mean/contrast match, its slope
    smoothed and kept within SLOPE_RATIO of the overall contrast change and within SLOPE_LIMITS
    (monotone; no tonal range crushed or stretched far beyond the rest)."""
    grid = TONE_GRID.to(plate.cdf.device)
    matched = style.level(plate.rank(grid))
    mp, sp = plate_lightness.mean(), plate_lightness.std().clamp(min=1e-3)
    ms, ss = style_lightness.mean(), style_lightness.std()
    linear = ms + (grid - mp) * ss / sp
    blended = TONE_BLEND * matched + (1 - TONE_BLEND) * linear
    step = float(grid[1] - grid[0])
    contrast = float(ss / sp)
    slope = _gaussian_smooth(torch.diff(blended) / step, TONE_SMOOTH / step)
    slope = slope.clamp(contrast / SLOPE_RATIO, contrast * SLOPE_RATIO).clamp(*SLOPE_LIMITS)
    curve = torch.cat([torch.zeros(1, device=grid.device), torch.cumsum(slope * step, 0)])
    # Place the curve where the blended one puts the plate's pixels on average.
    offset = (_interp(plate_lightness, grid, blended) - _interp(plate_lightness, grid, curve)).mean()
    return curve + offset


def kmeans(features: Tensor, clusters: int, generator: torch.Generator) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """(centres K×D, masses K, spreads K×D, memberships M×K) of k-means (k-means++ start, seeded)."""
    count = features.shape[0]
    first = torch.randint(count, (1,), generator=generator).item()
    centres = features[first:first + 1]
    for _ in range(1, clusters):
        distance = torch.cdist(features, centres).min(dim=1).values ** 2
        pick = torch.multinomial(distance.cpu() + 1e-12, 1, generator=generator).item()
        centres = torch.cat([centres, features[pick:pick + 1]])
    for _ in range(KMEANS_STEPS):
        label = torch.cdist(features, centres).argmin(dim=1)
        one_hot = F.one_hot(label, clusters).float()
        counts = one_hot.sum(0)
        centres = torch.where(counts[:, None] > 0, one_hot.T @ features / counts.clamp(min=1)[:, None], centres)
    label = torch.cdist(features, centres).argmin(dim=1)
    one_hot = F.one_hot(label, clusters).float()
    counts = one_hot.sum(0)
    keep = counts > 0
    spread = (one_hot.T @ features ** 2 / counts.clamp(min=1)[:, None] - centres ** 2).clamp(min=0).sqrt()
    return centres[keep], counts[keep] / count, spread[keep], one_hot[:, keep]


def match_cost(plate: Tensor, style: Tensor, plate_context: Tensor, style_context: Tensor) -> Tensor:
    """K×J cost of giving plate cluster k the colour of style cluster j: a tonal-zone gap, a
    hue change (counted in proportion to how sure both hues are: greys have none) and a
    saturation change (a ratio, so pale → saturated of the same hue is cheap)."""
    zone = (plate[:, None, 0] - style[None, :, 0]) / RANK_WEIGHT / ZONE_SCALE
    chroma_p, chroma_s = plate[:, 1:].norm(dim=1), style[:, 1:].norm(dim=1)
    hue_p, hue_s = torch.atan2(plate[:, 2], plate[:, 1]), torch.atan2(style[:, 2], style[:, 1])
    turn = torch.remainder(hue_p[:, None] - hue_s[None] + torch.pi, 2 * torch.pi) - torch.pi
    certainty = (chroma_p ** 2 / (chroma_p ** 2 + HUE_CERTAINTY ** 2))[:, None] * \
        (chroma_s ** 2 / (chroma_s ** 2 + HUE_CERTAINTY ** 2))[None]
    saturation = torch.log((chroma_s[None] + HUE_CERTAINTY) / (chroma_p[:, None] + HUE_CERTAINTY))
    place = (plate_context[:, None, 0] - style_context[None, :, 0]) / POSITION_SCALE
    texture = (plate_context[:, None, 1] - style_context[None, :, 1]) / TEXTURE_SCALE
    return (zone ** 2 + certainty * (turn / HUE_SCALE) ** 2 + (saturation / SATURATION_SCALE) ** 2
            + place ** 2 + texture ** 2)


def partial_plan(cost: Tensor, source: Tensor, target: Tensor, stay_cost: Tensor) -> Tensor:
    """Entropic partial transport plan K×(J+1): every plate cluster's mass goes somewhere (rows
    sum to `source`); style cluster j receives at most CAPACITY × its own mass — a small style
    colour is never spread over a large plate region — but may receive less, down to nothing;
    column J is "stay" (keep the plate's own hue), without a limit. Iterative Bregman (KL)
    projections onto the two constraint sets: an equality on the rows, an inequality on the
    columns (Benamou, Carlier, Cuturi, Nenna & Peyré, SIAM J. Sci. Comput. 2015)."""
    kernel = torch.exp(-torch.cat([cost, stay_cost[:, None]], dim=1) / EPSILON)
    capacity = torch.cat([CAPACITY * target, torch.full((1,), float("inf"), device=cost.device)])
    v = torch.ones(cost.shape[1] + 1, device=cost.device)
    for _ in range(PLAN_ITERATIONS):
        u = source / (kernel @ v).clamp(min=1e-30)
        v = (capacity / (kernel.T @ u).clamp(min=1e-30)).clamp(max=1.0)
    u = source / (kernel @ v).clamp(min=1e-30)
    return u[:, None] * kernel * v[None]


@dataclass
class Correspondence:
    plate_tones: Tones
    tone: Tensor                 # output lightness at TONE_GRID
    plate_axis: Tensor           # ZONES×2
    style_axis: Tensor           # ZONES×2
    centres: Tensor              # K×3 (rank·RANK_WEIGHT, relative a*, relative b*)
    spreads: Tensor              # K×3
    masses: Tensor               # K
    shifts: Tensor               # K×2 relative chroma shift of each plate cluster
    plan: Tensor                 # K×(J+1)
    style_tones: Tones
    style_centres: Tensor        # J×3
    style_masses: Tensor         # J
    chroma_ceiling: float        # the style's colour range (CHROMA_CEILING)

    @property
    def monochrome(self) -> float:
        """How far the style counts as monochrome, 0..1, by its colour range (MONOCHROME)."""
        return min(1.0, max(0.0, (MONOCHROME[1] - self.chroma_ceiling) / (MONOCHROME[1] - MONOCHROME[0])))

    def features(self, lab: Tensor) -> tuple[Tensor, Tensor]:
        rank = self.plate_tones.rank(lab[:, 0])
        relative = lab[:, 1:] - axis_at(self.plate_axis, rank)
        return rank, torch.cat([rank[:, None] * RANK_WEIGHT, relative], dim=1)

    def posteriors(self, features: Tensor, background: bool = True) -> Tensor:
        """M×K soft membership of colours in the plate clusters; with `background`, colours far
        from every cluster belong to none (their rows sum to less than 1)."""
        sigma = torch.sqrt(self.spreads ** 2 + MIN_SIGMA ** 2)                    # K×3
        z = ((features[:, None, :] - self.centres[None]) / sigma[None]) ** 2
        log_p = torch.log(self.masses)[None] - 0.5 * z.sum(-1) - torch.log(sigma).sum(-1)[None]
        if not background:
            return torch.softmax(log_p, dim=1)
        far = torch.full_like(log_p[:, :1], math.log(BACKGROUND_MASS) - 3 * math.log(BACKGROUND_SIGMA))
        return torch.softmax(torch.cat([log_p, far], dim=1), dim=1)[:, :-1]

    def grade_lab(self, lab: Tensor, amount: float = 1.0) -> Tensor:
        """M×3 CIELAB plate colours → their graded CIELAB colours."""
        rank, features = self.features(lab)
        lightness = self.lightness(lab[:, 0])
        relative = features[:, 1:] * chroma_scale(lab[:, 0], lightness)[:, None]
        shift = self.posteriors(features) @ self.shifts
        axis = axis_at(self.style_axis, rank)
        monochrome = self.monochrome
        if monochrome > 0:
            own = relative + shift
            ab = axis + own + monochrome * (capped(own, self.chroma_ceiling) - own)
        else:
            ab = axis + relative + shift   # summed in this order as ever: colour styles grade as before
        graded = torch.cat([lightness[:, None], ab], dim=1)
        return lab + amount * (graded - lab)

    def lightness(self, lightness: Tensor) -> Tensor:
        """The tone curve: graded L* of plate L*."""
        return _interp(lightness, TONE_GRID.to(lightness.device), self.tone)

    def grade_image(self, image: Tensor, amount: float = 1.0) -> Tensor:
        """N×3×H×W working-space image through the (analytic) grade."""
        lab = working_to_lab(image, floor=False)
        flat = lab.permute(0, 2, 3, 1).reshape(-1, 3)
        graded = self.grade_lab(flat, amount).reshape(lab.shape[0], lab.shape[2], lab.shape[3], 3)
        return lab_to_working(graded.permute(0, 3, 1, 2))

    def plate_rank(self, image: Tensor) -> Tensor:
        """N×1×H×W tonal rank (0 darkest … 1 brightest, by the keyframes' distribution)."""
        return self.plate_tones.rank(working_to_lab(image, floor=False)[:, :1])

    def style_rank(self, image: Tensor) -> Tensor:
        return self.style_tones.rank(working_to_lab(image, floor=False)[:, :1])

    def condition(self, image: Tensor) -> Tensor:
        """N×3×H×W: what the correspondence knows of each plate pixel — its tonal rank (scaled
        by RANK_WEIGHT) and its chroma relative to the plate's grey balance (CIELAB units)."""
        lab = working_to_lab(image, floor=False)
        _, features = self.features(lab.permute(0, 2, 3, 1).reshape(-1, 3))
        return features.reshape(lab.shape[0], lab.shape[2], lab.shape[3], 3).permute(0, 3, 1, 2)

    def destinations(self, condition: Tensor) -> Tensor:
        """N×(J+1)×H×W: where the plan sends each plate pixel's colour — style cluster j, or
        (last channel) nowhere: it keeps its graded colour."""
        n, _, height, width = condition.shape
        posteriors = self.posteriors(condition.permute(0, 2, 3, 1).reshape(-1, 3), background=False)
        sent = posteriors @ (self.plan / self.masses[:, None])
        return sent.reshape(n, height, width, -1).permute(0, 3, 1, 2)

    def style_membership(self, image: Tensor) -> Tensor:
        """N×J×H×W one-hot: the style cluster of each style pixel."""
        lab = working_to_lab(image, floor=False)
        flat = lab.permute(0, 2, 3, 1).reshape(-1, 3)
        rank = self.style_tones.rank(flat[:, 0])
        relative = flat[:, 1:] - axis_at(self.style_axis, rank)
        features = torch.cat([rank[:, None] * RANK_WEIGHT, relative], dim=1)
        nearest = torch.cdist(features, self.style_centres).argmin(dim=1)
        one_hot = F.one_hot(nearest, len(self.style_centres)).float()
        return one_hot.reshape(lab.shape[0], lab.shape[2], lab.shape[3], -1).permute(0, 3, 1, 2)

    @property
    def moved(self) -> float:
        """The share of the plate's colour mass the plan sends to style colours (the rest stays)."""
        return float(self.plan[:, :-1].sum())

    def lattice(self, size: int, amount: float = 1.0) -> Tensor:
        """3×S×S×S lattice of the grade (see grade.LatticeGrade)."""
        colours = lattice_colours(size, self.tone.device)
        return self.grade_image(colours, amount).reshape(3, size, size, size).clamp(*OUTPUT_LIMITS)


def fit_correspondence(keyframes: list[Tensor], style: Tensor, seed: int = 0,
                       masks: list[Tensor | None] | None = None, style_mask: Tensor | None = None) -> Correspondence:
    """The correspondence of working-space keyframes (1×3×H×W each) and a style image, fitted on
    the pixels in their masks (1×1×H×W bool, engine/picture.py; None: all of an image's)."""
    generator = torch.Generator().manual_seed(seed)
    plate = _samples(keyframes, generator, masks or [None] * len(keyframes))
    styled = _samples([style], generator, [style_mask])
    plate_tones, style_tones = Tones.of(plate[:, 0]), Tones.of(styled[:, 0])
    plate_rank, style_rank = plate_tones.rank(plate[:, 0]), style_tones.rank(styled[:, 0])
    plate_axis, style_axis = neutral_axis(plate[:, :3], plate_rank), neutral_axis(styled[:, :3], style_rank)
    tone = tone_curve(plate_tones, style_tones, plate[:, 0], styled[:, 0])

    plate_relative = plate[:, 1:3] - axis_at(plate_axis, plate_rank)
    style_relative = styled[:, 1:3] - axis_at(style_axis, style_rank)
    plate_features = torch.cat([plate_rank[:, None] * RANK_WEIGHT, plate_relative], dim=1)
    style_features = torch.cat([style_rank[:, None] * RANK_WEIGHT, style_relative], dim=1)
    centres, masses, spreads, members = kmeans(plate_features, PLATE_CLUSTERS, generator)
    style_centres, style_masses, _, style_members = kmeans(style_features, STYLE_CLUSTERS, generator)
    plate_context = members.T @ plate[:, 3:] / members.sum(0)[:, None]
    style_context = style_members.T @ styled[:, 3:] / style_members.sum(0)[:, None]

    cost = match_cost(centres, style_centres, plate_context, style_context)
    chroma = centres[:, 1:].norm(dim=1)
    plate_tau = max(NEUTRAL_CHROMA, float(torch.quantile(plate_relative.norm(dim=1), 0.1)))
    neutrality = torch.exp(-(chroma / plate_tau) ** 2)
    stay_cost = STAY_NEUTRAL + STAY_CHROMATIC * (1 - neutrality)
    plan = partial_plan(cost, masses, style_masses, stay_cost)
    gain = float((style_relative.norm(dim=1).pow(2).mean() / plate_relative.norm(dim=1).pow(2).mean().clamp(min=1e-6))
                 .sqrt().clamp(*GAIN_LIMITS))
    stay_target = centres[:, 1:] * (neutrality + (1 - neutrality) * gain)[:, None]
    target = (plan[:, :-1] @ style_centres[:, 1:] + plan[:, -1:] * stay_target) / masses[:, None]
    # The grade scales each colour's own chroma with its lightness change (chroma_scale); the
    # shift makes up the rest, so a cluster's centre lands on its target.
    plate_lightness = (members.T @ plate[:, :1] / members.sum(0)[:, None])[:, 0]
    lightness_after = _interp(plate_lightness, TONE_GRID.to(plate.device), tone)
    shifts = target - centres[:, 1:] * chroma_scale(plate_lightness, lightness_after)[:, None]
    ceiling = max(float(torch.quantile(style_relative.norm(dim=1), CHROMA_CEILING[0])), CHROMA_CEILING[1])
    return Correspondence(plate_tones, tone, plate_axis, style_axis, centres, spreads, masses, shifts,
                          plan, style_tones, style_centres, style_masses, ceiling)
