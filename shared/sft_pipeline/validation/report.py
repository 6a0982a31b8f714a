"""The validation report: findings with line numbers, statistics and the cost estimate."""

from __future__ import annotations

from collections import Counter
from typing import Literal

from pydantic import BaseModel, Field

Severity = Literal["error", "warning"]


class Finding(BaseModel):
    """One problem. ``line`` for a single line, ``lines`` for a group; neither for the file."""

    code: str
    message: str
    line: int | None = None
    lines: list[int] | None = None
    location: str | None = None
    # "validation" or "evaluation" for findings in those files; None for the training file.
    file: str | None = None
    # How many lines share this group finding, when ``lines`` lists only the first few.
    total_lines: int | None = None


class Distribution(BaseModel):
    min: int
    median: int
    p95: int
    max: int
    mean: float
    total: int


class FileInfo(BaseModel):
    name: str
    bytes: int
    sha256: str
    lines: int


class Stats(BaseModel):
    examples: int = 0
    valid_examples: int = 0
    invalid_examples: int = 0
    blank_lines: int = 0
    messages: int = 0
    messages_per_example: Distribution | None = None
    tokens_per_example: Distribution | None = None
    assistant_tokens_per_example: Distribution | None = None
    examples_over_token_limit: int = 0
    examples_with_tools: int = 0
    examples_with_images: int = 0
    examples_without_system_message: int = 0
    validation_examples: int | None = None
    evaluation_examples: int | None = None


class Estimate(BaseModel):
    model: str
    base_model: str | None
    encoding: str
    max_tokens_per_example: int
    n_epochs: int
    n_epochs_source: Literal["auto", "requested"]
    billable_tokens_per_epoch: int
    billed_tokens: int
    training_price_per_million_usd: float | None
    price_as_of: str
    estimated_cost_usd: float | None
    notes: list[str] = Field(default_factory=list)
    # The held-out evaluation's inference, when there is a held-out set: its examples, the
    # contenders counted, and their cost (None when a price is unknown).
    evaluation_examples: int | None = None
    evaluation_contenders: int | None = None
    evaluation_cost_usd: float | None = None


class ValidationReport(BaseModel):
    valid: bool
    format: Literal["chat", "dpo"]
    file: FileInfo | None
    validation_file: FileInfo | None = None
    evaluation_file: FileInfo | None = None
    errors: list[Finding]
    warnings: list[Finding]
    error_counts: dict[str, int]
    warning_counts: dict[str, int]
    stats: Stats
    estimate: Estimate | None

    def refuse(self, code: str, message: str) -> None:
        """Add a file-level error found outside the file (settings, cost cap), first in line."""
        self.errors.insert(0, Finding(code=code, message=message))
        self.error_counts[code] = self.error_counts.get(code, 0) + 1
        self.valid = False

    def warn(self, code: str, message: str) -> None:
        """Add a file-level warning found outside the file (settings), first in line."""
        self.warnings.insert(0, Finding(code=code, message=message))
        self.warning_counts[code] = self.warning_counts.get(code, 0) + 1

    def summary(self) -> str:
        """One line a person can read in a notification."""
        verdict = "valid" if self.valid else "INVALID"
        counts = f"{sum(self.error_counts.values())} errors, {sum(self.warning_counts.values())}"
        text = f"{verdict}: {self.stats.examples} examples, {counts} warnings"
        if self.estimate and self.estimate.estimated_cost_usd is not None:
            text += (
                f"; est. {self.estimate.billed_tokens:,} training tokens "
                f"(~${self.estimate.estimated_cost_usd:,.2f})"
            )
        return text


class FindingCollector:
    """Keeps the first few findings of each code and counts them all.

    A file with a million bad lines still gives a report a person can read.
    """

    def __init__(self, max_per_code: int) -> None:
        self.max_per_code = max_per_code
        self.kept: list[Finding] = []
        self.counts: Counter[str] = Counter()

    def add(self, finding: Finding) -> None:
        self.counts[finding.code] += 1
        if self.counts[finding.code] <= self.max_per_code:
            self.kept.append(finding)

    def add_group(self, code: str, total: int, findings: list[Finding]) -> None:
        """Record a file-wide check that found ``total`` groups, shown by ``findings``."""
        if total:
            self.counts[code] += total
            self.kept.extend(findings[: self.max_per_code])

    def __bool__(self) -> bool:
        return bool(self.counts)

    def sorted(self) -> list[Finding]:
        return sorted(self.kept, key=_finding_order)


def _finding_order(finding: Finding) -> tuple[int, str]:
    first_line = finding.line or (finding.lines[0] if finding.lines else 0)
    return first_line, finding.code
