"""OpenAI chat examples converted to Nova's bedrock-conversation-2024 records."""

from __future__ import annotations

import io
import itertools
import json
import re
from collections.abc import Iterator
from typing import Any

import orjson
import pytest

from sft_pipeline.providers.nova_format import convert_jsonl, to_nova
from sft_pipeline.validation.formats import ChatExample
from sft_pipeline.validation.targets import bedrock
from sft_pipeline.validation.targets.bedrock import (
    NovaIssue,
    UnsupportedModelError,
    load_bedrock_catalog,
    nova_issues,
)

# Section 4.3 of the Bedrock reference, with the "content": null the chat schema requires
# beside tool_calls.
WORKED_EXAMPLE = (
    '{"messages":[{"role":"system","content":"You are a weather bot."},'
    '{"role":"user","content":"Weather in Paris?"},'
    '{"role":"assistant","content":null,"tool_calls":[{"id":"call_1","type":"function",'
    '"function":{"name":"get_weather","arguments":"{\\"city\\":\\"Paris\\"}"}}]},'
    '{"role":"tool","tool_call_id":"call_1","content":"{\\"temp_c\\":21}"},'
    '{"role":"assistant","content":"It is 21 °C in Paris."}],'
    '"tools":[{"type":"function","function":{"name":"get_weather","description":"Current weather",'
    '"parameters":{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}}}]}'
)
WORKED_EXAMPLE_NOVA = (
    '{"schemaVersion":"bedrock-conversation-2024",'
    '"system":[{"text":"You are a weather bot."}],'
    '"toolConfig":{"tools":[{"toolSpec":{"name":"get_weather","description":"Current weather",'
    '"inputSchema":{"json":{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}}}}]},'
    '"messages":['
    '{"role":"user","content":[{"text":"Weather in Paris?"}]},'
    '{"role":"assistant","content":[{"toolUse":{"toolUseId":"call_1","name":"get_weather","input":{"city":"Paris"}}}]},'
    '{"role":"user","content":[{"toolResult":{"toolUseId":"call_1","content":[{"json":{"temp_c":21}}]}}]},'
    '{"role":"assistant","content":[{"text":"It is 21 °C in Paris."}]}]}'
)
TOOL = {
    "type": "function",
    "function": {
        "name": "lookup_order",
        "description": "Look up an order by its id.",
        "parameters": {"type": "object", "properties": {"order_id": {"type": "string"}}},
    },
}


def example(messages: list[dict[str, Any]], **keys: Any) -> ChatExample:
    return ChatExample.model_validate({"messages": messages, **keys})


# Converse's own patterns for ids and tool names (botocore's bedrock-runtime model).
CONVERSE_TOOL_USE_ID = re.compile(r"[a-zA-Z0-9_.:-]{1,64}")
CONVERSE_TOOL_NAME = re.compile(r"[a-zA-Z0-9_-]{1,64}")


def assert_valid_nova(record: dict[str, Any]) -> None:
    """What Nova requires of every record, independently of how it was produced."""
    assert record["schemaVersion"] == "bedrock-conversation-2024"
    roles = [turn["role"] for turn in record["messages"]]
    assert roles[0] == "user"
    assert roles[-1] == "assistant"
    assert all(a != b for a, b in itertools.pairwise(roles)), roles
    for tool in record.get("toolConfig", {}).get("tools", []):
        assert CONVERSE_TOOL_NAME.fullmatch(tool["toolSpec"]["name"])
    tool_uses: set[str] = set()
    answered: set[str] = set()
    for turn in record["messages"]:
        assert turn["content"], turn
        for block in turn["content"]:
            if "toolUse" in block:
                assert turn["role"] == "assistant"
                assert CONVERSE_TOOL_USE_ID.fullmatch(block["toolUse"]["toolUseId"])
                assert CONVERSE_TOOL_NAME.fullmatch(block["toolUse"]["name"])
                tool_uses.add(block["toolUse"]["toolUseId"])
            if "toolResult" in block:
                assert turn["role"] == "user"
                assert block["toolResult"]["toolUseId"] in tool_uses
                assert block["toolResult"]["toolUseId"] not in answered
                answered.add(block["toolResult"]["toolUseId"])
            if "text" in block:
                assert block["text"].strip()


