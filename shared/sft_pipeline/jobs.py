"""The fine-tuning job as the pipeline sees it: per-upload settings, the workflow's
input and state, the poll schedule. Pure models and functions, no AWS calls.
"""

from __future__ import annotations

import hashlib
import re
from enum import StrEnum
from typing import Annotated, Literal, TypeGuard, get_args

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from sft_pipeline.aliases import ALIAS_NAME
from sft_pipeline.evaluation.gate import GatePolicy, PromotePolicy
from sft_pipeline.evaluation.graders import GRADERS

# Who trains a job. Each name has its rules (validation.targets) and its adapter (providers),
# both registered under this name; tests/unit/test_architecture.py lists the places.
ProviderName = Literal["openai", "bedrock"]
PROVIDER_NAMES: tuple[ProviderName, ...] = get_args(ProviderName)


def is_provider_name(value: object) -> TypeGuard[ProviderName]:
    return value in PROVIDER_NAMES


Auto = Literal["auto"]
# S3 user metadata keys (x-amz-meta-<key>) a user may set on an upload.
METADATA_KEYS = {
    "provider": "provider",
    "base-model": "base_model",
    "suffix": "suffix",
    "n-epochs": "n_epochs",
    "batch-size": "batch_size",
    "learning-rate-multiplier": "learning_rate_multiplier",
    "seed": "seed",
    "validation-key": "validation_key",
    "holdout-percent": "holdout_percent",
    "cost-cap-usd": "cost_cap_usd",
    "eval-key": "eval_key",
    "alias": "alias",
    "promote": "promote",
    "min-improvement": "min_improvement",
    "judge-model": "judge_model",
    "few-shot-k": "few_shot_k",
    "graders": "graders",
}
SUFFIX_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
# Cost caps: 0 means no cap; a real one is at least a cent and at most a million dollars.
MIN_COST_CAP_USD = 0.01
MAX_COST_CAP_USD = 1_000_000
MIN_LEARNING_RATE_MULTIPLIER = 0.0001
# S3 refuses longer keys (UTF-8 bytes).
MAX_S3_KEY_BYTES = 1024
# Step Functions execution names: at most 80 characters of [A-Za-z0-9_-].
EXECUTION_NAME_PREFIX = "ft-"
# The shortest wait between polls (a task timeout is a whole number of seconds, at least 1).
MIN_WAIT_SECONDS = 1
# Consecutive polls that could not reach the provider before people hear of the outage.
OUTAGE_NOTICE_AFTER_POLLS = 5


class JobState(StrEnum):
    """Provider-neutral job states; the workflow's Choice state branches on these."""

    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


TERMINAL_STATES = frozenset({JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED})


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Hyperparameters(_Frozen):
    n_epochs: Annotated[int, Field(ge=1, le=50)] | Auto = "auto"
    batch_size: Annotated[int, Field(ge=1, le=256)] | Auto = "auto"
    # OpenAI takes any positive multiplier; far below 0.0001 a job learns nothing, and
    # DynamoDB cannot store numbers under 1e-130 at all.
    learning_rate_multiplier: (
        Annotated[float, Field(ge=MIN_LEARNING_RATE_MULTIPLIER, le=10, allow_inf_nan=False)] | Auto
    ) = "auto"


