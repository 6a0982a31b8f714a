"""Validating for Amazon Bedrock: each Nova rule on the right line and place, the
record bounds and refusals of the model table, the estimate, and both catalogs.
"""

from __future__ import annotations

import base64
import datetime as dt
import re
from functools import cache
from typing import Any

import botocore.session
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sft_pipeline.jobs import SUFFIX_PATTERN, Hyperparameters
from sft_pipeline.validation.estimate import estimate_cost, token_limit, training_cost
from sft_pipeline.validation.targets import provider_of, resolve_model
from sft_pipeline.validation.targets.bedrock import (
    bedrock_spec,
    custom_model_name,
    job_setting_problems,
    load_bedrock_catalog,
)
from tests.conftest import SYSTEM, Validator, chat, codes, good_examples

BUCKET = "sft-data"
TOOL = {
    "type": "function",
    "function": {
        "name": "lookup_order",
        "description": "Look up an order by its id.",
        "parameters": {"type": "object", "properties": {"order_id": {"type": "string"}}},
    },
}
PNG = "data:image/png;base64," + base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"0" * 64).decode()


def call(call_id: str = "call_1", arguments: str = '{"order_id": "NW-1"}') -> dict[str, Any]:
    return {
        "id": call_id,
        "type": "function",
        "function": {"name": "lookup_order", "arguments": arguments},
    }


def turns(*messages: dict[str, Any], **keys: Any) -> dict[str, Any]:
    return {"messages": list(messages), **keys}


def user(content: Any = "Where is NW-1?", **keys: Any) -> dict[str, Any]:
    return {"role": "user", "content": content, **keys}


def assistant(content: Any = "It has shipped.", **keys: Any) -> dict[str, Any]:
    return {"role": "assistant", "content": content, **keys}


def image(url: str, **keys: Any) -> dict[str, Any]:
    return user(
        [
            {"type": "text", "text": "Which tent?"},
            {"type": "image_url", "image_url": {"url": url, **keys}},
        ]
    )


def tool_turns(*calls: dict[str, Any], **keys: Any) -> dict[str, Any]:
    example = turns(
        user(),
        assistant(None, tool_calls=list(calls)),
        {"role": "tool", "tool_call_id": calls[0]["id"], "content": '{"status": "shipped"}'},
        assistant(),
        tools=[TOOL],
    )
    example.update(keys)
    return example


