"""Bootstrap intervals and paired comparisons: properties over random scores."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sft_pipeline.evaluation.statistics import compare, mean_interval

FAST = settings(max_examples=60, deadline=None)
# Few resamples keep the property tests quick; the properties hold for any number.
RESAMPLES = 200

scores = st.lists(st.floats(min_value=0, max_value=1), min_size=1, max_size=60)
seeds = st.integers(min_value=0, max_value=2**32)


@FAST
@given(scores, seeds)
def test_two_identical_contenders_differ_by_exactly_zero(values: list[float], seed: int) -> None:
    comparison = compare(values, values, seed=seed, resamples=RESAMPLES)
    assert (comparison.wins, comparison.ties, comparison.losses) == (0, len(values), 0)
    assert comparison.difference.mean == 0.0
    assert comparison.difference.low <= 0.0 <= comparison.difference.high


@FAST
@given(
    st.lists(
        st.tuples(st.floats(min_value=0, max_value=0.9), st.floats(min_value=0.01, max_value=0.1)),
        min_size=1,
        max_size=60,
    ),
    seeds,
)
def test_a_strictly_better_contender_is_detected(
    pairs: list[tuple[float, float]], seed: int
) -> None:
    worse = [base for base, _ in pairs]
    better = [base + gain for base, gain in pairs]
    comparison = compare(better, worse, seed=seed, resamples=RESAMPLES)
    assert comparison.wins == len(pairs)
    assert comparison.difference.low > 0
    reverse = compare(worse, better, seed=seed, resamples=RESAMPLES)
    assert reverse.losses == len(pairs)
    assert reverse.difference.high < 0


@FAST
@given(scores, seeds)
def test_the_interval_contains_the_mean_and_is_deterministic(
    values: list[float], seed: int
) -> None:
    interval = mean_interval(values, seed=seed, resamples=RESAMPLES)
    assert interval.n == len(values)
    assert interval.low <= interval.mean <= interval.high
    assert min(values) <= interval.low and interval.high <= max(values)
    assert interval == mean_interval(values, seed=seed, resamples=RESAMPLES)


@FAST
@given(scores, scores, seeds)
def test_comparisons_are_deterministic_for_a_seed(
    first: list[float], second: list[float], seed: int
) -> None:
    size = min(len(first), len(second))
    one = compare(first[:size], second[:size], seed=seed, resamples=RESAMPLES)
    assert one == compare(first[:size], second[:size], seed=seed, resamples=RESAMPLES)
    assert one.wins + one.ties + one.losses == size


def test_hand_made_interval() -> None:
    values = [0.0, 1.0] * 50  # mean 0.5, standard error 0.05
    interval = mean_interval(values, seed=3)
    assert interval.mean == 0.5
    # The normal approximation gives 0.5 +- 0.098; the bootstrap lands close to it.
    assert interval.low == pytest.approx(0.402, abs=0.03)
    assert interval.high == pytest.approx(0.598, abs=0.03)
    assert mean_interval(values, seed=3) == interval


def test_the_seed_is_used() -> None:
    values = [i / 97 for i in range(97)]
    assert mean_interval(values, seed=1) != mean_interval(values, seed=2)


def test_a_different_seed_moves_the_interval_only_a_little() -> None:
    values = [i % 7 / 6 for i in range(300)]
    first, second = mean_interval(values, seed=1), mean_interval(values, seed=2)
    assert first.mean == second.mean
    assert first.low == pytest.approx(second.low, abs=0.02)


def test_edge_cases() -> None:
    assert mean_interval([]).model_dump() == {"mean": 0.0, "low": 0.0, "high": 0.0, "n": 0}
    assert mean_interval([0.7]).model_dump() == {"mean": 0.7, "low": 0.7, "high": 0.7, "n": 1}
    tie = compare([0.5, 0.5 + 1e-12], [0.5 + 1e-12, 0.5])
    assert (tie.wins, tie.ties, tie.losses) == (0, 2, 0)
    with pytest.raises(ValueError, match="same examples"):
        compare([1.0, 0.0], [1.0])
    with pytest.raises(ValueError, match="confidence"):
        mean_interval([1.0, 0.0], confidence=1.5)


def test_the_mean_of_nearly_equal_scores_stays_inside_them() -> None:
    # fsum / n of these lands above the largest score unless the mean is kept within them.
    values = [0.825263298673666] * 4 + [0.8252632986736659]
    interval = mean_interval(values, seed=0, resamples=RESAMPLES)
    assert min(values) <= interval.low <= interval.mean <= interval.high <= max(values)