class JobSettings(_Frozen):
    """What to train: stack defaults overridden by the upload's own metadata."""

    provider: ProviderName = "openai"
    base_model: str = Field(min_length=1, max_length=200)
    suffix: str | None = None
    hyperparameters: Hyperparameters = Hyperparameters()
    seed: Annotated[int, Field(ge=0, le=2_147_483_647)] | None = None
    validation_key: str | None = None
    holdout_percent: Annotated[int, Field(ge=0, le=50)] = 0
    cost_cap_usd: Annotated[float, Field(ge=0, le=MAX_COST_CAP_USD, allow_inf_nan=False)] | None = (
        None
    )
    # The held-out set's own file; without it the validation file (named or split) is used.
    eval_key: str | None = None
    # The alias the model is for, and when the evaluation may make it the alias's next version.
    alias: str | None = None
    # None: if-better when an alias is named, else never (see gate_policy).
    promote: PromotePolicy | None = None
    min_improvement: Annotated[float, Field(ge=0, le=1, allow_inf_nan=False)] = 0.0
    judge_model: str | None = Field(default=None, min_length=1, max_length=200)
    few_shot_k: Annotated[int, Field(ge=0, le=20)] = 5
    # The graders to score answers with, the first being the gate's score; None: picked
    # from the references (tool calls, JSON, short answers or free text).
    graders: list[str] | None = Field(default=None, min_length=1, max_length=len(GRADERS))

    @field_validator("graders", mode="before")
    @classmethod
    def _known_graders(cls, value: object) -> object:
        names = value.split(",") if isinstance(value, str) else value
        if not isinstance(names, list):
            return value
        names = [str(name).strip() for name in names if str(name).strip()]
        if unknown := [name for name in names if name not in GRADERS]:
            raise ValueError(f"unknown grader(s) {', '.join(unknown)}; known: {', '.join(GRADERS)}")
        return names

    @field_validator("provider", mode="before")
    @classmethod
    def _known_provider(cls, value: object) -> object:
        if not is_provider_name(value):
            raise ValueError(f"unknown provider '{value}'; known: {', '.join(PROVIDER_NAMES)}")
        return value

    @field_validator("cost_cap_usd")
    @classmethod
    def _zero_means_no_cap(cls, value: float | None) -> float | None:
        # A cap of a fraction of a cent is a typo, not "no cap".
        if value and value < MIN_COST_CAP_USD:
            raise ValueError(
                f"must be 0 (no cap) or from {MIN_COST_CAP_USD} to {MAX_COST_CAP_USD:,.0f} USD"
            )
        return value or None

    @field_validator("alias")
    @classmethod
    def _alias_name(cls, value: str | None) -> str | None:
        if value is not None and not ALIAS_NAME.fullmatch(value):
            raise ValueError(
                "must be an alias name: 1-63 characters of lowercase letters, digits and '-', "
                "starting with a letter"
            )
        return value

    @field_validator("promote", mode="before")
    @classmethod
    def _known_policy(cls, value: object) -> object:
        if value is not None and value not in get_args(PromotePolicy):
            raise ValueError(f"must be one of {', '.join(get_args(PromotePolicy))}")
        return value

    @field_validator("validation_key", "eval_key")
    @classmethod
    def _plain_key(cls, value: str | None) -> str | None:
        """A key in the upload's own bucket, as S3 spells it: no path tricks, no empty key."""
        if value is None:
            return None
        if (
            not value
            or value.startswith("/")
            or any(part in (".", "..") for part in value.split("/"))
            or any(ord(character) < 0x20 or character == "\x7f" for character in value)
            or len(value.encode()) > MAX_S3_KEY_BYTES
        ):
            raise ValueError(
                "must be the key of an object in the upload's bucket, e.g. "
                "validation/valid.jsonl: not empty, no leading '/', no '.' or '..' parts, "
                f"no control characters, at most {MAX_S3_KEY_BYTES:,} bytes"
            )
        return value

    def gate_policy(self) -> GatePolicy:
        """The promotion gate's policy: an alias without a stated policy promotes if better."""
        default: PromotePolicy = "if-better" if self.alias else "never"
        return GatePolicy(
            alias=self.alias,
            promote=self.promote or default,
            min_improvement=self.min_improvement,
        )

    @field_validator("suffix")
    @classmethod
    def _safe_suffix(cls, value: str | None) -> str | None:
        if value is not None and not SUFFIX_PATTERN.match(value):
            raise ValueError(
                "suffix must be 1-64 characters of lowercase letters, digits, '-' and '_'"
            )
        return value


class JobSettingsError(ValueError):
    """The upload's metadata holds settings that cannot be used; ``problems`` says which."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


def settings_from_metadata(metadata: dict[str, str], defaults: JobSettings) -> JobSettings:
    """Apply S3 user metadata (immutable per object version, so no races) over the defaults."""
    overrides: dict[str, object] = {}
    hyper: dict[str, object] = {}
    unknown = []
    spelled: dict[str, list[str]] = {}
    for raw_key, raw_value in metadata.items():
        key = raw_key.lower().removeprefix("sft-")
        field = METADATA_KEYS.get(key)
        if field is None:
            unknown.append(raw_key)
            continue
        value = raw_value.strip()
        spelled.setdefault(field, []).append(raw_key)
        target = hyper if field in Hyperparameters.model_fields else overrides
        if target.setdefault(field, value) != value:
            spellings = " and ".join(sorted(spelled[field]))
            raise JobSettingsError(
                [f"{spellings} disagree ({', '.join(_shown(metadata, spelled[field]))}); set one"]
            )
    if unknown:
        known = ", ".join(METADATA_KEYS)
        raise JobSettingsError(
            [f"unknown metadata key(s) {', '.join(sorted(unknown))}; known keys: {known}"]
        )
    merged = defaults.model_dump()
    merged.update(overrides)
    merged["hyperparameters"] = {**merged["hyperparameters"], **hyper}
    try:
        return JobSettings.model_validate(merged)
    except ValidationError as exc:
        problems: dict[str, str] = {}
        for error in exc.errors(include_url=False):
            # Union members ("int", "literal['auto']") add path segments a person does not need.
            field = next(p for p in reversed(error["loc"][:2]) if isinstance(p, str))
            message = error["msg"].removeprefix("Value error, ")
            problems.setdefault(field, f"{field.replace('_', '-')}: {message}")
        raise JobSettingsError(list(problems.values())) from None


def _shown(metadata: dict[str, str], keys: list[str]) -> list[str]:
    """Each key's value as a person can read it in a report, however long or odd."""
    return [f"{key}={metadata[key].strip()[:80]!r}" for key in sorted(keys)]


