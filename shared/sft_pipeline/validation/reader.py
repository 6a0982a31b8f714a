"""Streams a JSONL file line by line with bounded memory, from any binary source.

Works on a local file or an S3 ``StreamingBody`` alike (anything with ``read(n)``).
File-level problems that make line-by-line reporting pointless (empty, binary,
UTF-16, not UTF-8, a JSON array) are raised once, as :class:`FileLevelError`;
a JSONL file with a bad first line is not one of them.
"""

from __future__ import annotations

import codecs
import hashlib
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Protocol

import orjson

CHUNK_SIZE = 1 << 20
# An example can carry ten 10 MB images as base64; anything longer is not a training example.
MAX_LINE_BYTES = 160 << 20
SNIFF_BYTES = 64 << 10
# A JSON value takes far more memory parsed than written ("{}," is 3 bytes, a dict 64),
# so a line longer than this is parsed only when it holds at most MAX_JSON_ITEMS values.
ITEM_SCAN_BYTES = 1 << 20
MAX_JSON_ITEMS = 1_000_000
# A JSON string, without backtracking (possessive): what a scan of the structure skips.
_JSON_STRING = re.compile(rb'"[^"\\]*+(?:\\.[^"\\]*+)*+"')

UTF8_BOM = codecs.BOM_UTF8
UTF16_BOMS = (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)
UTF32_BOMS = (codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE)
COMPRESSED_MAGIC = {
    b"\x1f\x8b": "gzip",
    b"PK\x03\x04": "zip",
    b"BZh": "bzip2",
    b"\xfd7zXZ\x00": "xz",
    b"\x28\xb5\x2f\xfd": "zstd",
}


