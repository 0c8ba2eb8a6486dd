"""The server side's exception hierarchy: every user-facing failure is one of these.

Messages are shown to artists and TDs as they are, so each one names the file or value that
is wrong and what to do about it.
"""

from __future__ import annotations


class ShotstyleError(Exception):
    """Base: message is user-facing and names what is wrong + what to do."""


class FrameIOError(ShotstyleError):
    """An image file is missing, unreadable, damaged or has an unusable channel layout.

    The message starts with the path.
    """


class MissingFramesError(FrameIOError):
    """Frames of a sequence are not on disk; `missing` lists their numbers."""

    def __init__(self, message: str, missing: list[int]):
        super().__init__(message)
        self.missing = list(missing)


class ColourError(ShotstyleError):
    """An OpenColorIO config or colour space cannot be loaded or used."""


class ModelFileError(ShotstyleError):
    """A style model file is tampered with, of an unknown architecture or a newer format."""


class WeightsUnavailableError(ShotstyleError):
    """The ImageNet VGG-19 weights cannot be found; the message says how to fetch them."""


class TrainingCancelled(ShotstyleError):
    """A training job was cancelled by its client."""