class UploadRef(_Frozen):
    """One exact object version: the unit the pipeline trains exactly once."""

    bucket: str
    key: str
    version_id: str | None = None

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.key}"

    @property
    def dataset_id(self) -> str:
        """Stable id of this object version; repeated S3 events give the same id."""
        identity = f"{self.bucket}/{self.key}#{self.version_id or 'null'}"
        return hashlib.sha256(identity.encode()).hexdigest()[:32]

    @property
    def execution_name(self) -> str:
        return EXECUTION_NAME_PREFIX + self.dataset_id


class PollPolicy(_Frozen):
    interval_seconds: int = Field(default=60, ge=0)
    max_interval_seconds: int = Field(default=600, ge=0)
    backoff_rate: float = Field(default=1.5, ge=1.0)
    max_duration_seconds: int = Field(default=86_400, ge=1)

    def next_wait(self, previous: int | None) -> int:
        """The first wait is the interval; each later one grows by the backoff rate, to the cap.
        A wait is at least a second: it is also the timeout of the workflow's wait for the
        job's end event, and Step Functions takes no shorter one."""
        if previous is None:
            wait = min(self.interval_seconds, self.max_interval_seconds)
        else:
            wait = min(int(max(previous, 1) * self.backoff_rate), self.max_interval_seconds)
        return max(wait, MIN_WAIT_SECONDS)


class Estimate(_Frozen):
    billed_tokens: int
    cost_usd: float | None


class WorkflowRequest(_Frozen):
    """The execution input the validation step hands to the workflow."""

    dataset_id: str
    upload: UploadRef
    training_key: str
    validation_key: str | None = None
    # The held-out set the evaluation answers: eval-key, else the validation file, else none.
    eval_key: str | None = None
    # The versions of the files the upload names (validation-key, eval-key) that were
    # validated: the run reads those, whatever is written to the keys meanwhile.
    validation_version_id: str | None = None
    eval_version_id: str | None = None
    examples: int
    settings: JobSettings
    poll: PollPolicy
    estimate: Estimate
    report_uri: str | None = None
    submitted_at: int

    def version_of(self, key: str) -> str | None:
        """The version of ``key`` the run validated and reads: the upload's, or a named
        validation or eval file's; None for the files the run wrote itself (a split)."""
        if key == self.upload.key:
            return self.upload.version_id
        if key == self.eval_key and self.eval_version_id:
            return self.eval_version_id
        if key == self.validation_key:
            return self.validation_version_id
        return None


class JobProgress(BaseModel):
    """The job between polls: small, so the workflow's state stays far below 256 KiB."""

    model_config = ConfigDict(extra="forbid")

    provider: str
    job_id: str
    status: str
    state: JobState
    started_at: int
    polls: int = 0
    next_wait_seconds: int
    timed_out: bool = False
    trained_tokens: int | None = None
    estimated_finish: int | None = None
    fine_tuned_model: str | None = None
    latest_events: list[str] = Field(default_factory=list, max_length=5)
    error_code: str | None = None
    error_message: str | None = Field(default=None, max_length=2000)
    # A provider outage while polling: the consecutive polls that could not reach it, since
    # when, the last error, and whether people were told (once per run).
    failed_polls: int = 0
    unreachable_since: int | None = None
    poll_error: str | None = Field(default=None, max_length=500)
    outage_notified: bool = False

    @property
    def outage_notice_due(self) -> bool:
        return self.failed_polls >= OUTAGE_NOTICE_AFTER_POLLS and not self.outage_notified


class ModelRegistration(BaseModel):
    """What registering a succeeded job's model recorded, for the steps after it."""

    model_id: str
    # What inference calls name (a Bedrock deployment), and whether it answers yet.
    serving_model: str
    serving_status: str
    serving_note: str | None = None
    actual_cost_usd: float | None = None
    train_loss: float | None = None
    valid_loss: float | None = None
    newly_registered: bool


class EvaluationOutcome(BaseModel):
    """The held-out evaluation as the finish step reports it: where its summary and answers
    are, the gate's decision in one sentence, or why nothing was evaluated."""

    summary_key: str | None = None
    results_prefix: str | None = None
    examples: int = 0
    promoted: bool = False
    alias_version: int | None = None
    decision: str | None = None
    skipped: str | None = None


class WorkflowState(BaseModel):
    """What a task receives: the request, the job once it exists, then the model and its
    evaluation once the job has succeeded."""

    model_config = ConfigDict(extra="ignore")

    request: WorkflowRequest
    job: JobProgress | None = None
    outcome: str | None = None
    failure: dict[str, str] | None = None
    registered: ModelRegistration | None = None
    evaluation: EvaluationOutcome | None = None
    # A caught evaluation error (Error, Cause): the model stays registered, the run says why.
    evaluation_error: dict[str, str] | None = None
