"""An evaluation summary as the workflow's aggregate step produces it, for the tests of what
people see of it (registry, API, notifications, model card)."""

from __future__ import annotations

from sft_pipeline.evaluation.gate import GatePolicy
from sft_pipeline.evaluation.summary import EvaluationSummary, summarise

CANDIDATE = "ft:gpt-4o-mini-2024-07-18:acme:support-a:AAA111"
BASE = "gpt-4o-mini-2024-07-18"


def evaluation_summary(policy: GatePolicy | None = None) -> EvaluationSummary:
    """The candidate right on 9 of 10 examples, the base model on 2 and few-shot on 5."""
    candidate = [1.0] * 9 + [0.0]
    base = [0.0] * 8 + [1.0] * 2
    few_shot = [1.0, 0.0] * 5
    return summarise(
        {
            "candidate": [{"exact_match": score} for score in candidate],
            "base": [{"exact_match": score} for score in base],
            "few_shot": [{"exact_match": score} for score in few_shot],
        },
        graders=["exact_match"],
        seed=7,
        latencies_ms={"candidate": [100.0, 120.0], "base": [90.0]},
        tokens={"candidate": (1200, 80), "base": (1100, 90)},
        costs={"candidate": 0.0012, "base": None},
        models={"candidate": CANDIDATE, "base": BASE, "few_shot": BASE},
        policy=policy if policy is not None else GatePolicy(alias="support-bot"),
    )
