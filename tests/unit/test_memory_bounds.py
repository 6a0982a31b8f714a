"""One huge line cannot exhaust the validation function's memory (2,048 MB): any input
(a huge text, one unbroken string, millions of tiny values) stays under 1 GB of peak RSS
and still gets a report that names the line.

Each file is validated by `sft validate` in a child process, whose peak RSS (and its
counting process's) comes from ``os.wait4``: a memory bound, not a timing.
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import good_examples

GB = 1 << 30
WORDS = b"the quick brown fox jumps over a lazy dog while seven wizards quietly hex jovial boxers"


def words(size: int) -> Iterator[bytes]:
    """About ``size`` bytes of ordinary words, in 1 MB pieces."""
    piece = b" ".join(itertools.islice(itertools.cycle(WORDS.split()), 190_000)) + b" "
    for _ in range(size // len(piece) + 1):
        yield piece


def unbroken(size: int) -> Iterator[bytes]:
    """An unbroken run of one letter, in 1 MB pieces."""
    return itertools.repeat(b"a" * 1_000_000, size // 1_000_000)


def one_example(path: Path, content: Iterator[bytes]) -> None:
    """A file of one example whose user message is ``content``, then ten ordinary ones."""
    with path.open("wb") as out:
        out.write(b'{"messages": [{"role": "user", "content": "')
        for piece in content:
            out.write(piece)
        out.write(b'"}, {"role": "assistant", "content": "Done."}]}\n')
        for example in good_examples(10):
            out.write(json.dumps(example).encode() + b"\n")


def validate_in_child(path: Path) -> tuple[dict[str, Any], int]:
    """`sft validate --json` on ``path``: its report and its peak RSS in bytes."""
    command = [
        sys.executable,
        "-c",
        "import sys; from sft_pipeline.cli import main; sys.exit(main(sys.argv[1:]))",
        "validate",
        str(path),
        "--json",
    ]
    report_path = path.with_suffix(".report.json")
    with report_path.open("wb") as stdout:
        child = subprocess.Popen(command, stdout=stdout, stderr=subprocess.PIPE)
        # wait4 reports the child's own peak RSS, and its reaped counting process's.
        _, status, usage = os.wait4(child.pid, 0)
        child.returncode = os.waitstatus_to_exitcode(status)
    assert child.stderr is not None
    assert child.returncode in (0, 1), child.stderr.read()
    return json.loads(report_path.read_bytes()), usage.ru_maxrss * 1024


Content = Callable[[int], Iterator[bytes]]


@pytest.mark.parametrize(
    ("content", "size", "characters"),
    [(words, 150_000_000, "150,"), (unbroken, 40_000_000, "40,000,005")],
    ids=["150MB-of-words", "40MB-unbroken-string"],
)
def test_one_huge_line_is_refused_in_bounded_memory(
    tmp_path: Path, content: Content, size: int, characters: str
) -> None:
    path = tmp_path / "huge.jsonl"
    one_example(path, content(size))
    report, peak = validate_in_child(path)
    assert peak < GB, f"peak RSS {peak / 2**20:,.0f} MiB"
    assert not report["valid"]
    [finding] = [f for f in report["errors"] if f["line"] == 1]
    assert finding["code"] == "line_too_long"
    assert f"has {characters}" in finding["message"]
    assert report["stats"]["valid_examples"] == 10


def test_a_line_of_millions_of_tiny_values_is_refused_unparsed(tmp_path: Path) -> None:
    # 1.2 million empty text parts: 31 MB of JSON, over a gigabyte once parsed.
    part = b'{"type": "text", "text": ""}'
    path = tmp_path / "parts.jsonl"
    with path.open("wb") as out:
        out.write(b'{"messages": [{"role": "user", "content": [')
        out.write(b", ".join(itertools.repeat(part, 1_200_000)))
        out.write(b']}, {"role": "assistant", "content": "Done."}]}\n')
        for example in good_examples(10):
            out.write(json.dumps(example).encode() + b"\n")
    report, peak = validate_in_child(path)
    assert peak < GB, f"peak RSS {peak / 2**20:,.0f} MiB"
    [finding] = [f for f in report["errors"] if f["line"] == 1]
    assert finding["code"] == "line_too_long"
    assert "JSON values and keys" in finding["message"]
    assert report["stats"]["valid_examples"] == 10


@pytest.mark.parametrize("content", [words, unbroken], ids=["words", "unbroken-string"])
def test_a_long_line_under_every_bound_is_counted_to_the_limit_in_bounded_memory(
    tmp_path: Path, content: Content
) -> None:
    path = tmp_path / "long.jsonl"
    one_example(path, content(30_000_000))
    report, peak = validate_in_child(path)
    assert peak < GB, f"peak RSS {peak / 2**20:,.0f} MiB"
    [finding] = [f for f in report["warnings"] if f["code"] == "example_too_long"]
    assert finding["line"] == 1
    assert "has at least" in finding["message"]
    assert report["stats"]["valid_examples"] == 11
