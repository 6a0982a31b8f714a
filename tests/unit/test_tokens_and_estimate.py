"""Offline, verified tokenizers; exact counts; epochs and cost."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys

import pytest

from sft_pipeline.validation import tokens
from sft_pipeline.validation.catalog import load_catalog
from sft_pipeline.validation.estimate import auto_epochs, estimate_cost
from sft_pipeline.validation.tokens import (
    EncodingIntegrityError,
    TokenCounter,
    get_encoding,
    verified_ranks,
)


@pytest.mark.parametrize("name", ["o200k_base", "cl100k_base"])
def test_shipped_rank_files_match_the_official_hash(name: tokens.EncodingName) -> None:
    ranks = verified_ranks(name)
    assert len(ranks) > 100_000


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
    counter = TokenCounter("o200k_base", memo_size=3)
    encoding = get_encoding("o200k_base")
    texts = [
        "The Summit 2 tent sleeps two.",
        "東京で会いましょう 🚀",
        "<|endoftext|> stays text",
        "The Summit 2 tent sleeps two.",
    ]
    assert counter.submit(texts).result() == [len(encoding.encode_ordinary(t)) for t in texts]
    assert counter.submit(["x" * 10]).result() == [len(encoding.encode_ordinary("x" * 10))]


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
        "counter = TokenCounter('o200k_base', use_process=True)\n"
        "texts = ['The Summit 2 tent', '東京 🚀', 'The Summit 2 tent'] * 50\n"
        "print(counter.uses_process, counter.submit(texts).result() == TokenCounter('o200k_base').submit(texts).result())\n"
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
    counter = TokenCounter("cl100k_base", use_process=True)
    assert not counter.uses_process
    assert counter.submit(["hello world"]).result() == [2]
    counter.close()