# (case, bad example, code, location) for nova-lite, with the dataset in BUCKET.
ERROR_CASES: list[tuple[str, dict[str, Any], str, str | None]] = [
    (
        "weight 0",
        turns(user(), assistant(weight=0), user("And NW-2?"), assistant()),
        "nova_weight_zero",
        "messages[1].weight",
    ),
    (
        "system after the first turn",
        turns(
            user(), assistant(), {"role": "system", "content": SYSTEM}, user("And?"), assistant()
        ),
        "nova_late_system_message",
        "messages[2]",
    ),
    (
        "consecutive assistant turns",
        turns(user(), assistant(), assistant("Anything else?")),
        "nova_consecutive_assistant_turns",
        "messages[2]",
    ),
    (
        "first turn not user",
        turns({"role": "system", "content": SYSTEM}, assistant("Hi!"), user(), assistant()),
        "nova_first_turn_not_user",
        "messages[1]",
    ),
    (
        "last turn not assistant",
        turns(user(), assistant(), user("Thanks")),
        "nova_last_turn_not_assistant",
        "messages[2]",
    ),
    (
        "refusal field",
        turns(user(), assistant("No.", refusal="I can't help with that.")),
        "nova_refusal",
        "messages[1].refusal",
    ),
    (
        "refusal part",
        turns(user(), assistant([{"type": "refusal", "refusal": "I can't help with that."}])),
        "nova_refusal",
        "messages[1].content[0]",
    ),
    (
        "legacy functions",
        turns(user(), assistant(), functions=[{"name": "lookup_order"}]),
        "nova_legacy_functions",
        "functions",
    ),
    (
        "legacy function_call",
        turns(user(), assistant(None, function_call={"name": "lookup_order", "arguments": "{}"})),
        "nova_legacy_functions",
        "messages[1].function_call",
    ),
    (
        "legacy function role",
        turns(
            user(),
            assistant("Checking."),
            {"role": "function", "name": "lookup_order", "content": "shipped"},
            assistant(),
        ),
        "nova_legacy_functions",
        "messages[2]",
    ),
    (
        "image as a data URL",
        turns(image(PNG), assistant()),
        "nova_image_not_in_s3",
        "messages[0].content[1]",
    ),
    (
        "image as an https URL",
        turns(image("https://example.com/tent.png"), assistant()),
        "nova_image_not_in_s3",
        "messages[0].content[1]",
    ),
    (
        "image key with a space",
        turns(image(f"s3://{BUCKET}/my tent.png"), assistant()),
        "nova_invalid_image_uri",
        "messages[0].content[1]",
    ),
    (
        "image in another bucket",
        turns(image("s3://someone-else/tent.png"), assistant()),
        "nova_image_other_bucket",
        "messages[0].content[1]",
    ),
    (
        "image format not taken",
        turns(image(f"s3://{BUCKET}/tent.bmp"), assistant()),
        "nova_unsupported_image_format",
        "messages[0].content[1]",
    ),
    (
        "eleven images in one message",
        turns(
            user(
                [
                    {"type": "image_url", "image_url": {"url": f"s3://{BUCKET}/{n}.png"}}
                    for n in range(11)
                ]
            ),
            assistant(),
        ),
        "nova_too_many_images",
        "messages[0]",
    ),
    (
        "reserved string",
        chat("User: where is my order?"),
        "nova_reserved_string",
        "messages[1].content",
    ),
    (
        "reserved string in another case",
        chat("Where is my order?", "Shipped [eos]"),
        "nova_reserved_string",
        "messages[2].content",
    ),
    ("empty text", chat("   "), "nova_empty_text", "messages[1].content"),
    (
        "empty text part",
        turns(user([{"type": "text", "text": ""}]), assistant()),
        "nova_empty_text",
        "messages[0].content[0]",
    ),
    (
        "tool arguments not an object",
        tool_turns(call(arguments="[1, 2]")),
        "nova_tool_arguments_not_object",
        "messages[1].tool_calls[0].function.arguments",
    ),
    (
        "tool without description",
        tool_turns(call(), tools=[{"type": "function", "function": {"name": "lookup_order"}}]),
        "nova_tool_missing_description",
        "tools[0].function.description",
    ),
    (
        "tool schema without type",
        tool_turns(
            call(),
            tools=[{**TOOL, "function": {**TOOL["function"], "parameters": {"properties": {}}}}],
        ),
        "nova_tool_schema_missing_type",
        "tools[0].function.parameters",
    ),
    (
        "tool call of an undeclared tool",
        tool_turns(call(), tools=None),
        "nova_undefined_tool",
        "messages[1].tool_calls[0].function.name",
    ),
    (
        "tool call id used twice",
        tool_turns(call(), call(arguments='{"order_id": "NW-2"}')),
        "nova_duplicate_tool_call_id",
        "messages[1].tool_calls[1].id",
    ),
    (
        "tool call id with a space",
        tool_turns(call("call 1")),
        "nova_invalid_tool_call_id",
        "messages[1].tool_calls[0].id",
    ),
    (
        "tool call id with a slash",
        tool_turns(call("calls/1")),
        "nova_invalid_tool_call_id",
        "messages[1].tool_calls[0].id",
    ),
    (
        "tool call id over 64 characters",
        tool_turns(call("call_" + "a" * 60)),
        "nova_invalid_tool_call_id",
        "messages[1].tool_calls[0].id",
    ),
    (
        "tool name with a dot",
        tool_turns(
            {**call(), "function": {"name": "orders.lookup", "arguments": "{}"}},
            tools=[{**TOOL, "function": {**TOOL["function"], "name": "orders.lookup"}}],
        ),
        "nova_invalid_tool_name",
        "tools[0].function.name",
    ),
    (
        "tool call answered twice",
        turns(
            user(),
            assistant(None, tool_calls=[call()]),
            {"role": "tool", "tool_call_id": "call_1", "content": '{"status": "shipped"}'},
            {"role": "tool", "tool_call_id": "call_1", "content": '{"status": "lost"}'},
            assistant(),
            tools=[TOOL],
        ),
        "nova_tool_call_answered_twice",
        "messages[3].tool_call_id",
    ),
]

