"""What ``sft eval`` runs: the held-out and few-shot files read, the contenders named, the
endpoint called through the pipeline's OpenAI adapter, and the results shown and written.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from sft_pipeline.chat_calls import Chat
from sft_pipeline.cli.sources import open_source
from sft_pipeline.evaluation.answers import EvalDataError, EvalExample, read_examples
from sft_pipeline.evaluation.contenders import Contender, few_shot_budget, few_shot_examples
from sft_pipeline.evaluation.graders import GRADERS
from sft_pipeline.evaluation.report_html import (
    ModelFacts,
    evaluation_rows,
    report_html,
    side_by_side,
)
from sft_pipeline.evaluation.runner import Evaluation
from sft_pipeline.validation.progress import ProgressBar
from sft_pipeline.validation.targets.openai import resolve
from sft_pipeline.validation.tokens import get_encoding

# How long one answer may take; the runner retries a timeout like a 5xx.
REQUEST_TIMEOUT_SECONDS = 60.0


class EvalInputError(Exception):
    """A held-out or few-shot file that cannot be evaluated (the message names the line), or
    an endpoint that cannot be called."""


def read_held_out(spec: str) -> list[EvalExample]:
    source = open_source(spec)
    with source.open() as stream:
        data = stream.read()
    try:
        examples = read_examples(data.splitlines())
    except EvalDataError as error:
        raise EvalInputError(f"{source.name}: {error}") from None
    if not examples:
        raise EvalInputError(f"{source.name}: no examples")
    return examples


def contenders_for(args: argparse.Namespace, baseline: str) -> list[Contender]:
    contenders = [
        # An ft: id is priced at its base model's fine-tuned inference rate.
        Contender(
            name="candidate",
            model=args.model,
            fine_tune_of=baseline if args.model.startswith("ft:") else None,
        ),
        Contender(name="base", model=baseline),
    ]
    if args.few_shot:
        resolved = resolve(baseline)
        encoding = get_encoding(resolved.encoding)
        limit = resolved.max_tokens_per_example
        shots = few_shot_examples(
            read_held_out(args.few_shot),
            k=args.k,
            seed=args.seed,
            max_tokens=few_shot_budget(limit),
            count_tokens=lambda text: len(encoding.encode(text, disallowed_special=())),
        )
        contenders.append(Contender(name="few_shot", model=baseline, few_shot=shots))
    if args.champion:
        contenders.append(Contender(name="champion", model=args.champion))
    return contenders


def openai_chat(base_url: str | None, api_key: str | None) -> Chat:
    """Chat completions through the pipeline's OpenAI adapter. Its retries are off: the
    runner retries (and waits out Retry-After) itself, so a request is never retried twice
    over."""
    import openai  # noqa: PLC0415 - only `sft eval` pays for importing the SDK

    from sft_pipeline.providers.openai_provider import OpenAIProvider  # noqa: PLC0415

    try:
        client = openai.OpenAI(
            api_key=api_key,
            base_url=base_url,
            max_retries=0,
            timeout=REQUEST_TIMEOUT_SECONDS,
        )
    except openai.OpenAIError as error:
        raise EvalInputError(
            f"no API key: pass --api-key or set OPENAI_API_KEY ({error})"
        ) from None
    return OpenAIProvider(client, max_rate_limit_wait=0.0).chat


def progress_bar(stack: ExitStack) -> Any:
    """A progress bar on a terminal, drawn once the run knows how many requests it makes."""
    if not sys.stderr.isatty():
        return None
    bars: list[ProgressBar] = []

    def show(done: int, total: int) -> None:
        if not bars:
            bars.append(
                stack.enter_context(ProgressBar(total, sys.stderr, unit="answers", scale=1))
            )
        bars[0].update(done)

    return show


def write_outputs(
    args: argparse.Namespace, evaluation: Evaluation, examples: Sequence[EvalExample], baseline: str
) -> None:
    if args.answers_out:
        with Path(args.answers_out).open("w", encoding="utf-8") as out:
            for reply in evaluation.replies:
                out.write(reply.model_dump_json() + "\n")
    if args.html:
        names = [result.name for result in evaluation.summary.contenders]
        facts = ModelFacts(
            model=args.model,
            base_model=baseline,
            examples=side_by_side(examples, {name: evaluation.answers(name) for name in names}),
            evaluation_note=None,
        )
        Path(args.html).write_text(report_html(evaluation.summary, facts), encoding="utf-8")


def render_table(evaluation: Evaluation) -> str:
    summary = evaluation.summary
    rows = evaluation_rows(summary)
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]
    about = (
        f"{summary.examples} examples, score: {summary.primary} "
        f"(graders: {', '.join(summary.graders)}), 95% intervals, seed {summary.seed}"
    )
    decision = f"gate: {summary.decision.reason}" if summary.decision else ""
    return "\n".join([about, "", *lines, "", decision]).rstrip() + "\n"


def warn_failures(evaluation: Evaluation) -> None:
    for name in dict.fromkeys(reply.contender for reply in evaluation.replies):
        failed = [r for r in evaluation.replies if r.contender == name and r.error]
        if failed:
            print(
                f"sft: warning: {len(failed)} requests to {name} failed and scored 0 "
                f"(line {failed[0].line}: {failed[0].error})",
                file=sys.stderr,
            )


def base_of(model: str) -> str | None:
    """The base model an OpenAI fine-tune id names: ft:gpt-4o-mini-2024-07-18:org::id."""
    parts = model.split(":")
    return parts[1] if model.startswith("ft:") and len(parts) > 2 and parts[1] else None


def parse_graders(value: str) -> list[str]:
    names = [name.strip() for name in value.split(",") if name.strip()]
    unknown = [name for name in names if name not in GRADERS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"unknown grader {', '.join(unknown) or value!r}: choose from {', '.join(GRADERS)}"
        )
    return names
