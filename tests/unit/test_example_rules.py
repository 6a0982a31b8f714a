"""One test per per-example rule: the right code, on the right line, at the right place."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from tests.conftest import SYSTEM, Validator, chat, codes, good_examples

TOOL = {"type": "function", "function": {"name": "lookup_order", "parameters": {"type": "object"}}}


def call(
    call_id: str = "call_1", arguments: str = '{"order_id": "NW-1"}', name: str = "lookup_order"
) -> dict[str, Any]:
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}


def tool_example(**overrides: Any) -> dict[str, Any]:
    example: dict[str, Any] = {
        "messages": [
            {"role": "system", "content": SYSTEM},
            {"role": "user", "content": "Where is NW-1?"},
            {"role": "assistant", "content": None, "tool_calls": [call()]},
            {"role": "tool", "tool_call_id": "call_1", "content": '{"status": "shipped"}'},
            {"role": "assistant", "content": "It has shipped."},
        ],
        "tools": [TOOL],
    }
    example.update(overrides)
    return example


def image_message(url: str) -> dict[str, Any]:
    return {
        "role": "user",
        "content": [
            {"type": "text", "text": "What is this?"},
            {"type": "image_url", "image_url": {"url": url}},
        ],
    }


PNG = "data:image/png;base64," + base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"0" * 64).decode()

# (bad example, expected error code, expected location)
ERROR_CASES: list[tuple[str, Any, str, str | None]] = [
    ("not an object", [1, 2], "data_type", None),
    ("string line", '"just text"', "data_type", None),
    ("no messages", {}, "missing_messages_list", "messages"),
    ("empty messages", {"messages": []}, "missing_messages_list", "messages"),
    ("messages not a list", {"messages": "hi"}, "missing_messages_list", "messages"),
    ("message not an object", {"messages": ["hi"]}, "message_data_type", "messages[0]"),
    ("no role", {"messages": [{"content": "hi"}]}, "message_missing_key", "messages[0]"),
    (
        "unknown role",
        {"messages": [{"role": "bot", "content": "hi"}]},
        "unrecognized_role",
        "messages[0]",
    ),
    (
        "developer role",
        {"messages": [{"role": "developer", "content": "x"}]},
        "unrecognized_role",
        "messages[0]",
    ),
    (
        "unknown message key",
        {
            "messages": [
                {"role": "user", "content": "hi", "mood": "happy"},
                {"role": "assistant", "content": "ok"},
            ]
        },
        "message_unrecognized_key",
        "messages[0].mood",
    ),
    (
        "weight on a user message",
        {
            "messages": [
                {"role": "user", "content": "hi", "weight": 1},
                {"role": "assistant", "content": "ok"},
            ]
        },
        "message_unrecognized_key",
        "messages[0].weight",
    ),
    (
        "missing content",
        {"messages": [{"role": "user"}, {"role": "assistant", "content": "ok"}]},
        "message_missing_key",
        "messages[0].content",
    ),
    (
        "content of the wrong type",
        {"messages": [{"role": "user", "content": 5}, {"role": "assistant", "content": "ok"}]},
        "invalid_content",
        "messages[0].content",
    ),
    (
        "unknown content part",
        {
            "messages": [
                {"role": "user", "content": [{"type": "audio", "audio": "x"}]},
                {"role": "assistant", "content": "ok"},
            ]
        },
        "invalid_content_part",
        "messages[0].content[0]",
    ),
    (
        "image in an assistant message",
        {
            "messages": [
                {"role": "user", "content": "hi"},
                {
                    "role": "assistant",
                    "content": [{"type": "image_url", "image_url": {"url": PNG}}],
                },
            ]
        },
        "image_not_allowed",
        "messages[1].content[0]",
    ),
    (
        "weight of 2",
        {
            "messages": [
                {"role": "user", "content": "hi"},
                {"role": "assistant", "content": "ok", "weight": 2},
            ]
        },
        "invalid_weight",
        "messages[1].weight",
    ),
    ("no assistant message", chat("hi", reply=None), "example_missing_assistant_message", None),
    (
        "every assistant weight 0",
        {
            "messages": [
                {"role": "user", "content": "hi"},
                {"role": "assistant", "content": "ok", "weight": 0},
            ]
        },
        "no_trainable_assistant_message",
        None,
    ),
    (
        "null content without tool calls",
        {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": None}]},
        "missing_content",
        "messages[1].content",
    ),
    ("special token", chat("hi", "Done <|endoftext|>"), "special_token", "messages[2]"),
    (
        "special token escaped in JSON",
        '{"messages": [{"role": "user", "content": "\\u003c|im_start|>"}, {"role": "assistant", "content": "ok"}]}',
        "special_token",
        "messages[0]",
    ),
    (
        "fim special token",
        chat("<|fim_suffix|> complete this", "ok"),
        "special_token",
        "messages[1]",
    ),
    (
        "tool arguments not JSON",
        tool_example(
            messages=[
                {"role": "user", "content": "x"},
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [call(arguments="{order: 1}")],
                },
                {"role": "assistant", "content": "ok"},
            ]
        ),
        "invalid_tool_arguments",
        "messages[1].tool_calls[0].function.arguments",
    ),
    (
        "tool answer to an unknown call",
        tool_example(
            messages=[
                {"role": "user", "content": "x"},
                {"role": "tool", "tool_call_id": "call_9", "content": "{}"},
                {"role": "assistant", "content": "ok"},
            ]
        ),
        "unknown_tool_call_id",
        "messages[1].tool_call_id",
    ),
    (
        "tool message without tool_call_id",
        tool_example(
            messages=[
                {"role": "user", "content": "x"},
                {"role": "tool", "content": "{}"},
                {"role": "assistant", "content": "ok"},
            ]
        ),
        "message_missing_key",
        "messages[1].tool_call_id",
    ),
    (
        "malformed tool call",
        tool_example(
            messages=[
                {"role": "user", "content": "x"},
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [{"id": "c", "type": "function"}],
                },
            ]
        ),
        "invalid_tool_call",
        "messages[1].tool_calls[0].function",
    ),
    (
        "malformed tool definition",
        tool_example(tools=[{"type": "function"}]),
        "invalid_tool_definition",
        "tools[0].function",
    ),
    (
        "parallel_tool_calls not a bool",
        tool_example(parallel_tool_calls="yes"),
        "invalid_value",
        "parallel_tool_calls",
    ),
    ("unknown top-level key", {**chat("hi"), "label": "x"}, "example_unrecognized_key", "label"),
    (
        "image URL scheme",
        {"messages": [image_message("ftp://x/y.png"), {"role": "assistant", "content": "A cat."}]},
        "invalid_image_url",
        "messages[0].content[1]",
    ),
    (
        "image format",
        {
            "messages": [
                image_message("data:image/gif;base64,R0lGODlh"),
                {"role": "assistant", "content": "A cat."},
            ]
        },
        "unsupported_image_format",
        "messages[0].content[1]",
    ),
    (
        "image data",
        {
            "messages": [
                image_message("data:image/png;base64,@@@"),
                {"role": "assistant", "content": "A cat."},
            ]
        },
        "invalid_image_data",
        "messages[0].content[1]",
    ),
    (
        "too many images",
        {
            "messages": [
                {
                    "role": "user",
                    "content": [{"type": "image_url", "image_url": {"url": "https://x/a.png"}}]
                    * 11,
                },
                {"role": "assistant", "content": "Cats."},
            ]
        },
        "too_many_images",
        None,
    ),
    (
        "DPO row in a chat file",
        {"input": {"messages": []}, "preferred_output": [], "non_preferred_output": []},
        "dpo_example_in_chat_file",
        None,
    ),
    (
        "legacy completion row",
        {"prompt": "hi", "completion": "ok"},
        "completion_example_in_chat_file",
        None,
    ),
]


@pytest.mark.parametrize(
    ("bad", "code", "location"),
    [case[1:] for case in ERROR_CASES],
    ids=[case[0] for case in ERROR_CASES],
)
def test_each_rule_names_its_code_line_and_location(
    run_validation: Validator, bad: Any, code: str, location: str | None
) -> None:
    good = good_examples(10)
    rows = [*good[:5], bad, *good[5:]]
    report = run_validation(rows)
    assert not report.valid
    matching = [f for f in report.errors if f.code == code]
    assert matching, f"expected {code}, got {codes(report.errors)}"
    assert matching[0].line == 6
    assert matching[0].location == location
    assert report.error_counts == {code: 1}
    assert matching[0].message


def test_valid_tool_call_example_passes(run_validation: Validator) -> None:
    report = run_validation([tool_example(), *good_examples(10)])
    assert report.valid, report.errors
    assert report.stats.examples_with_tools == 1


def test_valid_image_example_passes(run_validation: Validator) -> None:
    image_row = {"messages": [image_message(PNG), {"role": "assistant", "content": "A tent."}]}
    report = run_validation([image_row, *good_examples(10)])
    assert report.valid, report.errors
    assert report.stats.examples_with_images == 1


def test_image_over_10_mb_is_refused(run_validation: Validator) -> None:
    big = "data:image/jpeg;base64," + base64.b64encode(b"\xff" * (10 * 1024 * 1024 + 1)).decode()
    report = run_validation(
        [
            {"messages": [image_message(big), {"role": "assistant", "content": "A tent."}]},
            *good_examples(10),
        ]
    )
    assert codes(report.errors) == ["image_too_large"]


def test_assistant_content_parts_and_refusal_are_accepted(run_validation: Validator) -> None:
    row = {
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "Hack my neighbour's wifi"}]},
            {
                "role": "assistant",
                "content": [{"type": "refusal", "refusal": "I can't help with that."}],
            },
        ],
        "parallel_tool_calls": False,
    }
    report = run_validation([row, *good_examples(10)])
    assert report.valid, report.errors


def test_deprecated_function_messages_are_accepted(run_validation: Validator) -> None:
    row = {
        "messages": [
            {"role": "user", "content": "Weather in Oslo?"},
            {
                "role": "assistant",
                "content": None,
                "function_call": {"name": "weather", "arguments": '{"city": "Oslo"}'},
            },
            {"role": "function", "name": "weather", "content": '{"temp": 3}'},
            {"role": "assistant", "content": "It is 3 °C in Oslo."},
        ],
        "functions": [{"name": "weather", "parameters": {"type": "object"}}],
    }
    assert run_validation([row, *good_examples(10)]).valid


def test_warnings_for_a_single_example(run_validation: Validator) -> None:
    rows = [
        tool_example(
            messages=[
                {"role": "user", "content": "x"},
                {"role": "assistant", "content": None, "tool_calls": [call(name="delete_all")]},
                {"role": "tool", "tool_call_id": "call_1", "content": "{}"},
                {"role": "assistant", "content": "ok done"},
            ]
        ),
        {
            "messages": [
                {"role": "user", "content": "hi"},
                {"role": "assistant", "content": "Hello there!"},
                {"role": "user", "content": "bye"},
            ]
        },
        {
            "messages": [
                {"role": "system", "content": "  "},
                {"role": "user", "content": "hi"},
                {"role": "assistant", "content": "Hello there!"},
            ]
        },
        *good_examples(10),
    ]
    report = run_validation(rows)
    assert report.valid
    by_code = {f.code: f for f in report.warnings}
    assert by_code["undefined_tool"].line == 1
    assert by_code["last_message_not_assistant"].line == 2
    assert by_code["empty_content"].line == 3


def test_dpo_format(run_validation: Validator) -> None:
    def pair(
        i: int, preferred: str = "Helpful answer", rejected: str = "Rude answer"
    ) -> dict[str, Any]:
        return {
            "input": {"messages": [{"role": "user", "content": f"Question {i}"}]},
            "preferred_output": [{"role": "assistant", "content": f"{preferred} {i}"}],
            "non_preferred_output": [{"role": "assistant", "content": f"{rejected} {i}"}],
        }

    assert run_validation([pair(i) for i in range(10)], data_format="dpo").valid
    ends_with_assistant = pair(99)
    ends_with_assistant["input"]["messages"].append({"role": "assistant", "content": "x"})
    two_outputs = pair(98)
    two_outputs["preferred_output"].append({"role": "assistant", "content": "y"})
    rows = [
        *(pair(i) for i in range(10)),
        ends_with_assistant,
        two_outputs,
        pair(97, "Same", "Same"),
        chat("supervised row"),
    ]
    report = run_validation(rows, data_format="dpo")
    assert {(f.code, f.line) for f in report.errors} == {
        ("dpo_input_must_end_with_user", 11),
        ("invalid_preference_output", 12),
        ("chat_example_in_dpo_file", 14),
    }
    assert [(f.code, f.line) for f in report.warnings] == [("identical_preference_pair", 13)]
