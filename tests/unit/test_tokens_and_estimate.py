"""Offline, verified tokenizers; exact counts; epochs and cost."""

from __future__ import annotations

import datetime as dt
import itertools
import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sft_pipeline.validation import tokens
from sft_pipeline.validation.estimate import auto_epochs, estimate_cost
from sft_pipeline.validation.targets.openai import load_catalog
from sft_pipeline.validation.tokens import (
    MAX_TOKEN_BYTES,
    EncodingIntegrityError,
    TokenCounter,
    count_tokens,
    get_encoding,
    verified_ranks,
)

ENCODINGS: list[tokens.EncodingName] = ["o200k_base", "cl100k_base"]


@pytest.mark.parametrize("name", ["o200k_base", "cl100k_base"])
def test_shipped_rank_files_match_the_official_hash(name: tokens.EncodingName) -> None:
    ranks = verified_ranks(name)
    assert len(ranks) > 100_000


def test_no_token_is_longer_than_the_bound_the_validator_relies_on() -> None:
    longest = max(len(token) for name in ENCODINGS for token in verified_ranks(name))
    assert longest == MAX_TOKEN_BYTES


def test_a_tampered_rank_file_is_refused() -> None:
    data = bytearray(tokens.rank_file_bytes("cl100k_base"))
    data[10] ^= 1
    with pytest.raises(EncodingIntegrityError, match="expected 2239"):
        verified_ranks("cl100k_base", bytes(data))


@pytest.mark.parametrize(
    ("name", "text", "expected"),
    [
        # Reference ids published with tiktoken for these encodings.
        ("cl100k_base", "hello world", [15339, 1917]),
        ("o200k_base", "hello world", [24912, 2375]),
    ],
)
def test_known_token_ids(name: tokens.EncodingName, text: str, expected: list[int]) -> None:
    assert get_encoding(name).encode_ordinary(text) == expected


def test_counter_counts_exactly_and_remembers_repeats() -> None:
    counter = TokenCounter("o200k_base", cap=65_536, memo_chars=40)
    encoding = get_encoding("o200k_base")
    texts = [
        "The Summit 2 tent sleeps two.",
        "東京で会いましょう 🚀",
        "<|endoftext|> stays text",
        "The Summit 2 tent sleeps two.",
    ]
    assert counter.submit(texts).result() == [len(encoding.encode_ordinary(t)) for t in texts]
    assert counter.submit(["x" * 10]).result() == [len(encoding.encode_ordinary("x" * 10))]


# Words, numbers, punctuation, spaces and line breaks of several scripts: what slices are cut in.
PIECES = st.sampled_from(
    [
        "tent", "Summit", " ", "  ", "   ", "\n", " \n", "\n ", "\r\n", "\t", " \t",
        ",", ".", "'s", "'ll", "2026", "3.5",
        "東京", "、", "Ünïcödé", "москва", "🚀", "👍🏽", "<|endoftext|>", "--", "/", "_", "a" * 9,
    ]
)  # fmt: skip


# Runs of up to five pieces, each ending in a letter and a space: an exact cut within 70 characters.
RUNS = st.lists(st.lists(PIECES, max_size=5).map(lambda run: "".join(run) + "x "), max_size=40)


@settings(deadline=None, max_examples=300)  # the first example loads both encodings
@given(RUNS, st.integers(min_value=70, max_value=200))
def test_counting_in_slices_is_exact(runs: list[str], slice_chars: int) -> None:
    text = "".join(runs)
    for name in ENCODINGS:
        encode = get_encoding(name).encode_ordinary
        whole = len(encode(text))
        assert count_tokens(encode, text, cap=whole, slice_chars=slice_chars) == whole


@settings(deadline=None, max_examples=300)
@given(st.lists(PIECES, max_size=60))
def test_every_cut_the_counter_may_make_keeps_the_count(pieces: list[str]) -> None:
    text = "".join(pieces)
    line_ends = list(itertools.accumulate(len(line) for line in tokens._lines(text)))
    cuts = [cut.start() for cut in tokens._EXACT_CUT.finditer(text)] + line_ends[:-1]
    for name in ENCODINGS:
        encode = get_encoding(name).encode_ordinary
        whole = len(encode(text))
        for cut in cuts:
            assert len(encode(text[:cut])) + len(encode(text[cut:])) == whole


@settings(deadline=None)
@given(st.lists(st.lists(PIECES, max_size=12).map("".join), min_size=1, max_size=8))
def test_texts_counted_line_by_line_are_exact_and_their_lines_counted_once(
    lines: list[str],
) -> None:
    encode = get_encoding("o200k_base").encode_ordinary
    texts = ["\n".join(lines), "\n".join([*lines, "Today is 2026-11-30."])]
    counted: list[str] = []

    def recording(text: str) -> list[int]:
        counted.append(text)
        return encode(text)

    memo = tokens.BoundedMemo()
    assert [count_tokens(recording, t, cap=10**9, lines=memo) for t in texts] == [
        len(encode(t)) for t in texts
    ]
    assert len(counted) == len(set(counted))


