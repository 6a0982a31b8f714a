"""The API's per-model metrics: each answered chat completion counts its tokens and its cost
(from the dated price table) under the same dimensions as its latency, and the evaluation
score helper writes one data point per model. Read as CloudWatch reads them: EMF lines.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from moto import mock_aws

from sft_pipeline import runtime
from sft_pipeline.api import routes
from sft_pipeline.api.service import LookupCache
from sft_pipeline.evaluation.pricing import inference_cost
from sft_pipeline.observability import Metric, record_evaluation_score
from tests.fakes import FakeProvider, LambdaContext, make_registry
from tests.unit.test_api_events import ALIAS, BASE_MODEL, FINE_TUNE, load, seed

PROMPT_TOKENS, COMPLETION_TOKENS = 1200, 300


class CountingProvider(FakeProvider):
    """Answers like the fake provider, with the usage OpenAI reports (None: no usage)."""

    usage: dict[str, int] | None = None

    def chat(self, body: dict[str, Any]) -> dict[str, Any]:
        answer = super().chat(body)
        if self.usage is not None:
            answer["usage"] = self.usage
        return answer


@pytest.fixture
def provider(monkeypatch: pytest.MonkeyPatch) -> Iterator[CountingProvider]:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    with mock_aws():
        registry, counting = make_registry(), CountingProvider()
        seed(registry, counting)
        monkeypatch.setattr(runtime, "registry", lambda: registry)
        monkeypatch.setattr(runtime, "inference_provider", {"openai": counting}.__getitem__)
        monkeypatch.setattr(routes, "_lookups", LookupCache())
        yield counting


def emitted(stdout: str) -> dict[str, tuple[float, dict[str, str]]]:
    """Metric name -> (value, dimensions) of each EMF document written."""
    found: dict[str, tuple[float, dict[str, str]]] = {}
    for line in stdout.splitlines():
        if not line.startswith("{"):
            continue
        document = json.loads(line)
        for directive in document.get("_aws", {}).get("CloudWatchMetrics", []):
            [dimension_names] = directive["Dimensions"]
            for metric in directive["Metrics"]:
                dimensions = {name: document[name] for name in dimension_names}
                # single_metric writes each value as a one-element list.
                [value] = document[metric["Name"]]
                found[metric["Name"]] = (value, dimensions)
    return found


def chat(capsys: pytest.CaptureFixture[str]) -> dict[str, tuple[float, dict[str, str]]]:
    capsys.readouterr()
    response = routes.handle(load("api_chat_completions.json"), LambdaContext())  # type: ignore[arg-type]
    assert response["statusCode"] == 200, response["body"]
    return emitted(capsys.readouterr().out)


def test_a_chat_completion_counts_its_tokens_and_cost_beside_its_latency(
    provider: CountingProvider, capsys: pytest.CaptureFixture[str]
) -> None:
    provider.usage = {
        "prompt_tokens": PROMPT_TOKENS,
        "completion_tokens": COMPLETION_TOKENS,
        "total_tokens": PROMPT_TOKENS + COMPLETION_TOKENS,
    }
    metrics = chat(capsys)
    dimensions = {"model": f"{ALIAS}@1", "served_model": FINE_TUNE}
    assert metrics[Metric.INPUT_TOKENS] == (PROMPT_TOKENS, dimensions)
    assert metrics[Metric.OUTPUT_TOKENS] == (COMPLETION_TOKENS, dimensions)
    cost, cost_dimensions = metrics[Metric.COST]
    assert cost_dimensions == dimensions
    # A fine-tune is priced at its base model's fine-tuned rate: $0.30 / $1.20 per 1M tokens.
    assert cost == pytest.approx((PROMPT_TOKENS * 0.3 + COMPLETION_TOKENS * 1.2) / 1_000_000)
    assert cost == pytest.approx(
        inference_cost(FINE_TUNE, PROMPT_TOKENS, COMPLETION_TOKENS, fine_tune_of=BASE_MODEL)
    )
    assert metrics[Metric.LATENCY][1] == dimensions


def test_an_answer_without_usage_counts_no_tokens_rather_than_zero(
    provider: CountingProvider, capsys: pytest.CaptureFixture[str]
) -> None:
    provider.usage = None
    metrics = chat(capsys)
    assert {Metric.LATENCY, Metric.ERRORS} <= set(metrics)
    assert not {Metric.INPUT_TOKENS, Metric.OUTPUT_TOKENS, Metric.COST} & set(metrics)


def test_the_evaluation_score_is_recorded_per_model(capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    record_evaluation_score(FINE_TUNE, 0.8125)
    assert emitted(capsys.readouterr().out) == {
        Metric.EVALUATION_SCORE: (0.8125, {"model": FINE_TUNE})
    }