WARNING_CASES: list[tuple[str, dict[str, Any], str, str | None]] = [
    ("name", turns(user(name="ada"), assistant()), "nova_name_dropped", "messages[0].name"),
    (
        "consecutive user turns",
        turns(user(), user("It was due Monday."), assistant()),
        "nova_user_turns_merged",
        "messages[1]",
    ),
    (
        "parallel_tool_calls",
        tool_turns(call(), parallel_tool_calls=False),
        "nova_parallel_tool_calls_dropped",
        "parallel_tool_calls",
    ),
    (
        "strict tool",
        tool_turns(call(), tools=[{**TOOL, "function": {**TOOL["function"], "strict": True}}]),
        "nova_tool_strict_dropped",
        "tools[0].function.strict",
    ),
    (
        "image detail",
        turns(image(f"s3://{BUCKET}/tent.png", detail="high"), assistant()),
        "nova_image_detail_dropped",
        "messages[0].content[1].image_url.detail",
    ),
]


@pytest.mark.parametrize(
    ("bad", "code", "location"),
    [case[1:] for case in ERROR_CASES],
    ids=[case[0] for case in ERROR_CASES],
)
def test_each_nova_refusal_names_its_code_line_and_location(
    run_validation: Validator, bad: dict[str, Any], code: str, location: str | None
) -> None:
    good = good_examples(10)
    report = run_validation([*good[:5], bad, *good[5:]], model="nova-lite", dataset_bucket=BUCKET)
    assert not report.valid
    assert report.error_counts == {code: 1}, codes(report.errors)
    [finding] = report.errors
    assert (finding.line, finding.location) == (6, location)
    assert "Nova" in finding.message or "Bedrock" in finding.message


@pytest.mark.parametrize(
    ("example", "code", "location"),
    [case[1:] for case in WARNING_CASES],
    ids=[case[0] for case in WARNING_CASES],
)
def test_each_dropped_field_is_a_warning_on_its_line(
    run_validation: Validator, example: dict[str, Any], code: str, location: str | None
) -> None:
    good = good_examples(10)
    report = run_validation(
        [*good[:5], example, *good[5:]], model="nova-lite", dataset_bucket=BUCKET
    )
    assert report.valid, report.errors
    matching = [f for f in report.warnings if f.code == code]
    assert [(f.line, f.location) for f in matching] == [(6, location)]


def test_a_clean_file_is_valid_for_every_supported_nova_model(run_validation: Validator) -> None:
    for model in ("nova-micro", "amazon.nova-lite-v1:0", "amazon.nova-pro-v1:0:300k"):
        report = run_validation(good_examples(10), model=model)
        assert report.valid, (model, report.errors)
        assert report.estimate is not None
        assert report.estimate.base_model == bedrock_id(model)


def bedrock_id(model: str) -> str:
    resolved = load_bedrock_catalog().resolve(model)
    assert resolved is not None
    return resolved[0]


