"""What a finished (or refused) run tells people: the SNS email, the Slack message, the hints.

The workflow publishes one ``Notification`` per run through ``sns_message``; email
subscribers read ``email_text`` and the Slack notifier Lambda receives the JSON
variant, parses it with ``notification_from_sns`` and posts ``slack_blocks``.
Everything here is pure: no AWS calls.
"""

from __future__ import annotations

import json
import unicodedata
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any, Literal, NamedTuple, TypedDict

from pydantic import AwareDatetime, BaseModel, BeforeValidator, ConfigDict, NonNegativeInt

from sft_pipeline.jobs import UploadRef
from sft_pipeline.redaction import redact_secrets

# Stack parameters and upload metadata that the hints tell people to change.
MAX_JOB_DURATION_PARAMETER = "MaxJobDurationHours"
COST_CAP_PARAMETER = "CostCapUsd"
COST_CAP_METADATA_KEY = "cost-cap-usd"

# Service limits (SNS Publish, Slack Block Kit).
SNS_SUBJECT_MAX_CHARS = 100
SLACK_HEADER_MAX_CHARS = 150
SLACK_TEXT_MAX_CHARS = 3000
SLACK_FIELD_MAX_CHARS = 2000
SLACK_MAX_FIELDS = 10
SLACK_MAX_CONTEXT_ELEMENTS = 10
# Provider error text can be long; clipping it keeps the message far below SNS's 256 KiB.
MAX_ERROR_CHARS = 4000


class Outcome(StrEnum):
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    TIMED_OUT = "timed_out"
    # The file failed validation or its cost estimate is over the cap: nothing was launched.
    REJECTED = "rejected"
    # Not an end: polling has not reached the provider for a while; the job and the
    # workflow go on, and the run's real outcome follows.
    PROVIDER_UNREACHABLE = "provider_unreachable"


def _shown(limit: int) -> BeforeValidator:
    """Text from outside (provider errors, reports) as people may see it: any secret in it
    redacted (the last guard; the provider adapters redact first), then clipped."""

    def clean(value: object) -> object:
        if not isinstance(value, str):
            return value
        value = redact_secrets(value)
        return value[: limit - 1] + "…" if len(value) > limit else value

    return BeforeValidator(clean)


class DatasetRef(BaseModel):
    """The exact S3 object version a run trained on (or refused)."""

    model_config = ConfigDict(frozen=True)

    dataset_id: str
    bucket: str
    key: str
    version_id: str | None
    examples: NonNegativeInt | None = None

    @classmethod
    def of(cls, upload: UploadRef, examples: int | None) -> DatasetRef:
        return cls(
            dataset_id=upload.dataset_id,
            bucket=upload.bucket,
            key=upload.key,
            version_id=upload.version_id,
            examples=examples,
        )

    @property
    def s3_uri(self) -> str:
        return f"s3://{self.bucket}/{self.key}"

    @property
    def file_name(self) -> str:
        return self.key.rsplit("/", 1)[-1] or self.key


class Notification(BaseModel):
    """What the workflow publishes at the end of a run; small and JSON-serialisable."""

    # Unknown fields are ignored so that a newer publisher does not break an older subscriber.
    model_config = ConfigDict(frozen=True, extra="ignore")

    outcome: Outcome
    dataset: DatasetRef
    provider: str = "openai"
    base_model: str | None = None
    job_id: str | None = None
    model_id: str | None = None
    started_at: AwareDatetime | None = None
    finished_at: AwareDatetime | None = None
    trained_tokens: NonNegativeInt | None = None
    estimated_cost_usd: float | None = None
    actual_cost_usd: float | None = None
    train_loss: float | None = None
    valid_loss: float | None = None
    error_code: str | None = None
    error_message: Annotated[str | None, _shown(MAX_ERROR_CHARS)] = None
    # How many times the workflow retried the call that finally failed, when it knows.
    retries: NonNegativeInt | None = None
    report_uri: str | None = None
    validation_summary: Annotated[str | None, _shown(MAX_ERROR_CHARS)] = None
    console_url: str | None = None
    # The pipeline's own OpenAI-compatible API, when the stack has one.
    api_base_url: str | None = None
    # How the new model can be called, when that needs a word (a deployment, a cost).
    serving_note: Annotated[str | None, _shown(MAX_ERROR_CHARS)] = None

    @property
    def duration_seconds(self) -> int | None:
        if self.started_at is None or self.finished_at is None:
            return None
        # Clocks of different services can disagree by a little; never report a negative time.
        return max(0, int((self.finished_at - self.started_at).total_seconds()))


