"""The OpenColorIO stage: frame colour space <-> the network's working space, and back.

Working space: **ACEScct** (ACES log encoding on AP1 primaries), taken from OCIO's built-in
ACES config (``ocio://default``, the cg-config) unless SHOTSTYLE_OCIO (else $OCIO) names
another config. OCIO builds the whole transform, e.g. for EXRs in ACEScg::

    ACEScg --(MatrixTransform AP1->AP0, AP0->AP1)--> --(LogCameraTransform)--> ACEScct
    ACEScct = (log2(x) + 9.72) / 17.52            for x >  0.0078125
    ACEScct = 10.5402377416545 * x + 0.0729055341958355   for x <= 0.0078125  (linear toe)

Both pieces are invertible and OCIO clamps neither, so scene-linear highlights far above 1.0
(up to float32's 3.4e38) and negative (out-of-gamut) values survive the round trip
(relative error ~1e-5 from float32 arithmetic). Two limits of float32, handled here:

* the linear toe overflows float32 for x < -3.2e37, so linear values below
  `NEGATIVE_LIMIT` (-3.0e37) are raised to it before the transform (no real plate holds them);
* the toe's offset (0.0729) quantises tiny linear values: |x| < 1e-6 come back within ~1e-9
  absolute, not 1e-3 relative.

Non-finite values never reach the network: `NONFINITE_RULE` is applied before the transform
and the number of replaced values is returned (and reported by callers). `from_working` also
replaces non-finite network output (NaN -> 0, ±Inf -> ±float32 max) so nothing non-finite is
written.

Colour space names are anything the config knows (names or aliases, e.g. "ACEScg",
"lin_rec709", "sRGB - Texture", or a Color Interop Forum id such as srgb_p3d65_scene, which an
embedded ICC profile gives: media/iccprofile.py); "sRGB" means the config's sRGB texture space.

An EXR's ``chromaticities`` name a space too (media.metadata.chromaticities_space: scene-linear
RGB on those primaries and white): `resolve` gives it the config's own scene-linear space where
one has the same primaries (Rec.709 → "Linear Rec.709 (sRGB)", AP1 → ACEScg), else it stays a
space of its own, reached by a matrix (media.chromaticities.chromaticities_matrix: RGB → XYZ from the xy values,
Bradford adaptation of the white, as the ACES configs' own matrices) to the config's
scene-linear space; every processor here is built through `space_transform` so such names work
wherever a config name does.

The same transforms on torch tensors, on any device: `server.engine.colourtensors`.
"""

from __future__ import annotations

import functools
import os
import re
from concurrent.futures import ThreadPoolExecutor
from typing import Callable

import numpy as np
import PyOpenColorIO as ocio

from shotstyle.media.frame import HALF_MAX
from shotstyle.media.chromaticities import INTEROP_PRIMARIES, chromaticities_matrix
from shotstyle.media.metadata import chromaticities_space, space_chromaticities
from shotstyle.server.errors import ColourError

WORKING_SPACE_NAMES = ("ACEScct", "ACES - ACEScct", "acescct_ap1")
DEFAULT_CONFIG = "ocio://default"
STRIP_MIN_PIXELS = 1 << 18   # below this, one call beats splitting across threads
# How OCIO is handed pixels: lines of LINE_PIXELS. It converts each line to RGBA in a buffer of a
# line's size: handed a whole frame as one line (what applyRGB does with an array), that buffer is
# the frame's size (+190 MiB at peak for a 4K frame) and out of cache (twice the time at 1080p).
LINE_PIXELS = 1 << 11
# Pixels per call on a large frame (whole lines): many more strips than cores, shared out as each
# core gets free, so a core slowed by other work takes fewer.
STRIP_PIXELS = 32 * LINE_PIXELS
NEGATIVE_LIMIT = -3.0e37
NONFINITE_RULE = "NaN -> 0, +Inf -> 65504, -Inf -> -65504 (replaced in scene-linear/input space, before the transform)"
# Shorthands artists type, mapped to the names the ACES configs use.
_SHORTHANDS = {"srgb": "sRGB - Texture", "linear": "ACEScg"}


