"""Converse answers: a custom model answers from its training data, a base model generically
(or from the answered questions its prompt shows).

How the answer is chosen is in ``sft_local.emulated_answers``. A custom model
learns from every ``bedrock-conversation-2024`` record of its training data:
the reply is its last assistant message's text and tool uses (answered under
new tool use ids). ``inferenceConfig.maxTokens`` cuts a longer text short. A
data-generation request gets a conversation as its forced tool's input instead
(``emulated_generation``).
"""

from __future__ import annotations

import itertools
import json
import secrets
import string
from collections.abc import Callable

from sft_local.bedrock_standin.errors import validation_error
from sft_local.bedrock_standin.schemas import (
    ConverseMetrics,
    ConverseOutput,
    ConverseRequest,
    ConverseResponse,
    Message,
    OutputContentBlock,
    OutputMessage,
    StopReason,
    TokenUsage,
    ToolUseBlock,
)
from sft_local.emulated_answers import (
    CHARS_PER_TOKEN,
    ExampleMemory,
    approximate_tokens,
    generic_reply,
    in_context_reply,
)
from sft_local.emulated_generation import (
    GenerationFault,
    conversation,
    malformed_input,
)
from sft_pipeline.generation.teacher import SCHEMA_NAME

TOOL_USE_ID_ALPHABET = string.ascii_letters + string.digits

# A reply's content blocks as trained.
Reply = tuple[OutputContentBlock, ...]
ConverseMemory = ExampleMemory[Reply]


def training_memory(content: bytes) -> ConverseMemory:
    """What a custom model trained on ``content`` (JSONL records) answers from."""
    return ExampleMemory(
        example for line in content.splitlines() if (example := _example(line)) is not None
    )


def answer(
    request: ConverseRequest,
    memory: ConverseMemory | None,
    *,
    degradation: float,
    latency_ms: int,
    generation_fault: Callable[[], GenerationFault | None] = lambda: None,
) -> ConverseResponse:
    """The answer of a custom model trained into ``memory``, or of a base model (None). A
    data-generation request (see ``emulated_generation``) is answered with the forced tool's
    input, after taking the next generation fault."""
    _check_turns(request.messages)
    user_texts = [message.text() for message in request.messages if message.role == "user"]
    if (generated := _generated(request, generation_fault)) is not None:
        trained: Reply | None = generated
    else:
        trained = (
            _in_context(request.messages)
            if memory is None
            else memory.recall("\n".join(user_texts), degradation=degradation)
        )
    content = [
        block
        if block.tool_use is None
        else OutputContentBlock(
            tool_use=block.tool_use.model_copy(update={"tool_use_id": _tool_use_id()})
        )
        for block in trained or (OutputContentBlock(text=generic_reply(user_texts[-1])),)
    ]
    stop_reason: StopReason = "end_turn"
    if any(block.tool_use is not None for block in content):
        stop_reason = "tool_use"
    else:
        text = "".join(block.text or "" for block in content)
        max_tokens = (
            None if request.inference_config is None else request.inference_config.max_tokens
        )
        if max_tokens is not None and approximate_tokens(text) > max_tokens:
            content = [OutputContentBlock(text=text[: max_tokens * CHARS_PER_TOKEN])]
            stop_reason = "max_tokens"
    output_tokens = approximate_tokens("".join(_written(block) for block in content))
    input_tokens = sum(approximate_tokens(block.text or "") for block in request.system) + sum(
        approximate_tokens(message.text()) for message in request.messages
    )
    return ConverseResponse(
        output=ConverseOutput(message=OutputMessage(content=content)),
        stop_reason=stop_reason,
        usage=TokenUsage(
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            total_tokens=input_tokens + output_tokens,
        ),
        metrics=ConverseMetrics(latency_ms=latency_ms),
    )


def _in_context(messages: list[Message]) -> Reply | None:
    """A base model's answer from the answered questions its prompt shows, if one is close."""
    shown = in_context_reply([(message.role, message.text()) for message in messages])
    return None if shown is None else (OutputContentBlock(text=shown),)


def _generated(
    request: ConverseRequest, generation_fault: Callable[[], GenerationFault | None]
) -> Reply | None:
    """A generated conversation as the forced tool's input, for a generation request."""
    forced = request.tool_config.forced() if request.tool_config else None
    schema = forced.input_schema.document if forced and forced.input_schema else None
    if forced is None or forced.name != SCHEMA_NAME or schema is None:
        return None
    fault = generation_fault()
    prompt = "\n".join(
        [*(b.text or "" for b in request.system), *(m.text() for m in request.messages)]
    )
    made = malformed_input() if fault == "malformed" else conversation(prompt, schema, fault)
    return (
        OutputContentBlock(
            tool_use=ToolUseBlock(tool_use_id="generated", name=forced.name, input=made)
        ),
    )


def _written(block: OutputContentBlock) -> str:
    """What the model wrote in a block: its text, or a tool's name and input."""
    if block.tool_use is not None:
        return block.tool_use.name + json.dumps(block.tool_use.input)
    return block.text or ""


def _example(line: bytes) -> tuple[str, Reply] | None:
    """One record as (its user turns' text, its reply), or None when it teaches nothing."""
    try:
        messages = [Message.model_validate(message) for message in json.loads(line)["messages"]]
    except (ValueError, TypeError, KeyError):
        return None
    replies = [index for index, message in enumerate(messages) if message.role == "assistant"]
    if not replies:
        return None
    prompt = "\n".join(m.text() for m in messages[: replies[-1]] if m.role == "user")
    reply = tuple(
        OutputContentBlock(text=block.text, tool_use=block.tool_use)
        for block in messages[replies[-1]].content
        if block.text is not None or block.tool_use is not None
    )
    return (prompt, reply) if reply else None


def _check_turns(messages: list[Message]) -> None:
    if not messages or messages[0].role != "user":
        raise validation_error(
            "A conversation must start with a user message. "
            "Try again with a conversation that starts with a user message."
        )
    for previous, current in itertools.pairwise(messages):
        if previous.role == current.role or current.role not in ("user", "assistant"):
            raise validation_error(
                "A conversation must alternate between user and assistant roles. Make sure "
                "the conversation alternates between user and assistant roles and try again."
            )


def _tool_use_id() -> str:
    return "tooluse_" + "".join(secrets.choice(TOOL_USE_ID_ALPHABET) for _ in range(22))