class _Style(NamedTuple):
    title: str
    emoji: str
    sentence: str


_STYLES: dict[Outcome, _Style] = {
    Outcome.SUCCEEDED: _Style(
        "Fine-tune succeeded", ":white_check_mark:", "The fine-tuned model is ready to use."
    ),
    Outcome.FAILED: _Style("Fine-tune failed", ":x:", "The fine-tuning job failed."),
    Outcome.CANCELLED: _Style(
        "Fine-tune cancelled", ":no_entry_sign:", "The fine-tuning job was cancelled."
    ),
    Outcome.TIMED_OUT: _Style(
        "Fine-tune timed out",
        ":hourglass:",
        "The job ran past the stack's maximum duration and was cancelled.",
    ),
    Outcome.REJECTED: _Style(
        "Training file rejected", ":warning:", "The file was not sent for training."
    ),
    Outcome.PROVIDER_UNREACHABLE: _Style(
        "Provider unreachable",
        ":satellite_antenna:",
        "We cannot reach the provider; the job continues; we keep checking.",
    ),
}

_FILE_HINT = (
    "Fix the lines named in the error and in the validation report ({report}), "
    "then upload the file again; the new version starts a new run."
)
_RATE_LIMIT_HINT = (
    "OpenAI kept rate-limiting the request; the workflow retried {retries} with backoff. "
    "Upload the file again later."
)
_DAILY_CAP_HINT = (
    "The organisation reached OpenAI's daily cap on fine-tuning jobs for this base model. "
    "Upload the file again tomorrow, or pick another base model."
)
_UNREACHABLE_HINT = (
    "The provider kept timing out or answering with server errors; the workflow retried "
    "{retries} with backoff. Upload the file again later."
)
_QUOTA_HINT = (
    "The OpenAI organisation is out of credit or over its spending limit: add credit or raise "
    "the limit in OpenAI's billing settings, then upload the file again."
)
_BLOCKED_HINT = (
    "OpenAI no longer lets this organisation create fine-tuning jobs (new organisations since "
    "2026-05-07, everyone after 2027-01-06), so retrying will not help. Switch the stack's "
    "provider to Amazon Bedrock and upload the file again."
)
_PERMISSION_HINT = (
    "OpenAI refused the request (403). Check that the key in the OpenAI secret may use "
    "fine-tuning and files. If the organisation itself may no longer fine-tune (new "
    "organisations since 2026-05-07, everyone after 2027-01-06), switch the stack's provider "
    "to Amazon Bedrock."
)
_AUTHENTICATION_HINT = (
    "OpenAI rejected the API key (401): put a valid key in the stack's OpenAI secret in "
    "Secrets Manager, then upload the file again."
)
_SETTINGS_HINT = (
    "The upload's metadata holds a job setting the pipeline cannot use; the report ({report}) "
    "names it. Fix the metadata and upload the file again."
)
_COST_UNKNOWN_HINT = (
    "The base model's training price is unknown, so the cost cap cannot be checked. Set "
    f"'{COST_CAP_METADATA_KEY}' to 0 on the upload to launch anyway, or pick a base model "
    "with a known price."
)
_COST_CAP_HINT = (
    "The estimated cost ({estimate}) is over the cap. Raise it for this file with the "
    f"upload's '{COST_CAP_METADATA_KEY}' metadata, or for every file with the stack's "
    f"{COST_CAP_PARAMETER} parameter, then upload the file again."
)
_GENERIC_HINT = (
    "Read the error above (and the job's events in the provider's console, if a job was "
    "created). If the cause was temporary, upload the file again to retry; the dataset and its "
    "report are kept."
)

