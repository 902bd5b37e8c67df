"""Which 30 s segments of a long file are analysed (audio.segment_starts)."""

from __future__ import annotations

import pytest

from qbsd_cli.audio import segment_starts


def test_a_file_shorter_than_a_segment_is_one_segment_from_its_start():
    assert segment_starts(12.0, 30.0, 3) == [0.0]
    assert segment_starts(0.5, 30.0, None) == [0.0]


def test_consecutive_segments_when_there_are_no_more_than_asked():
    assert segment_starts(90.0, 30.0, 3) == [0.0, 30.0, 60.0]
    # a last, partial segment counts as one
    assert segment_starts(75.0, 30.0, 3) == [0.0, 30.0, 60.0]


def test_none_keeps_every_segment():
    assert segment_starts(600.0, 30.0, None) == [30.0 * i for i in range(20)]


def test_more_segments_than_asked_are_spread_from_the_first_to_the_last_full_one():
    starts = segment_starts(600.0, 30.0, 3)
    assert starts == [0.0, 285.0, 570.0]
    assert starts[-1] + 30.0 == pytest.approx(600.0)


def test_one_segment_of_a_long_file_is_its_middle():
    # the intro and the fade-out are furthest from the middle
    assert segment_starts(600.0, 30.0, 1) == [285.0]
    start = segment_starts(100.0, 30.0, 1)[0]
    assert start + 15.0 == pytest.approx(50.0)
