"""What every channel says about a notification: the title and sentence of each outcome,
the facts people scan, where to look further, and the one-line subject.

The email (adapters/notifier.py) and Slack (adapters/slack.py) lay these out each in
their own way; deciding the words once keeps the two from drifting apart.
"""

from __future__ import annotations

import unicodedata
from datetime import UTC, datetime
from typing import Literal, NamedTuple

from sft_pipeline.evaluation.summary import score_table
from sft_pipeline.notifications import Notification, Outcome, usd

# SNS refuses a longer Subject; Slack shows the same line as its fallback text.
SNS_SUBJECT_MAX_CHARS = 100


class Style(NamedTuple):
    title: str
    emoji: str
    sentence: str


STYLES: dict[Outcome, Style] = {
    Outcome.SUCCEEDED: Style(
        "Fine-tune succeeded", ":white_check_mark:", "The fine-tuned model is ready to use."
    ),
    Outcome.FAILED: Style("Fine-tune failed", ":x:", "The fine-tuning job failed."),
    Outcome.CANCELLED: Style(
        "Fine-tune cancelled", ":no_entry_sign:", "The fine-tuning job was cancelled."
    ),
    Outcome.TIMED_OUT: Style(
        "Fine-tune timed out",
        ":hourglass:",
        "The job ran past the stack's maximum duration and was cancelled.",
    ),
    Outcome.REJECTED: Style(
        "Training file rejected", ":warning:", "The file was not sent for training."
    ),
    Outcome.PROVIDER_UNREACHABLE: Style(
        "Provider unreachable",
        ":satellite_antenna:",
        "We cannot reach the provider; the job continues; we keep checking.",
    ),
    Outcome.RETIREMENT_WARNING: Style(
        "Model retiring",
        ":calendar:",
        "A model in use stops serving soon, with its base model; calls to it will then fail.",
    ),
    Outcome.GENERATED: Style(
        "Training data generated",
        ":sparkles:",
        "The teacher's examples passed the validator and were written.",
    ),
    Outcome.GENERATION_FAILED: Style(
        "Data generation failed", ":x:", "No training data was written for the spec."
    ),
}


def headline(n: Notification) -> str:
    """What the message is about: the retiring model, else the run's file."""
    return n.model_id if n.retirement and n.model_id else n.dataset.file_name


class Fact(NamedTuple):
    label: str
    value: str
    kind: Literal["text", "code", "link"] = "text"


def summary_facts(n: Notification) -> list[Fact]:
    """The facts people scan first (Slack shows them as section fields)."""
    dataset = n.dataset
    version = f" (version {dataset.version_id})" if dataset.version_id else ""
    facts = [Fact("Status", n.outcome.value.replace("_", " ").capitalize())]
    if warning := n.retirement:
        days = "today" if warning.days_left == 0 else f"in {_days(warning.days_left)}"
        facts += [
            Fact("Stops serving", f"{warning.shutdown_date.isoformat()} ({days})"),
            Fact("Aliases", ", ".join(warning.aliases) or "none serve it"),
            Fact(
                "Last called",
                warning.last_used_on.isoformat() if warning.last_used_on else "not recorded",
            ),
        ]
    facts.append(Fact("Spec" if n.teacher else "Dataset", dataset.s3_uri + version, "code"))
    if dataset.examples is not None:
        facts.append(Fact("Examples", f"{dataset.examples:,}"))
    if n.teacher:
        facts.append(Fact("Teacher", f"{n.teacher} ({n.provider})"))
    if n.output_uri:
        facts.append(Fact("Written to", n.output_uri, "code"))
    if n.base_model:
        facts.append(Fact("Base model", f"{n.base_model} ({n.provider})"))
    if n.model_id:
        facts.append(Fact("Model", n.model_id, "code"))
    if (seconds := n.duration_seconds) is not None:
        facts.append(Fact("Duration", _duration(seconds)))
    if n.trained_tokens is not None:
        facts.append(Fact("Trained tokens", f"{n.trained_tokens:,}"))
    costs = [
        f"{name} {usd(value)}"
        for name, value in (("estimated", n.estimated_cost_usd), ("actual", n.actual_cost_usd))
        if value is not None
    ]
    if costs:
        facts.append(Fact("Cost", ", ".join(costs)))
    losses = [
        f"{name} {value:.4g}"
        for name, value in (("train", n.train_loss), ("validation", n.valid_loss))
        if value is not None
    ]
    if losses:
        facts.append(Fact("Loss", ", ".join(losses)))
    return facts


