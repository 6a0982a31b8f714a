"""What the teacher's calls will cost, before any is made, and what they did cost.

Prices come from the dated inference price tables (evaluation.pricing); an unknown price is
None, never zero, so a cost cap is never passed on a guess. The estimate counts each request's
prompt with the teacher's tokenizer (o200k_base for a model no table knows), an answer of
``ANSWER_TOKENS_PER_TURN`` per turn, and ``EXPECTED_RETRY_SHARE`` more calls for the answers
that are refused and asked again.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence

from pydantic import BaseModel, ConfigDict

from sft_pipeline.evaluation.pricing import TOKENS_PER_MESSAGE, TOKENS_PER_REPLY, inference_cost
from sft_pipeline.generation.plan import Slot
from sft_pipeline.generation.spec import GenerationSpec
from sft_pipeline.generation.teacher import teacher_request
from sft_pipeline.validation.targets import resolve_model
from sft_pipeline.validation.tokens import get_encoding

# A user message and a reply, with tool calls now and then, as JSON.
ANSWER_TOKENS_PER_TURN = 220
# Refused answers (duplicates, malformed JSON) are asked again.
EXPECTED_RETRY_SHARE = 0.15
# Prompts differ only in their topic lines: a sample prices the rest.
PRICED_PROMPTS = 50


class GenerationEstimate(BaseModel):
    model_config = ConfigDict(frozen=True)

    teacher: str
    examples: int
    calls: int
    input_tokens: int
    output_tokens: int
    # None when the teacher's price is unknown.
    cost_usd: float | None
    price_as_of: dt.date


def estimate_generation(spec: GenerationSpec, slots: Sequence[Slot]) -> GenerationEstimate:
    """The cost of making ``slots`` (what is still to make, on a resumed run)."""
    teacher = resolve_model(spec.teacher.model, spec.teacher.provider)
    encode = get_encoding(teacher.encoding).encode_ordinary
    calls = math.ceil(len(slots) * (1 + EXPECTED_RETRY_SHARE))
    step = max(1, len(slots) // PRICED_PROMPTS)
    sample = list(slots[::step][:PRICED_PROMPTS])
    per_call = 0.0
    if sample:
        prompt_tokens = [
            TOKENS_PER_REPLY
            + sum(
                TOKENS_PER_MESSAGE + len(encode(message["content"]))
                for message in teacher_request(spec, slot, 0)["messages"]
            )
            for slot in sample
        ]
        per_call = sum(prompt_tokens) / len(prompt_tokens)
    input_tokens = math.ceil(per_call * calls)
    output_tokens = calls * ANSWER_TOKENS_PER_TURN * spec.turns
    return GenerationEstimate(
        teacher=spec.teacher.model,
        examples=len(slots),
        calls=calls,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        cost_usd=teacher_cost(spec, input_tokens, output_tokens),
        price_as_of=teacher.price_as_of,
    )


def teacher_cost(spec: GenerationSpec, input_tokens: int, output_tokens: int) -> float | None:
    """USD for the teacher's tokens; None when its price is unknown."""
    return inference_cost(spec.teacher.model, input_tokens, output_tokens)


def cap_problem(estimate: GenerationEstimate, cap: float | None) -> str | None:
    """Why the estimate may not go ahead under ``cap`` (None or 0: no cap), if it may not."""
    if not cap:
        return None
    if estimate.cost_usd is None:
        return (
            f"the price of the teacher {estimate.teacher} is unknown, so the cost cap "
            f"(${cap:,.2f}) cannot be checked; set cost-cap-usd: 0 in the spec to go ahead anyway"
        )
    if estimate.cost_usd > cap:
        return (
            f"the estimated cost ${estimate.cost_usd:,.2f} of the teacher's calls is over the "
            f"cap of ${cap:,.2f}; raise cost-cap-usd in the spec"
        )
    return None