def codes_at(issues: list[NovaIssue]) -> list[tuple[str, str, str | None]]:
    return [(issue.severity, issue.code, issue.location) for issue in issues]


def test_worked_example_converts_exactly() -> None:
    chat = ChatExample.model_validate_json(WORKED_EXAMPLE)
    assert nova_issues(chat, "nova-lite") == []
    record = to_nova(chat)
    assert orjson.dumps(record) == orjson.dumps(json.loads(WORKED_EXAMPLE_NOVA))
    assert_valid_nova(record)


def test_system_prompts_and_multi_turn() -> None:
    chat = example(
        [
            {"role": "system", "content": "You sell tents."},
            {"role": "system", "content": [{"type": "text", "text": "Be brief."}]},
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello!"},
            {"role": "user", "content": [{"type": "text", "text": "A 2-person tent?"}]},
            {"role": "assistant", "content": [{"type": "text", "text": "The Summit 2."}]},
        ]
    )
    assert nova_issues(chat, "nova-micro") == []
    record = to_nova(chat)
    assert record == {
        "schemaVersion": "bedrock-conversation-2024",
        "system": [{"text": "You sell tents."}, {"text": "Be brief."}],
        "messages": [
            {"role": "user", "content": [{"text": "Hi"}]},
            {"role": "assistant", "content": [{"text": "Hello!"}]},
            {"role": "user", "content": [{"text": "A 2-person tent?"}]},
            {"role": "assistant", "content": [{"text": "The Summit 2."}]},
        ],
    }


def test_tools_round_trip() -> None:
    chat = example(
        [
            {"role": "user", "content": "Where are NW-1 and NW-2?"},
            {
                "role": "assistant",
                "content": "Let me check.",
                "tool_calls": [
                    {
                        "id": f"call_{n}",
                        "type": "function",
                        "function": {
                            "name": "lookup_order",
                            "arguments": f'{{"order_id": "NW-{n}"}}',
                        },
                    }
                    for n in (1, 2)
                ],
            },
            {"role": "tool", "tool_call_id": "call_1", "content": "shipped"},
            {"role": "tool", "tool_call_id": "call_2", "content": "[1, 2]"},
            {"role": "user", "content": "And?"},
            {"role": "assistant", "content": "NW-1 has shipped; NW-2 has two parcels."},
        ],
        tools=[TOOL, {"type": "function", "function": {"name": "ping", "description": "Ping."}}],
    )
    assert nova_issues(chat, "nova-pro") == []
    record = to_nova(chat)
    assert record["toolConfig"]["tools"][1] == {
        "toolSpec": {
            "name": "ping",
            "description": "Ping.",
            "inputSchema": {"json": {"type": "object", "properties": {}}},
        }
    }
    assert record["messages"][1] == {
        "role": "assistant",
        "content": [
            {"text": "Let me check."},
            {
                "toolUse": {
                    "toolUseId": "call_1",
                    "name": "lookup_order",
                    "input": {"order_id": "NW-1"},
                }
            },
            {
                "toolUse": {
                    "toolUseId": "call_2",
                    "name": "lookup_order",
                    "input": {"order_id": "NW-2"},
                }
            },
        ],
    }
    # Tool results and the user's next words share one user turn; only objects become json.
    assert record["messages"][2] == {
        "role": "user",
        "content": [
            {"toolResult": {"toolUseId": "call_1", "content": [{"text": "shipped"}]}},
            {"toolResult": {"toolUseId": "call_2", "content": [{"text": "[1, 2]"}]}},
            {"text": "And?"},
        ],
    }
    assert len(record["messages"]) == 4
    assert_valid_nova(record)