def test_images_for_text_only_nova_micro_are_refused(run_validation: Validator) -> None:
    rows = [turns(image(f"s3://{BUCKET}/tent.png"), assistant()), *good_examples(10)]
    report = run_validation(rows, model="nova-micro")
    assert [(f.code, f.line, f.location) for f in report.errors] == [
        ("nova_images_not_supported", 1, "messages[0].content[1]")
    ]


def test_openai_validation_is_unchanged_by_the_bedrock_rules(run_validation: Validator) -> None:
    s3_image = turns(image(f"s3://{BUCKET}/tent.png"), assistant())
    reserved = chat("User: where is my order?")
    rows = [s3_image, reserved, *good_examples(10)]
    nova = run_validation(rows, model="nova-lite")
    assert codes(nova.errors) == ["nova_reserved_string"]
    for options in ({}, {"model": "gpt-4o-mini"}, {"model": "nova-lite", "provider": "openai"}):
        report = run_validation(rows, **options)
        assert codes(report.errors) == ["invalid_image_url"], options


# ---------------------------------------------------------------- file-level


@pytest.mark.parametrize(
    ("model", "examples", "minimum"),
    [("nova-micro", 7, "8"), ("nova-2-lite", 199, "200")],
)
def test_too_few_examples_uses_the_models_minimum(
    run_validation: Validator, model: str, examples: int, minimum: str
) -> None:
    report = run_validation(good_examples(examples), model=model)
    [finding] = report.errors
    assert finding.code == "too_few_examples"
    assert f"at least {minimum} " in finding.message and "Amazon Bedrock" in finding.message
    assert run_validation(good_examples(examples + 1), model=model).error_counts == {}


def test_nova_takes_fewer_examples_than_openai(run_validation: Validator) -> None:
    assert run_validation(good_examples(8), model="nova-micro").valid
    assert codes(run_validation(good_examples(8)).errors) == ["too_few_examples"]


def test_too_many_examples(run_validation: Validator) -> None:
    line = chat("Where is my order?", "It has shipped.")
    report = run_validation([line] * 20_001, model="nova-pro", max_findings_per_code=1)
    assert [(f.code, f.message) for f in report.errors] == [
        (
            "too_many_examples",
            "The file has 20,001 examples; Amazon Bedrock accepts at most 20,000 to fine-tune "
            "amazon.nova-pro-v1:0:300k. Split or sample the data.",
        )
    ]


@pytest.mark.parametrize(
    ("options", "reason"),
    [
        ({"model": "claude-3-haiku"}, "Provisioned Throughput"),
        ({"model": "meta.llama3-1-8b-instruct-v1:0:128k"}, "prompt-completion format"),
        ({"model": "llama-3.2-11b"}, "Provisioned Throughput"),
        ({"model": "gpt-4o-mini", "provider": "bedrock"}, "is not a base model"),
        ({"model": "amazon.nova-premier-v1:0", "provider": "bedrock"}, "is not a base model"),
    ],
)
def test_unsupported_bedrock_models_are_refused_once_with_what_to_use(
    run_validation: Validator, options: dict[str, Any], reason: str
) -> None:
    report = run_validation(good_examples(10), **options)
    [finding] = report.errors
    assert finding.code == "unsupported_base_model"
    assert finding.line is None
    assert reason in finding.message
    assert "Use one of: amazon.nova-micro-v1:0:128k (nova-micro)" in finding.message


@pytest.mark.parametrize(
    ("settings", "refused"),
    [
        ({"hyperparameters": Hyperparameters(n_epochs=6)}, "epochCount must be from 1 to 5, not 6"),
        ({"hyperparameters": Hyperparameters(batch_size=8)}, "has no batch size"),
        (
            {"hyperparameters": Hyperparameters(learning_rate_multiplier=0.05)},
            "learningRate must be from",
        ),
        ({"suffix": "tents__v2"}, 'suffix "tents__v2" does not fit'),
        ({"suffix": "tents-"}, 'suffix "tents-" does not fit'),
        ({"suffix": "a" * 47}, "a suffix may have at most 46"),
    ],
)
def test_settings_bedrock_would_refuse_make_the_file_invalid(
    run_validation: Validator, settings: dict[str, Any], refused: str
) -> None:
    report = run_validation(good_examples(10), model="nova-micro", **settings)
    assert report.error_counts == {"invalid_job_setting": 1}
    [finding] = report.errors
    assert finding.line is None and refused in finding.message


