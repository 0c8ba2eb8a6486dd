"""Sequence patterns (####, %04d, $F4, @) and frame ranges, on real and temporary folders."""

from __future__ import annotations

import os

import pytest

from shotstyle.plugin.sequences import SequencePattern, format_frame_range, is_pattern, parse_frame_range
from testfiles import PLATE_FRAMES


@pytest.mark.parametrize(
    "text, frames",
    [
        ("1001-1005", [1001, 1002, 1003, 1004, 1005]),
        ("1001-1010x3", [1001, 1004, 1007, 1010]),
        ("1,5,9-12", [1, 5, 9, 10, 11, 12]),
        ("7", [7]),
        ("-3--1", [-3, -2, -1]),
        ("5, 1-2", [1, 2, 5]),
    ],
)
def test_parse_frame_range(text, frames):
    assert parse_frame_range(text) == frames


@pytest.mark.parametrize("text", ["", "1-", "a-b", "10-1", "1-10x0", "1..5"])
def test_parse_frame_range_rejects_with_the_text(text):
    with pytest.raises(ValueError) as error:
        parse_frame_range(text)
    assert repr(text) in str(error.value)


@pytest.mark.parametrize(
    "frames, text",
    [([1, 2, 3, 5, 7, 9, 11], "1-3,5-11x2"), ([1, 3], "1,3"), ([4], "4"), ([], ""), ([1001, 1002], "1001-1002")],
)
def test_format_frame_range_is_compact_and_reads_back(frames, text):
    assert format_frame_range(frames) == text
    if frames:
        assert parse_frame_range(text) == frames


@pytest.mark.parametrize(
    "pattern, padding, name",
    [
        ("shot.####.exr", 4, "shot.0012.exr"),
        ("shot.@@@@.exr", 4, "shot.0012.exr"),
        ("shot.%04d.exr", 4, "shot.0012.exr"),
        ("shot.$F4.exr", 4, "shot.0012.exr"),
        ("shot.$F.exr", 0, "shot.12.exr"),
        ("shot.%d.exr", 0, "shot.12.exr"),
    ],
)
def test_pattern_spellings(pattern, padding, name):
    sequence = SequencePattern(f"/plates/{pattern}")
    assert sequence.padding == padding
    assert sequence.path(12) == f"/plates/{name}"
    assert sequence.frame_of(f"/plates/{name}") == 12
    assert sequence.frame_of(f"/other/{name}") is None
    assert sequence.path(12345).endswith("12345.exr")
    assert is_pattern(pattern)


def test_not_a_pattern():
    assert not is_pattern("/plates/shot.0001.exr")
    assert not is_pattern("/seq_####/shot.exr")  # the token must be in the file name
    with pytest.raises(ValueError, match="not a sequence pattern"):
        SequencePattern("/plates/shot.exr")


def test_scan_and_missing(tmp_path):
    for frame in (1001, 1002, 1004):
        (tmp_path / f"shot.{frame:04d}.exr").write_bytes(b"x")
    (tmp_path / "shot.12.exr").write_bytes(b"x")  # wrong padding: not part of the sequence
    (tmp_path / "other.1003.exr").write_bytes(b"x")
    sequence = SequencePattern(str(tmp_path / "shot.####.exr"))
    assert sequence.scan() == [1001, 1002, 1004]
    assert sequence.missing(parse_frame_range("1001-1005")) == [1003, 1005]


def test_scan_every_spelling(exr_sequence, plate_clip):
    folder = os.path.dirname(exr_sequence)
    for spelling in ("shot.####.exr", "shot.%04d.exr", "shot.$F4.exr", "shot.@@@@.exr"):
        assert SequencePattern(os.path.join(folder, spelling)).scan() == [1, 2, 3]
    assert SequencePattern(plate_clip).scan() == list(range(1, PLATE_FRAMES + 1))


def test_scan_real_beachball(shared_data):
    for spelling in ("singlepart.####.exr", "singlepart.%04d.exr", "singlepart.$F4.exr"):
        assert SequencePattern(str(shared_data / "exr" / "Beachball" / spelling)).scan() == [1, 2, 3]
    assert SequencePattern(str(shared_data / "clip" / "walk.####.jpg")).scan() == list(range(1, 61))
