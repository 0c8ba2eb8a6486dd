"""The artist's mattes from read frames to the engine's `Matte`s: one rule for `train --in-process`
and for a server's training job.

An image's matte is its alpha channel if it has one, else its first channel (`media.reading` reads
8/16-bit files as 0..1); a plate matte may instead be a channel of every keyframe, or a named matte
of every keyframe's cryptomatte layer (`media.cryptomatte`); label images
become one matte per flat colour present in all of them (`engine.mattes.label_mattes`). Nothing
is resized: `check_mattes` refuses a matte that is not the size of its image, naming its file.
"""

from __future__ import annotations

import numpy as np

from shotstyle.media import cryptomatte
from shotstyle.media.frame import Frame
from shotstyle.media.orientation import upright
from shotstyle.plugin.mattes import Mattes, crypto_reference
from shotstyle.server.engine.mattes import MIN_LABEL_SHARE, Matte, check_mattes, label_mattes
from shotstyle.server.errors import TrainingInputError

# The colour space matte and label images are read in: they are data, read as stored (a space given
# means no embedded ICC profile's curves decode them: media/metadata.colourspace_rule), so a soft
# matte keeps its values and two label images keep the same colours whatever profiles they carry.
MATTE_COLOURSPACE = "Raw"


def matte_of(frame: Frame) -> np.ndarray:
    """The H×W matte an image holds: its alpha channel if it has one, else its first channel."""
    alpha = frame.alpha_index()
    return np.ascontiguousarray(frame.pixels[:, :, 0 if alpha is None else alpha], dtype=np.float32)


def channel_of(frame: Frame, channel: str) -> np.ndarray:
    """Channel ``channel`` of a keyframe as an H×W matte; TrainingInputError naming the file and its channels."""
    if channel not in frame.channels:
        raise TrainingInputError(f"{frame.source or 'keyframe'}: no channel {channel!r} to take a plate matte from "
                                 f"(its channels: {', '.join(frame.channels)}); name one of them")
    return np.ascontiguousarray(frame.pixels[:, :, frame.channels.index(channel)], dtype=np.float32)


def keyframe_mattes(keyframes: list[Frame], channel: str) -> list[np.ndarray]:
    """The plate mattes a keyframe channel reference gives (a channel, or ``crypto:LAYER/NAME``), one per
    keyframe; TrainingInputError naming the file, or the name no keyframe holds."""
    try:
        crypto = crypto_reference(channel)
        if crypto is None:
            return [channel_of(k, channel) for k in keyframes]
        found = [cryptomatte.matte(k, *crypto) for k in keyframes]
    except ValueError as exc:
        raise TrainingInputError(str(exc)) from None
    if not any(m.any() for m in found):
        raise TrainingInputError(f"{', '.join(k.source or f'keyframe {i + 1}' for i, k in enumerate(keyframes))}: "
                                 f"{cryptomatte.not_found(keyframes[0], *crypto)}")
    return found


def engine_mattes(mattes: Mattes[Frame], keyframes: list[Frame], style: Frame) -> list[Matte]:
    """The engine's mattes for ``keyframes`` and ``style`` (read frames, the style upright), checked
    against their sizes; the style's matte and label images are taken upright as it is
    (media/orientation.py: each by its own orientation tag)."""
    found = []
    for pair in mattes.pairs:
        sources: list[str | None]
        if pair.channel is not None:
            plate = keyframe_mattes(keyframes, pair.channel)
            sources = [f"channel {pair.channel} of {k.source or f'keyframe {i + 1}'}" for i, k in enumerate(keyframes)]
        else:
            plate, sources = [matte_of(m) for m in pair.plate], [m.source for m in pair.plate]
        found.append(Matte(pair.name, plate, matte_of(upright(pair.style)), [*sources, pair.style.source]))
    if mattes.labels is not None:
        plates, style_labels = mattes.labels
        style_labels = upright(style_labels)
        for matte in label_mattes([p.rgb() for p in plates], style_labels.rgb()):
            matte.sources = [*(p.source for p in plates), style_labels.source]
            found.append(matte)
        if len(found) == len(mattes.pairs):
            raise TrainingInputError(f"label images {', '.join(str(f.source) for f in [*plates, style_labels])}: "
                                     f"no flat colour covers {MIN_LABEL_SHARE:.0%} of each of them; draw the same colours in both")
    check_mattes(found, [k.pixels for k in keyframes], style.pixels)
    return found