def test_a_cut_between_two_spaces_would_change_the_count() -> None:
    # Why cuts follow a letter or a digit: cl100k reads "  \n" as one piece.
    encode = get_encoding("cl100k_base").encode_ordinary
    text = "ab  \ncd"
    assert len(encode("ab ")) + len(encode(" \ncd")) != len(encode(text))
    assert [cut.start() for cut in tokens._EXACT_CUT.finditer(text)] == [2]


def test_counting_stops_past_the_cap_without_a_list_of_every_token() -> None:
    encode = get_encoding("o200k_base").encode_ordinary
    calls: list[int] = []

    def recording(text: str) -> list[int]:
        calls.append(len(text))
        return encode(text)

    words = "The Summit tent sleeps two, in any weather. " * 200_000  # 8.8 MB, 2 M tokens
    counted = count_tokens(recording, words, cap=65_536, slice_chars=100_000)
    assert 65_536 < counted < 120_000
    assert max(calls) < 200_000 and sum(calls) < 500_000
    # One unbroken run has no exact cut: it is cut anyway, and counted about right.
    run = "a" * 3_000_000
    assert count_tokens(encode, run, cap=10**9, slice_chars=100_000) == pytest.approx(
        len(encode(run)), abs=30
    )


@pytest.mark.parametrize(
    ("examples", "epochs"),
    [(1, 25), (5, 20), (10, 10), (33, 3), (34, 3), (20, 5), (8333, 3), (8334, 2), (30_000, 1)],
)
def test_auto_epochs_heuristic(examples: int, epochs: int) -> None:
    assert auto_epochs(examples) == epochs


def test_cost_estimate_uses_the_dated_price_table() -> None:
    estimate = estimate_cost("gpt-4o-mini", 100_000, 500, today=dt.date(2026, 11, 25))
    assert estimate.base_model == "gpt-4o-mini-2024-07-18"
    assert estimate.n_epochs == 3
    assert estimate.billed_tokens == 300_000
    assert estimate.estimated_cost_usd == pytest.approx(0.9)
    assert estimate.price_as_of == load_catalog().as_of.isoformat()
    assert any("2027-01-14" in note for note in estimate.notes)


def test_requested_epochs_and_fine_tuned_base() -> None:
    estimate = estimate_cost("ft:gpt-4.1-2025-04-14:acme:support:abc123", 1_000_000, 50, n_epochs=2)
    assert estimate.base_model == "gpt-4.1-2025-04-14"
    assert (estimate.n_epochs, estimate.n_epochs_source) == (2, "requested")
    assert estimate.estimated_cost_usd == pytest.approx(50.0)
    assert any("does not document" in note for note in estimate.notes)


def test_unknown_model_cost_is_unknown_not_zero() -> None:
    estimate = estimate_cost("my-own-model", 1000, 50)
    assert estimate.estimated_cost_usd is None
    assert estimate.training_price_per_million_usd is None
    assert "not in the price table" in estimate.notes[0]


def test_shut_down_model_is_called_out() -> None:
    estimate = estimate_cost("gpt-3.5-turbo", 1000, 50, today=dt.date(2026, 11, 25))
    assert any("was shut down on 2026-10-23" in note for note in estimate.notes)


def test_counting_in_a_forked_process_gives_the_same_counts() -> None:
    # A fresh interpreter: forking is only used where no other thread runs.
    script = (
        "from sft_pipeline.validation.tokens import TokenCounter\n"
        "counter = TokenCounter('o200k_base', cap=9999, use_process=True)\n"
        "texts = ['The Summit 2 tent', '東京 🚀', 'The Summit 2 tent'] * 50\n"
        "print(counter.uses_process, counter.submit(texts).result() == TokenCounter('o200k_base', cap=9999).submit(texts).result())\n"
        "counter.close()\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    )
    assert result.stdout.split() == ["True", "True"]


def test_without_processes_counting_stays_in_a_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    def unavailable(*_args: object, **_kwargs: object) -> None:
        raise OSError(38, "Function not implemented")  # what AWS Lambda answers

    monkeypatch.setattr(tokens, "ProcessPoolExecutor", unavailable)
    monkeypatch.setattr(tokens.threading, "active_count", lambda: 1)
    counter = TokenCounter("cl100k_base", cap=9999, use_process=True)
    assert not counter.uses_process
    assert counter.submit(["hello world"]).result() == [2]
    counter.close()