def config_uri() -> str:
    """The OCIO config in use: SHOTSTYLE_OCIO, else $OCIO, else OCIO's built-in ACES config."""
    return os.environ.get("SHOTSTYLE_OCIO") or os.environ.get("OCIO") or DEFAULT_CONFIG


@functools.lru_cache(maxsize=4)
def config_at(uri: str) -> ocio.Config:
    try:
        return ocio.Config.CreateFromFile(uri)
    except Exception as error:  # OCIO raises its own Exception type for every failure
        raise ColourError(
            f"OpenColorIO config {uri!r} cannot be loaded ({error}); fix SHOTSTYLE_OCIO / OCIO or unset them "
            f"to use the built-in {DEFAULT_CONFIG}"
        ) from None


def config() -> ocio.Config:
    """The loaded OCIO config (see `config_uri`)."""
    return config_at(config_uri())


def describe_config() -> str:
    """One line naming the config in use, for `shotstyle doctor` and model metadata."""
    return f"{config_uri()} ({config().getName()}), working space {working_space()}"


def resolve(cfg: ocio.Config, name: str) -> str:
    """The config's name for ``name`` (an alias, a shorthand or a Color Interop Forum id, as an
    embedded ICC profile gives: media/iccprofile.py), or for a `chromaticities_space` name the
    config's scene-linear space of those primaries, else that name itself; ColourError if neither."""
    colourspace = cfg.getColorSpace(name) or cfg.getColorSpace(_SHORTHANDS.get(name.lower(), name)) \
        or _space_of_interop_id(cfg, name)
    if colourspace is not None:
        return str(colourspace.getName())
    primaries = space_chromaticities(name)
    if primaries is not None:
        chromaticities_matrix(primaries, primaries)  # refuses chromaticities that describe no space
        return _space_with_primaries(cfg, primaries) or chromaticities_space(primaries)
    if _INTEROP_ID.match(name):
        raise ColourError(f"the OCIO config {config_uri()} has no colour space for {name!r} (a Color Interop "
                          "Forum id, as an image's embedded ICC profile names its RGB); give the image's colour "
                          "space (--colourspace) or convert the image to sRGB")
    raise ColourError(
        f"colour space {name!r} is not in the OCIO config {config_uri()}; "
        f"choose one of: {', '.join(available_colourspaces())}"
    )


def _space_of_interop_id(cfg: ocio.Config, name: str) -> ocio.ColorSpace | None:
    """The config's space whose Color Interop Forum id is ``name`` (a config may hold it in the
    space's own field rather than as an alias), or None."""
    if not _INTEROP_ID.match(name):
        return None
    return next((space for space in cfg.getColorSpaces() if _interop_id(space) == name), None)


def space_transform(cfg: ocio.Config, source: str, destination: str) -> ocio.Transform:
    """The OCIO transform ``source`` -> ``destination``: the config's own, with a matrix before or after
    it for a space of an EXR's chromaticities the config lacks (see the module docstring)."""
    ends = [resolve(cfg, source), resolve(cfg, destination)]
    group = ocio.GroupTransform()
    matrices = []
    for index, end in enumerate(ends):
        primaries = space_chromaticities(end)
        if primaries is not None:
            linear = _scene_linear(cfg)
            pair = (primaries, _primaries_of(cfg, linear)) if index == 0 else (_primaries_of(cfg, linear), primaries)
            matrices.append(_matrix_transform(chromaticities_matrix(*pair)))
            ends[index] = linear
        else:
            matrices.append(None)
    if matrices[0] is not None:
        group.appendTransform(matrices[0])
    if ends[0] != ends[1]:
        group.appendTransform(ocio.ColorSpaceTransform(ends[0], ends[1]))
    if matrices[1] is not None:
        group.appendTransform(matrices[1])
    return group


# Chromaticities within this of a known space's (each x and y) are that space's: the rounding writers
# use (0.3127 vs 0.31271), a colour difference far below what a frame shows.
CHROMATICITIES_MATCH = 5e-4
def _matrix_transform(matrix: np.ndarray) -> ocio.MatrixTransform:
    full = np.eye(4)
    full[:3, :3] = matrix
    return ocio.MatrixTransform([float(v) for v in full.reshape(-1)])


