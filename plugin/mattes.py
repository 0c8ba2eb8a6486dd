"""The artist's mattes for a training: how they are written, and how they travel in a train request.

Written the same way everywhere (``shotstyle train --matte``/``--labels``, the Nuke node's and the
Resolve dialog's Mattes field), one entry per line or separated by ';'::

    NAME=PLATE:STYLE                    one named matte: this plate region takes that style region's look
    labels=PLATE_LABELS:STYLE_LABELS    label images: one matte per flat colour present in both

PLATE is ``channel:CHANNEL`` (that channel of every keyframe, e.g. ``channel:matte.sky``),
``crypto:LAYER/NAME`` (the matte of the object or material NAME in every keyframe's cryptomatte
layer LAYER, e.g. ``crypto:CryptoObject/sky_geo``, or of every name its manifest lists that a
pattern such as ``window_*`` matches; NAME may hold ':' and '/'; the layer must be stored as 32-bit
float: media.cryptomatte) or matte image files, one per keyframe in keyframe order, separated by
','. STYLE is a matte image of the style image. An image's matte is its alpha channel if it has
one, else its first channel; 8/16-bit files read as 0..1. Mattes are never resized: each must be
the size of the image it marks. PLATE_LABELS and STYLE_LABELS are label images (one flat colour per
region), PLATE_LABELS one per keyframe separated by ','. Here file names cannot contain ':', ',' or
';'.

On the wire (``protocol.OP_TRAIN``) every matte or label image is a frame of the request with
``extra.role`` "matte" (``extra.matte``: its name) or "labels", and ``extra.of``: "style" or the
index of the keyframe it marks; ``args.matte_channels`` maps a name to the keyframe channel that is
its plate matte (a channel name, or ``crypto:LAYER/NAME`` as written). Standard library only (hosts
use it).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Generic, List, Optional, Tuple, TypeVar

from shotstyle.plugin.codec import EncodedFrame
from shotstyle.plugin.protocol import MAX_MATTE_FRAMES, MAX_MATTES, ProtocolError
from shotstyle.plugin.quoting import brief

F = TypeVar("F")
G = TypeVar("G")

LABELS = "labels"            # the entry name that gives label images
CHANNEL_PREFIX = "channel:"  # a plate matte that is a channel of the keyframes
CRYPTO_PREFIX = "crypto:"    # a plate matte that is a cryptomatte's named matte in the keyframes
ROLE_MATTE, ROLE_LABELS = "matte", "labels"
OF_STYLE = "style"
SYNTAX = ("write NAME=PLATE:STYLE (PLATE: channel:CHANNEL, crypto:LAYER/NAME, or matte image files, one per "
          "keyframe, separated by ','; STYLE: a matte image of the style image), or labels=PLATE_LABELS:STYLE_LABELS")
_NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")
MAX_CHANNEL_CHARS = 256


@dataclass
class MattePair(Generic[F]):
    """One named matte: its style image's matte, and the plate's as images (one per keyframe) or a channel."""
    name: str
    style: F
    plate: List[F] = field(default_factory=list)
    channel: Optional[str] = None     # a keyframe channel, or a cryptomatte's matte (crypto:LAYER/NAME)


@dataclass
class Mattes(Generic[F]):
    """Every matte of a training; ``F`` is how an image is held (a path, a wire frame, a decoded frame)."""
    pairs: List[MattePair[F]] = field(default_factory=list)
    labels: Optional[Tuple[List[F], F]] = None   # (a label image per keyframe, the style's)

    def __bool__(self) -> bool:
        return bool(self.pairs) or self.labels is not None

    def map(self, convert: Callable[[F], G]) -> "Mattes[G]":
        """The same mattes with every image converted (read, encoded, decoded)."""
        labels = None if self.labels is None else ([convert(p) for p in self.labels[0]], convert(self.labels[1]))
        return Mattes([MattePair(p.name, convert(p.style), [convert(m) for m in p.plate], p.channel)
                       for p in self.pairs], labels)

    def images(self) -> List[F]:
        """Every image, plate sides first."""
        images = [m for p in self.pairs for m in [*p.plate, p.style]]
        return images + ([*self.labels[0], self.labels[1]] if self.labels is not None else [])

    def check(self, keyframes: int) -> None:
        """ValueError naming the matte, unless every plate side has one image per keyframe (or a channel)."""
        sides = [(f"matte {p.name!r}", p.plate) for p in self.pairs if p.channel is None]
        sides += [("the plate labels", self.labels[0])] if self.labels is not None else []
        for what, images in sides:
            if len(images) != keyframes:
                raise ValueError(f"{what}: {len(images)} plate image(s) for {keyframes} keyframe(s): give one per "
                                 "keyframe, in keyframe order, separated by ','" +
                                 ("" if what.startswith("the") else
                                  ", or a channel of the keyframes (channel:NAME) or their cryptomatte (crypto:LAYER/NAME)"))


def crypto_reference(channel: str) -> Optional[Tuple[str, str]]:
    """(layer, name) of a plate matte given as ``crypto:LAYER/NAME``; None for a plain channel name;
    ValueError when the layer or the name is missing."""
    if not channel.startswith(CRYPTO_PREFIX):
        return None
    layer, _, name = channel[len(CRYPTO_PREFIX):].partition("/")
    if not layer or not name:
        raise ValueError(f"{brief(channel)}: write {CRYPTO_PREFIX}LAYER/NAME, e.g. {CRYPTO_PREFIX}CryptoObject/sky_geo")
    return layer, name


def _name(name: str) -> str:
    if not _NAME.fullmatch(name) or name == LABELS:
        raise ValueError(f"matte name {brief(name)}: use 1-64 letters, digits, '_', '.' or '-' (not {LABELS!r})")
    return name


def parse(text: str) -> Mattes[str]:
    """The mattes written in ``text`` (see the module doc); ValueError names the entry and the syntax."""
    mattes: Mattes[str] = Mattes()
    for entry in (e.strip() for e in re.split(r"[;\n]", text)):
        if not entry:
            continue
        name, _, rest = (part.strip() for part in entry.partition("="))
        channel: Optional[str] = None
        plate: List[str] = []
        if rest.startswith(CHANNEL_PREFIX) and name != LABELS:
            channel, _, style = (part.strip() for part in rest[len(CHANNEL_PREFIX):].partition(":"))
        elif rest.startswith(CRYPTO_PREFIX) and name != LABELS:
            # The style file name has no ':' (see the module doc); a cryptomatte name may.
            channel, _, style = (part.strip() for part in rest.rpartition(":"))
            if not channel.startswith(CRYPTO_PREFIX):
                raise ValueError(f"matte {entry!r}: {SYNTAX}")
            try:
                crypto_reference(channel)
            except ValueError as exc:
                raise ValueError(f"matte {entry!r}: {exc}") from None
        else:
            plates, _, style = (part.strip() for part in rest.partition(":"))
            plate = [p.strip() for p in plates.split(",")] if plates else []
        if not name or not style or not (plate or channel) or "" in plate:
            raise ValueError(f"matte {entry!r}: {SYNTAX}")
        if name == LABELS:
            if mattes.labels is not None:
                raise ValueError(f"matte {entry!r}: label images are given twice; give one labels= entry")
            mattes.labels = (plate, style)
        elif any(p.name == name for p in mattes.pairs):
            raise ValueError(f"matte {entry!r}: the name {name!r} is given twice; give each matte one name")
        else:
            mattes.pairs.append(MattePair(_name(name), style, plate, channel))
    if len(mattes.pairs) > MAX_MATTES:
        raise ValueError(f"{len(mattes.pairs)} mattes: give at most {MAX_MATTES}")
    return mattes


def to_wire(mattes: Mattes[EncodedFrame]) -> Tuple[Dict[str, Any], List[EncodedFrame]]:
    """The train request's ``args`` entries and frames that carry ``mattes`` (see the module doc)."""
    frames = []
    for pair in mattes.pairs:
        frames.append(pair.style.tagged(role=ROLE_MATTE, matte=pair.name, of=OF_STYLE))
        frames += [m.tagged(role=ROLE_MATTE, matte=pair.name, of=i) for i, m in enumerate(pair.plate)]
    if mattes.labels is not None:
        frames.append(mattes.labels[1].tagged(role=ROLE_LABELS, of=OF_STYLE))
        frames += [m.tagged(role=ROLE_LABELS, of=i) for i, m in enumerate(mattes.labels[0])]
    channels = {p.name: p.channel for p in mattes.pairs if p.channel is not None}
    return ({"matte_channels": channels} if channels else {}), frames


