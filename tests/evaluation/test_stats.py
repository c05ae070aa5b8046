"""The shared rate statistics: Wilson intervals, sample sizes and A/B verdicts."""

from __future__ import annotations

import math

import pytest

from apps.evaluation.stats import (
    NO_FINITE_N,
    compare_proportions,
    diff_interval,
    events_needed,
    wilson_interval,
)


def test_wilson_interval_matches_the_textbook_value() -> None:
    p, lower, upper = wilson_interval(8, 10)
    assert p == 0.8
    assert lower == pytest.approx(0.4902, abs=1e-4)
    assert upper == pytest.approx(0.9433, abs=1e-4)


def test_wilson_interval_of_nothing_is_the_whole_range() -> None:
    p, lower, upper = wilson_interval(0, 0)
    assert math.isnan(p) and (lower, upper) == (0.0, 1.0)


def test_wilson_interval_stays_inside_zero_and_one_at_the_edges() -> None:
    assert wilson_interval(0, 5)[1] == 0.0 and wilson_interval(0, 5)[2] < 0.5
    assert wilson_interval(5, 5)[2] == 1.0 and wilson_interval(5, 5)[1] > 0.5


def test_wilson_interval_rejects_impossible_counts() -> None:
    with pytest.raises(ValueError):
        wilson_interval(3, 2)


def test_events_needed_matches_the_classic_sample_size() -> None:
    assert events_needed(0.5, 0.55) == 1565
    assert events_needed(0.5, 0.6, confidence=0.95, power=0.8) == 388
    assert events_needed(0.3, 0.3) == NO_FINITE_N


def test_a_clear_difference_is_a_verdict_and_a_small_one_is_not() -> None:
    clear = compare_proportions(50, 100, 70, 100)
    assert clear.verdict == "better" and clear.remaining == 0
    assert compare_proportions(70, 100, 50, 100).verdict == "worse"
    vague = compare_proportions(50, 100, 52, 100)
    assert vague.verdict == "inconclusive" and vague.remaining > 1000
    same = compare_proportions(5000, 10000, 5010, 10000, min_effect=0.03)
    assert same.verdict == "no_difference"


def test_difference_interval_contains_the_observed_difference() -> None:
    d, lower, upper = diff_interval(30, 100, 45, 100)
    assert d == pytest.approx(0.15)
    assert lower < d < upper and lower > 0