def _scene_linear(cfg: ocio.Config) -> str:
    role = cfg.getRoleColorSpace("scene_linear") if cfg.hasRole("scene_linear") else None
    return str(role or resolve(cfg, "ACEScg"))


def _primaries_of(cfg: ocio.Config, name: str) -> tuple[float, ...]:
    primaries = _interop_primaries(cfg.getColorSpace(name))
    if primaries is None:
        raise ColourError(f"the OCIO config {config_uri()}'s scene-linear space {name!r} has no known primaries "
                          "(no Color Interop Forum id): frames with other chromaticities cannot be converted into it; "
                          "give the input's colour space (--colourspace)")
    return primaries


def _space_with_primaries(cfg: ocio.Config, primaries: tuple[float, ...]) -> str | None:
    """The config's scene-linear space with these primaries and white (`CHROMATICITIES_MATCH`), the
    scene_linear role's first; None if it has none."""
    spaces = [cfg.getColorSpace(_scene_linear(cfg))] + list(cfg.getColorSpaces())
    for space in spaces:
        if space is None or space.isData() or not _interop_id(space).startswith(("lin_", "ocio:lin_")):
            continue
        known = _interop_primaries(space)
        if known is not None and np.allclose(known, primaries, rtol=0, atol=CHROMATICITIES_MATCH):
            return str(space.getName())
    return None


def working_space() -> str:
    """The config's name for ACEScct, the network's working space."""
    cfg = config()
    for name in WORKING_SPACE_NAMES:
        if cfg.getColorSpace(name) is not None:
            return cfg.getColorSpace(name).getName()
    raise ColourError(f"the OCIO config {config_uri()} has no ACEScct colour space; use an ACES config")


@functools.lru_cache(maxsize=32)
def cpu_processor(uri: str, source: str, destination: str) -> ocio.CPUProcessor:
    cfg = config_at(uri)
    try:
        return cfg.getProcessor(space_transform(cfg, source, destination)).getDefaultCPUProcessor()
    except ColourError:
        raise
    except Exception as error:
        raise ColourError(f"OpenColorIO cannot convert {source!r} to {destination!r}: {error}") from None


@functools.lru_cache(maxsize=1)
def _strip_pool() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=os.cpu_count() or 1, thread_name_prefix="ocio")


def apply(rgb: np.ndarray, source: str, destination: str, copy: bool = True,
          uri: str | None = None) -> np.ndarray:
    """Apply the transform in place on a float32 copy (or on ``rgb`` itself when ``copy`` is False).

    OCIO releases the GIL but uses one core, so large frames go in strips across the cores
    (2x faster at 1920x1080 on 2 cores).
    """
    _check_rgb(rgb)
    pixels = np.array(rgb, dtype=np.float32, order="C", copy=copy)
    run_processor(cpu_processor(uri or config_uri(), source, destination), pixels)
    return pixels


def run_processor(processor: ocio.CPUProcessor, pixels: np.ndarray, planar: bool = False,
                  out: np.ndarray | None = None, out_planar: bool | None = None) -> None:
    """``processor`` applied to float32 C-ordered pixels: H×W×3 (packed RGB) or, when ``planar``,
    3×H×W (one plane per channel), into ``out`` (default: in place), in strips across the cores
    when large (see `in_strips`)."""
    in_strips(pixels, planar, out, out_planar, lambda source, target: apply_lines(
        processor, source[0], None if target is None else target[0], source[1], None if target is None else target[1]))


def pixel_run(pixels: np.ndarray, planar: bool = False) -> np.ndarray:
    """Float32 C-ordered H×W×3 pixels (3×H×W planes when ``planar``) as one run of pixels, a view:
    N×3 (3×N when planar). A colour transform takes each pixel on its own, wherever it lies."""
    if pixels.dtype != np.float32 or not pixels.flags.c_contiguous or pixels.size % 3:
        raise ColourError(f"OCIO works on the pixels themselves: expected C-ordered float32 RGB, got "
                          f"{pixels.dtype} {pixels.shape}")
    count = pixels.size // 3
    return pixels.reshape(3, count) if planar else pixels.reshape(count, 3)


def run_length(run: np.ndarray, planar: bool = False) -> int:
    """How many pixels a `pixel_run` holds."""
    return int(run.shape[1] if planar else run.shape[0])