def from_wire(args: Dict[str, Any], frames: List[EncodedFrame], keyframes: int) -> Mattes[EncodedFrame]:
    """The mattes a train request carries (its matte and label frames, ``args.matte_channels``), checked
    against the bounds; ProtocolError("bad_argument" / "too_large") says what is wrong."""
    channels = args.get("matte_channels", {})
    if not isinstance(channels, dict) or not all(
            isinstance(c, str) and 0 < len(c) <= MAX_CHANNEL_CHARS and c.isprintable() for c in channels.values()):
        raise ProtocolError("bad_argument", f"matte_channels must map matte names to keyframe channel names; got "
                                            f"{brief(channels)}")
    names = set(channels) | {f.extra["matte"] for f in frames if isinstance(f.extra.get("matte"), str)}
    if len(frames) > MAX_MATTE_FRAMES or len(names) > MAX_MATTES:
        raise ProtocolError("too_large", f"a train request carries at most {MAX_MATTES} mattes in at most "
                                         f"{MAX_MATTE_FRAMES} matte and label images")
    found: Dict[str, Dict[Any, EncodedFrame]] = {}   # name (LABELS for label images) -> of -> image
    try:
        for name, channel in channels.items():
            _name(name)
            crypto_reference(channel)
        for frame in frames:
            of = frame.extra.get("of")
            if of != OF_STYLE and (not isinstance(of, int) or isinstance(of, bool) or not 0 <= of < keyframes):
                raise ValueError(f"a matte image's 'of' must be {OF_STYLE!r} or a keyframe index 0-{keyframes - 1}; "
                                 f"got {brief(of)}")
            matte = frame.extra.get("matte")
            name = LABELS if frame.extra.get("role") == ROLE_LABELS else _name(matte if isinstance(matte, str) else "")
            if of in found.setdefault(name, {}):
                raise ValueError(f"{name!r} has two images for {'the style' if of == OF_STYLE else f'keyframe {of}'}")
            found[name][of] = frame
        labels_side = found.pop(LABELS, None)
        pairs = []
        for name in dict.fromkeys([*found, *channels]):   # in the order they were given
            side = found.get(name, {})
            style = side.pop(OF_STYLE, None)
            if style is None:
                raise ValueError(f"matte {name!r} has no style matte")
            if name in channels and side:
                raise ValueError(f"matte {name!r} has both a channel and plate matte images")
            pairs.append(MattePair(name, style, [side[i] for i in sorted(side)], channels.get(name)))
        labels = None
        if labels_side is not None:
            style = labels_side.pop(OF_STYLE, None)
            if style is None:
                raise ValueError("the label images have no style label image")
            labels = ([labels_side[i] for i in sorted(labels_side)], style)
        mattes = Mattes(pairs, labels)
        mattes.check(keyframes)
    except ValueError as exc:
        raise ProtocolError("bad_argument", f"train mattes: {exc}") from None
    return mattes