# The one place that says what to do after each way a run can end badly. Keys are
# error codes from the provider or the pipeline, and outcome values for outcomes that
# need no code.
_HINTS: dict[str, str] = {
    **dict.fromkeys(
        (
            "validation_failed",
            "invalid_training_file",
            "invalid_validation_file",
            "invalid_file_format",
            "invalid_n_examples",
            "file_too_large",
        ),
        _FILE_HINT,
    ),
    "rate_limit_exceeded": _RATE_LIMIT_HINT,
    "daily_rate_limit_exceeded": _DAILY_CAP_HINT,
    **dict.fromkeys(
        ("timeout", "connection_error", "http_500", "http_502", "http_503", "http_504"),
        _UNREACHABLE_HINT,
    ),
    **dict.fromkeys(("insufficient_quota", "billing_hard_limit_reached"), _QUOTA_HINT),
    **dict.fromkeys(("organization_blocked", "fine_tuning_unavailable"), _BLOCKED_HINT),
    "permission_denied": _PERMISSION_HINT,
    **dict.fromkeys(
        ("invalid_api_key", "authentication_failed", "authentication_error"), _AUTHENTICATION_HINT
    ),
    "invalid_job_setting": _SETTINGS_HINT,
    "cost_unknown": _COST_UNKNOWN_HINT,
    "cost_cap_exceeded": _COST_CAP_HINT,
    Outcome.TIMED_OUT.value: (
        "The job was cancelled after the stack's maximum duration. Raise the "
        f"{MAX_JOB_DURATION_PARAMETER} stack parameter (or train on a smaller file), "
        "then upload the file again."
    ),
    Outcome.CANCELLED.value: (
        "Someone cancelled the job in the provider's console or API. "
        "Upload the file again to start a new run."
    ),
    Outcome.PROVIDER_UNREACHABLE.value: (
        "Nothing to do: do not upload the file again. The workflow keeps checking the job "
        f"until it ends (or reaches the stack's {MAX_JOB_DURATION_PARAMETER}) and then "
        "sends the final notification."
    ),
}


def hint_for(n: Notification) -> str | None:
    """What to do next after a run that did not succeed; None after a success."""
    if n.outcome is Outcome.SUCCEEDED:
        return None
    # A timeout is always ours (the stack cancelled the job), whatever code came with it;
    # an outage notice is about a job still running, whatever error the provider sent.
    by_outcome = n.outcome in (Outcome.TIMED_OUT, Outcome.PROVIDER_UNREACHABLE)
    key = n.outcome.value if by_outcome else n.error_code or n.outcome.value
    return _HINTS.get(key, _GENERIC_HINT).format(
        report=n.report_uri or "written next to the file",
        retries=f"{n.retries} times" if n.retries else "several times",
        estimate=_usd(n.estimated_cost_usd) if n.estimated_cost_usd is not None else "unknown",
    )


class _Fact(NamedTuple):
    label: str
    value: str
    kind: Literal["text", "code", "link"] = "text"