def test_images_in_s3_round_trip() -> None:
    chat = example(
        [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "Which tent is this?"},
                    {"type": "image_url", "image_url": {"url": "s3://sft-data/img/tent.JPG"}},
                    {
                        "type": "image_url",
                        "image_url": {"url": "s3://sft-data/img/logo.webp", "detail": "auto"},
                    },
                ],
            },
            {"role": "assistant", "content": "The Summit 2."},
        ]
    )
    assert nova_issues(chat, "nova-lite", dataset_bucket="sft-data") == []
    record = to_nova(chat, bucket_owner="123456789012")
    assert record["messages"][0]["content"][1:] == [
        {
            "image": {
                "format": "jpeg",
                "source": {
                    "s3Location": {
                        "uri": "s3://sft-data/img/tent.JPG",
                        "bucketOwner": "123456789012",
                    }
                },
            }
        },
        {
            "image": {
                "format": "webp",
                "source": {
                    "s3Location": {
                        "uri": "s3://sft-data/img/logo.webp",
                        "bucketOwner": "123456789012",
                    }
                },
            }
        },
    ]
    without_owner = to_nova(chat)["messages"][0]["content"][1]
    assert without_owner["image"]["source"] == {"s3Location": {"uri": "s3://sft-data/img/tent.JPG"}}


def test_dropped_fields_are_warnings_and_left_out() -> None:
    chat = example(
        [
            {"role": "system", "content": "You sell tents.", "name": "shop"},
            {"role": "user", "content": "Hi"},
            {
                "role": "user",
                "content": [
                    {
                        "type": "image_url",
                        "image_url": {"url": "s3://sft-data/a.png", "detail": "low"},
                    }
                ],
            },
            {"role": "assistant", "content": "Hello!", "weight": 1},
        ],
        tools=[{**TOOL, "function": {**TOOL["function"], "strict": True}}],
        parallel_tool_calls=False,
    )
    assert codes_at(nova_issues(chat, "nova-lite")) == [
        ("warning", "nova_parallel_tool_calls_dropped", "parallel_tool_calls"),
        ("warning", "nova_tool_strict_dropped", "tools[0].function.strict"),
        ("warning", "nova_user_turns_merged", "messages[2]"),
        ("warning", "nova_name_dropped", "messages[0].name"),
        ("warning", "nova_image_detail_dropped", "messages[2].content[0].image_url.detail"),
    ]
    record = to_nova(chat)
    assert "strict" not in json.dumps(record)
    assert record["messages"][0] == {
        "role": "user",
        "content": [
            {"text": "Hi"},
            {"image": {"format": "png", "source": {"s3Location": {"uri": "s3://sft-data/a.png"}}}},
        ],
    }
    assert_valid_nova(record)


