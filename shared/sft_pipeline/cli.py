"""The ``sft`` command line.

``sft validate FILE`` checks a training file the way the fine-tuning provider
will (and more) and prints a readable report, or one JSON object with --json.
Exit status: 0 valid, 1 invalid, 2 unreadable file or bad usage.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import TextIO

from sft_pipeline.validation import DataSource, ValidationOptions, ValidationReport, validate
from sft_pipeline.validation.catalog import load_catalog
from sft_pipeline.validation.progress import ProgressBar
from sft_pipeline.validation.render import render_text
from sft_pipeline.validation.sources import SourceError, open_source

EXIT_VALID = 0
EXIT_INVALID = 1
EXIT_UNUSABLE = 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sft", description="SFT Pipeline: fine-tuning data tools for OpenAI-format JSONL."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    check = commands.add_parser(
        "validate",
        help="check a training file before fine-tuning",
        description="Check a JSONL training file line by line (format, token limits, "
        "duplicates, conflicting answers) and estimate the training cost. "
        "FILE is a local path or s3://bucket/key. Exit 0 valid, 1 invalid, 2 unreadable.",
    )
    check.add_argument("file", metavar="FILE", help="training file: a path or s3://bucket/key")
    check.add_argument(
        "--model",
        default=load_catalog().default_model,
        help="base model to check against (token limit, tokenizer, price); default %(default)s",
    )
    check.add_argument(
        "--validation-file", metavar="F", help="validation file: checked too, and for leakage"
    )
    check.add_argument(
        "--format",
        dest="data_format",
        choices=("chat", "dpo"),
        default="chat",
        help="chat (supervised, the default) or dpo (preference pairs)",
    )
    check.add_argument(
        "--n-epochs", type=int, metavar="N", help="epochs for the estimate (default: as auto would)"
    )
    check.add_argument(
        "--max-findings",
        type=int,
        default=20,
        metavar="N",
        help="findings shown per code; all are counted (default %(default)s)",
    )
    check.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    check.add_argument("--no-progress", action="store_true", help="never show the progress bar")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        options = ValidationOptions(
            data_format=args.data_format,
            model=args.model,
            n_epochs=args.n_epochs,
            max_findings_per_code=args.max_findings,
        )
    except ValueError as exc:
        parser.error(_first_error_line(exc))
    try:
        training = open_source(args.file)
        held_out = open_source(args.validation_file) if args.validation_file else None
        report = _run(training, options, held_out, show_progress=not args.no_progress)
    except SourceError as exc:
        print(f"sft: {exc}", file=sys.stderr)
        return EXIT_UNUSABLE
    if args.json:
        sys.stdout.write(report.model_dump_json(indent=2) + "\n")
    else:
        sys.stdout.write(render_text(report))
    return EXIT_VALID if report.valid else EXIT_INVALID


def _run(
    training: DataSource,
    options: ValidationOptions,
    held_out: DataSource | None,
    show_progress: bool,
    stream: TextIO | None = None,
) -> ValidationReport:
    out = stream or sys.stderr
    total = (training.size or 0) + ((held_out.size or 0) if held_out else 0)
    if not (show_progress and out.isatty() and total):
        return validate(training, options, held_out)
    with ProgressBar(total, out) as bar:
        return validate(training, options, held_out, on_progress=bar.update)


def _first_error_line(exc: ValueError) -> str:
    lines = str(exc).splitlines()
    return " ".join(line.strip() for line in lines[1:3]) if len(lines) > 1 else str(exc)


if __name__ == "__main__":
    sys.exit(main())