def run_part(run: np.ndarray, span: slice, planar: bool = False) -> np.ndarray:
    """The pixels ``span`` of a `pixel_run` (a view)."""
    return run[:, span] if planar else run[span]


Strip = tuple[np.ndarray, bool]  # a slice of a `pixel_run`, and whether it is planar


def in_strips(pixels: np.ndarray, planar: bool, out: np.ndarray | None, out_planar: bool | None,
              work: Callable[[Strip, Strip | None], None]) -> None:
    """``work(source, target)`` on the strips (STRIP_PIXELS each) of float32 C-ordered pixels
    (H×W×3, or 3×H×W planes when ``planar``) and of ``out`` (as many pixels, planes when
    ``out_planar``, default as the input; None: the work is in place), across the cores when
    the frame is large."""
    out_planar = planar if out_planar is None else out_planar
    source = pixel_run(pixels, planar)
    target = None if out is None else pixel_run(out, out_planar)
    count = run_length(source, planar)
    if target is not None and run_length(target, out_planar) != count:
        raise ColourError(f"output of shape {out.shape} for input of shape {pixels.shape}")  # type: ignore[union-attr]
    step = count if count < STRIP_MIN_PIXELS else STRIP_PIXELS

    def run(start: int) -> None:
        span = slice(start, min(start + step, count))
        work((run_part(source, span, planar), planar),
             None if target is None else (run_part(target, span, out_planar), out_planar))

    starts = range(0, count, step)
    if len(starts) <= 1 or (os.cpu_count() or 1) == 1:
        for start in starts:
            run(start)
    else:
        list(_strip_pool().map(run, starts))


