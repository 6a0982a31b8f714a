"""The promotion gate: each policy, the margin, champion before base, no evaluation set."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from sft_pipeline.evaluation.gate import GatePolicy, decide
from sft_pipeline.evaluation.statistics import Interval, PairedComparison


def comparison(mean: float, low: float, high: float) -> PairedComparison:
    return PairedComparison(
        wins=6, ties=2, losses=2, difference=Interval(mean=mean, low=low, high=high, n=10)
    )


CLEAR = comparison(0.12, 0.05, 0.19)
NOISY = comparison(0.03, -0.02, 0.08)
WORSE = comparison(-0.10, -0.20, -0.01)
IF_BETTER = GatePolicy(alias="support-bot")


def test_if_better_promotes_a_clear_improvement_over_the_champion() -> None:
    decision = decide(IF_BETTER, versus_champion=CLEAR, versus_base=WORSE)
    assert decision.promote
    assert (decision.against, decision.improvement, decision.low) == ("champion", 0.12, 0.05)
    assert decision.reason == "promoted: +0.12 over the champion (95% interval +0.05 to +0.19)"


def test_without_a_champion_the_base_model_is_the_bar() -> None:
    decision = decide(IF_BETTER, versus_champion=None, versus_base=CLEAR)
    assert decision.promote
    assert decision.against == "base"
    assert "over the base model" in decision.reason


def test_the_champion_is_the_bar_even_when_the_base_is_beaten() -> None:
    decision = decide(IF_BETTER, versus_champion=WORSE, versus_base=CLEAR)
    assert not decision.promote
    assert decision.against == "champion"
    assert decision.reason.startswith("not promoted: -0.10 over the champion")


def test_an_interval_reaching_zero_is_not_enough() -> None:
    decision = decide(IF_BETTER, versus_champion=NOISY, versus_base=None)
    assert not decision.promote
    assert decision.reason == (
        "not promoted: +0.03 over the champion is not significant "
        "(95% interval -0.02 to +0.08 includes 0)"
    )


@pytest.mark.parametrize(
    ("required", "promoted"), [(0.0, True), (0.1, True), (0.12, False), (0.2, False)]
)
def test_min_improvement_is_a_strict_margin(required: float, promoted: bool) -> None:
    policy = GatePolicy(alias="bot", min_improvement=required)
    decision = decide(policy, versus_champion=None, versus_base=CLEAR)
    assert decision.promote is promoted
    if not promoted:
        assert f"is not more than the required {required:g}" in decision.reason


def test_always_and_never_ignore_the_numbers_but_report_them() -> None:
    always = decide(
        GatePolicy(alias="bot", promote="always"), versus_champion=WORSE, versus_base=None
    )
    assert always.promote
    assert always.improvement == -0.10
    assert "asks always to promote" in always.reason
    never = decide(
        GatePolicy(alias="bot", promote="never"), versus_champion=CLEAR, versus_base=None
    )
    assert not never.promote
    assert "asks never to promote" in never.reason and "+0.12" in never.reason


def test_no_alias_never_promotes_and_says_whether_the_candidate_passes() -> None:
    for promote in ("if-better", "always", "never"):
        decision = decide(GatePolicy(promote=promote), versus_champion=None, versus_base=CLEAR)
        assert not decision.promote and decision.passed
        assert decision.reason == "passes: +0.12 over the base model (95% interval +0.05 to +0.19)"
    noisy = decide(GatePolicy(), versus_champion=None, versus_base=NOISY)
    assert not noisy.promote and not noisy.passed
    assert noisy.reason.startswith("does not pass: +0.03 over the base model is not significant")
    short = decide(GatePolicy(min_improvement=0.2), versus_champion=None, versus_base=CLEAR)
    assert not short.passed
    assert "is not more than the required 0.2" in short.reason
    unmeasured = decide(GatePolicy(), versus_champion=None, versus_base=None)
    assert not unmeasured.passed
    assert unmeasured.reason == "does not pass: no evaluation set to compare the candidate on"


def test_whether_the_candidate_passes_does_not_depend_on_the_promote_policy() -> None:
    for promote in ("if-better", "always", "never"):
        policy = GatePolicy(alias="bot", promote=promote)
        assert decide(policy, versus_champion=CLEAR, versus_base=None).passed
        assert not decide(policy, versus_champion=NOISY, versus_base=None).passed


def test_no_evaluation_set_is_never_promoted_if_better() -> None:
    decision = decide(IF_BETTER, versus_champion=None, versus_base=None)
    assert not decision.promote
    assert (decision.against, decision.improvement, decision.low) == (None, None, None)
    assert "no evaluation set" in decision.reason


def test_a_tiny_difference_is_not_shown_as_zero() -> None:
    decision = decide(
        GatePolicy(alias="bot", min_improvement=0.005),
        versus_champion=comparison(0.004, 0.001, 0.007),
        versus_base=None,
    )
    assert "+0.004 over the champion is not more than the required 0.005" in decision.reason


@pytest.mark.parametrize("bad", [-0.1, float("inf"), float("nan")])
def test_min_improvement_must_be_finite_and_not_negative(bad: float) -> None:
    with pytest.raises(ValidationError):
        GatePolicy(alias="bot", min_improvement=bad)
