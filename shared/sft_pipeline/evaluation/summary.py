"""An evaluation's summary: each contender's score with its interval, how the candidate
fares against each other contender, and the gate's decision; and the rows of the small
score table the terminal, the email and Slack show.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from pydantic import BaseModel, ConfigDict

from sft_pipeline.evaluation.contenders import CONTENDER_NAMES, ContenderName
from sft_pipeline.evaluation.gate import GateDecision, GatePolicy, decide
from sft_pipeline.evaluation.statistics import Interval, PairedComparison, compare, mean_interval

SCORE_TABLE_HEADER = ["contender", "model", "score", "95% interval", "candidate W/T/L"]


class ContenderResult(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: ContenderName
    model: str
    # The primary grader's mean, with its bootstrap interval.
    score: Interval
    # Mean per grader.
    scores: dict[str, float]
    # The candidate against this contender (candidate first: wins are the candidate's and
    # the difference is candidate minus this contender); None for the candidate itself.
    versus_candidate: PairedComparison | None
    mean_latency_ms: float | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float | None = None


class EvaluationSummary(BaseModel):
    model_config = ConfigDict(frozen=True)

    examples: int
    graders: list[str]
    primary: str
    seed: int
    contenders: list[ContenderResult]
    decision: GateDecision | None

    def result(self, name: ContenderName) -> ContenderResult | None:
        return next((result for result in self.contenders if result.name == name), None)


def summarise(
    per_example: Mapping[str, Sequence[Mapping[str, float]]],
    *,
    graders: list[str],
    seed: int,
    latencies_ms: Mapping[str, Sequence[float]] = {},
    tokens: Mapping[str, tuple[int, int]] = {},
    costs: Mapping[str, float | None] = {},
    models: Mapping[str, str],
    policy: GatePolicy | None,
) -> EvaluationSummary:
    """Statistics of every contender's grades (one dict per example, the same examples in
    the same order for all), the candidate's comparisons and the gate's decision."""
    unknown = set(per_example) - set(CONTENDER_NAMES)
    if unknown:
        raise ValueError(f"unknown contenders: {sorted(unknown)}")
    if not graders:
        raise ValueError("at least one grader is needed")
    names = [name for name in CONTENDER_NAMES if name in per_example]
    lengths = {len(per_example[name]) for name in names}
    if len(lengths) > 1:
        raise ValueError(f"contenders were graded on different numbers of examples: {lengths}")
    primary = graders[0]

    def primary_scores(name: str) -> list[float]:
        return [grades[primary] for grades in per_example[name]]

    candidate = primary_scores("candidate") if "candidate" in per_example else None
    results = []
    for name in names:
        rows = per_example[name]
        latencies = latencies_ms.get(name) or []
        input_tokens, output_tokens = tokens.get(name, (0, 0))
        versus = None
        if candidate is not None and name != "candidate":
            versus = compare(candidate, primary_scores(name), seed=seed)
        results.append(
            ContenderResult(
                name=name,
                model=models[name],
                score=mean_interval(primary_scores(name), seed=seed),
                scores={
                    grader: math.fsum(grades[grader] for grades in rows) / len(rows)
                    if rows
                    else 0.0
                    for grader in graders
                },
                versus_candidate=versus,
                mean_latency_ms=math.fsum(latencies) / len(latencies) if latencies else None,
                input_tokens=input_tokens,
                output_tokens=output_tokens,
                cost_usd=costs.get(name),
            )
        )
    by_name = {result.name: result for result in results}
    decision = None
    if policy is not None:
        decision = decide(
            policy,
            versus_champion=_versus(by_name.get("champion")),
            versus_base=_versus(by_name.get("base")),
        )
    return EvaluationSummary(
        examples=lengths.pop() if lengths else 0,
        graders=graders,
        primary=primary,
        seed=seed,
        contenders=results,
        decision=decision,
    )


def _versus(result: ContenderResult | None) -> PairedComparison | None:
    # No examples, no comparison: the gate then says there was nothing to compare.
    if result is None or result.versus_candidate is None or result.score.n == 0:
        return None
    return result.versus_candidate


def score_table(summary: EvaluationSummary) -> list[list[str]]:
    """The header row, then one row per contender, as plain strings."""
    rows = [list(SCORE_TABLE_HEADER)]
    for result in summary.contenders:
        versus = result.versus_candidate
        rows.append(
            [
                result.name,
                result.model,
                f"{result.score.mean:.3f}",
                f"{result.score.low:.3f} to {result.score.high:.3f}",
                f"{versus.wins}/{versus.ties}/{versus.losses}" if versus else "-",
            ]
        )
    return rows
