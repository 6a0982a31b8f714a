"""File-wide data-quality checks with memory that does not grow with the file.

Per-example fingerprints and token counts go to a temporary SQLite database on
disk (``/tmp`` in Lambda); duplicates, conflicts, leakage and percentiles are
SQL queries over it at the end.
"""

from __future__ import annotations

import sqlite3
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from sft_pipeline.validation.report import Distribution, Finding
from sft_pipeline.validation.rules import ExampleFacts

TRAINING = 0
VALIDATION = 1
EVALUATION = 2
LINES_SHOWN = 10
PAGE_CACHE_KIB = 16_384

_SCHEMA = """
CREATE TABLE example (
    file INTEGER NOT NULL, line INTEGER NOT NULL, tokens INTEGER NOT NULL,
    assistant_tokens INTEGER NOT NULL, messages INTEGER NOT NULL, has_system INTEGER NOT NULL,
    short_reply INTEGER NOT NULL, exact INTEGER NOT NULL, near INTEGER NOT NULL,
    prompt INTEGER NOT NULL, answer INTEGER NOT NULL
)
"""


@dataclass
class Group:
    size: int
    lines: list[int]


class ExampleStore:
    """Fingerprints of every valid example, kept on disk."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def add(self, file: int, examples: Iterable[ExampleFacts]) -> None:
        self._db.executemany(
            "INSERT INTO example VALUES (?,?,?,?,?,?,?,?,?,?,?)",
            [
                (
                    file,
                    f.line,
                    f.tokens,
                    f.assistant_tokens,
                    f.messages,
                    f.has_system,
                    f.reply_is_short,
                    f.exact,
                    f.near,
                    f.prompt,
                    f.answer,
                )
                for f in examples
            ],
        )

    def finish_loading(self) -> None:
        self._db.execute("CREATE INDEX by_file_tokens ON example (file, tokens)")

    # ------------------------------------------------------------ statistics

    def count(self, file: int = TRAINING) -> int:
        row = self._db.execute("SELECT COUNT(*) FROM example WHERE file = ?", (file,)).fetchone()
        return int(row[0])

    def distribution(self, column: str, file: int = TRAINING) -> Distribution | None:
        if column not in ("tokens", "assistant_tokens", "messages"):
            raise ValueError(column)
        n = self.count(file)
        if n == 0:
            return None
        low, high, total = self._db.execute(
            f"SELECT MIN({column}), MAX({column}), SUM({column}) FROM example WHERE file = ?",
            (file,),
        ).fetchone()

        def rank(fraction: float) -> int:
            offset = min(n - 1, int(fraction * (n - 1) + 0.5))
            row = self._db.execute(
                f"SELECT {column} FROM example WHERE file = ? ORDER BY {column} LIMIT 1 OFFSET ?",
                (file, offset),
            ).fetchone()
            return int(row[0])

        return Distribution(
            min=low,
            median=rank(0.5),
            p95=rank(0.95),
            max=high,
            mean=round(total / n, 2),
            total=total,
        )

    def billable_tokens(self, limit: int, file: int = TRAINING) -> int:
        row = self._db.execute(
            "SELECT COALESCE(SUM(MIN(tokens, ?)), 0) FROM example WHERE file = ?", (limit, file)
        ).fetchone()
        return int(row[0])

    def lines_where(self, condition: str, file: int = TRAINING) -> tuple[int, list[int]]:
        total = self._db.execute(
            f"SELECT COUNT(*) FROM example WHERE file = ? AND {condition}", (file,)
        ).fetchone()[0]
        lines = [
            row[0]
            for row in self._db.execute(
                f"SELECT line FROM example WHERE file = ? AND {condition} ORDER BY line LIMIT ?",
                (file, LINES_SHOWN),
            )
        ]
        return int(total), lines

    # ------------------------------------------------------------ groups

    def groups(self, key: str, distinct: str | None, limit: int) -> tuple[int, list[Group]]:
        """Training examples sharing ``key`` (and, if given, differing in ``distinct``).

        Returns how many such groups there are, and the first ``limit`` of them.
        """
        having = f"COUNT(DISTINCT {distinct}) > 1" if distinct else "COUNT(*) > 1"
        grouped = (
            f"SELECT {key}, MIN(line) AS first, COUNT(*) FROM example WHERE file = {TRAINING} "
            f"GROUP BY {key} HAVING {having}"
        )
        total = self._db.execute(f"SELECT COUNT(*) FROM ({grouped})").fetchone()[0]
        heads = self._db.execute(f"{grouped} ORDER BY first LIMIT ?", (limit,)).fetchall()
        groups = {group_key: Group(size=size, lines=[]) for group_key, _first, size in heads}
        if groups:
            marks = ",".join("?" * len(groups))
            for group_key, line in self._db.execute(
                f"SELECT {key}, line FROM example WHERE file = {TRAINING} AND {key} IN ({marks}) "
                "ORDER BY line",
                list(groups),
            ):
                shown = groups[group_key].lines
                if len(shown) < LINES_SHOWN:
                    shown.append(line)
        return int(total), list(groups.values())

    def leaks(self, limit: int, file: int = VALIDATION) -> tuple[int, list[tuple[int, int]]]:
        """Held-out examples (of ``file``) whose prompt also appears in the training file."""
        joined = (
            f"FROM example v JOIN example t ON t.file = {TRAINING} AND t.prompt = v.prompt "
            "WHERE v.file = ?"
        )
        total = self._db.execute(f"SELECT COUNT(DISTINCT v.line) {joined}", (file,)).fetchone()[0]
        pairs = self._db.execute(
            f"SELECT v.line, MIN(t.line) {joined} GROUP BY v.line ORDER BY v.line LIMIT ?",
            (file, limit),
        ).fetchall()
        return int(total), [(int(v), int(t)) for v, t in pairs]


@contextmanager
def example_store() -> Iterator[ExampleStore]:
    with tempfile.TemporaryDirectory(prefix="sft-validate-") as folder:
        db = sqlite3.connect(Path(folder) / "examples.sqlite3", check_same_thread=False)
        try:
            db.execute("PRAGMA journal_mode = OFF")
            db.execute("PRAGMA synchronous = OFF")
            db.execute("PRAGMA temp_store = FILE")
            db.execute(f"PRAGMA cache_size = -{PAGE_CACHE_KIB}")
            db.execute(_SCHEMA)
            yield ExampleStore(db)
        finally:
            db.close()


GROUP_CHECKS = (
    ("exact_duplicate", "exact", None, "These lines are exact duplicates"),
    (
        "near_duplicate",
        "near",
        "exact",
        "These lines are the same text up to case, spacing and punctuation",
    ),
    (
        "conflicting_answers",
        "prompt",
        "answer",
        "The same prompt gets different assistant replies on these lines",
    ),
)


def lines_finding(
    code: str, text: str, lines: list[int], total_lines: int, label: str = ""
) -> Finding:
    """A finding about many lines: the first few named, the rest counted."""
    more = f" (and {total_lines - len(lines)} more)" if total_lines > len(lines) else ""
    return Finding(
        code=code,
        lines=lines,
        total_lines=total_lines,
        message=f"{text}: {label}{', '.join(map(str, lines))}{more}.",
    )


def group_findings(
    store: ExampleStore, max_groups: int
) -> Iterator[tuple[str, int, list[Finding]]]:
    """Duplicate, near-duplicate and conflicting-answer groups in the training file.

    Yields each check's code, its number of groups, and findings for the first groups.
    """
    for code, key, distinct, text in GROUP_CHECKS:
        total, groups = store.groups(key, distinct, max_groups)
        findings = [lines_finding(code, text, group.lines, group.size) for group in groups]
        yield code, total, findings
