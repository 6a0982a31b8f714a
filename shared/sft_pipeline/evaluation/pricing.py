"""What an evaluation's inference costs, from the providers' dated price tables.

Prices come from the same tables (``data/<provider>_models.json``, read through
validation.targets) that price training. An unknown price is None, never zero, so a
cost cap is never passed on a guess.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import orjson

from sft_pipeline.evaluation.answers import EvalExample
from sft_pipeline.evaluation.contenders import Contender, request_messages
from sft_pipeline.validation.targets import resolve_model
from sft_pipeline.validation.targets.base import InferencePrice

# OpenAI's chat accounting: a few tokens frame each message, and the reply is primed.
TOKENS_PER_MESSAGE = 3
TOKENS_PER_REPLY = 3


def inference_price(model: str, *, fine_tune_of: str | None = None) -> InferencePrice | None:
    """The per-token price of ``model``; ``fine_tune_of`` names the base model of a
    fine-tune whose id does not (a Bedrock deployment ARN)."""
    if fine_tune_of is not None:
        return resolve_model(fine_tune_of).fine_tuned_inference
    return resolve_model(model).inference


def inference_cost(
    model: str, input_tokens: int, output_tokens: int, *, fine_tune_of: str | None = None
) -> float | None:
    """USD for one or more requests' tokens; None when the model's price is unknown."""
    price = inference_price(model, fine_tune_of=fine_tune_of)
    if price is None:
        return None
    return (
        input_tokens * price.input_per_million + output_tokens * price.output_per_million
    ) / 1_000_000


def request_tokens(
    contender: Contender, example: EvalExample, count_tokens: Callable[[str], int]
) -> int:
    """The prompt tokens a contender sends for an example (few-shot turns and tools included)."""
    total = TOKENS_PER_REPLY
    for message in request_messages(contender, example):
        content = message.get("content")
        text = content if isinstance(content, str) else orjson.dumps(content).decode()
        total += TOKENS_PER_MESSAGE + count_tokens(text)
        if message.get("tool_calls"):
            total += count_tokens(orjson.dumps(message["tool_calls"]).decode())
    if example.tools:
        total += count_tokens(orjson.dumps(example.tools).decode())
    return total


def estimate_evaluation_cost(
    contenders: Sequence[Contender],
    examples: Sequence[EvalExample],
    count_tokens: Callable[[str], int],
    expected_output_tokens: int,
) -> float | None:
    """USD for every contender answering every example, before any request is sent;
    None when any contender's price is unknown."""
    total = 0.0
    for contender in contenders:
        input_tokens = sum(request_tokens(contender, e, count_tokens) for e in examples)
        cost = inference_cost(
            contender.model,
            input_tokens,
            expected_output_tokens * len(examples),
            fine_tune_of=contender.fine_tune_of,
        )
        if cost is None:
            return None
        total += cost
    return total
