"""The evaluation runner and ``sft eval`` against the OpenAI emulator over real HTTP, through the
pipeline's OpenAI adapter: a model trained in the emulator, 429 storms with Retry-After, 5xx.

The emulator's answers are its own business; the tests compare the grades with what it said."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from openai import OpenAI

from sft_local.openai_emulator import JobTimeline, OpenAIEmulator
from sft_pipeline.cli import eval_command, main
from sft_pipeline.evaluation.answers import read_examples
from sft_pipeline.evaluation.contenders import Contender
from sft_pipeline.evaluation.graders import grade
from sft_pipeline.evaluation.runner import EvaluationError, RetryPolicy, evaluate
from sft_pipeline.evaluation.summary import EvaluationSummary

BASE = "gpt-4o-mini-2024-07-18"
CHAT = "POST /chat/completions"
FAST = RetryPolicy(attempts=5, backoff_seconds=0.01, max_backoff_seconds=0.05)


def rows(count: int, offset: int = 0) -> list[dict[str, Any]]:
    return [
        {
            "messages": [
                {"role": "system", "content": "You are the outfitter's support bot."},
                {"role": "user", "content": f"Which tent suits trip {n}?"},
                {"role": "assistant", "content": f"The two-person tent suits trip {n}."},
            ]
        }
        for n in range(offset, offset + count)
    ]


def jsonl(items: list[dict[str, Any]]) -> bytes:
    return b"".join(json.dumps(item).encode() + b"\n" for item in items)


@pytest.fixture(scope="module")
def emulator() -> Iterator[OpenAIEmulator]:
    timeline = JobTimeline(validating=1, queued=1, running=1)
    with OpenAIEmulator(timeline=timeline, clock=lambda: 1_750_000_000.0) as running:
        yield running


@pytest.fixture(scope="module")
def fine_tune(emulator: OpenAIEmulator) -> str:
    client = OpenAI(base_url=emulator.base_url, api_key="test", max_retries=0)
    training = client.files.create(file=("train.jsonl", jsonl(rows(20))), purpose="fine-tune")
    job = client.fine_tuning.jobs.create(model=BASE, training_file=training.id, suffix="tents")
    emulator.advance(10)
    model = client.fine_tuning.jobs.retrieve(job.id).fine_tuned_model
    assert model is not None
    return model


@pytest.fixture(autouse=True)
def no_faults(emulator: OpenAIEmulator) -> Iterator[None]:
    emulator.faults.clear()
    yield
    emulator.faults.clear()


def contenders(model: str) -> list[Contender]:
    return [Contender(name="candidate", model=model), Contender(name="base", model=BASE)]


def test_every_answer_the_emulator_gave_is_graded(emulator: OpenAIEmulator, fine_tune: str) -> None:
    examples = read_examples(jsonl(rows(6, offset=3)).splitlines())
    before = len(emulator.requests_to(CHAT))
    chat = eval_command.openai_chat(emulator.base_url, "test")
    result = evaluate(examples, contenders(fine_tune), chat=chat, concurrency=4, retry=FAST)

    requests = emulator.requests_to(CHAT)[before:]
    assert len(requests) == 12
    assert {r.status for r in requests} == {200}
    for reply in result.replies:
        example = next(e for e in examples if e.line == reply.line)
        assert reply.error is None and reply.answer.content
        assert reply.scores == grade(reply.answer, example.reference, result.summary.graders)
        assert reply.input_tokens > 0 and reply.latency_ms is not None
    for contender in result.summary.contenders:
        expected = sum(
            r.scores[result.summary.primary]
            for r in result.replies
            if r.contender == contender.name
        )
        assert contender.score.mean == pytest.approx(expected / 6)


def test_a_429_storm_with_retry_after_is_waited_out(
    emulator: OpenAIEmulator, fine_tune: str
) -> None:
    examples = read_examples(jsonl(rows(4)).splitlines())
    emulator.faults.rate_limit(times=6, retry_after=0.05, route=CHAT)
    emulator.faults.server_error(times=2, status=503, route=CHAT)
    before = len(emulator.requests_to(CHAT))
    chat = eval_command.openai_chat(emulator.base_url, "test")
    result = evaluate(examples, contenders(fine_tune), chat=chat, concurrency=4, retry=FAST)

    assert all(reply.error is None for reply in result.replies)
    assert sum(reply.attempts for reply in result.replies) == 8 + 8
    assert len(emulator.requests_to(CHAT)) - before == 16


def test_an_endpoint_that_keeps_failing_stops_the_run(
    emulator: OpenAIEmulator, fine_tune: str
) -> None:
    examples = read_examples(jsonl(rows(2)).splitlines())
    emulator.faults.server_error(times=None, status=500, route=CHAT)
    chat = eval_command.openai_chat(emulator.base_url, "test")
    with pytest.raises(EvaluationError, match=r"every request to candidate .* failed: http_500"):
        evaluate(examples, contenders(fine_tune), chat=chat, retry=FAST)


def test_sft_eval_end_to_end(
    emulator: OpenAIEmulator,
    fine_tune: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    held_out = tmp_path / "heldout.jsonl"
    held_out.write_bytes(jsonl(rows(8, offset=5)))
    train = tmp_path / "train.jsonl"
    train.write_bytes(jsonl(rows(20)))
    report = tmp_path / "report.html"
    # The SDK's own variables name the endpoint and the key.
    monkeypatch.setenv("OPENAI_BASE_URL", emulator.base_url)
    monkeypatch.setenv("OPENAI_API_KEY", "test")
    monkeypatch.setattr("sys.stderr", io.StringIO())  # not a terminal: no progress bar
    argv = ["eval", str(held_out), "--model", fine_tune, "--few-shot", str(train), "--json"]

    code = main([*argv, "--html", str(report)])
    summary = EvaluationSummary.model_validate_json(capsys.readouterr().out)
    assert code == 0
    assert [c.name for c in summary.contenders] == ["candidate", "base", "few_shot"]
    assert summary.examples == 8
    assert 'id="score-chart"' in report.read_text()

    # The gate's exit code: a margin no score can reach always refuses.
    assert main([*argv, "--min-improvement", "1"]) == 1
    refused = EvaluationSummary.model_validate_json(capsys.readouterr().out)
    assert refused.decision is not None and not refused.decision.promote
    # The same seed, the same statistics.
    assert refused.contenders[0].score == summary.contenders[0].score