def test_settings_only_bedrock_refuses_leave_an_openai_file_valid(
    run_validation: Validator,
) -> None:
    report = run_validation(
        good_examples(10), hyperparameters=Hyperparameters(n_epochs=6), suffix="tents__v2"
    )
    assert report.valid, report.errors


@cache
def _model_name_rule() -> tuple[int, str]:
    """Bedrock's own rule for customModelName, read from botocore's service model."""
    operation = (
        botocore.session.get_session()
        .get_service_model("bedrock")
        .operation_model("CreateModelCustomizationJob")
    )
    assert operation.input_shape is not None
    rule = operation.input_shape.members["customModelName"].metadata
    return rule["max"], rule["pattern"]


def _bedrock_accepts_model_name(name: str) -> bool:
    longest, pattern = _model_name_rule()
    return len(name) <= longest and re.fullmatch(pattern, name) is not None


@settings(max_examples=300, deadline=None)
@given(
    suffix=st.from_regex(SUFFIX_PATTERN, fullmatch=True),
    dataset_id=st.from_regex(r"[0-9a-f]{32}", fullmatch=True),
)
def test_a_suffix_is_refused_exactly_when_bedrock_would_refuse_the_name(
    suffix: str, dataset_id: str
) -> None:
    refused = job_setting_problems("nova-micro", Hyperparameters(), suffix) != []
    try:
        name = custom_model_name(suffix, dataset_id)
    except ValueError:
        name = None
    assert refused == (name is None)
    assert refused != _bedrock_accepts_model_name(f"sft-{suffix}-{dataset_id[:12]}")
    assert name is None or name == f"sft-{suffix}-{dataset_id[:12]}"


def test_dpo_files_cannot_train_on_bedrock(run_validation: Validator) -> None:
    pairs = [
        {
            "input": {"messages": [{"role": "user", "content": f"Question {i}"}]},
            "preferred_output": [{"role": "assistant", "content": f"Helpful {i}"}],
            "non_preferred_output": [{"role": "assistant", "content": f"Rude {i}"}],
        }
        for i in range(10)
    ]
    report = run_validation(pairs, model="nova-lite", data_format="dpo")
    assert codes(report.errors) == ["unsupported_data_format"]


def test_nova_2_lite_ignores_a_validation_file(run_validation: Validator) -> None:
    report = run_validation(good_examples(200), good_examples(5), model="nova-2-lite")
    assert report.valid, report.errors
    [finding] = [f for f in report.warnings if f.code == "validation_file_not_used"]
    assert finding.file == "validation"
    lite = run_validation(good_examples(200), good_examples(5), model="nova-lite")
    assert "validation_file_not_used" not in lite.warning_counts


def test_tool_use_training_is_flagged_as_unconfirmed(run_validation: Validator) -> None:
    report = run_validation([tool_turns(call()), *good_examples(10)], model="nova-lite")
    assert report.valid, report.errors
    [finding] = [f for f in report.warnings if f.code == "tool_use_unconfirmed"]
    assert finding.message.startswith("1 examples use tools")
    assert "unconfirmed" in finding.message


def test_examples_over_the_context_window_are_flagged(run_validation: Validator) -> None:
    long_reply = "tent " * 130_000
    report = run_validation(
        [chat("Describe it.", long_reply), *good_examples(10)], model="nova-micro"
    )
    [finding] = [f for f in report.warnings if f.code == "example_too_long"]
    assert finding.line == 1
    assert "128,000-token context window of amazon.nova-micro-v1:0:128k" in finding.message


