"""The run's closing report: what was made per topic, how varied it is, what was refused,
what it cost.

Variety is measured as distinct-n: the share of word n-grams (n = 1, 2, 3) of the generated
turns (the system prompt left out, since every example repeats it) that are unique across the
output. 1.0 means no n-gram repeats; templated or copied text drives it down.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable

import orjson
from pydantic import BaseModel, ConfigDict

from sft_pipeline.generation.acceptance import DUPLICATES
from sft_pipeline.generation.estimate import GenerationEstimate
from sft_pipeline.generation.generator import MALFORMED, Tally, by_key
from sft_pipeline.generation.plan import wanted
from sft_pipeline.generation.spec import GenerationSpec
from sft_pipeline.notifications import usd
from sft_pipeline.validation.normalise import normalise

N_GRAMS = (1, 2, 3)


class TopicCount(BaseModel):
    model_config = ConfigDict(frozen=True)

    topic: str
    train: int
    eval: int
    wanted_train: int
    wanted_eval: int


class TokenStats(BaseModel):
    model_config = ConfigDict(frozen=True)

    min: int
    median: float
    p95: int
    max: int
    mean: float
    total: int


class DiversityReport(BaseModel):
    model_config = ConfigDict(frozen=True)

    examples: int
    wanted: int
    complete: bool
    topics: list[TopicCount]
    # distinct-n for n = 1, 2, 3 over the generated turns.
    distinct_ngrams: dict[str, float]
    duplicates: int
    malformed: int
    rejected: dict[str, int]
    retries: int
    tokens_per_example: TokenStats | None
    teacher_input_tokens: int
    teacher_output_tokens: int
    spent_usd: float | None
    estimate: GenerationEstimate | None = None
    stopped: str | None = None


def distinct_ngrams(lines: Iterable[str]) -> dict[str, float]:
    """distinct-n of the user, assistant and tool turns of JSONL examples."""
    seen: dict[int, set[tuple[str, ...]]] = {n: set() for n in N_GRAMS}
    total = dict.fromkeys(N_GRAMS, 0)
    for line in lines:
        for message in orjson.loads(line)["messages"]:
            if message["role"] == "system" or not isinstance(message.get("content"), str):
                continue
            words = normalise(message["content"]).split()
            for n in N_GRAMS:
                grams = [tuple(words[i : i + n]) for i in range(len(words) - n + 1)]
                seen[n].update(grams)
                total[n] += len(grams)
    return {
        f"distinct_{n}": round(len(seen[n]) / total[n], 4) if total[n] else 0.0 for n in N_GRAMS
    }


def token_stats(tokens: list[int]) -> TokenStats | None:
    if not tokens:
        return None
    ordered = sorted(tokens)
    return TokenStats(
        min=ordered[0],
        median=statistics.median(ordered),
        p95=ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))],
        max=ordered[-1],
        mean=round(statistics.fmean(ordered), 1),
        total=sum(ordered),
    )


def diversity_report(
    spec: GenerationSpec,
    tally: Tally,
    lines: Iterable[str],
    *,
    estimate: GenerationEstimate | None = None,
    stopped: str | None = None,
) -> DiversityReport:
    """The report on the accepted ``lines`` (training and held-out) and the run's ``tally``."""
    needed = wanted(spec)
    topics = [
        TopicCount(
            topic=topic.name,
            train=tally.made_by.get(by_key(index, "train"), 0),
            eval=tally.made_by.get(by_key(index, "eval"), 0),
            wanted_train=needed.get((index, "train"), 0),
            wanted_eval=needed.get((index, "eval"), 0),
        )
        for index, topic in enumerate(spec.topics)
    ]
    total_wanted = sum(needed.values())
    return DiversityReport(
        examples=tally.made,
        wanted=total_wanted,
        complete=tally.made >= total_wanted,
        topics=topics,
        distinct_ngrams=distinct_ngrams(lines),
        duplicates=sum(count for code, count in tally.refused.items() if code in DUPLICATES),
        malformed=tally.refused.get(MALFORMED, 0),
        rejected=dict(sorted(tally.refused.items())),
        retries=tally.retries,
        tokens_per_example=token_stats(tally.example_tokens),
        teacher_input_tokens=tally.input_tokens,
        teacher_output_tokens=tally.output_tokens,
        spent_usd=tally.spent_usd(spec),
        estimate=estimate,
        stopped=stopped,
    )


def render_report(report: DiversityReport) -> str:
    """The report as people read it at the end of a run."""
    width = max([len("topic"), *(len(t.topic) for t in report.topics)])
    lines = [
        f"{report.examples:,} of {report.wanted:,} examples made"
        + ("" if report.complete else " (incomplete)"),
        "",
        f"{'topic'.ljust(width)}  train      held out",
    ]
    lines += [
        f"{t.topic.ljust(width)}  {f'{t.train}/{t.wanted_train}':<9}  {t.eval}/{t.wanted_eval}"
        for t in report.topics
    ]
    grams = ", ".join(f"{n}-grams {value:.2f}" for n, value in _ngram_items(report))
    lines += ["", f"distinct n-grams: {grams}"]
    refused = ", ".join(f"{code} {count}" for code, count in report.rejected.items()) or "none"
    lines.append(
        f"refused: {refused} (duplicates {report.duplicates}, malformed {report.malformed}); "
        f"retried requests {report.retries}"
    )
    if stats := report.tokens_per_example:
        lines.append(
            f"tokens per example: min {stats.min}, median {stats.median:g}, p95 {stats.p95}, "
            f"max {stats.max}, total {stats.total:,}"
        )
    spent = (
        "unknown (no price for the teacher)" if report.spent_usd is None else usd(report.spent_usd)
    )
    lines.append(
        f"teacher: {report.teacher_input_tokens:,} tokens in, "
        f"{report.teacher_output_tokens:,} out, spent {spent}"
    )
    if report.stopped:
        lines.append(f"stopped early: {report.stopped}")
    return "\n".join(lines) + "\n"


def _ngram_items(report: DiversityReport) -> list[tuple[int, float]]:
    return [(n, report.distinct_ngrams.get(f"distinct_{n}", 0.0)) for n in N_GRAMS]
