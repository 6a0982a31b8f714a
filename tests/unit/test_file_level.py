"""File-level problems get one clear error; line handling survives real-world files."""

from __future__ import annotations

import codecs
import gzip
import hashlib
import io
import json

import pytest

from sft_pipeline.validation import reader, validator
from sft_pipeline.validation.reader import StreamTally, iter_lines
from tests.conftest import Validator, as_lines, chat, codes, good_examples


def test_empty_file(run_validation: Validator) -> None:
    report = run_validation(b"")
    assert codes(report.errors) == ["empty_file"]
    assert report.errors[0].line is None
    assert report.file is None


def test_only_blank_lines(run_validation: Validator) -> None:
    report = run_validation(b"\n  \n\r\n\n")
    assert codes(report.errors) == ["no_examples"]
    assert report.stats.blank_lines == 4


@pytest.mark.parametrize(
    ("data", "code", "words"),
    [
        ("x".join("{}" for _ in range(3)).encode("utf-16"), "not_utf8", "UTF-16"),
        (json.dumps({"messages": []}).encode("utf-16-le"), "not_utf8", "UTF-16"),
        (codecs.BOM_UTF32_LE + "{}".encode("utf-32-le"), "not_utf8", "UTF-32"),
        ('{"messages": "caf\xe9"}\n'.encode("latin-1"), "not_utf8", "not UTF-8"),
        (gzip.compress(b'{"messages": []}\n'), "binary_file", "gzip"),
        (b"PK\x03\x04" + b"\x00" * 40, "binary_file", "zip"),
        (b"\x7fELF\x02\x01\x01\x00\x00\x00", "binary_file", "binary"),
        (b'[{"messages": []},\n {"messages": []}]\n', "json_array", "JSON array, not JSONL"),
    ],
    ids=["utf16-bom", "utf16-no-bom", "utf32", "latin1", "gzip", "zip", "elf", "json-array"],
)
def test_unusable_files_get_one_file_level_error(
    run_validation: Validator, data: bytes, code: str, words: str
) -> None:
    report = run_validation(data)
    assert codes(report.errors) == [code]
    assert words in report.errors[0].message
    assert report.errors[0].line is None and report.errors[0].lines is None


@pytest.mark.parametrize(
    "data",
    [
        b'[{"messages": [{"role": "user", "content": "q"}]}]\n',
        b'[\n  {\n    "messages": []\n  },\n  {\n    "messages": []\n  }\n]\n',
        b'\n[{"messages": []},\n{"messages": []},\n{"messages": []}]',
    ],
    ids=["one-line", "pretty-printed", "one-example-a-line"],
)
@pytest.mark.parametrize("scan_bytes", [reader.ITEM_SCAN_BYTES, 1], ids=["parsed", "long-lines"])
def test_json_array_files_are_told_apart(
    monkeypatch: pytest.MonkeyPatch, run_validation: Validator, data: bytes, scan_bytes: int
) -> None:
    # Long lines are told apart by their brackets, not parsed a second time.
    monkeypatch.setattr(reader, "ITEM_SCAN_BYTES", scan_bytes)
    report = run_validation(data)
    assert codes(report.errors) == ["json_array"]


@pytest.mark.parametrize(
    ("first", "code"),
    [
        (b"[garbage", "invalid_json"),
        (b"[1, 2, 3]", "data_type"),
        (b'[{"messages": [{"role": "user", "content": "q"}]}]', "data_type"),
    ],
    ids=["garbage", "stray-array", "array-of-one-example"],
)
@pytest.mark.parametrize("scan_bytes", [reader.ITEM_SCAN_BYTES, 1], ids=["parsed", "long-lines"])
def test_a_bad_first_line_starting_with_a_bracket_is_only_that_line(
    monkeypatch: pytest.MonkeyPatch,
    run_validation: Validator,
    first: bytes,
    code: str,
    scan_bytes: int,
) -> None:
    monkeypatch.setattr(reader, "ITEM_SCAN_BYTES", scan_bytes)
    rows: list[dict[str, object] | bytes] = [first, *good_examples(12)]
    rows[5] = b'{"messages": "not a list"}'
    report = run_validation(rows)
    assert [(f.code, f.line) for f in report.errors] == [(code, 1), ("missing_messages_list", 6)]
    assert report.stats.valid_examples == 11


