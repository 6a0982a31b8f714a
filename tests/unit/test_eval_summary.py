"""The evaluation summary, its gate decision and its score table."""

from __future__ import annotations

import pytest

from sft_pipeline.evaluation.gate import GatePolicy
from sft_pipeline.evaluation.summary import SCORE_TABLE_HEADER, score_table, summarise

MODELS = {
    "candidate": "ft:gpt-4o-mini-2024-07-18:acme::v3",
    "base": "gpt-4o-mini-2024-07-18",
    "few_shot": "gpt-4o-mini-2024-07-18",
    "champion": "ft:gpt-4o-mini-2024-07-18:acme::v2",
}


def grades(primary: list[float]) -> list[dict[str, float]]:
    return [{"exact_match": score, "normalised_match": min(1.0, score + 0.5)} for score in primary]


CANDIDATE = [1.0] * 18 + [0.0] * 2
BASE = [1.0] * 4 + [0.0] * 16
FEW_SHOT = [1.0] * 10 + [0.0] * 10


def test_summary_scores_and_compares_every_contender_with_the_candidate() -> None:
    summary = summarise(
        {"few_shot": grades(FEW_SHOT), "candidate": grades(CANDIDATE), "base": grades(BASE)},
        graders=["exact_match", "normalised_match"],
        seed=5,
        latencies_ms={"candidate": [100.0, 300.0]},
        tokens={"candidate": (1000, 200)},
        costs={"candidate": 0.0005, "base": None},
        models=MODELS,
        policy=GatePolicy(alias="support-bot"),
    )
    assert (summary.examples, summary.primary, summary.seed) == (20, "exact_match", 5)
    assert [r.name for r in summary.contenders] == ["candidate", "base", "few_shot"]
    candidate = summary.result("candidate")
    assert candidate is not None
    assert candidate.score.mean == 0.9
    assert candidate.scores == {"exact_match": 0.9, "normalised_match": 0.95}
    assert candidate.versus_candidate is None
    assert (candidate.mean_latency_ms, candidate.input_tokens, candidate.cost_usd) == (
        200.0,
        1000,
        0.0005,
    )
    base = summary.result("base")
    assert base is not None and base.versus_candidate is not None
    assert (
        base.versus_candidate.wins,
        base.versus_candidate.ties,
        base.versus_candidate.losses,
    ) == (14, 6, 0)
    assert base.versus_candidate.difference.mean == pytest.approx(0.7)
    assert base.mean_latency_ms is None and base.cost_usd is None
    # No champion: the base model is the bar, and the candidate clears it.
    assert summary.decision is not None and summary.decision.promote
    assert summary.decision.against == "base"
    assert summary.decision.improvement == pytest.approx(0.7)


def test_the_champion_decides_when_there_is_one() -> None:
    per_example = {
        "candidate": grades(CANDIDATE),
        "base": grades(BASE),
        "champion": grades(CANDIDATE),
    }
    summary = summarise(
        per_example, graders=["exact_match"], seed=0, models=MODELS, policy=GatePolicy(alias="bot")
    )
    assert summary.decision is not None
    assert not summary.decision.promote
    assert summary.decision.against == "champion"
    assert summary.decision.improvement == 0.0


def test_the_summary_is_deterministic_for_a_seed() -> None:
    per_example = {"candidate": grades(CANDIDATE), "base": grades(BASE)}

    def run(seed: int) -> object:
        return summarise(
            per_example, graders=["exact_match"], seed=seed, models=MODELS, policy=None
        )

    assert run(1) == run(1)


def test_no_policy_no_decision_and_bad_inputs_are_refused() -> None:
    summary = summarise(
        {"candidate": grades(CANDIDATE)},
        graders=["exact_match"],
        seed=0,
        models=MODELS,
        policy=None,
    )
    assert summary.decision is None
    with pytest.raises(ValueError, match="different numbers of examples"):
        summarise(
            {"candidate": grades(CANDIDATE), "base": grades(BASE[:3])},
            graders=["exact_match"],
            seed=0,
            models=MODELS,
            policy=None,
        )
    with pytest.raises(ValueError, match="unknown contenders"):
        summarise({"rival": []}, graders=["exact_match"], seed=0, models=MODELS, policy=None)


def test_an_empty_evaluation_is_not_promoted() -> None:
    summary = summarise(
        {"candidate": [], "base": []},
        graders=["exact_match"],
        seed=0,
        models=MODELS,
        policy=GatePolicy(alias="bot"),
    )
    assert summary.examples == 0
    assert summary.decision is not None and not summary.decision.promote
    assert "no evaluation set" in summary.decision.reason


def test_score_table_rows() -> None:
    summary = summarise(
        {"candidate": grades(CANDIDATE), "base": grades(BASE)},
        graders=["exact_match"],
        seed=0,
        models=MODELS,
        policy=None,
    )
    header, candidate, base = score_table(summary)
    assert header == SCORE_TABLE_HEADER
    assert candidate[:3] == ["candidate", MODELS["candidate"], "0.900"]
    assert candidate[4] == "-"
    low, high = (float(x) for x in candidate[3].split(" to "))
    assert low <= 0.9 <= high
    assert base[0] == "base" and base[2] == "0.200"
    assert base[4] == "14/6/0"