def apply_lines(processor: ocio.CPUProcessor, source: np.ndarray, target: np.ndarray | None = None,
                planar: bool = False, target_planar: bool | None = None) -> None:
    """``processor`` on a `pixel_run` (or a slice of one) into ``target`` (as long, laid out as
    ``target_planar`` says, default as the source; default: in place), on this thread, handed to
    OCIO as lines of LINE_PIXELS."""
    runs = [(source, planar)] + ([] if target is None else [(target, planar if target_planar is None else target_planar)])
    count = run_length(source, planar)
    whole = count // LINE_PIXELS * LINE_PIXELS
    for first, last in ((0, whole), (whole, count)):  # whole lines, then what is left
        if last > first:
            width = LINE_PIXELS if last == whole else last - first
            processor.apply(*(_image(run_part(run, slice(first, last), layout), width, (last - first) // width, layout)
                              for run, layout in runs))


def _image(run: np.ndarray, width: int, height: int, planar: bool) -> ocio.ImageDesc:
    if planar:
        return ocio.PlanarImageDesc(run[0], run[1], run[2], width, height)
    return ocio.PackedImageDesc(run, width, height, 3)


def finite_in_place(pixels: np.ndarray) -> int:
    """`NONFINITE_RULE` on float32 ``pixels`` in place; how many values it replaced."""
    replaced = int(np.count_nonzero(~np.isfinite(pixels)))
    np.nan_to_num(pixels, copy=False, nan=0.0, posinf=HALF_MAX, neginf=-HALF_MAX)
    return replaced


def input_rule(pixels: np.ndarray) -> int:
    """What every frame goes through before a transform into the working space, on float32
    ``pixels`` in place: `NONFINITE_RULE`, then `NEGATIVE_LIMIT`; how many non-finite values it replaced."""
    low, high = pixels.min(initial=0.0), pixels.max(initial=0.0)  # NaN where any value is NaN
    if np.isfinite(low) and np.isfinite(high) and low >= NEGATIVE_LIMIT:
        return 0  # what nearly every frame is: two reads, no writes
    replaced = finite_in_place(pixels)
    np.maximum(pixels, NEGATIVE_LIMIT, out=pixels)
    return replaced


def finite_copy(rgb: np.ndarray) -> tuple[np.ndarray, int]:
    """A float32 copy of ``rgb`` with `NONFINITE_RULE` applied, and how many values it replaced."""
    pixels = np.array(rgb, dtype=np.float32, order="C")
    return pixels, finite_in_place(pixels)


def to_working(rgb: np.ndarray, colourspace: str) -> tuple[np.ndarray, int]:
    """H×W×3 RGB in ``colourspace`` -> H×W×3 float32 ACEScct, and the count of non-finite values replaced."""
    _check_rgb(rgb)
    pixels, replaced = transform_input(rgb)
    return apply(pixels, colourspace, working_space(), copy=False), replaced


def transform_input(rgb: np.ndarray) -> tuple[np.ndarray, int]:
    """A float32 copy of ``rgb`` ready for a transform into the working space (`input_rule`), and
    how many non-finite values it replaced."""
    pixels = np.array(rgb, dtype=np.float32, order="C")
    return pixels, input_rule(pixels)


def from_working(rgb: np.ndarray, colourspace: str) -> np.ndarray:
    """H×W×3 ACEScct (e.g. network output) -> H×W×3 float32 in ``colourspace``; always finite."""
    return finite_output(apply(rgb, working_space(), colourspace))


def finite_output(pixels: np.ndarray) -> np.ndarray:
    """``pixels`` made finite in place, as every result leaving the working space is (NaN -> 0,
    ±Inf -> ±float32 max)."""
    if np.isfinite(pixels.min(initial=0.0)) and np.isfinite(pixels.max(initial=0.0)):
        return pixels  # two reads instead of nan_to_num's passes, for what nearly every frame is
    limit = float(np.finfo(np.float32).max)
    return np.nan_to_num(pixels, copy=False, nan=0.0, posinf=limit, neginf=-limit)


def _check_rgb(rgb: np.ndarray) -> None:
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ColourError(f"expected an H×W×3 RGB image, got shape {rgb.shape}")


def canonical(name: str) -> str:
    """The config's own name for ``name`` (an alias or shorthand); ColourError if the config lacks it."""
    return resolve(config(), name)


def is_scene_linear(name: str) -> bool:
    """Whether ``name`` holds scene-linear values (or non-colour data, which no transform should touch).

    From the config's encoding where it records one, else measured: a linear space maps to
    the scene_linear role by a matrix, so doubling a value doubles its image.
    """
    cfg = config()
    space = cfg.getColorSpace(resolve(cfg, name))
    if space is None:  # a space of an EXR's chromaticities: scene-linear by definition
        return True
    if space.isData():
        return True
    encoding = space.getEncoding() if hasattr(space, "getEncoding") else ""
    if encoding:
        return bool(encoding == "scene-linear")
    values = np.array([[[0.05, 0.1, 0.2], [0.1, 0.2, 0.4]]], dtype=np.float32)
    out = apply(values, space.getName(), scene_linear_space())
    return bool(np.allclose(out[0, 1], 2 * out[0, 0], rtol=1e-3, atol=1e-6))


def scene_linear_space() -> str:
    """The config's scene-linear working space (its scene_linear role; ACEScg in the ACES configs)."""
    return _scene_linear(config())


def output_colourspace(input_space: str, file_format: str, chosen: str | None = None) -> str:
    """The colour space a stylized frame is written in: ``chosen``, else by file type.

    EXR holds scene-linear values (Nuke and Resolve read EXR as linear): the input's space when
    it is scene-linear already, else the config's scene-linear space (ACEScg). Other file types
    hold display-encoded values: the input's space when it is not linear, else sRGB. Data
    (non-colour) spaces stay as they are.
    """
    if chosen:
        return canonical(chosen)
    if _is_data(canonical(input_space)):
        return canonical(input_space)  # not colour: written as it came
    linear = is_scene_linear(input_space)
    if file_format == "exr":
        return canonical(input_space) if linear else scene_linear_space()
    return canonical(input_space) if not linear else canonical("sRGB")


_INTEROP_ID = re.compile(r"^(?:ocio:)?[a-z0-9]+_(?P<primaries>[a-z0-9]+)_(?:scene|display)$")
# The header attributes `interop_tags` sets: a frame converted to another space must not keep the old ones.
COLOUR_TAGS = ("colorInteropID", "chromaticities")


def _is_data(name: str) -> bool:
    space = config().getColorSpace(name)
    return bool(space is not None and space.isData())


def _interop_id(space: ocio.ColorSpace) -> str:
    """A config space's Color Interop Forum id (OCIO 2.5's own field, else an alias of that form), or ""."""
    interop = space.getInteropID() if hasattr(space, "getInteropID") else ""
    if not interop:
        interop = next((alias for alias in space.getAliases() if _INTEROP_ID.match(alias)), "")
    return str(interop or "") if _INTEROP_ID.match(interop or "") else ""


def _interop_primaries(space: ocio.ColorSpace) -> tuple[float, ...] | None:
    match = _INTEROP_ID.match(_interop_id(space))
    return INTEROP_PRIMARIES.get(match.group("primaries")) if match else None


def interop_tags(name: str) -> dict:
    """EXR header attributes naming ``name`` for other applications: ``colorInteropID`` (the Color
    Interop Forum id, e.g. lin_ap1_scene for ACEScg) and ``chromaticities`` where its primaries are
    known (a space of an EXR's chromaticities: those); empty for spaces without either."""
    cfg = config()
    resolved = resolve(cfg, name)
    primaries = space_chromaticities(resolved)
    if primaries is not None:
        return {"chromaticities": primaries}
    space = cfg.getColorSpace(resolved)
    interop = _interop_id(space)
    if not interop:
        return {}
    tags: dict = {"colorInteropID": interop}
    known = _interop_primaries(space)
    if known is not None:
        tags["chromaticities"] = known
    return tags


def colour_tags(name: str) -> dict:
    """Every header colour tag (`COLOUR_TAGS`) for pixels in ``name``: `interop_tags`' value, or None
    for one that must go (a tag of another space would be untrue of these pixels)."""
    return {tag: None for tag in COLOUR_TAGS} | interop_tags(name)


def primaries_disagree(name: str, chromaticities: tuple[float, ...] | None) -> bool:
    """Whether a header's ``chromaticities`` name other primaries than those of ``name`` (when both
    are known; `CHROMATICITIES_MATCH`)."""
    known = interop_tags(name).get("chromaticities")
    if chromaticities is None or known is None:
        return False
    return not np.allclose(known, chromaticities, rtol=0, atol=CHROMATICITIES_MATCH)


def convert(rgb: np.ndarray, source: str, destination: str) -> np.ndarray:
    """H×W×3 RGB from one colour space to another (a float32 copy); unchanged when they are the same."""
    if canonical(source) == canonical(destination):
        return np.array(rgb, dtype=np.float32, copy=True)
    return apply(finite_copy(rgb)[0], source, destination, copy=False)


def display_view(cfg: ocio.Config) -> tuple[str, str]:
    """The display and view review pictures are shown through: the config's default display and its
    default view (the built-in config's: "sRGB - Display", "ACES 2.0 - SDR 100 nits (Rec.709)")."""
    display = cfg.getDefaultDisplay()
    return display, cfg.getDefaultView(display)


@functools.lru_cache(maxsize=8)
def display_processor(uri: str, source: str) -> ocio.CPUProcessor:
    cfg = config_at(uri)
    display, view = display_view(cfg)
    try:
        start = resolve(cfg, source)
        transform = ocio.GroupTransform()
        if space_chromaticities(start) is not None:  # the display transform takes config spaces only
            transform.appendTransform(space_transform(cfg, start, _scene_linear(cfg)))
            start = _scene_linear(cfg)
        transform.appendTransform(ocio.DisplayViewTransform(src=start, display=display, view=view))
        return cfg.getProcessor(transform).getDefaultCPUProcessor()
    except ColourError:
        raise
    except Exception as error:
        raise ColourError(f"OpenColorIO cannot show {source!r} through display {display!r}, view {view!r}: "
                          f"{error}") from None


def to_display(rgb: np.ndarray, colourspace: str) -> np.ndarray:
    """H×W×3 RGB in ``colourspace`` as display code values (a float32 copy), through `display_view`:
    its tone map rolls scene-linear highlights off towards the display's peak instead of clipping them
    at 1.0 as a plain sRGB encode does."""
    _check_rgb(rgb)
    pixels = finite_copy(rgb)[0]
    run_processor(display_processor(config_uri(), colourspace), pixels)
    return pixels


def available_colourspaces() -> list[str]:
    """Names of the colour spaces of the config in use."""
    return [cs.getName() for cs in config().getColorSpaces()]
