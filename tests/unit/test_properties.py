"""Whatever the bytes, the validator answers with a report, never an exception."""

from __future__ import annotations

import io
import json
from contextlib import AbstractContextManager
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sft_pipeline.validation import DataSource, ValidationOptions, ValidationReport, validate
from sft_pipeline.validation.reader import BinaryReadable

FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=20,
)
roles = st.sampled_from(["system", "user", "assistant", "tool", "function", "developer", "bot"])
message_like = st.fixed_dictionaries(
    {"role": roles},
    optional={
        "content": json_values,
        "weight": st.integers(-1, 2),
        "tool_calls": json_values,
        "tool_call_id": st.text(max_size=5),
        "name": json_values,
    },
)
example_like = st.fixed_dictionaries(
    {"messages": st.lists(message_like, max_size=5)},
    optional={"tools": json_values, "parallel_tool_calls": json_values},
)


def report_for(data: bytes, **options: Any) -> ValidationReport:
    def opener() -> AbstractContextManager[BinaryReadable]:
        return io.BytesIO(data)

    return validate(DataSource("generated.jsonl", opener, len(data)), ValidationOptions(**options))


def assert_consistent(report: ValidationReport) -> None:
    assert report.valid == (not report.error_counts)
    assert sum(report.error_counts.values()) >= len(report.errors)
    for finding in [*report.errors, *report.warnings]:
        assert finding.code and finding.message
    if report.file is not None:
        assert report.stats.examples + report.stats.blank_lines <= report.file.lines


@FAST
@given(st.binary(max_size=2048))
def test_random_bytes_always_yield_a_report(data: bytes) -> None:
    assert_consistent(report_for(data))


@FAST
@given(st.lists(json_values, max_size=15))
def test_random_json_lines_always_yield_a_report(values: list[Any]) -> None:
    data = "\n".join(json.dumps(v) for v in values).encode()
    assert_consistent(report_for(data))


@FAST
@given(st.lists(example_like, min_size=1, max_size=15), st.sampled_from(["chat", "dpo"]))
def test_random_example_shaped_lines_always_yield_a_report(
    examples: list[Any], data_format: str
) -> None:
    data = "\n".join(json.dumps(e) for e in examples).encode()
    report = report_for(data, data_format=data_format)
    assert_consistent(report)
    assert report.stats.examples == len(examples) or report.error_counts


@FAST
@given(st.lists(st.text(max_size=40), min_size=1, max_size=12))
def test_random_text_lines_always_yield_a_report(lines: list[str]) -> None:
    assert_consistent(report_for("\n".join(lines).encode("utf-8", "surrogatepass")))
