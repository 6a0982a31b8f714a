"""Inference prices from the dated tables, and the estimate checked against the cost cap."""

from __future__ import annotations

import pytest

from sft_pipeline.evaluation.answers import Answer, EvalExample
from sft_pipeline.evaluation.contenders import Contender
from sft_pipeline.evaluation.pricing import (
    TOKENS_PER_MESSAGE,
    TOKENS_PER_REPLY,
    estimate_evaluation_cost,
    inference_cost,
    request_tokens,
)
from sft_pipeline.validation.targets import resolve_model


def test_base_and_fine_tuned_openai_prices() -> None:
    # gpt-4o-mini: $0.15 / $0.60 per 1M as is, $0.30 / $1.20 fine-tuned.
    assert inference_cost("gpt-4o-mini", 1_000_000, 1_000_000) == pytest.approx(0.75)
    assert inference_cost("ft:gpt-4o-mini-2024-07-18:acme:bot:abc123", 1_000_000, 1_000_000) == (
        pytest.approx(1.50)
    )
    assert inference_cost("ft:gpt-4.1-2025-04-14:acme::x", 2_000, 500) == pytest.approx(
        (2_000 * 3.00 + 500 * 12.00) / 1e6
    )


def test_bedrock_prices_and_a_deployment_priced_by_its_base() -> None:
    arn = "arn:aws:bedrock:us-east-1:123456789012:custom-model-deployment/abc"
    assert inference_cost(arn, 1000, 1000) is None
    nova = inference_cost(arn, 1_000_000, 1_000_000, fine_tune_of="amazon.nova-micro-v1:0")
    assert nova == pytest.approx(0.035 + 0.14)
    # Claude 3 Haiku fine-tunes need Provisioned Throughput: no per-token price.
    assert inference_cost(arn, 1, 1, fine_tune_of="claude-3-haiku") is None


def test_unknown_prices_are_unknown_never_zero() -> None:
    assert inference_cost("my-own-model", 1000, 1000) is None
    assert inference_cost("nova-2-lite", 1000, 1000) is None


def test_prices_are_dated_and_flagged_when_unconfirmed() -> None:
    base = resolve_model("gpt-4o")
    assert "inference" in base.unconfirmed
    assert base.price_as_of.isoformat() == "2026-11-25"
    assert "inference" not in resolve_model("ft:gpt-4o-2024-08-06:acme::x").unconfirmed
    assert {"inference", "fine_tuned_inference"} <= resolve_model("nova-micro").unconfirmed


def words(text: str) -> int:
    return len(text.split())


EXAMPLE = EvalExample(
    line=1,
    messages=[
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Reset my password"},
    ],
    reference=Answer(content="Use the account page."),
)


def test_request_tokens_count_few_shot_turns() -> None:
    base = Contender(name="base", model="gpt-4o-mini")
    assert request_tokens(base, EXAMPLE, words) == TOKENS_PER_REPLY + 2 * TOKENS_PER_MESSAGE + 5
    few_shot = base.model_copy(update={"name": "few_shot", "few_shot": [EXAMPLE]})
    # The shot adds its user turn (3 words) and its answer (4 words).
    assert (
        request_tokens(few_shot, EXAMPLE, words)
        == request_tokens(base, EXAMPLE, words) + 2 * TOKENS_PER_MESSAGE + 7
    )


def test_estimate_evaluation_cost() -> None:
    contenders = [
        Contender(name="candidate", model="ft:gpt-4o-mini-2024-07-18:acme::x"),
        Contender(name="base", model="gpt-4o-mini"),
    ]
    prompt = request_tokens(contenders[1], EXAMPLE, words)
    estimate = estimate_evaluation_cost(
        contenders, [EXAMPLE] * 10, words, expected_output_tokens=100
    )
    expected = (10 * prompt * 0.30 + 1000 * 1.20 + 10 * prompt * 0.15 + 1000 * 0.60) / 1e6
    assert estimate == pytest.approx(expected)
    unknown = [*contenders, Contender(name="champion", model="somebody-elses-model")]
    assert estimate_evaluation_cost(unknown, [EXAMPLE], words, expected_output_tokens=100) is None
