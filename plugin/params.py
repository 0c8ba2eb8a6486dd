"""The ShotStyle effect's description, OpenFX style: its clips and parameters, once for every host.

The server returns ``describe()`` in its ``hello`` reply; Nuke, Resolve and the farm command
build their controls from it, so a parameter added here appears in every host. ``validate``
coerces and range-checks values a host sends (the server calls it on every request).

Groups say who uses a parameter: "Server" (how to reach it), "Training" (the train op's
``params``; names match the engine's TrainConfig fields), "Render" (the stylize op),
"Colour" (both).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Dict, List, Optional

from shotstyle.plugin.mattes import parse as parse_mattes
from shotstyle.plugin.sequences import parse_frame_range

# "mattes": text in plugin.mattes' syntax; hosts send its images as frames of the train op, never as a parameter.
KINDS = ("string", "int", "float", "bool", "choice", "frames", "mattes", "button")
AUTO = "auto"  # the value that leaves a choice to the server (colour space, loss)


@dataclass(frozen=True)
class Clip:
    name: str
    label: str
    optional: bool
    help: str


@dataclass(frozen=True)
class Param:
    name: str
    kind: str
    default: Any
    label: str
    help: str
    group: str
    min: Optional[float] = None
    max: Optional[float] = None
    choices: List[str] = field(default_factory=list)


# The default colour space rule (media.metadata.colourspace_rule) in a few words, for the knob's tooltip and
# the commands' --colourspace help.
DEFAULT_COLOURSPACE_SAID = ("the one the file records, else what its EXR chromaticities or embedded ICC profile say, "
                            "else ACEScg for float, sRGB for 8/16-bit data")

CLIPS: List[Clip] = [
    Clip("plate", "Plate", False, "The shot to restyle; its RGB is changed, alpha and other channels pass through."),
    Clip("style", "Style", False, "The style frame: an image whose look (light, grade, palette) the shot should take."),
    Clip("preview", "Preview", True, "An optional second frame of the shot, stylized alongside the keyframe while "
                                     "training so you can judge how the look carries over."),
]

PARAMS: List[Param] = [
    Param("server", "string", "", "Server", "Server address: host:port, :port, port, tcp://host:port or "
          "ipc://path (e.g. gpu-01:5599). Empty: the local server (started automatically when needed).", "Server"),
    Param("server_key", "string", "", "Server key", "A CURVE-secured server's public key file (.key, from "
          "`shotstyle keys` on the server). Empty: $SHOTSTYLE_SERVER_KEY or the shotstyle config file.", "Server"),
    Param("client_key", "string", "", "Client key", "Your key pair for a CURVE-secured server (the .key_secret "
          "file). Empty: $SHOTSTYLE_CLIENT_KEY or the shotstyle config file.", "Server"),
    Param("model", "string", "", "Model", "Name of the trained model in the server's store.", "Server"),
    Param("strength", "float", 0.5, "Strength", "How far the look goes: below 0.5 the global grade fades out "
          "(none at 0); the region-wise move weighs more against keeping the plate's structure as it rises, and "
          "lightness moves further towards the style's regions (none at 0, twice the default at 1).", "Training", 0.0, 1.0),
    Param("steps", "int", 300, "Steps", "Training iterations on the keyframe(s).", "Training", 1, 100000),
    Param("resolution", "int", 512, "Training resolution", "Longest side, in pixels, the keyframes and style are "
          "scaled to for training.", "Training", 32, 8192),
    Param("keyframes", "frames", "", "Keyframes", "Frames to train on, e.g. '1001' or '1001,1050'. Empty: the "
          "current frame.", "Training"),
    Param("loss", "choice", "auto", "Loss", "auto: target. target: the network learns a per-pixel target made "
          "on each keyframe from ImageNet features (installed with shotstyle) and the mattes. look: colour "
          "statistics against the style only, offline. vgg: VGG-19 (content conv4_2, style Gram matrices; needs "
          "its ImageNet weights).", "Training", choices=["auto", "target", "look", "vgg"]),
    Param("arch", "choice", "hrnet-fast", "Network", "Every model is a global grade (a 3D LUT) plus a network "
          "that carries where the look goes. hrnet-fast: a slim HRNet at low resolution, seeing what is where "
          "through ImageNet features, applied as a per-pixel colour transform (fast). hrnet: the full-resolution "
          "HRNet (slow). grade: the global grade alone (seconds, no training; renders what its exported .cube "
          "holds).", "Training",
          choices=["hrnet-fast", "hrnet", "grade"]),
    Param("mattes", "mattes", "", "Mattes", "Where the look goes, one entry per line or separated by ';': "
          "NAME=PLATE:STYLE, PLATE a channel of the keyframes (channel:matte.sky), an object's or material's "
          "matte in their cryptomatte (crypto:CryptoObject/sky_geo; 32-bit float layers) or matte image files, one "
          "per keyframe, separated by ','; STYLE a matte image of the style image (alpha if it has one, else its first "
          "channel; the size of its image). Or labels=PLATE_LABELS:STYLE_LABELS: label images, one flat colour a "
          "region. Needs the target loss (auto).", "Training"),
    Param("seed", "int", 0, "Seed", "Random seed; the same seed and inputs train the same model.", "Training",
          0, 2**31 - 1),
    Param("early_stop", "bool", False, "Early stop", "Stop training once the loss stops improving.", "Training"),
    Param("adaptive_content", "bool", False, "Adaptive content weight", "Raise the content weight automatically "
          "when the structure of the plate starts to break.", "Training"),
    Param("preview_every", "int", 25, "Preview every", "Send a preview image every N training steps (0: never).",
          "Training", 0, 100000),
    Param("mix", "float", 1.0, "Mix", "Blend between the plate (0) and the stylized result (1).", "Render", 0.0, 1.0),
    Param("tile", "int", 0, "Tile pixels", "Largest number of pixels stylized in one piece; bigger frames are tiled "
          "with overlap (0: automatic, from the device's memory).", "Render", 0, 1 << 28),
    Param("colourspace", "string", "auto", "Colour space", "Colour space of the plate's and style's RGB, a name from "
          f"the server's OCIO config (e.g. ACEScg, sRGB). auto: {DEFAULT_COLOURSPACE_SAID}.", "Colour"),
    Param("train", "button", None, "Train", "Train a model on the keyframe(s) with the style frame.", "Training"),
    Param("stylize_range", "button", None, "Stylize range", "Stylize every frame of the range with the model.",
          "Render"),
    Param("export_lut", "button", None, "Export LUT", "Write the model's grade (the global colour transform it "
          "learned) as a .cube 3D LUT, ACEScct in and out, with an OCIO look beside it for grading tools; says how "
          "much of the look the LUT alone carries.", "Render"),
]

_BY_NAME: Dict[str, Param] = {p.name: p for p in PARAMS}


def describe() -> Dict[str, Any]:
    """JSON-able description of clips and parameters (what ``hello`` returns)."""
    return {"clips": [asdict(c) for c in CLIPS], "params": [asdict(p) for p in PARAMS]}


def defaults() -> Dict[str, Any]:
    """Every non-button parameter at its default value."""
    return {p.name: p.default for p in PARAMS if p.kind != "button"}


def choices(name: str) -> List[str]:
    """The choices of the choice parameter ``name`` (e.g. the networks of "arch")."""
    return list(_BY_NAME[name].choices)


def help_of(name: str) -> str:
    """What the parameter ``name`` does, as its knob's tooltip says it (the CLI's help too)."""
    return _BY_NAME[name].help


def explicit(value: Optional[str]) -> Optional[str]:
    """``value``, or None when it is "auto" or empty: the one rule for "let the server decide".

    (For the colour space the server then takes the frame's default: `DEFAULT_COLOURSPACE_SAID`,
    media.metadata.colourspace_rule.)
    """
    return None if value in (None, "", AUTO) else value


def group(name: str) -> List[str]:
    """Names of the parameters in one group (e.g. "Training") that a request may carry: buttons and mattes
    (whose images travel as frames, plugin.mattes) left out."""
    return [p.name for p in PARAMS if p.group == name and p.kind not in ("button", "mattes")]


def _coerce(param: Param, value: Any) -> Any:
    kind = param.kind
    if kind == "bool":
        if isinstance(value, bool):
            return value
        if isinstance(value, (int, float)) and value in (0, 1):
            return bool(value)
        if isinstance(value, str) and value.strip().lower() in ("true", "false", "1", "0", "yes", "no", "on", "off"):
            return value.strip().lower() in ("true", "1", "yes", "on")
        raise ValueError(f"parameter '{param.name}' must be true or false, got {value!r}")
    if kind in ("int", "float"):
        if isinstance(value, bool):
            raise ValueError(f"parameter '{param.name}' must be a number, got {value!r}")
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise ValueError(f"parameter '{param.name}' must be a number, got {value!r}") from None
        if number != number or number in (float("inf"), float("-inf")):
            raise ValueError(f"parameter '{param.name}' must be a finite number, got {value!r}")
        if kind == "int":
            if number != int(number):
                raise ValueError(f"parameter '{param.name}' must be a whole number, got {value!r}")
            number = int(number)
        if param.min is not None and number < param.min or param.max is not None and number > param.max:
            raise ValueError(f"parameter '{param.name}' = {value!r} is outside its range "
                             f"[{param.min}, {param.max}]")
        return number
    if kind == "choice":
        if value not in param.choices:
            raise ValueError(f"parameter '{param.name}' must be one of {param.choices}, got {value!r}")
        return value
    if not isinstance(value, str):
        raise ValueError(f"parameter '{param.name}' must be text, got {value!r}")
    try:
        if kind == "frames" and value.strip():
            parse_frame_range(value)
        elif kind == "mattes":
            parse_mattes(value)
    except ValueError as exc:
        raise ValueError(f"parameter '{param.name}': {exc}") from None
    return value.strip()


def check(name: str, value: Any, error: Callable[[str], Exception] = ValueError) -> Any:
    """``value`` as parameter ``name`` takes it (its kind, within its range), else ``error`` with the
    message saying why: the one rule wherever a parameter's value arrives (requests, the engine,
    model files, the commands)."""
    try:
        return _coerce(_BY_NAME[name], value)
    except ValueError as exc:
        raise error(str(exc)) from None


def validate(values: Dict[str, Any], partial: bool = True) -> Dict[str, Any]:
    """Coerce and range-check ``values``; ValueError names the bad parameter.

    Returns the given values coerced; with ``partial=False`` missing ones are filled from
    their defaults. Unknown names and buttons are refused, so typos never pass silently.
    """
    if not isinstance(values, dict):
        raise ValueError(f"parameters must be a mapping of name to value, got {type(values).__name__}")
    result = {} if partial else defaults()
    for name, value in values.items():
        param = _BY_NAME.get(name)
        if param is None or param.kind == "button":
            raise ValueError(f"unknown parameter {name!r}; known: {', '.join(defaults())}")
        result[name] = _coerce(param, value)
    return result


@dataclass(frozen=True)
class FrameArgs:
    """What a frame is stylized with besides the model: the "Render" and "Colour" parameters of one
    stylize, passed whole on every hop from the command line or a host's knobs to the pixels
    (a render's backends, the client, the stylize op's arguments, the server's worker, the stages).

    Every value is checked by its parameter's rule when made (ValueError names it).
    """

    mix: float = 1.0
    colourspace: Optional[str] = None      # the input RGB's space; None: the frame's own ("auto", `explicit`)
    out_colourspace: Optional[str] = None  # the result's space; None: each input's own
    tile: int = 0                          # the most pixels stylized in one piece (0: automatic)

    def __post_init__(self) -> None:
        object.__setattr__(self, "mix", check("mix", self.mix))
        object.__setattr__(self, "tile", check("tile", self.tile))
        object.__setattr__(self, "colourspace", explicit(check("colourspace", self.colourspace or AUTO)))
        if self.out_colourspace is not None:
            object.__setattr__(self, "out_colourspace", explicit(check("colourspace", self.out_colourspace)))

    @classmethod
    def from_values(cls, values: Dict[str, Any]) -> "FrameArgs":
        """The stylize of a host's parameter values, or of the stylize op's arguments (its extras
        such as ``model`` ignored); ValueError names a bad value."""
        out = values.get("out_colourspace")
        if out is not None and not isinstance(out, str):
            raise ValueError(f"out_colourspace must be a colour space name, got {out!r}")
        return cls(values.get("mix", 1.0), values.get("colourspace"), out, values.get("tile", 0))

    def wire(self) -> Dict[str, Any]:
        """The stylize op's arguments for these (what `from_values` reads back): defaults left out."""
        args: Dict[str, Any] = {"mix": self.mix}
        if self.colourspace is not None:
            args["colourspace"] = self.colourspace
        if self.out_colourspace is not None:
            args["out_colourspace"] = self.out_colourspace
        if self.tile:
            args["tile"] = self.tile
        return args
