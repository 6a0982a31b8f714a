"""The plan: one numbered slot per example to make, and a seed for every attempt at it.

A slot is (topic, index): the first ``round(count * eval-share)`` slots of each topic are held
out for evaluation, the rest are for training. Every attempt at a slot has its own seed,
derived from the spec's seed, the topic's name, the slot's index and the attempt number, so a
rerun asks the teacher exactly what the first run asked, whatever the concurrency.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from typing import Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from sft_pipeline.generation.spec import GenerationSpec

Split = Literal["train", "eval"]
SPLITS: tuple[Split, ...] = ("train", "eval")
T = TypeVar("T")


class Slot(BaseModel):
    """One example to make."""

    model_config = ConfigDict(frozen=True)

    topic: int = Field(ge=0)
    index: int = Field(ge=0)
    split: Split = "train"


def held_out(count: int, eval_share: float) -> int:
    """How many of a topic's ``count`` examples are held out (half up, never all of them)."""
    if eval_share <= 0 or count < 2:
        return 0
    return min(count - 1, max(1, int(count * eval_share + 0.5)))


def plan_slots(spec: GenerationSpec) -> list[Slot]:
    """Every slot of the spec, topic by topic."""
    return [
        Slot(topic=topic, index=index, split="eval" if index < evaluated else "train")
        for topic, count in enumerate(spec.counts())
        for evaluated in [held_out(count, spec.eval_share)]
        for index in range(count)
    ]


def attempt_seed(spec: GenerationSpec, slot: Slot, attempt: int) -> int:
    """The seed of one attempt at a slot: the same on every run of the same spec."""
    identity = f"{spec.seed}:{spec.topics[slot.topic].name}:{slot.index}:{attempt}"
    return int.from_bytes(hashlib.sha256(identity.encode()).digest()[:4], "big") >> 1


def wanted(spec: GenerationSpec) -> dict[tuple[int, Split], int]:
    """How many examples each (topic, split) needs."""
    found: dict[tuple[int, Split], int] = {}
    for slot in plan_slots(spec):
        found[slot.topic, slot.split] = found.get((slot.topic, slot.split), 0) + 1
    return found


def open_slots(spec: GenerationSpec, filled: Iterable[Slot]) -> list[Slot]:
    """The slots still to make, in plan order."""
    done = set(filled)
    return [slot for slot in plan_slots(spec) if slot not in done]


def batches(items: Sequence[T], size: int) -> list[list[T]]:
    return [list(items[start : start + size]) for start in range(0, len(items), size)]