def test_dpo_file_validated_as_chat(run_validation: Validator) -> None:
    pair = {
        "input": {"messages": [{"role": "user", "content": "q"}]},
        "preferred_output": [{"role": "assistant", "content": "a"}],
        "non_preferred_output": [{"role": "assistant", "content": "b"}],
    }
    report = run_validation([pair] * 50)
    assert codes(report.errors) == ["dpo_example_in_chat_file"]
    assert report.errors[0].line is None
    assert "--format dpo" in report.errors[0].message


def test_fewer_than_ten_examples(run_validation: Validator) -> None:
    report = run_validation(good_examples(9))
    assert codes(report.errors) == ["too_few_examples"]
    assert run_validation(good_examples(10)).valid


def test_bom_crlf_blank_lines_and_missing_final_newline(run_validation: Validator) -> None:
    body = as_lines(good_examples(10)).replace(b"\n", b"\r\n")
    data = (
        codecs.BOM_UTF8 + b"\r\n" + body + b"\r\n\r\n" + json.dumps(good_examples(11)[10]).encode()
    )
    report = run_validation(data)
    assert report.valid, report.errors
    assert report.stats.examples == 11
    assert report.stats.blank_lines == 3
    assert report.file is not None and report.file.lines == 14


def test_non_utf8_file_names_the_first_bad_line(run_validation: Validator) -> None:
    rows: list[bytes] = [json.dumps(row).encode() for row in good_examples(12)]
    rows[7] = b'{"messages": [{"role": "user", "content": "caf\xe9"}]}'
    report = run_validation(b"\n".join(rows))
    assert codes(report.errors) == ["not_utf8"]
    assert "line 8 has the byte 0xe9" in report.errors[0].message


def test_invalid_utf8_past_the_start_names_the_line(
    monkeypatch: pytest.MonkeyPatch, run_validation: Validator
) -> None:
    monkeypatch.setattr(reader, "SNIFF_BYTES", 100)
    monkeypatch.setattr(reader, "CHUNK_SIZE", 100)
    rows: list[bytes] = [json.dumps(row).encode() for row in good_examples(12)]
    rows[7] = b'{"messages": [{"role": "user", "content": "caf\xe9"}]}'
    report = run_validation(b"\n".join(rows))
    assert [(f.code, f.line) for f in report.errors] == [("invalid_utf8", 8)]


def test_pretty_printed_json_gets_a_hint(run_validation: Validator) -> None:
    text = json.dumps(good_examples(1)[0], indent=2)
    report = run_validation(text.encode())
    assert report.errors[0].code == "invalid_json"
    assert "pretty-printed" in report.errors[0].message


def test_oversized_line_is_skipped_without_buffering(
    monkeypatch: pytest.MonkeyPatch, run_validation: Validator
) -> None:
    monkeypatch.setattr(reader, "MAX_LINE_BYTES", 2_000)
    monkeypatch.setattr(reader, "CHUNK_SIZE", 512)
    rows = good_examples(11)
    huge = {
        "messages": [
            {"role": "user", "content": "x" * 5_000},
            {"role": "assistant", "content": "ok"},
        ]
    }
    report = run_validation([*rows[:3], huge, *rows[3:]])
    assert [(f.code, f.line) for f in report.errors] == [("line_too_long", 4)]
    assert report.stats.valid_examples == 11


