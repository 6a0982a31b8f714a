"""The promotion gate: whether a new fine-tune becomes the alias's next version.

It compares the candidate with the alias's current version (the champion) or, for a new
alias, with its base model, and promotes only a clear improvement: the mean paired
difference above the required margin and the 95% interval's lower bound above 0.
Without an alias nothing is promoted and the gate is a check the candidate passes or not
(``sft eval --min-improvement`` in CI).
"""

from __future__ import annotations

import math
from typing import Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from sft_pipeline.evaluation.statistics import Interval, PairedComparison

# if-not-worse: a retrain of a retiring model replaces it when it is at least as good.
PromotePolicy = Literal["if-better", "if-not-worse", "always", "never"]
Against = Literal["champion", "base"]

_AGAINST_WORDS: dict[Against, str] = {"champion": "the champion", "base": "the base model"}


class GatePolicy(BaseModel):
    model_config = ConfigDict(frozen=True)

    alias: str | None = None
    promote: PromotePolicy = "if-better"
    min_improvement: float = Field(default=0.0, ge=0)

    @model_validator(mode="after")
    def _finite(self) -> Self:
        if not math.isfinite(self.min_improvement):
            raise ValueError("min_improvement must be a finite number")
        return self


class GateDecision(BaseModel):
    model_config = ConfigDict(frozen=True)

    promote: bool
    # Whether the candidate clears the policy's bar, alias or not.
    passed: bool = False
    # The contender the candidate was measured against, when there was one.
    against: Against | None
    # Candidate minus that contender: the mean paired difference and its interval's low.
    improvement: float | None
    low: float | None
    reason: str


def _signed(value: float) -> str:
    # Two decimals, unless that would round a small non-zero difference to +0.00.
    return f"{value:+.2f}" if value == 0 or abs(value) >= 0.005 else f"{value:+.1g}"


def decide(
    policy: GatePolicy,
    *,
    versus_champion: PairedComparison | None,
    versus_base: PairedComparison | None,
) -> GateDecision:
    """Promote or not, with one sentence that says why and gives the numbers.

    ``versus_*`` are the candidate's paired comparisons (candidate first).
    """
    against: Against | None
    if versus_champion is not None:
        against, comparison = "champion", versus_champion
    elif versus_base is not None:
        against, comparison = "base", versus_base
    else:
        against, comparison = None, None
    difference = comparison.difference if comparison else None

    def decision(promote: bool, reason: str, passed: bool = False) -> GateDecision:
        return GateDecision(
            promote=promote,
            passed=passed,
            against=against,
            improvement=difference.mean if difference else None,
            low=difference.low if difference else None,
            reason=reason,
        )

    if difference is None or against is None:
        if policy.alias is None:
            return decision(False, "does not pass: no evaluation set to compare the candidate on")
        measured = "no evaluation set, so nothing was measured"
        if policy.promote == "never":
            return decision(False, f"not promoted: the upload asks never to promote ({measured})")
        if policy.promote == "always":
            return decision(True, f"promoted: the upload asks always to promote ({measured})")
        return decision(False, "not promoted: no evaluation set to compare the candidate on")
    over = f"{_signed(difference.mean)} over {_AGAINST_WORDS[against]}"
    interval = f"95% interval {_signed(difference.low)} to {_signed(difference.high)}"
    passed, verdict = _bar(policy, difference, over, interval)
    if policy.alias is None:
        return decision(False, f"{'passes' if passed else 'does not pass'}: {verdict}", passed)
    if policy.promote == "never":
        reason = f"not promoted: the upload asks never to promote ({over}, {interval})"
        return decision(False, reason, passed)
    if policy.promote == "always":
        return decision(
            True, f"promoted: the upload asks always to promote ({over}, {interval})", passed
        )
    return decision(passed, f"{'promoted' if passed else 'not promoted'}: {verdict}", passed)


def _bar(policy: GatePolicy, difference: Interval, over: str, interval: str) -> tuple[bool, str]:
    """Whether the candidate clears the policy's bar, and the numbers that say so."""
    if policy.promote == "if-not-worse":
        # min_improvement is then the loss of mean score tolerated.
        if difference.mean < -policy.min_improvement or difference.high < 0:
            return False, f"{over} is worse ({interval})"
        return True, f"at least as good, {over} ({interval})"
    if difference.mean <= policy.min_improvement:
        return False, (
            f"{over} is not more than the required {policy.min_improvement:g} ({interval})"
        )
    if difference.low <= 0:
        return False, f"{over} is not significant ({interval} includes 0)"
    return True, f"{over} ({interval})"
