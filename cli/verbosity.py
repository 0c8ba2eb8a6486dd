"""How much a command says: ``-q/--quiet``, ``-v/--verbose`` and ``--log-file PATH``, taken by every command.

`cli` adds the options to each command's parser and applies them around the command: the
level is the ``shotstyle`` logger's (WARNING quiet, INFO by default, DEBUG verbose), which the
printers the commands share ask before writing (`shows`): train's progress bar and notes, and
render's per-frame lines. Quiet keeps errors and failures; verbose writes a progress line at
every step instead of every few percent in a log (and `info` prints every file's headers).
``--log-file`` appends a time-stamped copy of every line the command prints, on either
stream, to PATH (a progress bar redrawn in place is copied as one line per redraw).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import logging
import sys
import time
from typing import Iterator, TextIO, cast

LOGGER = logging.getLogger("shotstyle")
# What a message is: an error or failure (said even with --quiet), a note, a detail (-v).
ERRORS, NORMAL, VERBOSE = logging.WARNING, logging.INFO, logging.DEBUG
LOGGER.setLevel(NORMAL)  # notes are said by default, also where no command set a level (a printer used alone)
# What a terminal's in-place redraw starts with (carriage return, erase line).
REDRAW = "\r\x1b[K"


def add_options(parser: argparse.ArgumentParser) -> None:
    talk = parser.add_mutually_exclusive_group()
    talk.add_argument("-q", "--quiet", action="store_true", help="say only errors and failures: no progress or notes")
    talk.add_argument("-v", "--verbose", action="store_true",
                      help="say more: a progress line at every training step, every file's headers (info)")
    parser.add_argument("--log-file", metavar="PATH",
                        help="also append every line the command prints, time-stamped, to PATH")


def shows(level: int) -> bool:
    """Whether a message of ``level`` (ERRORS, NORMAL, VERBOSE) is said at the level chosen."""
    return LOGGER.isEnabledFor(level)


@contextlib.contextmanager
def applied(args: argparse.Namespace) -> Iterator[None]:
    """The level ``args`` ask for, and the log file's copy of stdout and stderr, while the command runs."""
    previous = LOGGER.level
    LOGGER.setLevel(ERRORS if args.quiet else VERBOSE if args.verbose else NORMAL)
    try:
        if args.log_file is None:
            yield
            return
        with open(args.log_file, "a", encoding="utf-8") as log:
            streams = sys.stdout, sys.stderr
            sys.stdout, sys.stderr = (cast(TextIO, Copied(stream, log)) for stream in streams)
            try:
                yield
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                sys.stdout, sys.stderr = streams
    finally:
        LOGGER.setLevel(previous)


class Copied(io.TextIOBase):
    """A text stream whose complete lines are also appended, time-stamped, to a log."""

    def __init__(self, stream: TextIO, log: TextIO):
        super().__init__()
        self.stream, self.log = stream, log
        self._line = ""

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return self.stream.encoding

    def write(self, text: str) -> int:
        self.stream.write(text)
        self._line += text.replace(REDRAW, "\n")
        *lines, self._line = self._line.split("\n")
        for line in lines:
            if line:
                self.log.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {line}\n")
        return len(text)

    def flush(self) -> None:
        self.stream.flush()
        self.log.flush()

    def isatty(self) -> bool:
        return self.stream.isatty()

    def fileno(self) -> int:
        return self.stream.fileno()