class BinaryReadable(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...


class FileLevelError(Exception):
    """A problem with the whole file, reported once instead of per line."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass
class Line:
    number: int
    raw: bytes
    # Set when the line was longer than MAX_LINE_BYTES; ``raw`` is then empty.
    oversized_bytes: int = 0


@dataclass
class StreamTally:
    """What the reader saw of the whole stream, complete once iteration ends."""

    bytes_read: int = 0
    lines: int = 0
    sha256: hashlib._Hash = field(default_factory=hashlib.sha256)


def sniff(head: bytes) -> None:
    """Raise FileLevelError when the first bytes show this cannot be a UTF-8 JSONL file."""
    if not head:
        raise FileLevelError("empty_file", "The file is empty (0 bytes).")
    if head.startswith(UTF32_BOMS):
        raise FileLevelError(
            "not_utf8", "The file is UTF-32 encoded; save it as UTF-8 (JSONL must be UTF-8)."
        )
    if head.startswith(UTF16_BOMS) or _looks_like_utf16(head):
        raise FileLevelError(
            "not_utf8", "The file is UTF-16 encoded; save it as UTF-8 (JSONL must be UTF-8)."
        )
    for magic, kind in COMPRESSED_MAGIC.items():
        if head.startswith(magic):
            raise FileLevelError(
                "binary_file",
                f"The file is {kind}-compressed; upload the uncompressed .jsonl file.",
            )
    if b"\x00" in head:
        raise FileLevelError("binary_file", "The file contains binary data (NUL bytes), not text.")
    body = head.removeprefix(UTF8_BOM)
    decoder = codecs.getincrementaldecoder("utf-8")()
    try:
        decoder.decode(body, final=False)
    except UnicodeDecodeError as exc:
        line = body.count(b"\n", 0, exc.start) + 1
        raise FileLevelError(
            "not_utf8",
            f"The file is not UTF-8 text (line {line} has the byte 0x{body[exc.start]:02x}, "
            "as Latin-1 or Windows-1252 files do); re-save it as UTF-8.",
        ) from None


def _looks_like_utf16(head: bytes) -> bool:
    """UTF-16 without a BOM: ASCII text with a NUL in every other byte."""
    sample = head[:512]
    if len(sample) < 4:
        return False
    even_nuls = sample[0::2].count(0)
    odd_nuls = sample[1::2].count(0)
    half = len(sample) // 2
    return max(even_nuls, odd_nuls) > 0.4 * half and min(even_nuls, odd_nuls) < 0.05 * half


def iter_lines(
    stream: BinaryReadable,
    tally: StreamTally,
    on_progress: Callable[[int], None] | None = None,
) -> Iterator[Line]:
    """Yield each line without its line ending (LF or CRLF), numbered from 1.

    The UTF-8 BOM is dropped, a missing final newline is fine, and a line longer
    than MAX_LINE_BYTES is skipped over without being held in memory.
    """
    lines = _split_lines(stream, tally, on_progress)
    held: list[Line] = []
    first = _next_non_blank(lines, held)
    if first is not None and first.raw.lstrip().startswith(b"["):
        second = _next_non_blank(lines, held)
        if _json_array_file(first, second):
            raise FileLevelError(
                "json_array",
                "This is a JSON array, not JSONL: write one example object per line, "
                "without the surrounding [ ] and commas.",
            )
    yield from held
    yield from lines


def _next_non_blank(lines: Iterator[Line], held: list[Line]) -> Line | None:
    """Move lines into ``held`` up to and including the next non-blank one, and return it."""
    for line in lines:
        held.append(line)
        if line.oversized_bytes or line.raw.strip():
            return line
    return None


def _json_array_file(first: Line, second: Line | None) -> bool:
    """Whether a file whose first line opens with ``[`` is one JSON array rather than JSONL.

    A JSON array spans the file: its second line (an element followed by a comma,
    a lone brace, the closing bracket) is no example of its own, or it has no second
    line and its only line is an array. A JSONL file with a stray first line goes on
    with whole examples.
    """
    if second is None:
        return _parses_as(first.raw, list)
    return not second.oversized_bytes and not _parses_as(second.raw, dict)


def _parses_as(raw: bytes, kind: type) -> bool:
    if len(raw) > ITEM_SCAN_BYTES:
        # Not parsed twice: its brackets tell well enough.
        opening, closing = (b"[", b"]") if kind is list else (b"{", b"}")
        stripped = raw.strip()
        return stripped.startswith(opening) and stripped.endswith(closing)
    try:
        return isinstance(orjson.loads(raw), kind)
    except orjson.JSONDecodeError:
        return False


def json_items(raw: bytes) -> int:
    """About how many values and keys a JSON text holds: its commas and colons outside
    strings, plus one; an upper bound when that is at most MAX_JSON_ITEMS.

    Counted without parsing and without copying the text.
    """
    items = 1 + raw.count(b",") + raw.count(b":")
    if items > MAX_JSON_ITEMS:
        # Many may be inside strings, which parse to one value each.
        for string in _JSON_STRING.finditer(raw):
            start, end = string.span()
            items -= raw.count(b",", start, end) + raw.count(b":", start, end)
    return items


def _split_lines(
    stream: BinaryReadable,
    tally: StreamTally,
    on_progress: Callable[[int], None] | None,
) -> Iterator[Line]:
    # The line being read, in pieces when it spans chunks: joined once, when it ends.
    pending: list[bytes] = []
    pending_bytes = 0
    oversized = 0
    for chunk in _chunks(stream, tally, on_progress):
        pieces = chunk.split(b"\n")
        tail = pieces.pop()
        for piece in pieces:
            tally.lines += 1
            if oversized:
                yield Line(tally.lines, b"", oversized + len(piece))
                oversized = 0
            elif pending:
                yield _line(tally.lines, b"".join([*pending, piece]))
                pending, pending_bytes = [], 0
            else:
                yield _line(tally.lines, piece)
        if oversized:
            oversized += len(tail)
        elif tail:
            pending.append(tail)
            pending_bytes += len(tail)
            if pending_bytes > MAX_LINE_BYTES:
                oversized = pending_bytes
                pending, pending_bytes = [], 0
    if oversized:
        tally.lines += 1
        yield Line(tally.lines, b"", oversized)
    elif pending:
        tally.lines += 1
        yield _line(tally.lines, b"".join(pending))


def _line(number: int, raw: bytes) -> Line:
    if len(raw) > MAX_LINE_BYTES:
        return Line(number, b"", len(raw))
    return Line(number, raw.removesuffix(b"\r"))


def _chunks(
    stream: BinaryReadable,
    tally: StreamTally,
    on_progress: Callable[[int], None] | None,
) -> Iterator[bytes]:
    """The stream's bytes in chunks, after checking its head and dropping a UTF-8 BOM."""
    head = chunk = stream.read(CHUNK_SIZE)
    while len(head) < SNIFF_BYTES and chunk:
        chunk = stream.read(CHUNK_SIZE)
        head += chunk
    sniff(head)
    if head.startswith(UTF8_BOM):
        tally.sha256.update(UTF8_BOM)
        tally.bytes_read += len(UTF8_BOM)
        head = head[len(UTF8_BOM) :]
    chunk = head
    while chunk:
        tally.sha256.update(chunk)
        tally.bytes_read += len(chunk)
        if on_progress is not None:
            on_progress(tally.bytes_read)
        yield chunk
        chunk = stream.read(CHUNK_SIZE)
