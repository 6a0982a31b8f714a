"""Whole reports for known files, compared with reviewed golden copies.

Regenerate after an intended change with: UPDATE_GOLDEN=1 make test
"""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path

import pytest

from sft_pipeline.validation import DataSource, ValidationOptions, validate
from sft_pipeline.validation.render import render_text

REPO = Path(__file__).resolve().parents[2]
GOLDEN = REPO / "tests" / "golden"
FIXED_DAY = dt.date(2026, 11, 25)

CASES = {
    "customer_support": (
        "samples/customer_support.jsonl",
        "samples/customer_support_validation.jsonl",
        "chat",
    ),
    "broken_support": ("samples/broken_support.jsonl", None, "chat"),
    "dpo_preferences": ("tests/golden/dpo_preferences.jsonl", None, "dpo"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_report_matches_golden(case: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)
    training, held_out, data_format = CASES[case]
    report = validate(
        DataSource.from_path(training),
        ValidationOptions(data_format=data_format, today=FIXED_DAY),  # type: ignore[arg-type]
        DataSource.from_path(held_out) if held_out else None,
    )
    actual = {
        "json": json.loads(report.model_dump_json()),
        "text": render_text(report).splitlines(),
    }
    golden_file = GOLDEN / f"{case}.report.json"
    if os.environ.get("UPDATE_GOLDEN"):
        golden_file.write_text(json.dumps(actual, indent=2, ensure_ascii=False) + "\n")
    assert actual == json.loads(golden_file.read_text())
