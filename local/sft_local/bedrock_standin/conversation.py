"""Converse answers from a custom model deployment, deterministic so tests can assert on them.

The answer to a conversation is ``[<deployment id>] <text>``, where the text is
that of the latest user message (for a message answering a tool call, the tool
results' text) and the deployment id is the 12 characters that end the
deployment ARN. With a ``toolConfig``, a latest user message starting with
``use tool`` is answered with a call of the first tool, with ``{}`` as its
input. ``inferenceConfig.maxTokens`` cuts a longer answer short. Tokens are
counted as one per four characters.
"""

from __future__ import annotations

import itertools
import math
import secrets
import string

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

CHARS_PER_TOKEN = 4
TOOL_TRIGGER = "use tool"
TOOL_USE_ID_ALPHABET = string.ascii_letters + string.digits


def answer(deployment_id: str, request: ConverseRequest, *, latency_ms: int) -> ConverseResponse:
    _check_turns(request.messages)
    latest = next(message for message in reversed(request.messages) if message.role == "user")
    user_text = latest.text()
    tool_name = _first_tool_name(request)
    stop_reason: StopReason
    if tool_name is not None and user_text.startswith(TOOL_TRIGGER):
        tool_use = ToolUseBlock(tool_use_id=_tool_use_id(), name=tool_name, input={})
        content = OutputContentBlock(tool_use=tool_use)
        output_tokens = _tokens(tool_name)
        stop_reason = "tool_use"
    else:
        reply = f"[{deployment_id}] {user_text}".rstrip()
        max_tokens = (
            None if request.inference_config is None else request.inference_config.max_tokens
        )
        stop_reason = "end_turn"
        if max_tokens is not None and _tokens(reply) > max_tokens:
            reply = reply[: max_tokens * CHARS_PER_TOKEN]
            stop_reason = "max_tokens"
        content = OutputContentBlock(text=reply)
        output_tokens = _tokens(reply)
    input_tokens = sum(_tokens(block.text or "") for block in request.system) + sum(
        _tokens(message.text()) for message in request.messages
    )
    return ConverseResponse(
        output=ConverseOutput(message=OutputMessage(content=[content])),
        stop_reason=stop_reason,
        usage=TokenUsage(
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            total_tokens=input_tokens + output_tokens,
        ),
        metrics=ConverseMetrics(latency_ms=latency_ms),
    )


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


def _first_tool_name(request: ConverseRequest) -> str | None:
    if request.tool_config is None:
        return None
    specs = [tool.tool_spec for tool in request.tool_config.tools if tool.tool_spec is not None]
    return specs[0].name if specs else None


def _tool_use_id() -> str:
    return "tooluse_" + "".join(secrets.choice(TOOL_USE_ID_ALPHABET) for _ in range(22))


def _tokens(text: str) -> int:
    return max(1, math.ceil(len(text) / CHARS_PER_TOKEN))
