"""What a finished (or refused) run tells people: the message model and what to do next.

The workflow publishes one ``Notification`` per run. The hints (what to do after each way
a run can end badly) and the usage example are provider knowledge, kept here and pure;
how a notification reads in an email or in Slack is decided beside the adapter that
sends it (adapters/notifier.py, adapters/slack.py, adapters/notification_text.py).
"""

from __future__ import annotations

import json
from datetime import date
from enum import StrEnum
from typing import Annotated

from pydantic import (
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    NonNegativeInt,
    PositiveInt,
)

from sft_pipeline.evaluation.summary import EvaluationSummary
from sft_pipeline.jobs import UploadRef
from sft_pipeline.redaction import redact_secrets

# Stack parameters and upload metadata that the hints tell people to change.
MAX_JOB_DURATION_PARAMETER = "MaxJobDurationHours"
COST_CAP_PARAMETER = "CostCapUsd"
COST_CAP_METADATA_KEY = "cost-cap-usd"

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
    # Not a run at all: a model in use stops serving soon (the retirement watcher).
    RETIREMENT_WARNING = "retirement_warning"
    # A generation spec's run: its data was written (under training/, which starts a
    # fine-tuning run, or generated/), or none was.
    GENERATED = "generated"
    GENERATION_FAILED = "generation_failed"


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


class RetirementWarning(BaseModel):
    """A model in use stops serving soon: when, who depends on it, and the one command that
    retrains it elsewhere. One per model, shutdown date and threshold is ever sent."""

    model_config = ConfigDict(frozen=True)

    model_id: str
    shutdown_date: date
    # The warning this is: 30, 7 or 1 days before (the most urgent one due when sent).
    threshold_days: PositiveInt
    days_left: NonNegativeInt
    # The aliases whose current version serves the model.
    aliases: list[str] = Field(default_factory=list)
    last_used_on: date | None = None
    retrain_command: str
    retrain_api: str


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
    # The held-out evaluation of a new model: its summary and the gate's decision as one
    # sentence ("promoted support-bot to v3: ..."); or why none ran; or why it failed
    # (the model stays registered either way, and is not promoted).
    evaluation: EvaluationSummary | None = None
    evaluation_decision: Annotated[str | None, _shown(MAX_ERROR_CHARS)] = None
    evaluation_skipped: Annotated[str | None, _shown(MAX_ERROR_CHARS)] = None
    evaluation_error: Annotated[str | None, _shown(MAX_ERROR_CHARS)] = None
    # The model card (Markdown and HTML) in the bucket.
    model_card_uri: str | None = None
    # A retirement warning's facts (outcome RETIREMENT_WARNING only).
    retirement: RetirementWarning | None = None
    # A generation run's teacher model, and where its training file was written.
    teacher: str | None = None
    output_uri: str | None = None

    @property
    def duration_seconds(self) -> int | None:
        if self.started_at is None or self.finished_at is None:
            return None
        # Clocks of different services can disagree by a little; never report a negative time.
        return max(0, int((self.finished_at - self.started_at).total_seconds()))


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
    "lineage_changed": (
        "The training file's version no longer holds the data the model was trained on (its "
        "sha256 differs from the lineage's), so nothing was retrained. Upload the data you "
        "trust as a new file to train a new model."
    ),
    "lineage_version_gone": (
        "The exact training file version the model was trained on is gone from the bucket, "
        "so nothing was retrained. Upload the data again as a new file to train a new model."
    ),
    "cost_unknown": _COST_UNKNOWN_HINT,
    "cost_cap_exceeded": _COST_CAP_HINT,
    "invalid_generation_spec": (
        "Fix the fields named in the error (sft generate SPEC checks a spec the same way on "
        "a laptop), then upload the spec again; the new version starts a new run."
    ),
    "generation_cost_cap": (
        "The teacher's estimated cost is over the cap. Raise cost-cap-usd in the spec (or the "
        f"stack's {COST_CAP_PARAMETER}), or ask for fewer examples, then upload the spec again."
    ),
    "generation_cost_unknown": (
        "The teacher model's price is unknown, so the cost cap cannot be checked. Set "
        "cost-cap-usd: 0 in the spec to go ahead anyway, or pick a teacher with a known price."
    ),
    "generation_incomplete": (
        "The teacher's answers kept being refused (the error says why: duplicates, malformed "
        "answers, examples the validator refuses). Vary the topics or their descriptions, or "
        "try another teacher, then upload the spec again; nothing was written."
    ),
    "generation_invalid": (
        "The generated examples did not pass the validator as a whole, so nothing was "
        "written. Run sft generate on the spec to see the report, then upload the spec again."
    ),
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
    """What to do next after a run that did not succeed, or about a retiring model; None
    after a success."""
    if n.retirement is not None:
        warning = n.retirement
        aliases = ", ".join(warning.aliases)
        moved = (
            f" The evaluation gate moves {warning.aliases[0]} to the new model when it is at "
            "least as good."
            if warning.aliases
            else ""
        )
        others = (
            f" Point the other aliases ({aliases}) at it with PUT /aliases/{{name}}."
            if len(warning.aliases) > 1
            else ""
        )
        return (
            f"Retrain it on another provider before {warning.shutdown_date.isoformat()}, on "
            f"the same dataset version: {warning.retrain_command} (or {warning.retrain_api})."
            f"{moved}{others}"
        )
    if n.outcome in (Outcome.SUCCEEDED, Outcome.GENERATED):
        return None
    # A timeout is always ours (the stack cancelled the job), whatever code came with it;
    # an outage notice is about a job still running, whatever error the provider sent.
    by_outcome = n.outcome in (Outcome.TIMED_OUT, Outcome.PROVIDER_UNREACHABLE)
    key = n.outcome.value if by_outcome else n.error_code or n.outcome.value
    return _HINTS.get(key, _GENERIC_HINT).format(
        report=n.report_uri or "written next to the file",
        retries=f"{n.retries} times" if n.retries else "several times",
        estimate=usd(n.estimated_cost_usd) if n.estimated_cost_usd is not None else "unknown",
    )


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


def usd(value: float) -> str:
    """Money as people read it."""
    # Small files cost fractions of a cent; two decimals would show them as $0.00.
    return f"${value:,.2f}" if value >= 0.01 or value == 0 else f"${value:.4f}"