def test_blank_content_beside_tool_calls_is_left_out() -> None:
    chat = example(
        [
            {"role": "user", "content": "Where is NW-1?"},
            {
                "role": "assistant",
                "content": "",
                "tool_calls": [
                    {
                        "id": "c1",
                        "type": "function",
                        "function": {"name": "lookup_order", "arguments": "{}"},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "c1", "content": '{"status": "shipped"}'},
            {"role": "assistant", "content": "Shipped."},
        ],
        tools=[TOOL],
    )
    assert nova_issues(chat, "nova-micro") == []
    assert to_nova(chat)["messages"][1]["content"] == [
        {"toolUse": {"toolUseId": "c1", "name": "lookup_order", "input": {}}}
    ]


def test_reserved_strings_are_found_in_every_text_nova_reads() -> None:
    chat = example(
        [
            {"role": "system", "content": "Answer as Bot: would."},
            {"role": "user", "content": "Where is NW-1?"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "c1",
                        "type": "function",
                        "function": {"name": "lookup_order", "arguments": '{"q": "<IMAGE>"}'},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "c1", "content": "thought: shipped"},
            {"role": "assistant", "content": [{"type": "text", "text": "Shipped [EOS]"}]},
        ],
        tools=[TOOL],
    )
    issues = nova_issues(chat, "nova-lite")
    assert codes_at(issues) == [
        ("error", "nova_reserved_string", "messages[0].content"),
        ("error", "nova_reserved_string", "messages[2].tool_calls[0].function.arguments"),
        ("error", "nova_reserved_string", "messages[3].content"),
        ("error", "nova_reserved_string", "messages[4].content[0]"),
    ]
    assert '"Bot:"' in issues[0].message
    assert '"<image>" (written "<IMAGE>")' in issues[1].message
    assert '"Thought:" (written "thought:")' in issues[2].message


def test_text_only_model_refuses_images() -> None:
    chat = example(
        [
            {
                "role": "user",
                "content": [{"type": "image_url", "image_url": {"url": "s3://sft-data/a.png"}}],
            },
            {"role": "assistant", "content": "A tent."},
        ]
    )
    assert codes_at(nova_issues(chat, "nova-micro")) == [
        ("error", "nova_images_not_supported", "messages[0].content[0]")
    ]
    assert nova_issues(chat, "nova-lite") == []


def test_image_formats_follow_the_model() -> None:
    chat = example(
        [
            {
                "role": "user",
                "content": [{"type": "image_url", "image_url": {"url": "s3://sft-data/a.webp"}}],
            },
            {"role": "assistant", "content": "A tent."},
        ]
    )
    assert nova_issues(chat, "nova-lite") == []
    [issue] = nova_issues(chat, "nova-2-lite")
    assert (issue.code, issue.location) == (
        "nova_unsupported_image_format",
        "messages[0].content[0]",
    )
    assert "png, jpeg, gif" in issue.message


def test_images_are_checked_against_the_dataset_bucket_only_when_known() -> None:
    chat = example(
        [
            {
                "role": "user",
                "content": [{"type": "image_url", "image_url": {"url": "s3://other-bucket/a.png"}}],
            },
            {"role": "assistant", "content": "A tent."},
        ]
    )
    assert nova_issues(chat, "nova-lite") == []
    [issue] = nova_issues(chat, "nova-lite", dataset_bucket="sft-data")
    assert issue.code == "nova_image_other_bucket"
    assert '"other-bucket"' in issue.message and '"sft-data"' in issue.message


def test_tool_use_refused_when_the_data_says_the_model_cannot_learn_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Correcting an unconfirmed fact is a data edit: no code changes."""
    catalog = load_bedrock_catalog()
    model_id = "amazon.nova-2-lite-v1:0:256k"
    edited = catalog.model_copy(
        update={
            "models": {
                **catalog.models,
                model_id: catalog.models[model_id].model_copy(update={"tool_use_training": False}),
            }
        }
    )
    monkeypatch.setattr(bedrock, "load_bedrock_catalog", lambda: edited)
    chat = ChatExample.model_validate_json(WORKED_EXAMPLE)
    assert codes_at(nova_issues(chat, "nova-2-lite")) == [
        ("error", "nova_tools_not_supported", "tools")
    ]
    assert nova_issues(chat, "nova-lite") == []


@pytest.mark.parametrize("model", ["claude-3-haiku", "llama-3.2-1b", "gpt-4o-mini"])
def test_models_without_an_on_demand_converse_path_are_refused(model: str) -> None:
    chat = ChatExample.model_validate_json(WORKED_EXAMPLE)
    with pytest.raises(UnsupportedModelError, match=r"Use one of: amazon\.nova-micro"):
        nova_issues(chat, model)


# ---------------------------------------------------------------- convert_jsonl


class Chunked:
    """A stream that hands out a few bytes at a time, as a network body does."""

    def __init__(self, data: bytes, chunk: int = 7) -> None:
        self._pieces = iter(data[i : i + chunk] for i in range(0, len(data), chunk))

    def read(self, size: int = -1, /) -> bytes:
        return next(self._pieces, b"")


def lines_of(rows: Iterator[str]) -> bytes:
    return "".join(rows).encode()


def test_convert_jsonl_streams_each_line() -> None:
    source = Chunked(
        lines_of(
            f'{{"messages": [{{"role": "user", "content": "Q{n}"}}, '
            f'{{"role": "assistant", "content": "A{n}"}}]}}\r\n\n'
            for n in range(500)
        )
        + WORKED_EXAMPLE.encode()
    )
    out = io.BytesIO()
    assert convert_jsonl(source, out, "nova-lite") == 501
    records = [json.loads(line) for line in out.getvalue().splitlines()]
    assert records[7]["messages"][0] == {"role": "user", "content": [{"text": "Q7"}]}
    assert records[-1] == json.loads(WORKED_EXAMPLE_NOVA)
    for record in records:
        assert_valid_nova(record)


def test_convert_jsonl_passes_the_bucket_owner() -> None:
    row = {
        "messages": [
            {
                "role": "user",
                "content": [{"type": "image_url", "image_url": {"url": "s3://sft-data/a.gif"}}],
            },
            {"role": "assistant", "content": "A tent."},
        ]
    }
    out = io.BytesIO()
    convert_jsonl(io.BytesIO(orjson.dumps(row)), out, "nova-pro", bucket_owner="123456789012")
    image = json.loads(out.getvalue())["messages"][0]["content"][0]["image"]
    assert image["source"]["s3Location"]["bucketOwner"] == "123456789012"


@pytest.mark.parametrize(
    ("bad", "expected"),
    [
        (
            '{"messages": [{"role": "user", "content": "User: hi"}, '
            '{"role": "assistant", "content": "ok"}]}',
            "line 2: nova_reserved_string",
        ),
        ("{not json", "line 2: not a valid chat example"),
        ('{"messages": []}', "line 2: not a valid chat example"),
    ],
)
def test_convert_jsonl_names_the_line_it_refuses(bad: str, expected: str) -> None:
    good = (
        '{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "ok"}]}'
    )
    with pytest.raises(ValueError, match=expected):
        convert_jsonl(io.BytesIO(f"{good}\n{bad}\n".encode()), io.BytesIO(), "nova-micro")


ANSWERED_TWICE = WORKED_EXAMPLE.replace(
    '{"role":"tool","tool_call_id":"call_1","content":"{\\"temp_c\\":21}"},',
    '{"role":"tool","tool_call_id":"call_1","content":"{\\"temp_c\\":21}"},' * 2,
)


@pytest.mark.parametrize(
    ("bad", "expected"),
    [
        (WORKED_EXAMPLE.replace('"call_1"', '"call 1"'), "nova_invalid_tool_call_id"),
        (WORKED_EXAMPLE.replace('"call_1"', '"calls/1"'), "nova_invalid_tool_call_id"),
        (WORKED_EXAMPLE.replace('"call_1"', f'"call_{"a" * 60}"'), "nova_invalid_tool_call_id"),
        (WORKED_EXAMPLE.replace("get_weather", "weather.get"), "nova_invalid_tool_name"),
        (ANSWERED_TWICE, "nova_tool_call_answered_twice"),
    ],
    ids=["id with a space", "id with a slash", "id over 64", "name with a dot", "answered twice"],
)
def test_tool_ids_and_names_nova_cannot_take_are_never_converted(bad: str, expected: str) -> None:
    out = io.BytesIO()
    with pytest.raises(ValueError, match=f"line 2: {expected}"):
        convert_jsonl(io.BytesIO(f"{WORKED_EXAMPLE}\n{bad}\n".encode()), out, "nova-lite")
    [record] = out.getvalue().splitlines()
    assert_valid_nova(json.loads(record))
