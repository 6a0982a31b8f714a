"""The text form near-duplicate checks compare: case, spacing and punctuation ignored.

``normalise(text)`` is, exactly, ``re.sub(r"[\\W_]+", " ", text.casefold()).strip()``:
words (runs of Unicode letters and digits) case-folded and joined by single spaces.
That regex is slow when it replaces every space and comma one match at a time, so
the work is done by C string methods instead, in three steps:

- a text of several lines seen before is answered from a cache; else it is cut at
  its line breaks (which separate words anyway) and each line is normalised on its
  own, through a cache: a templated system prompt that differs in one line from
  example to example costs one new line, not a new prompt;
- outside ASCII, only the rare separators (curly quotes, dashes, CJK punctuation,
  emoji) go through a regex, the others are left alone;
- ASCII separators become spaces in one ``bytes.translate`` of the UTF-8 text, whose
  ``split`` and ``join`` then collapse them.

Text written without spaces (Chinese, Japanese) has so few separators that the
regex itself is the fastest there, and is used.

A long line is cut into slices at separators first, so no step holds more than one
slice's words: memory stays proportional to the text, whatever its shape.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from functools import lru_cache

# Lines longer than this are normalised slice by slice.
SLICE_CHARS = 1 << 16
# Lines up to this long are cached, the most recent first: at most 8 Mi characters;
# and whole texts of several lines (a system prompt repeated as is), at most 4 Mi.
CACHED_LINE_CHARS = 4096
_CACHED_LINES = 2048
CACHED_TEXT_CHARS = 16384
_CACHED_TEXTS = 256

# The only separators a byte translation cannot see: characters outside ASCII that are
# neither letters nor digits.
_SEPARATORS_OUTSIDE_ASCII = re.compile(r"[^\x00-\x7f\w]+")
# Any character but a letter or a digit, and runs of them.
_SEPARATOR = re.compile(r"[\W_]")
_SEPARATORS = re.compile(r"[\W_]+")
# Fewer spaces than one in this many characters: a script written without spaces.
_FEW_SPACES = 16
# ASCII letters lower-cased, digits kept, other ASCII bytes made spaces; UTF-8 bytes of
# other characters kept as they are.
_ASCII_WORDS = bytes(
    (c | 0x20 if chr(c).isalpha() else c) if chr(c).isalnum() else 0x20 for c in range(128)
) + bytes(range(128, 256))


def normalise(text: str) -> str:
    """Case- and punctuation-insensitive form of ``text``, for near-duplicate checks."""
    if "\n" not in text:
        return _line(text)
    if len(text) <= CACHED_TEXT_CHARS:
        return _cached_lines(text)
    return _lines(text)


@lru_cache(maxsize=_CACHED_TEXTS)
def _cached_lines(text: str) -> str:
    return _lines(text)


def _lines(text: str) -> str:
    lines = text.split("\n")
    # Short lines, as nearly always, go to the cache straight.
    cut = _cached_line if max(map(len, lines)) <= CACHED_LINE_CHARS else _line
    return " ".join(filter(None, map(cut, lines)))


def _line(text: str) -> str:
    if len(text) <= CACHED_LINE_CHARS:
        return _cached_line(text)
    if len(text) <= SLICE_CHARS:
        return _words(text.casefold())
    return " ".join(filter(None, map(_words, _slices(text.casefold(), SLICE_CHARS))))


@lru_cache(maxsize=_CACHED_LINES)
def _cached_line(text: str) -> str:
    # ASCII needs no case folding: the byte table lower-cases it.
    return _words(text if text.isascii() else text.casefold())


def _words(folded: str) -> str:
    """The words of case-folded text, joined by single spaces."""
    if not folded.isascii():
        if folded.count(" ") * _FEW_SPACES < len(folded):
            # Written without spaces (Chinese, Japanese): few separators, the regex is faster.
            return _SEPARATORS.sub(" ", folded).strip()
        folded = _SEPARATORS_OUTSIDE_ASCII.sub(" ", folded)
    return b" ".join(folded.encode().translate(_ASCII_WORDS).split()).decode()


def _slices(text: str, size: int) -> Iterator[str]:
    """``text`` cut into slices of about ``size`` characters, each cut at a separator.

    A slice without any separator (one huge word) is kept whole: it is one word.
    """
    start = 0
    while len(text) - start > size:
        cut = _SEPARATOR.search(text, start + size)
        if cut is None:
            break
        yield text[start : cut.start()]
        start = cut.start()
    yield text[start:]
