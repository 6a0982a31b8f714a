"""``make demo``: validate the shipped sample files and print their reports."""

from __future__ import annotations

import sys
from pathlib import Path

from sft_pipeline.validation import DataSource, validate
from sft_pipeline.validation.render import render_text

SAMPLES = Path(__file__).resolve().parents[2] / "samples"


def main() -> int:
    training = DataSource.from_path(SAMPLES / "customer_support.jsonl")
    held_out = DataSource.from_path(SAMPLES / "customer_support_validation.jsonl")
    broken = DataSource.from_path(SAMPLES / "broken_support.jsonl")
    print("== A good file, with its validation file ==")
    print(render_text(validate(training, validation=held_out)))
    print("== A file with problems: every finding names its line ==")
    print(render_text(validate(broken)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