@pytest.mark.parametrize("data_format", ["chat", "dpo"])
def test_text_beyond_every_model_is_refused_before_it_is_counted(
    monkeypatch: pytest.MonkeyPatch, run_validation: Validator, data_format: str
) -> None:
    # The largest model takes 100 tokens here, so 12,800 characters can only be too long.
    monkeypatch.setattr(validator, "largest_token_limit", lambda: 100)
    long_text = "word " * 2_600

    def row(text: str) -> dict[str, object]:
        if data_format == "chat":
            return chat(text, "Short answer.")
        return {
            "input": {"messages": [{"role": "user", "content": text}]},
            "preferred_output": [{"role": "assistant", "content": "Yes."}],
            "non_preferred_output": [{"role": "assistant", "content": "No."}],
        }

    rows = [row(f"Question {i}?") for i in range(10)]
    report = run_validation([*rows[:4], row(long_text), *rows[4:]], data_format=data_format)
    assert [(f.code, f.line) for f in report.errors] == [("line_too_long", 5)]
    assert "far over the 100 tokens any model takes" in report.errors[0].message
    assert report.stats.valid_examples == 10


@pytest.mark.parametrize(
    ("raw", "items"),
    [
        (b'{"a": "x, y: z", "b": [1, 2, {}]}', 6),
        (b'{"a": "\\", \\\\", "b": ["\\\\", ":"]}', 5),
        (b"[{}, {}, {}, {}, {}, {}]", 6),
    ],
)
def test_json_items_are_counted_outside_strings(
    monkeypatch: pytest.MonkeyPatch, raw: bytes, items: int
) -> None:
    monkeypatch.setattr(reader, "MAX_JSON_ITEMS", 2)
    assert reader.json_items(raw) == items


def test_a_long_line_of_many_values_is_skipped_unparsed(
    monkeypatch: pytest.MonkeyPatch, run_validation: Validator
) -> None:
    monkeypatch.setattr(reader, "ITEM_SCAN_BYTES", 100)
    monkeypatch.setattr(validator, "ITEM_SCAN_BYTES", 100)
    monkeypatch.setattr(reader, "MAX_JSON_ITEMS", 50)
    monkeypatch.setattr(validator, "MAX_JSON_ITEMS", 50)
    part = {"type": "text", "text": "a, b: c"}
    many = {
        "messages": [
            {"role": "user", "content": [part] * 20},
            {"role": "assistant", "content": "ok"},
        ]
    }
    rows = good_examples(10)
    report = run_validation([*rows[:2], many, *rows[2:]])
    assert [(f.code, f.line) for f in report.errors] == [("line_too_long", 3)]
    # Not the commas and colons of its text.
    assert "about 88 JSON values and keys" in report.errors[0].message
    assert report.stats.valid_examples == 10


def test_reader_reads_in_bounded_chunks() -> None:
    class CountingStream(io.BytesIO):
        largest = 0

        def read(self, size: int | None = -1, /) -> bytes:
            assert size is not None and size > 0
            chunk = super().read(size)
            CountingStream.largest = max(CountingStream.largest, len(chunk))
            return chunk

    data = as_lines(good_examples(5000))
    tally = StreamTally()
    lines = list(iter_lines(CountingStream(data), tally))
    assert len(lines) == 5000
    assert CountingStream.largest <= reader.CHUNK_SIZE
    assert tally.bytes_read == len(data)


def test_findings_are_capped_per_code_but_all_counted(run_validation: Validator) -> None:
    rows: list[dict[str, object] | str] = [*good_examples(10), *(["not json"] * 1000)]
    report = run_validation(rows, max_findings_per_code=20)
    assert report.error_counts == {"invalid_json": 1000}
    assert len(report.errors) == 20
    assert [f.line for f in report.errors] == list(range(11, 31))


def test_sha256_and_size_of_the_file(run_validation: Validator) -> None:
    data = as_lines(good_examples(10))
    report = run_validation(data)
    assert report.file is not None
    assert report.file.sha256 == hashlib.sha256(data).hexdigest()
    assert report.file.bytes == len(data)
