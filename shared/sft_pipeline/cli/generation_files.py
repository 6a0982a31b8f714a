"""The files ``sft generate`` writes, and how a rerun picks them up.

Beside the training file (and the held-out file) a journal, ``<output>.journal``, records the
spec's fingerprint and every attempt: its slot, its attempt number, the tokens it cost, and
for an accepted example the sha256 of its line. Each attempt is written to the journal and
flushed before its example is appended to its output (and flushed), so whenever the run is
killed, every line in the outputs has its journal entry. A rerun reads the outputs back,
drops a line cut off mid-write, keeps the accepted examples whose lines are there, and goes
on from each open slot's next attempt: nothing is lost, nothing is made twice.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import orjson
from pydantic import BaseModel, ValidationError

from sft_pipeline.generation.generator import Attempt
from sft_pipeline.generation.plan import Split

JOURNAL_SUFFIX = ".journal"


class OutputError(Exception):
    """The outputs cannot be used for this spec; the message says why and what to do."""


class _Header(BaseModel):
    spec: str
    outputs: dict[Split, str]


class _Entry(BaseModel):
    attempt: Attempt
    sha256: str | None = None


def line_sha256(line: str) -> str:
    return hashlib.sha256(line.encode()).hexdigest()


@dataclass
class GenerationFiles:
    """The outputs of one spec: where each split goes, and the journal beside them."""

    outputs: dict[Split, Path]
    spec_fingerprint: str
    _handles: dict[str, IO[str]] = field(default_factory=dict)

    @property
    def journal(self) -> Path:
        return self.outputs["train"].with_name(self.outputs["train"].name + JOURNAL_SUFFIX)

    def resume(self) -> list[Attempt]:
        """The attempts of earlier runs (accepted ones with their lines); [] for a new run."""
        if not self.journal.exists():
            for path in self.outputs.values():
                if path.exists() and path.stat().st_size:
                    raise OutputError(
                        f"{path} already exists and was not written by sft generate (there is "
                        f"no {self.journal.name}); choose another output or remove it"
                    )
            return []
        header, entries = self._read_journal()
        if header.spec != self.spec_fingerprint:
            raise OutputError(
                f"{self.outputs['train']} was made from another spec ({self.journal.name} says "
                "so); choose another output, or remove it and its journal to start over"
            )
        named = {split: str(path) for split, path in self.outputs.items()}
        if header.outputs != named:
            raise OutputError(
                f"{self.journal.name} was written with other outputs ({header.outputs}); "
                "give the same -o and --eval-out again"
            )
        lines = {split: _read_lines(path) for split, path in self.outputs.items()}
        attempts, known = [], set()
        for entry in entries:
            attempt = entry.attempt
            split_lines = lines[attempt.slot.split]
            if entry.sha256 is not None and entry.sha256 in split_lines:
                known.add(entry.sha256)
                attempt = attempt.model_copy(update={"line": split_lines[entry.sha256]})
            elif entry.sha256 is not None:
                # Journalled, killed before its line was written: the slot is open again.
                attempt = attempt.model_copy(update={"refused": "not_written"})
            attempts.append(attempt)
        for split, found in lines.items():
            if unknown := set(found) - known:
                raise OutputError(
                    f"{self.outputs[split]} has {len(unknown)} line(s) that {self.journal.name} "
                    "does not know; it was edited: choose another output or start over"
                )
        return attempts

    def open(self) -> None:
        if not self.journal.exists():
            header = _Header(
                spec=self.spec_fingerprint,
                outputs={split: str(path) for split, path in self.outputs.items()},
            )
            self.journal.write_text(header.model_dump_json() + "\n", encoding="utf-8")
        self._handles["journal"] = self.journal.open("a", encoding="utf-8")
        for split, path in self.outputs.items():
            self._handles[split] = path.open("a", encoding="utf-8")

    def record(self, attempt: Attempt) -> None:
        """Journal the attempt, then append its example: each flushed before the next."""
        entry = _Entry(
            attempt=attempt.model_copy(update={"line": None}),
            sha256=line_sha256(attempt.line) if attempt.line is not None else None,
        )
        journal = self._handles["journal"]
        journal.write(entry.model_dump_json(exclude_defaults=True) + "\n")
        journal.flush()
        if attempt.line is not None:
            out = self._handles[attempt.slot.split]
            out.write(attempt.line + "\n")
            out.flush()

    def close(self) -> None:
        for handle in self._handles.values():
            handle.close()
        self._handles.clear()

    def lines(self) -> list[str]:
        """Every accepted example written, training first."""
        return [line for path in self.outputs.values() for line in _read_lines(path).values()]

    def _read_journal(self) -> tuple[_Header, list[_Entry]]:
        raw = self.journal.read_bytes().splitlines()
        try:
            header = _Header.model_validate_json(raw[0]) if raw else None
        except ValidationError:
            header = None
        if header is None:
            raise OutputError(f"{self.journal} is not a generation journal; remove it")
        entries = []
        for number, line in enumerate(raw[1:], start=2):
            try:
                entries.append(_Entry.model_validate_json(line))
            except ValidationError:
                if number == len(raw):
                    break  # cut off mid-write by a kill: that attempt is asked again
                raise OutputError(f"{self.journal}: line {number} is damaged; remove it") from None
        return header, entries


def _read_lines(path: Path) -> dict[str, str]:
    """The file's lines by sha256; a last line cut off mid-write is removed from the file."""
    if not path.exists():
        return {}
    data = path.read_bytes()
    whole = data[: data.rfind(b"\n") + 1]
    if len(whole) != len(data):
        with path.open("r+b") as handle:
            handle.truncate(len(whole))
    found = {}
    for number, raw in enumerate(whole.splitlines(), start=1):
        try:
            line = raw.decode("utf-8")
            orjson.loads(line)  # an example written whole is JSON
        except ValueError:
            raise OutputError(f"{path}: line {number} is not an example; it was edited") from None
        found[line_sha256(line)] = line
    return found