def test_report_estimate_uses_the_nova_default_epochs(run_validation: Validator) -> None:
    report = run_validation(good_examples(500), model="nova-lite")
    assert report.estimate is not None
    assert (report.estimate.n_epochs, report.estimate.n_epochs_source) == (2, "auto")
    requested = run_validation(
        good_examples(500), model="nova-lite", hyperparameters=Hyperparameters(n_epochs=4)
    )
    assert requested.estimate is not None
    assert requested.estimate.n_epochs == 4


# ---------------------------------------------------------------- estimate


def test_bedrock_estimate_uses_the_unconfirmed_price_and_says_so() -> None:
    estimate = estimate_cost("nova-micro", 1_000_000, 50, today=dt.date(2026, 11, 25))
    assert estimate.base_model == "amazon.nova-micro-v1:0:128k"
    assert (estimate.n_epochs, estimate.billed_tokens) == (2, 2_000_000)
    assert estimate.training_price_per_million_usd == 1.0
    assert estimate.estimated_cost_usd == pytest.approx(2.0)
    assert estimate.max_tokens_per_example == 128_000
    assert estimate.price_as_of == load_bedrock_catalog().as_of.isoformat()
    notes = " | ".join(estimate.notes)
    assert (
        "price of amazon.nova-micro-v1:0:128k ($1 per 1M tokens, as of 2026-11-25) is unconfirmed"
        in notes
    )
    assert "no public tokenizer: token counts use o200k_base and are approximate" in notes
    assert "128,000 (its context window) is assumed" in notes


def test_unknown_bedrock_price_stays_unknown() -> None:
    estimate = estimate_cost("nova-2-lite", 1_000_000, 500, n_epochs=3)
    assert estimate.estimated_cost_usd is None
    assert estimate.training_price_per_million_usd is None
    assert estimate.n_epochs == 3
    assert any(
        "No training price is known for amazon.nova-2-lite-v1:0:256k" in n for n in estimate.notes
    )
    assert any("served on demand is unconfirmed" in n for n in estimate.notes)


def test_training_cost_and_limits_for_bedrock() -> None:
    assert training_cost("amazon.nova-pro-v1:0:300k", 1_000_000) == pytest.approx(8.0)
    assert training_cost("nova-2-lite", 1_000_000) is None
    assert training_cost("gpt-4o-mini", 1_000_000) == pytest.approx(3.0)
    for model, encoding, limit in (
        ("nova-lite", "o200k_base", 300_000),
        ("gpt-3.5-turbo", "cl100k_base", 16385),
    ):
        resolved = resolve_model(model)
        assert (resolved.encoding, token_limit(resolved)) == (encoding, limit)


# ---------------------------------------------------------------- catalogs


@pytest.mark.parametrize(
    ("model", "provider"),
    [
        ("gpt-4o-mini", "openai"),
        ("gpt-4.1-2025-04-14", "openai"),
        ("ft:gpt-4o-mini-2024-07-18:acme:support:abc123", "openai"),
        ("nova-micro", "bedrock"),
        ("amazon.nova-lite-v1:0", "bedrock"),
        ("amazon.nova-2-lite-v1:0:256k", "bedrock"),
        ("anthropic.claude-3-haiku-20240307-v1:0:200k", "bedrock"),
        ("meta.llama3-2-90b-instruct-v1:0:128k", "bedrock"),
        ("amazon.nova-premier-v1:0", None),
        ("my-own-model", None),
    ],
)
def test_provider_of_reads_both_catalogs(model: str, provider: str | None) -> None:
    assert provider_of(model) == provider


