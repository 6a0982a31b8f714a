"""The evaluation runner with a chat function in place of a provider: what it asks, how it
retries, and that its verdict does not depend on how many requests run at once."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from sft_pipeline.evaluation.answers import Answer, EvalExample
from sft_pipeline.evaluation.contenders import Contender
from sft_pipeline.evaluation.gate import GatePolicy
from sft_pipeline.evaluation.runner import EvaluationError, RetryPolicy, evaluate
from sft_pipeline.providers.base import (
    ProviderPermanentError,
    ProviderRateLimitError,
    ProviderTransientError,
)

FAST = RetryPolicy(attempts=4, backoff_seconds=0.01, max_backoff_seconds=0.02)


def examples(count: int = 12) -> list[EvalExample]:
    return [
        EvalExample(
            line=index + 1,
            messages=[
                {"role": "system", "content": "Answer with a number."},
                {"role": "user", "content": f"What is {index} plus {index}?"},
            ],
            reference=Answer(content=str(2 * index)),
        )
        for index in range(count)
    ]


CONTENDERS = [
    Contender(name="candidate", model="ft:gpt-4o-mini-2024-07-18:org::abc"),
    Contender(name="base", model="gpt-4o-mini-2024-07-18"),
]


def completion(content: str, prompt_tokens: int = 20, completion_tokens: int = 2) -> dict[str, Any]:
    return {
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content}}],
        "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens},
    }


def arithmetic(body: dict[str, Any]) -> dict[str, Any]:
    """The fine-tune adds right; the base model is right only for even numbers."""
    number = int(body["messages"][-1]["content"].split()[2])
    right = body["model"].startswith("ft:") or number % 2 == 0
    return completion(str(2 * number if right else number))


class Recorder:
    def __init__(self, answer: Any = arithmetic) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.answer = answer
        self.lock = threading.Lock()

    def __call__(self, body: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            self.bodies.append(body)
        result: dict[str, Any] = self.answer(body)
        return result


def test_every_contender_answers_every_example_at_temperature_zero() -> None:
    chat = Recorder()
    result = evaluate(examples(), CONTENDERS, chat=chat, concurrency=4, retry=FAST)
    assert len(chat.bodies) == 24
    assert {body["temperature"] for body in chat.bodies} == {0}
    assert [(reply.line, reply.contender) for reply in result.replies[:4]] == [
        (1, "candidate"),
        (1, "base"),
        (2, "candidate"),
        (2, "base"),
    ]
    summary = result.summary
    assert summary.primary == "exact_match"  # short answers
    candidate, base = summary.contenders
    assert (candidate.score.mean, base.score.mean) == (1.0, 0.5)
    assert base.versus_candidate is not None
    assert (base.versus_candidate.wins, base.versus_candidate.ties) == (6, 6)
    assert (candidate.input_tokens, candidate.output_tokens) == (240, 24)
    assert candidate.cost_usd is not None and candidate.cost_usd > 0


def test_the_statistics_do_not_depend_on_concurrency() -> None:
    one = evaluate(examples(), CONTENDERS, chat=Recorder(), concurrency=1, seed=5, retry=FAST)
    many = evaluate(examples(), CONTENDERS, chat=Recorder(), concurrency=8, seed=5, retry=FAST)
    strip = {"contenders": {"__all__": {"mean_latency_ms"}}}
    assert one.summary.model_dump(exclude=strip) == many.summary.model_dump(exclude=strip)
    assert [r.scores for r in one.replies] == [r.scores for r in many.replies]


def test_a_429_waits_its_retry_after_and_a_5xx_backs_off() -> None:
    failures = iter(
        [
            ProviderRateLimitError("rate_limit_exceeded", "slow down", retry_after=2.5),
            ProviderTransientError("http_503", "overloaded"),
        ]
    )

    def flaky(body: dict[str, Any]) -> dict[str, Any]:
        failure = next(failures, None)
        if failure is not None:
            raise failure
        return arithmetic(body)

    waits: list[float] = []
    result = evaluate(
        examples(1), CONTENDERS, chat=flaky, concurrency=1, retry=FAST, sleep=waits.append
    )
    assert all(reply.error is None for reply in result.replies)
    assert [reply.attempts for reply in result.replies] == [3, 1]
    # Retry-After plus at most half a backoff of jitter; then a backoff of 0.01 to 0.02 s.
    assert 2.5 <= waits[0] <= 2.5 + 0.005
    assert 0.01 <= waits[1] <= 0.02


def test_a_request_that_keeps_failing_scores_zero_and_says_why() -> None:
    def base_broken_on_line_one(body: dict[str, Any]) -> dict[str, Any]:
        if body["model"] == "gpt-4o-mini-2024-07-18" and "0 plus 0" in str(body["messages"]):
            raise ProviderTransientError("http_500", "boom")
        return arithmetic(body)

    waits: list[float] = []
    result = evaluate(
        examples(3), CONTENDERS, chat=base_broken_on_line_one, retry=FAST, sleep=waits.append
    )
    broken = result.replies[1]
    assert (broken.contender, broken.line, broken.attempts) == ("base", 1, FAST.attempts)
    assert broken.error == "http_500: boom"
    assert broken.scores == {"exact_match": 0.0, "normalised_match": 0.0}
    assert len(waits) == FAST.attempts - 1


def test_a_permanent_error_or_a_quota_is_not_retried() -> None:
    refusals = [
        ProviderPermanentError("invalid_request", "bad"),
        ProviderRateLimitError("rate_limit_exceeded", "later", retry_after=600.0),
    ]
    for refusal in refusals:

        def refuse(body: dict[str, Any], refusal: Exception = refusal) -> dict[str, Any]:
            if body["model"].startswith("ft:"):
                raise refusal
            return arithmetic(body)

        waits: list[float] = []
        with pytest.raises(EvaluationError, match="every request to candidate") as failed:
            evaluate(examples(2), CONTENDERS, chat=refuse, retry=FAST, sleep=waits.append)
        assert str(refusal) in str(failed.value)
        assert waits == []


def test_the_gate_decides_on_the_primary_score() -> None:
    result = evaluate(
        examples(20),
        CONTENDERS,
        chat=Recorder(),
        retry=FAST,
        policy=GatePolicy(alias="adder", min_improvement=0.1),
    )
    assert result.summary.decision is not None
    assert result.summary.decision.promote
    assert result.summary.decision.reason.startswith("promoted: +0.50 over the base model")


def test_the_judge_is_asked_twice_per_rival_with_the_positions_swapped() -> None:
    def answer_or_judge(body: dict[str, Any]) -> dict[str, Any]:
        if body["model"] != "judge-model":
            return arithmetic(body)
        # A judge that always prefers the first answer: pure position bias.
        return completion('{"winner": "A"}')

    chat = Recorder(answer_or_judge)
    result = evaluate(
        examples(4), CONTENDERS, chat=chat, judge="judge-model", retry=FAST, concurrency=2
    )
    judge_bodies = [body for body in chat.bodies if body["model"] == "judge-model"]
    assert len(judge_bodies) == 2 * 4
    assert result.summary.graders == ["exact_match", "normalised_match", "judge"]
    # Position bias cancels out: every comparison is a draw.
    assert {reply.scores["judge"] for reply in result.replies} == {0.5}


def test_an_empty_set_or_a_missing_candidate_is_refused() -> None:
    with pytest.raises(EvaluationError, match="no examples"):
        evaluate([], CONTENDERS, chat=arithmetic)
    with pytest.raises(EvaluationError, match="include the candidate"):
        evaluate(examples(1), CONTENDERS[1:], chat=arithmetic)
