"""OpenAI chat-completions requests and responses, translated to and from Bedrock Converse.

Pure functions: the Bedrock adapter sends what ``to_converse`` builds and returns
what ``from_converse`` makes of the answer, so OpenAI clients talk to Nova models.

Structured output (a ``response_format`` of type ``json_schema``) has no Converse field of its
own: it becomes a tool whose input schema is the response's schema, forced with
``toolChoice``, and that tool's input comes back as the message's JSON content, as OpenAI
would answer.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

from sft_pipeline.validation.targets.bedrock import TOOL_NAME, TOOL_USE_ID

# Converse stop reasons -> OpenAI finish reasons.
FINISH_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "tool_use": "tool_calls",
    "guardrail_intervened": "content_filter",
    "content_filtered": "content_filter",
}
INFERENCE_FIELDS = {
    "max_tokens": "maxTokens",
    "max_completion_tokens": "maxTokens",
    "temperature": "temperature",
    "top_p": "topP",
}


class UnsupportedRequestError(ValueError):
    """The request uses something Converse cannot express; the message says what."""


def _text_of(content: Any) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    parts = []
    for part in content:
        if part.get("type") != "text":
            raise UnsupportedRequestError(
                f"content parts of type '{part.get('type')}' are not supported for this model"
            )
        parts.append(str(part.get("text", "")))
    return "".join(parts)


def _tool_use_id(value: Any) -> str:
    """Converse refuses other ids with a bare ValidationException: name the id instead."""
    if not isinstance(value, str) or not TOOL_USE_ID.fullmatch(value):
        raise UnsupportedRequestError(
            f"tool call id {json.dumps(value)[:80]} is not supported for this model: "
            "use 1-64 letters, digits, '_', '.', ':' and '-'"
        )
    return value


def _tool_name(value: Any) -> str:
    if not isinstance(value, str) or not TOOL_NAME.fullmatch(value):
        raise UnsupportedRequestError(
            f"tool name {json.dumps(value)[:80]} is not supported for this model: "
            "use 1-64 letters, digits, '_' and '-'"
        )
    return value


def _tool_result(message: dict[str, Any]) -> dict[str, Any]:
    text = _text_of(message.get("content"))
    try:
        parsed = json.loads(text)
    except json.JSONDecodeError:
        parsed = None
    block = {"json": parsed} if isinstance(parsed, dict) else {"text": text}
    return {
        "toolResult": {"toolUseId": _tool_use_id(message.get("tool_call_id")), "content": [block]}
    }


def _assistant_blocks(message: dict[str, Any]) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = []
    if text := _text_of(message.get("content")):
        blocks.append({"text": text})
    for call in message.get("tool_calls") or []:
        function = call.get("function", {})
        arguments = json.loads(function.get("arguments") or "{}")
        blocks.append(
            {
                "toolUse": {
                    "toolUseId": _tool_use_id(call.get("id")),
                    "name": _tool_name(function.get("name")),
                    "input": arguments,
                }
            }
        )
    return blocks


def to_converse(body: dict[str, Any]) -> dict[str, Any]:
    """The Converse request for an OpenAI chat-completions body (its ``model`` is the modelId)."""
    system: list[dict[str, Any]] = []
    messages: list[dict[str, Any]] = []

    def append(role: str, blocks: list[dict[str, Any]]) -> None:
        # Converse wants strictly alternating turns: consecutive same-role parts are one turn.
        if messages and messages[-1]["role"] == role:
            messages[-1]["content"].extend(blocks)
        else:
            messages.append({"role": role, "content": blocks})

    for message in body.get("messages", []):
        role = message.get("role")
        if role in ("system", "developer"):
            system.append({"text": _text_of(message.get("content"))})
        elif role == "user":
            append("user", [{"text": _text_of(message.get("content"))}])
        elif role == "assistant":
            append("assistant", _assistant_blocks(message))
        elif role == "tool":
            append("user", [_tool_result(message)])
        else:
            raise UnsupportedRequestError(
                f"messages with role '{role}' are not supported for this model"
            )
    request: dict[str, Any] = {"modelId": body["model"], "messages": messages}
    if system:
        request["system"] = system
    inference = {
        target: body[source]
        for source, target in INFERENCE_FIELDS.items()
        if body.get(source) is not None
    }
    stop = body.get("stop")
    if stop:
        inference["stopSequences"] = [stop] if isinstance(stop, str) else list(stop)
    if inference:
        request["inferenceConfig"] = inference
    if tools := body.get("tools"):
        request["toolConfig"] = {
            "tools": [
                {
                    "toolSpec": {
                        "name": _tool_name(tool["function"]["name"]),
                        "description": tool["function"].get("description")
                        or tool["function"]["name"],
                        "inputSchema": {
                            "json": tool["function"].get("parameters") or {"type": "object"}
                        },
                    }
                }
                for tool in tools
            ]
        }
    if (structured := structured_output_tool(body)) is not None:
        schema = body["response_format"]["json_schema"].get("schema") or {"type": "object"}
        config = request.setdefault("toolConfig", {"tools": []})
        config["tools"].append(
            {
                "toolSpec": {
                    "name": structured,
                    "description": "Give the answer in this structure.",
                    "inputSchema": {"json": schema},
                }
            }
        )
        config["toolChoice"] = {"tool": {"name": structured}}
    return request


def structured_output_tool(body: dict[str, Any]) -> str | None:
    """The name of the tool that carries a ``json_schema`` response format, if one is asked."""
    response_format = body.get("response_format")
    if not isinstance(response_format, dict) or response_format.get("type") != "json_schema":
        return None
    return _tool_name((response_format.get("json_schema") or {}).get("name"))


def from_converse(
    answer: dict[str, Any], model: str, structured_tool: str | None = None
) -> dict[str, Any]:
    """An OpenAI ``chat.completion`` object for a Converse answer; the input of
    ``structured_tool`` (see ``structured_output_tool``) is the message's content."""
    blocks = answer.get("output", {}).get("message", {}).get("content", [])
    structured = [
        block["toolUse"].get("input", {})
        for block in blocks
        if "toolUse" in block and block["toolUse"]["name"] == structured_tool
    ]
    blocks = [b for b in blocks if not ("toolUse" in b and b["toolUse"]["name"] == structured_tool)]
    text = "".join(block["text"] for block in blocks if "text" in block)
    if structured:
        text = json.dumps(structured[0], ensure_ascii=False)
    calls = [
        {
            "id": block["toolUse"]["toolUseId"],
            "type": "function",
            "function": {
                "name": block["toolUse"]["name"],
                "arguments": json.dumps(block["toolUse"].get("input", {})),
            },
        }
        for block in blocks
        if "toolUse" in block
    ]
    message: dict[str, Any] = {"role": "assistant", "content": text or None}
    if calls:
        message["tool_calls"] = calls
    usage = answer.get("usage", {})
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": message,
                "finish_reason": "stop"
                if structured and answer.get("stopReason") == "tool_use"
                else FINISH_REASONS.get(answer.get("stopReason", ""), "stop"),
            }
        ],
        "usage": {
            "prompt_tokens": usage.get("inputTokens", 0),
            "completion_tokens": usage.get("outputTokens", 0),
            "total_tokens": usage.get("totalTokens", 0),
        },
    }
