"""The whole pipeline on the local stack: moto runs the real ASL, handlers run in-process."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from sft_local.stack import LocalStack

REPO = Path(__file__).resolve().parents[2]
SUPPORT_SET = (REPO / "samples" / "customer_support.jsonl").read_bytes()
BROKEN_SET = (REPO / "samples" / "broken_support.jsonl").read_bytes()


@pytest.fixture
def stack() -> Iterator[LocalStack]:
    with LocalStack() as local:
        yield local
