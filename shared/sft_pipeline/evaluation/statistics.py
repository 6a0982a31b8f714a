"""Bootstrap statistics of per-example scores, deterministic for a seed.

Pure Python (the Lambda bundle has no numpy): a percentile bootstrap of the mean for one
contender, and a paired bootstrap of the per-example differences for two contenders
graded on the same examples, which is what decides whether one beats the other.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence

from pydantic import BaseModel, ConfigDict

# Scores closer than this are a tie: float noise is no win.
TIE_TOLERANCE = 1e-9


class Interval(BaseModel):
    model_config = ConfigDict(frozen=True)

    mean: float
    low: float
    high: float
    n: int


class PairedComparison(BaseModel):
    """The first contender against the second, example by example."""

    model_config = ConfigDict(frozen=True)

    wins: int
    ties: int
    losses: int
    # Mean of first minus second, with a paired bootstrap interval.
    difference: Interval


def mean_interval(
    scores: Sequence[float],
    *,
    seed: int = 0,
    resamples: int = 2000,
    confidence: float = 0.95,
) -> Interval:
    """The mean with a percentile bootstrap interval."""
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be between 0 and 1, not {confidence}")
    if resamples < 1:
        raise ValueError(f"resamples must be at least 1, not {resamples}")
    values = [float(score) for score in scores]
    n = len(values)
    if n == 0:
        return Interval(mean=0.0, low=0.0, high=0.0, n=0)
    # Dividing a correctly rounded sum can still land a hair outside nearly equal scores.
    mean = min(max(math.fsum(values) / n, min(values)), max(values))
    if n == 1 or min(values) == max(values):
        return Interval(mean=mean, low=mean, high=mean, n=n)
    rng = random.Random(seed)
    # choices() draws a whole resample in C; summing it is most of the remaining cost.
    means = sorted(sum(rng.choices(values, k=n)) / n for _ in range(resamples))
    tail = (1 - confidence) / 2
    low = means[max(0, math.floor(tail * resamples))]
    high = means[min(resamples - 1, math.ceil((1 - tail) * resamples) - 1)]
    # Rounding in the resampled sums must never put the interval outside the scores or
    # leave the mean outside its own interval.
    return Interval(
        mean=mean, low=max(min(low, mean), min(values)), high=min(max(high, mean), max(values)), n=n
    )


def compare(
    first: Sequence[float],
    second: Sequence[float],
    *,
    seed: int = 0,
    resamples: int = 2000,
    confidence: float = 0.95,
) -> PairedComparison:
    """Wins, ties and losses of ``first`` against ``second`` and the mean paired difference.

    Resampling the examples' differences keeps each example's pair together, so what
    makes an example hard for both cancels out (a paired bootstrap).
    """
    if len(first) != len(second):
        raise ValueError(
            f"paired scores need the same examples: {len(first)} against {len(second)}"
        )
    differences = [float(a) - float(b) for a, b in zip(first, second, strict=True)]
    wins = sum(1 for d in differences if d > TIE_TOLERANCE)
    losses = sum(1 for d in differences if d < -TIE_TOLERANCE)
    return PairedComparison(
        wins=wins,
        ties=len(differences) - wins - losses,
        losses=losses,
        difference=mean_interval(
            differences, seed=seed, resamples=resamples, confidence=confidence
        ),
    )
