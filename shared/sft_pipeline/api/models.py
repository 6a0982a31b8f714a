"""Request and response models of the API: OpenAI-compatible where OpenAI clients talk to it."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from sft_pipeline.aliases import AliasName, Variant
from sft_pipeline.evaluation.summary import EvaluationSummary
from sft_pipeline.jobs import ProviderName
from sft_pipeline.records import DatasetRecord, JobRecord, JobSummary, ModelRecord

MAX_MESSAGES = 256
MAX_STOP_SEQUENCES = 4


class ChatMessage(BaseModel):
    """Kept open: the provider checks the finer shape; we check what bounds the request."""

    model_config = ConfigDict(extra="allow")

    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: str | list[dict[str, Any]] | None = None


class ChatCompletionRequest(BaseModel):
    """The OpenAI chat-completions request; fields we do not list pass through to the provider."""

    model_config = ConfigDict(extra="allow")

    model: str = Field(min_length=1, max_length=256)
    messages: list[ChatMessage] = Field(min_length=1, max_length=MAX_MESSAGES)
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    n: int | None = Field(default=None, ge=1, le=1)
    stream: bool | None = None
    stop: str | list[str] | None = None
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, ge=0, le=1)

    @field_validator("stop")
    @classmethod
    def _few_stop_sequences(cls, value: str | list[str] | None) -> str | list[str] | None:
        if isinstance(value, list) and len(value) > MAX_STOP_SEQUENCES:
            raise ValueError(f"at most {MAX_STOP_SEQUENCES} stop sequences")
        return value


class ErrorDetail(BaseModel):
    message: str
    type: str
    param: str | None = None
    code: str | None = None


class ErrorBody(BaseModel):
    """OpenAI's error shape, so OpenAI SDKs raise their usual exceptions."""

    error: ErrorDetail


class ModelCard(BaseModel):
    """One entry of GET /v1/models: OpenAI's model object plus what the registry knows."""

    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str
    kind: Literal["fine-tuned", "alias"]
    base_model: str | None = None
    shutdown_date: str | None = None
    days_until_shutdown: int | None = None
    alias_version: int | None = None
    variants: list[Variant] | None = None
    dataset_id: str | None = None
    # The fine-tune's held-out evaluation, once it has run.
    evaluation: EvaluationSummary | None = None


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]


class AliasUpdate(BaseModel):
    """PUT /aliases/{name}: promote new variants, or roll back (or forward) to a version."""

    model_config = ConfigDict(extra="forbid")

    model: str | None = None
    variants: list[Variant] | None = None
    version: int | None = Field(default=None, ge=1)
    note: str | None = Field(default=None, max_length=500)


class AliasView(BaseModel):
    alias: str
    current_version: int
    variants: list[Variant]
    note: str | None = None


class RetrainBody(BaseModel):
    """POST /models/{id}/retrain: the provider to retrain on, and what to change."""

    model_config = ConfigDict(extra="forbid")

    provider: ProviderName
    # Default: the provider's counterpart of the original base model (see the README).
    base_model: str | None = Field(default=None, min_length=1, max_length=200)
    # Default: the alias named in the path, else the one the original run was for.
    alias: AliasName | None = None
    # Replace the original run's n_epochs, batch_size or learning_rate_multiplier.
    hyperparameters: dict[str, int | float | str] = Field(default_factory=dict, max_length=3)


class RetrainView(BaseModel):
    """The retrain as ordered: the new run's dataset id, what it retrains and on what."""

    object: Literal["retrain"] = "retrain"
    # Follow it with GET /jobs/{dataset_id} once the run has a job.
    dataset_id: str
    status: Literal["submitted"] = "submitted"
    retrained_from: str
    provider: str
    base_model: str
    alias: str | None
    promote: str | None
    hyperparameters: dict[str, Any]
    # The lineage the new run trains on: the same object version and sha256.
    upload: dict[str, Any]
    dataset_sha256: str


class JobView(JobSummary):
    """GET /jobs/{id}: the run from upload to model, in one place."""

    # Always in the answer: null when the run failed before the provider created a job
    # (error_code says why).
    job_id: str | None
    started_at: str | None = None
    finished_at: str | None = None
    upload: dict[str, Any] | None = None
    report_uri: str | None = None
    estimated_cost_usd: float | None = None
    actual_cost_usd: float | None = None
    train_loss: float | None = None
    valid_loss: float | None = None
    hyperparameters: dict[str, Any] | None = None
    evaluation: EvaluationSummary | None = None
    events: list[str] = Field(default_factory=list)

    @classmethod
    def from_record(
        cls,
        job: JobRecord,
        dataset: DatasetRecord | None = None,
        model: ModelRecord | None = None,
        events: list[str] | None = None,
    ) -> JobView:
        """The job's record, with what its dataset and model add when they are known."""
        return cls(
            **job.model_dump(include=set(JobSummary.model_fields)),
            started_at=job.started_at.isoformat() if job.started_at else None,
            finished_at=job.finished_at.isoformat() if job.finished_at else None,
            upload=dataset.upload.model_dump() if dataset else None,
            report_uri=dataset.report_uri if dataset else None,
            estimated_cost_usd=dataset.estimated_cost_usd if dataset else None,
            actual_cost_usd=model.actual_cost_usd if model else None,
            train_loss=model.train_loss if model else None,
            valid_loss=model.valid_loss if model else None,
            hyperparameters=model.hyperparameters if model else None,
            evaluation=model.evaluation if model else None,
            events=events or [],
        )


class JobList(BaseModel):
    object: Literal["list"] = "list"
    data: list[JobView]
