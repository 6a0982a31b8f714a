"""OpenAI chat requests to Bedrock Converse and back."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from sft_pipeline.providers.converse_format import (
    UnsupportedRequestError,
    from_converse,
    structured_output_tool,
    to_converse,
)

DEPLOYMENT = "arn:aws:bedrock:us-east-1:123456789012:custom-model-deployment/abcdef123456"


def test_messages_system_and_inference_settings() -> None:
    request = to_converse(
        {
            "model": DEPLOYMENT,
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": "Hi"},
                {"role": "assistant", "content": [{"type": "text", "text": "Hello!"}]},
                {"role": "user", "content": "Where is my order?"},
            ],
            "max_tokens": 100,
            "temperature": 0.2,
            "top_p": 0.9,
            "stop": "END",
        }
    )
    assert request == {
        "modelId": DEPLOYMENT,
        "system": [{"text": "Be brief."}],
        "messages": [
            {"role": "user", "content": [{"text": "Hi"}]},
            {"role": "assistant", "content": [{"text": "Hello!"}]},
            {"role": "user", "content": [{"text": "Where is my order?"}]},
        ],
        "inferenceConfig": {
            "maxTokens": 100,
            "temperature": 0.2,
            "topP": 0.9,
            "stopSequences": ["END"],
        },
    }


def test_tool_calls_and_results_become_tool_use_blocks() -> None:
    request = to_converse(
        {
            "model": DEPLOYMENT,
            "messages": [
                {"role": "user", "content": "Weather in Paris?"},
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "id": "c1",
                            "type": "function",
                            "function": {"name": "weather", "arguments": '{"city": "Paris"}'},
                        }
                    ],
                },
                {"role": "tool", "tool_call_id": "c1", "content": '{"temp_c": 21}'},
                {"role": "tool", "tool_call_id": "c2", "content": "sunny"},
            ],
            "tools": [
                {
                    "type": "function",
                    "function": {"name": "weather", "parameters": {"type": "object"}},
                }
            ],
        }
    )
    assert request["messages"][1] == {
        "role": "assistant",
        "content": [
            {"toolUse": {"toolUseId": "c1", "name": "weather", "input": {"city": "Paris"}}}
        ],
    }
    # Consecutive tool results form one user turn, so turns still alternate.
    assert request["messages"][2] == {
        "role": "user",
        "content": [
            {"toolResult": {"toolUseId": "c1", "content": [{"json": {"temp_c": 21}}]}},
            {"toolResult": {"toolUseId": "c2", "content": [{"text": "sunny"}]}},
        ],
    }
    assert request["toolConfig"]["tools"][0]["toolSpec"]["name"] == "weather"


WEATHER_TOOL = {"type": "function", "function": {"name": "weather"}}


def calling(call_id: str, name: str = "weather", answer_id: str | None = None) -> dict[str, Any]:
    return {
        "model": DEPLOYMENT,
        "messages": [
            {"role": "user", "content": "Weather in Paris?"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": call_id,
                        "type": "function",
                        "function": {"name": name, "arguments": "{}"},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": answer_id or call_id, "content": "sunny"},
        ],
        "tools": [{"type": "function", "function": {"name": name}}],
    }


@pytest.mark.parametrize(
    ("body", "refused"),
    [
        (calling("call 1"), 'tool call id "call 1"'),
        (calling("calls/1"), 'tool call id "calls/1"'),
        (calling("c" * 65), "tool call id"),
        (calling("c1", answer_id="c/1"), 'tool call id "c/1"'),
        (calling("c1", name="weather.now"), 'tool name "weather.now"'),
        (
            {
                "model": DEPLOYMENT,
                "messages": [],
                "tools": [{**WEATHER_TOOL, "function": {"name": ""}}],
            },
            "tool name",
        ),
    ],
)
def test_tool_ids_and_names_converse_cannot_take_are_refused_by_name(
    body: dict[str, Any], refused: str
) -> None:
    with pytest.raises(UnsupportedRequestError, match=re.escape(refused)):
        to_converse(body)


def test_images_are_refused_with_a_reason() -> None:
    with pytest.raises(UnsupportedRequestError, match="image_url"):
        to_converse(
            {
                "model": DEPLOYMENT,
                "messages": [
                    {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}
                ],
            }
        )


def test_answers_become_chat_completions() -> None:
    text = from_converse(
        {
            "output": {"message": {"role": "assistant", "content": [{"text": "Hello"}]}},
            "stopReason": "max_tokens",
            "usage": {"inputTokens": 3, "outputTokens": 1, "totalTokens": 4},
        },
        "support-model",
    )
    assert (
        text["model"],
        text["choices"][0]["message"]["content"],
        text["choices"][0]["finish_reason"],
    ) == ("support-model", "Hello", "length")
    assert text["usage"] == {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4}
    tool = from_converse(
        {
            "output": {
                "message": {
                    "role": "assistant",
                    "content": [
                        {
                            "toolUse": {
                                "toolUseId": "t1",
                                "name": "weather",
                                "input": {"city": "Oslo"},
                            }
                        }
                    ],
                }
            },
            "stopReason": "tool_use",
        },
        "m",
    )
    [call] = tool["choices"][0]["message"]["tool_calls"]
    assert (
        call["id"],
        json.loads(call["function"]["arguments"]),
        tool["choices"][0]["finish_reason"],
    ) == ("t1", {"city": "Oslo"}, "tool_calls")
    assert tool["choices"][0]["message"]["content"] is None


STRUCTURED = {
    "type": "json_schema",
    "json_schema": {
        "name": "training_conversation",
        "strict": True,
        "schema": {"type": "object", "properties": {"turns": {"type": "array"}}},
    },
}


def test_a_json_schema_response_format_becomes_a_forced_tool() -> None:
    body = {
        "model": "amazon.nova-pro-v1:0",
        "messages": [{"role": "user", "content": "Write one."}],
        "response_format": STRUCTURED,
    }
    request = to_converse(body)
    assert request["toolConfig"] == {
        "tools": [
            {
                "toolSpec": {
                    "name": "training_conversation",
                    "description": "Give the answer in this structure.",
                    "inputSchema": {"json": STRUCTURED["json_schema"]["schema"]},
                }
            }
        ],
        "toolChoice": {"tool": {"name": "training_conversation"}},
    }
    assert structured_output_tool(body) == "training_conversation"
    assert structured_output_tool({**body, "response_format": {"type": "json_object"}}) is None


def test_the_forced_tool_input_is_the_answer_text() -> None:
    answer = {
        "output": {
            "message": {
                "content": [
                    {
                        "toolUse": {
                            "toolUseId": "t1",
                            "name": "training_conversation",
                            "input": {"turns": [{"user": "a", "assistant": "b"}]},
                        }
                    }
                ]
            }
        },
        "stopReason": "tool_use",
        "usage": {"inputTokens": 5, "outputTokens": 7, "totalTokens": 12},
    }
    completion = from_converse(answer, "amazon.nova-pro-v1:0", "training_conversation")
    choice = completion["choices"][0]
    assert json.loads(choice["message"]["content"]) == {"turns": [{"user": "a", "assistant": "b"}]}
    assert "tool_calls" not in choice["message"]
    assert choice["finish_reason"] == "stop"
    # Without the structured tool's name it is an ordinary tool call.
    plain = from_converse(answer, "amazon.nova-pro-v1:0")["choices"][0]
    assert plain["message"]["tool_calls"][0]["function"]["name"] == "training_conversation"