def _summary_facts(n: Notification) -> list[_Fact]:
    """The facts people scan first (Slack shows them as section fields)."""
    dataset = n.dataset
    version = f" (version {dataset.version_id})" if dataset.version_id else ""
    facts = [
        _Fact("Status", n.outcome.value.replace("_", " ").capitalize()),
        _Fact("Dataset", dataset.s3_uri + version, "code"),
    ]
    if dataset.examples is not None:
        facts.append(_Fact("Examples", f"{dataset.examples:,}"))
    if n.base_model:
        facts.append(_Fact("Base model", f"{n.base_model} ({n.provider})"))
    if n.model_id:
        facts.append(_Fact("Model", n.model_id, "code"))
    if (seconds := n.duration_seconds) is not None:
        facts.append(_Fact("Duration", _duration(seconds)))
    if n.trained_tokens is not None:
        facts.append(_Fact("Trained tokens", f"{n.trained_tokens:,}"))
    costs = [
        f"{name} {_usd(value)}"
        for name, value in (("estimated", n.estimated_cost_usd), ("actual", n.actual_cost_usd))
        if value is not None
    ]
    if costs:
        facts.append(_Fact("Cost", ", ".join(costs)))
    losses = [
        f"{name} {value:.4g}"
        for name, value in (("train", n.train_loss), ("validation", n.valid_loss))
        if value is not None
    ]
    if losses:
        facts.append(_Fact("Loss", ", ".join(losses)))
    return facts


def _reference_facts(n: Notification) -> list[_Fact]:
    """Where to look further (Slack shows them as context)."""
    candidates = [
        _Fact("Job", n.job_id or "", "code"),
        _Fact("Dataset id", n.dataset.dataset_id, "code"),
        _Fact("Validation", n.validation_summary or ""),
        _Fact("Report", n.report_uri or "", "code"),
        _Fact("Started", _utc(n.started_at)),
        _Fact("Finished", _utc(n.finished_at)),
        _Fact("Console", n.console_url or "", "link"),
    ]
    return [fact for fact in candidates if fact.value]


def usage_example(n: Notification) -> list[str] | None:
    """Two shell lines that call the fine-tuned model, when there is one to call."""
    if n.outcome is not Outcome.SUCCEEDED or not n.model_id:
        return None
    body = json.dumps({"model": n.model_id, "messages": [{"role": "user", "content": "Hello!"}]})
    if n.api_base_url:
        return [
            f'curl {n.api_base_url}/chat/completions -H "Authorization: Bearer $SFT_API_KEY" \\',
            f"  -H 'Content-Type: application/json' -d '{body}'",
        ]
    if n.provider != "openai":
        return None
    return [
        'curl https://api.openai.com/v1/chat/completions -H "Authorization: Bearer $OPENAI_API_KEY" \\',
        f"  -H 'Content-Type: application/json' -d '{body}'",
    ]


def subject_for(n: Notification) -> str:
    """The SNS email subject: ASCII, one line, at most 100 characters."""
    head = f"{_STYLES[n.outcome].title}: "
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


def email_text(n: Notification) -> str:
    """The plain-text email body."""
    style = _STYLES[n.outcome]
    lines = [f"{style.title}: {n.dataset.file_name}", style.sentence, ""]
    lines += _aligned(_summary_facts(n))
    if n.error_code or n.error_message:
        code = f" ({n.error_code})" if n.error_code else ""
        lines += ["", f"Error{code}:", f"  {n.error_message or 'no message from the provider'}"]
    if hint := hint_for(n):
        lines += ["", "What to do:", f"  {hint}"]
    if n.serving_note:
        lines += ["", "Serving:", f"  {n.serving_note}"]
    if example := usage_example(n):
        lines += ["", "Call the model:", *(f"  {line}" for line in example)]
    if references := _reference_facts(n):
        lines += ["", *_aligned(references)]
    return "\n".join(lines) + "\n"


