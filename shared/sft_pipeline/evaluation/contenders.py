"""The contenders and the chat request each sends for a held-out example.

The candidate is the new fine-tune; the base model answers zero-shot with the same system
prompt, and again few-shot, with k training examples as earlier turns (the cheapest
alternative to fine-tuning); the champion is the alias's current version.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from sft_pipeline.evaluation.answers import Answer, EvalExample

ContenderName = Literal["candidate", "base", "few_shot", "champion"]
# The order contenders are shown in.
CONTENDER_NAMES: tuple[ContenderName, ...] = ("candidate", "base", "few_shot", "champion")


class Contender(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: ContenderName
    model: str
    few_shot: list[EvalExample] = []
    # The base model of a fine-tune whose id does not name it (a Bedrock deployment ARN),
    # so its inference can be priced.
    fine_tune_of: str | None = None


def _is_plain_turn(message: dict[str, Any]) -> bool:
    return message.get("role") in {"system", "user", "assistant"} and not (
        message.get("tool_calls") or message.get("function_call")
    )


def _shot_messages(example: EvalExample) -> list[dict[str, Any]]:
    """An example as user/assistant turns: its own system prompt is left out."""
    turns = [m for m in example.messages if m.get("role") != "system"]
    return [*turns, example.reference.to_message()]


def _shot_text(example: EvalExample) -> str:
    return "\n".join(
        str(Answer.from_message(message).content or "") for message in _shot_messages(example)
    )


# The few-shot prompt's examples take at most this many tokens, and at most half the base
# model's per-example limit, so the held-out conversation always fits beside them.
FEW_SHOT_TOKENS = 8_000


def few_shot_budget(token_limit: int | None) -> int:
    """How many tokens the few-shot examples may take for a model with this limit."""
    return min(FEW_SHOT_TOKENS, token_limit // 2) if token_limit else FEW_SHOT_TOKENS


def few_shot_examples(
    training: Sequence[EvalExample],
    *,
    k: int = 5,
    seed: int = 0,
    max_tokens: int,
    count_tokens: Callable[[str], int],
) -> list[EvalExample]:
    """k training examples drawn by ``seed``, the longest dropped until they fit ``max_tokens``.

    Only plain user/assistant conversations qualify: a tool call in an earlier turn would
    need the tool's result, which a training line does not always hold.
    """
    pool = [
        example
        for example in training
        if not example.reference.tool_calls and all(map(_is_plain_turn, example.messages))
    ]
    chosen = random.Random(seed).sample(pool, min(k, len(pool)))
    sizes = [count_tokens(_shot_text(example)) for example in chosen]
    while chosen and sum(sizes) > max_tokens:
        longest = max(range(len(sizes)), key=sizes.__getitem__)
        del chosen[longest], sizes[longest]
    return chosen


def request_messages(contender: Contender, example: EvalExample) -> list[dict[str, Any]]:
    """The messages a contender is sent: the example's, after the few-shot turns if any."""
    if not contender.few_shot:
        return list(example.messages)
    leading = 0
    while leading < len(example.messages) and example.messages[leading].get("role") == "system":
        leading += 1
    shots = [message for shot in contender.few_shot for message in _shot_messages(shot)]
    return [*example.messages[:leading], *shots, *example.messages[leading:]]


def chat_request(
    contender: Contender, example: EvalExample, *, max_tokens: int = 1024
) -> dict[str, Any]:
    """An OpenAI chat completions body, at temperature 0 so answers are repeatable."""
    body: dict[str, Any] = {
        "model": contender.model,
        "messages": request_messages(contender, example),
        "temperature": 0,
        "max_tokens": max_tokens,
    }
    if example.tools:
        body["tools"] = example.tools
    return body