def test_resolved_models_are_provider_neutral() -> None:
    nova = resolve_model("nova-pro")
    assert (nova.provider, nova.base_model, nova.encoding) == (
        "bedrock",
        "amazon.nova-pro-v1:0:300k",
        "o200k_base",
    )
    assert nova.tokens_approximate
    assert nova.max_tokens_per_example is None
    assert nova.default_epochs == 2
    assert {"training_per_million", "max_tokens_per_example"} <= nova.unconfirmed
    assert nova.unsupported_reason is None
    openai = resolve_model("gpt-4.1")
    assert (openai.provider, openai.base_model, openai.tokens_approximate) == (
        "openai",
        "gpt-4.1-2025-04-14",
        False,
    )
    # The base model's own serving price is a list price no source in the table confirms.
    assert openai.unconfirmed == {"max_tokens_per_example", "inference"}
    assert openai.shutdown_date == dt.date(2027, 1, 14)
    assert resolve_model("my-own-model").base_model is None


def test_nova_facts_in_the_table() -> None:
    catalog = load_bedrock_catalog()
    nova = {
        model_id: spec
        for model_id, spec in catalog.models.items()
        if model_id.startswith("amazon.nova")
    }
    assert sorted(nova) == [
        "amazon.nova-2-lite-v1:0:256k",
        "amazon.nova-lite-v1:0:300k",
        "amazon.nova-micro-v1:0:128k",
        "amazon.nova-pro-v1:0:300k",
    ]
    for spec in nova.values():
        assert spec.region == "us-east-1"
        assert spec.max_records == 20_000
        assert "batchSize" not in spec.hyperparameters
        epochs = spec.hyperparameters["epochCount"]
        assert (epochs.min, epochs.max, epochs.default) == (1, 5, 2)
        rate = spec.hyperparameters["learningRate"]
        assert (rate.min, rate.max, rate.default) == (1e-6, 1e-4, 1e-5)
        warmup = spec.hyperparameters["learningRateWarmupSteps"]
        assert (warmup.min, warmup.max, warmup.default) == (0, 100, 10)
    assert nova["amazon.nova-micro-v1:0:128k"].text_only
    assert nova["amazon.nova-2-lite-v1:0:256k"].on_demand_deployment is None
    assert "on_demand_deployment" in nova["amazon.nova-2-lite-v1:0:256k"].unconfirmed
    assert catalog.reserved_strings_ignore_case
    assert {
        "User:",
        "Bot:",
        "Assistant:",
        "System:",
        "Thought:",
        "<image>",
        "<video>",
        "<unk>",
        "[EOS]",
    } == set(catalog.reserved_strings)


def test_hyperparameters_for_a_bedrock_job() -> None:
    nova = bedrock_spec("nova-lite")
    assert nova is not None
    assert nova.hyperparameters_for(Hyperparameters()) == {}
    assert nova.hyperparameters_for(Hyperparameters(n_epochs=3, learning_rate_multiplier=2)) == {
        "epochCount": "3",
        "learningRate": "0.00002",
    }
    with pytest.raises(ValueError, match="epochCount must be from 1 to 5, not 6"):
        nova.hyperparameters_for(Hyperparameters(n_epochs=6))
    with pytest.raises(ValueError, match="no batch size"):
        nova.hyperparameters_for(Hyperparameters(batch_size=8))
    haiku = bedrock_spec("claude-3-haiku")
    assert haiku is not None
    assert haiku.hyperparameters_for(
        Hyperparameters(batch_size=8, learning_rate_multiplier=0.5)
    ) == {
        "batchSize": "8",
        "learningRateMultiplier": "0.5",
    }
    assert bedrock_spec("gpt-4o-mini") is None


def test_a_base_model_is_asked_by_its_inference_id_not_its_training_id() -> None:
    """Bedrock invokes Nova on demand as amazon.nova-micro-v1:0; the :128k id only trains."""
    assert resolve_model("amazon.nova-micro-v1:0:128k").chat_model == "amazon.nova-micro-v1:0"
    assert resolve_model("gpt-4o-mini-2024-07-18").chat_model is None