def slack_blocks(n: Notification) -> dict[str, Any]:
    """A Slack Block Kit message, within Slack's size limits whatever the input."""
    style = _STYLES[n.outcome]
    blocks: list[dict[str, Any]] = [
        {
            "type": "header",
            "text": {
                "type": "plain_text",
                "text": _clip(
                    f"{style.emoji} {style.title}: {n.dataset.file_name}", SLACK_HEADER_MAX_CHARS
                ),
                "emoji": True,
            },
        },
        {
            "type": "section",
            "fields": [
                _mrkdwn(f"*{fact.label}*\n{_slack_value(fact)}", SLACK_FIELD_MAX_CHARS)
                for fact in _summary_facts(n)[:SLACK_MAX_FIELDS]
            ],
        },
    ]
    if n.error_code or n.error_message:
        code = f" `{_escape(n.error_code)}`" if n.error_code else ""
        message = _escape(n.error_message or "no message from the provider")
        blocks.append(_section(f"*Error*{code}\n{message}"))
    if hint := hint_for(n):
        blocks.append(_section(f"*What to do*\n{_escape(hint)}"))
    if n.serving_note:
        blocks.append(_section(f"*Serving*\n{_escape(n.serving_note)}"))
    if example := usage_example(n):
        blocks.append(_section("*Call the model*\n```" + _escape("\n".join(example)) + "```"))
    if references := _reference_facts(n):
        elements = [
            _mrkdwn(f"{fact.label}: {_slack_value(fact)}", SLACK_TEXT_MAX_CHARS)
            for fact in references[:SLACK_MAX_CONTEXT_ELEMENTS]
        ]
        blocks.append({"type": "context", "elements": elements})
    return {"text": subject_for(n), "blocks": blocks}


class MessageAttribute(TypedDict):
    DataType: Literal["String"]
    StringValue: str


class SnsPublishArgs(TypedDict):
    Subject: str
    Message: str
    MessageStructure: Literal["json"]
    MessageAttributes: dict[str, MessageAttribute]


def sns_message(n: Notification) -> SnsPublishArgs:
    """Everything ``sns.publish`` needs except TopicArn.

    Email subscribers get the readable text; Lambda subscribers get the model as JSON.
    The ``status`` attribute lets subscriptions filter (e.g. email on failures only).
    """
    text = email_text(n)
    return {
        "Subject": subject_for(n),
        "Message": json.dumps({"default": text, "email": text, "lambda": n.model_dump_json()}),
        "MessageStructure": "json",
        "MessageAttributes": {"status": {"DataType": "String", "StringValue": n.outcome.value}},
    }


def notification_from_sns(message: str) -> Notification:
    """Parse the message a Lambda subscriber receives (the JSON variant); ValidationError if not one."""
    return Notification.model_validate_json(message)


def _aligned(facts: list[_Fact]) -> list[str]:
    return [f"{fact.label + ':':<16}{fact.value}" for fact in facts]


def _slack_value(fact: _Fact) -> str:
    if fact.kind == "link":
        return f"<{fact.value}|open>"
    value = _escape(fact.value)
    return f"`{value}`" if fact.kind == "code" else value


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": _mrkdwn(text, SLACK_TEXT_MAX_CHARS)}


def _mrkdwn(text: str, limit: int) -> dict[str, str]:
    return {"type": "mrkdwn", "text": _clip(text, limit)}


def _escape(text: str) -> str:
    """Slack mrkdwn treats &, < and > as control characters."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _clip(text: str, limit: int) -> str:
    """Cut to ``limit`` characters with an ellipsis, never through an ``&amp;``-style entity."""
    if len(text) <= limit:
        return text
    cut = text[: limit - 1]
    amp = cut.rfind("&")
    if amp != -1 and ";" not in cut[amp:]:
        cut = cut[:amp]
    return cut + "…"


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


def _duration(seconds: int) -> str:
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h {minutes:02d}m {secs:02d}s"
    if minutes:
        return f"{minutes}m {secs:02d}s"
    return f"{secs}s"


def _usd(value: float) -> str:
    # Small files cost fractions of a cent; two decimals would show them as $0.00.
    return f"${value:,.2f}" if value >= 0.01 or value == 0 else f"${value:.4f}"


def _utc(moment: datetime | None) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC") if moment else ""
