"""The whole pipeline on the local stack: moto runs the real ASL, handlers run in-process."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from sft_local.stack import LocalStack

REPO = Path(__file__).resolve().parents[2]
SUPPORT_SET = (REPO / "samples" / "customer_support.jsonl").read_bytes()
BROKEN_SET = (REPO / "samples" / "broken_support.jsonl").read_bytes()
# What a fine-tune of SUPPORT_SET may answer: the local stand-ins reply from the training set.
SUPPORT_REPLIES = frozenset(
    json.loads(line)["messages"][-1]["content"] for line in SUPPORT_SET.splitlines()
)


@pytest.fixture
def stack() -> Iterator[LocalStack]:
    with LocalStack() as local:
        yield local