class EvaluationText(NamedTuple):
    heading: str
    sentence: str
    # The score table as aligned plain-text lines (header first); empty without a summary.
    table: list[str]


def evaluation_text(n: Notification) -> EvaluationText | None:
    """The held-out evaluation of a new model: the gate's decision in one sentence and the
    score table; or why there was none, or why it failed. None when nothing was said of it."""
    if n.evaluation_error:
        return EvaluationText(
            "Evaluation failed",
            f"{n.evaluation_error.rstrip('.')}. The model is registered but was not promoted.",
            [],
        )
    if n.evaluation_skipped:
        return EvaluationText(
            "Not evaluated",
            f"{_capitalised(n.evaluation_skipped.rstrip('.'))}. The model is registered "
            "but is never promoted automatically without an evaluation.",
            [],
        )
    summary = n.evaluation
    if summary is None:
        return None
    decision = n.evaluation_decision or (summary.decision.reason if summary.decision else None)
    return EvaluationText(
        f"Evaluation ({summary.examples:,} held-out examples, scored by {summary.primary})",
        _capitalised(decision) if decision else "No promotion was asked for.",
        _aligned_columns(score_table(summary)),
    )


def _capitalised(sentence: str) -> str:
    return sentence[:1].upper() + sentence[1:]


def _aligned_columns(rows: list[list[str]]) -> list[str]:
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    return [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]


def reference_facts(n: Notification) -> list[Fact]:
    """Where to look further (Slack shows them as context)."""
    candidates = [
        Fact("Job", n.job_id or "", "code"),
        Fact("Dataset id", n.dataset.dataset_id, "code"),
        Fact("Validation", n.validation_summary or ""),
        Fact("Report", n.report_uri or "", "code"),
        Fact("Model card", n.model_card_uri or "", "code"),
        Fact("Started", _utc(n.started_at)),
        Fact("Finished", _utc(n.finished_at)),
        Fact("Console", n.console_url or "", "link"),
    ]
    return [fact for fact in candidates if fact.value]


def subject_for(n: Notification) -> str:
    """The SNS email subject: ASCII, one line, at most 100 characters."""
    head = f"{STYLES[n.outcome].title}: "
    if n.retirement is not None:
        head = f"{STYLES[n.outcome].title} in {_days(n.retirement.days_left)}: "
        return head + _shorten_middle(_ascii_line(headline(n)), SNS_SUBJECT_MAX_CHARS - len(head))
    if n.outcome is Outcome.SUCCEEDED and n.model_id:
        frame, detail = " -> {}", n.model_id
    elif n.error_code:
        frame, detail = " ({})", n.error_code
    else:
        frame, detail = "{}", ""
    name = _ascii_line(n.dataset.file_name)
    room = SNS_SUBJECT_MAX_CHARS - len(head) - len(frame.format(""))
    # The detail gets what the file name leaves over, and never less than 44 characters.
    detail = _shorten_middle(_ascii_line(detail), max(room - len(name), 44))
    return head + _shorten_middle(name, room - len(detail)) + frame.format(detail)


def _shorten_middle(text: str, width: int) -> str:
    """Keep both ends (a file's extension, a model id's suffix) and drop the middle."""
    if len(text) <= width:
        return text
    keep = width - 3
    return text[: keep - keep // 2] + "..." + text[len(text) - keep // 2 :]


def _ascii_line(text: str) -> str:
    """SNS subjects must be printable ASCII on one line."""
    flat = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return "".join(char for char in " ".join(flat.split()) if char.isprintable())


def _days(days: int) -> str:
    return "1 day" if days == 1 else f"{days} days"


def _duration(seconds: int) -> str:
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h {minutes:02d}m {secs:02d}s"
    if minutes:
        return f"{minutes}m {secs:02d}s"
    return f"{secs}s"


def _utc(moment: datetime | None) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC") if moment else ""
