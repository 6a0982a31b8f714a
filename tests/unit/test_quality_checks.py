"""File-wide data-quality warnings, each naming its lines, and the statistics."""

from __future__ import annotations

from tests.conftest import Validator, chat, codes, good_examples


def warnings_by_code(report: object) -> dict[str, list[object]]:
    out: dict[str, list[object]] = {}
    for finding in report.warnings:  # type: ignore[attr-defined]
        out.setdefault(finding.code, []).append(finding)
    return out


def test_exact_duplicates_name_every_line(run_validation: Validator) -> None:
    rows = good_examples(10)
    report = run_validation([*rows, rows[2], rows[2], rows[5]])
    groups = {tuple(f.lines) for f in report.warnings if f.code == "exact_duplicate"}
    assert groups == {(3, 11, 12), (6, 13)}
    assert report.warning_counts["exact_duplicate"] == 2
    assert report.valid


def test_near_duplicates_ignore_case_spacing_and_punctuation(run_validation: Validator) -> None:
    rows = [
        *good_examples(10),
        chat("QUESTION number 3 about tents", "answer number 3 about   tents!!"),
    ]
    finding = warnings_by_code(run_validation(rows))["near_duplicate"][0]
    assert finding.lines == [4, 11]  # type: ignore[attr-defined]


def test_conflicting_answers(run_validation: Validator) -> None:
    rows = [
        *good_examples(10),
        chat("Do you ship to Canada?", "Yes."),
        chat("Do you ship to Canada?", "No, US only."),
    ]
    report = run_validation(rows)
    conflicts = [f for f in report.warnings if f.code == "conflicting_answers"]
    assert [f.lines for f in conflicts] == [[11, 12]]
    assert "exact_duplicate" not in report.warning_counts


def test_missing_system_message_and_short_replies(run_validation: Validator) -> None:
    rows = [
        *good_examples(10),
        chat("hi", "Hello, how can I help?", system=False),
        chat("thanks", "ok"),
        chat("bye", " "),
    ]
    found = warnings_by_code(run_validation(rows))
    assert found["missing_system_message"][0].lines == [11]  # type: ignore[attr-defined]
    assert found["short_assistant_reply"][0].lines == [12, 13]  # type: ignore[attr-defined]


def test_many_duplicates_stay_readable(run_validation: Validator) -> None:
    row = chat("same", "same answer here")
    report = run_validation([*good_examples(10), *([row] * 5000)])
    finding = next(f for f in report.warnings if f.code == "exact_duplicate")
    assert finding.total_lines == 5000
    assert len(finding.lines or []) == 10
    assert "(and 4990 more)" in finding.message


def test_validation_leakage(run_validation: Validator) -> None:
    train = good_examples(12)
    held_out = [
        chat("A brand new question?", "A new answer."),
        train[4],
        chat("Question number 7 about tents?", "Another reply."),
    ]
    report = run_validation(train, validation_rows=held_out)
    leaks = [f for f in report.warnings if f.code == "validation_leakage"]
    assert [(f.file, f.line) for f in leaks] == [("validation", 2), ("validation", 3)]
    assert "line 5" in leaks[0].message
    assert report.stats.validation_examples == 3


def test_validation_file_errors_name_that_file(run_validation: Validator) -> None:
    report = run_validation(good_examples(10), validation_rows=[chat("q", reply=None)])
    assert [(f.code, f.file, f.line) for f in report.errors] == [
        ("example_missing_assistant_message", "validation", 1)
    ]


def test_over_the_token_limit_is_flagged(run_validation: Validator) -> None:
    long_reply = "tent " * 17_000
    rows = [*good_examples(10), chat("Describe every tent.", long_reply)]
    report = run_validation(rows, model="gpt-3.5-turbo")
    assert [(f.code, f.line) for f in report.warnings if f.code == "example_too_long"] == [
        ("example_too_long", 11)
    ]
    assert report.stats.examples_over_token_limit == 1
    assert report.estimate is not None
    assert report.estimate.max_tokens_per_example == 16_385
    assert report.estimate.billable_tokens_per_epoch < report.stats.tokens_per_example.total  # type: ignore[union-attr]
    assert "example_too_long" not in codes(run_validation(rows).warnings)


def test_statistics(run_validation: Validator) -> None:
    rows = [chat(f"q{i}", " ".join(["word"] * (i + 1))) for i in range(20)]
    stats = run_validation(rows).stats
    assert stats.examples == stats.valid_examples == 20
    assert stats.messages == 60
    assistant = stats.assistant_tokens_per_example
    assert assistant is not None
    assert (assistant.min, assistant.max) == (1, 20)
    assert assistant.median == 11
    assert assistant.p95 == 19
    tokens = stats.tokens_per_example
    assert tokens is not None and tokens.min < tokens.median < tokens.max
