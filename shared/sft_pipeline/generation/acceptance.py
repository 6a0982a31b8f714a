"""Whether a produced example may be written: the validator's own rules, its token limit and
its duplicate fingerprints, across the whole output (training and held-out alike).

An example is refused when the validator finds any error or warning in it (a generated
example has no excuse), when it is over the fine-tune's token limit, or when it is an exact
or near-duplicate (the validator's normaliser) of one already accepted, or asks the same
question as one already accepted (which the validator would report as conflicting answers,
or as held-out leakage between the two files).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

from sft_pipeline.jobs import ProviderName
from sft_pipeline.validation.estimate import token_limit
from sft_pipeline.validation.rules import check_line
from sft_pipeline.validation.targets import resolve_model
from sft_pipeline.validation.tokens import count_tokens, get_encoding
from sft_pipeline.validation.validator import max_text_chars, nova_target

EXACT_DUPLICATE = "exact_duplicate"
NEAR_DUPLICATE = "near_duplicate"
DUPLICATE_PROMPT = "duplicate_prompt"
TOO_LONG = "example_too_long"
DUPLICATES = frozenset({EXACT_DUPLICATE, NEAR_DUPLICATE, DUPLICATE_PROMPT})


@dataclass(frozen=True)
class Verdict:
    """An accepted example's line (``raw``, without newline) and tokens, or why it was refused."""

    raw: bytes
    tokens: int = 0
    refused: str | None = None
    why: str | None = None

    @property
    def accepted(self) -> bool:
        return self.refused is None


@dataclass
class Acceptor:
    """Checks examples one at a time against the target fine-tune and everything accepted so
    far. Not thread-safe: the generator calls it from one thread."""

    model: str
    provider: ProviderName | None = None
    dataset_bucket: str | None = None
    _exact: set[int] = field(default_factory=set)
    _near: set[int] = field(default_factory=set)
    _prompts: set[int] = field(default_factory=set)

    def __post_init__(self) -> None:
        resolved = resolve_model(self.model, self.provider)
        self._limit = token_limit(resolved)
        self._encode = get_encoding(resolved.encoding).encode_ordinary
        self._nova = nova_target(resolved, "chat", self.dataset_bucket)
        self._max_text_chars = max_text_chars()
        self._line = 0

    def judge(self, example: dict[str, Any]) -> Verdict:
        """Accept ``example`` (remembering it) or say why not."""
        return self.judge_line(orjson.dumps(example))

    def judge_line(self, raw: bytes) -> Verdict:
        """As ``judge``, for an example already written as a JSONL line (a resumed run's)."""
        self._line += 1
        checked = check_line(
            raw, self._line, "chat", self._nova, max_text_chars=self._max_text_chars
        )
        for finding in [*checked.errors, *checked.warnings]:
            return Verdict(raw, refused=finding.code, why=finding.message)
        facts = checked.facts
        if facts is None:  # a line with neither finding nor facts cannot be checked
            return Verdict(raw, refused="unchecked", why="the validator could not read it")
        tokens = facts.overhead + sum(
            count_tokens(self._encode, text, self._limit) for text in facts.texts
        )
        if tokens > self._limit:
            return Verdict(
                raw, refused=TOO_LONG, why=f"{tokens:,} tokens, over the {self._limit:,} limit"
            )
        if facts.exact in self._exact:
            return Verdict(raw, refused=EXACT_DUPLICATE, why="the same as an accepted example")
        if facts.near in self._near:
            return Verdict(
                raw,
                refused=NEAR_DUPLICATE,
                why="an accepted example differs only in case, spacing or punctuation",
            )
        if facts.prompt in self._prompts:
            return Verdict(raw, refused=DUPLICATE_PROMPT, why="an accepted example asks the same")
        self._exact.add(facts.exact)
        self._near.add(facts.near)
        self._prompts.add(facts.prompt)
        return Verdict(raw, tokens=tokens)
