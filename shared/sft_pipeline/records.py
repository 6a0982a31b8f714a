"""The pipeline's records: a job as its provider reports it, and what the registry keeps of
each dataset, job and model. Pure models, no AWS calls: adapters store them, steps build them.

A job's shapes are built from one another here and nowhere else: the record from the
provider's report (``JobRecord.from_provider``) or from the workflow's last view of it
(``JobRecord.last_seen``); the API's view extends :class:`JobSummary` and is built from the
record (``sft_pipeline.api.models.JobView.from_record``).
"""

from __future__ import annotations

from datetime import UTC, date, datetime

from pydantic import BaseModel, ConfigDict, Field

from sft_pipeline.evaluation.summary import EvaluationSummary
from sft_pipeline.jobs import JobProgress, JobSettings, JobState, UploadRef

# The status of a run that failed before the provider created a job.
NO_JOB_STATUS = "not_created"


def moment(timestamp: int | None) -> datetime | None:
    """A provider's or the workflow's epoch seconds as a UTC datetime."""
    return datetime.fromtimestamp(timestamp, UTC) if timestamp is not None else None


class ProviderJob(BaseModel):
    """A fine-tuning job as the provider reports it: what the training port returns."""

    model_config = ConfigDict(frozen=True)

    job_id: str
    status: str
    state: JobState
    base_model: str
    fine_tuned_model: str | None = None
    trained_tokens: int | None = None
    created_at: int
    finished_at: int | None = None
    estimated_finish: int | None = None
    hyperparameters: dict[str, int | float | str] = Field(default_factory=dict)
    result_files: list[str] = Field(default_factory=list)
    error_code: str | None = None
    error_message: str | None = None


class DatasetRecord(BaseModel):
    model_config = ConfigDict(frozen=True)

    dataset_id: str
    upload: UploadRef
    sha256: str | None = None
    bytes: int | None = None
    examples: int
    valid: bool
    status: str  # validated | rejected | launched | failed (before any job existed)
    summary: str
    report_uri: str | None = None
    billed_tokens: int | None = None
    estimated_cost_usd: float | None = None
    settings: JobSettings | None = None
    rejection_code: str | None = None
    created_at: datetime
    # A retrain: the model whose lineage (this very upload version) it trains again.
    retrained_from: str | None = None
    # The exact versions of the files the settings name (validation-key, eval-key) that
    # were validated and that the run reads; a retrain reads them again.
    validation_file: UploadRef | None = None
    eval_file: UploadRef | None = None


class JobSummary(BaseModel):
    """One fine-tuning run, as the registry records it and the API shows it."""

    # None for a run that failed before the provider created a job.
    job_id: str | None = None
    dataset_id: str
    provider: str
    status: str
    outcome: str | None = None
    base_model: str | None = None
    model_id: str | None = None
    trained_tokens: int | None = None
    error_code: str | None = None
    error_message: str | None = None


class JobRecord(JobSummary):
    model_config = ConfigDict(frozen=True)

    started_at: datetime | None = None
    finished_at: datetime | None = None

    @classmethod
    def from_provider(
        cls,
        dataset_id: str,
        provider: str,
        job: ProviderJob,
        started_at: int,
        outcome: str | None = None,
    ) -> JobRecord:
        """The run as the provider reports its job; ``started_at`` is when the run launched it."""
        return cls(
            dataset_id=dataset_id,
            provider=provider,
            job_id=job.job_id,
            status=job.status,
            outcome=outcome,
            base_model=job.base_model,
            model_id=job.fine_tuned_model,
            trained_tokens=job.trained_tokens,
            error_code=job.error_code,
            error_message=job.error_message,
            started_at=moment(started_at),
            finished_at=moment(job.finished_at),
        )

    @classmethod
    def last_seen(
        cls,
        dataset_id: str,
        provider: str,
        progress: JobProgress | None,
        *,
        outcome: str,
        base_model: str | None,
        error_code: str | None,
        error_message: str | None,
        finished_at: datetime,
    ) -> JobRecord:
        """How the run ended when the provider cannot say: the last poll's view of the job,
        or, when no job was ever created, the run alone with why it failed."""
        return cls(
            dataset_id=dataset_id,
            provider=provider,
            job_id=progress.job_id if progress else None,
            status=progress.status if progress else NO_JOB_STATUS,
            outcome=outcome,
            base_model=base_model,
            model_id=progress.fine_tuned_model if progress else None,
            trained_tokens=progress.trained_tokens if progress else None,
            error_code=error_code,
            error_message=error_message,
            started_at=moment(progress.started_at) if progress else None,
            finished_at=finished_at,
        )


class ModelRecord(BaseModel):
    """A fine-tuned model with its lineage back to the exact S3 object version."""

    model_config = ConfigDict(frozen=True)

    model_id: str
    provider: str
    job_id: str
    base_model: str
    dataset_id: str
    upload: UploadRef
    dataset_sha256: str | None = None
    hyperparameters: dict[str, int | float | str]
    trained_tokens: int | None = None
    estimated_cost_usd: float | None = None
    actual_cost_usd: float | None = None
    train_loss: float | None = None
    valid_loss: float | None = None
    started_at: datetime
    finished_at: datetime
    created_at: datetime
    # What inference calls use (a Bedrock on-demand deployment), whether it can answer
    # yet (ready / deploying / needs_provisioned_throughput / disabled), and what to do.
    serving_model: str | None = None
    serving_status: str | None = None
    serving_note: str | None = None
    # Set after registration, once the held-out evaluation has run (never, without one).
    evaluation: EvaluationSummary | None = None
    # A retrain: the model it was retrained from, on the same dataset version.
    retrained_from: str | None = None
    # The last day (UTC) the API answered with it; recorded at most once a day.
    last_used_on: date | None = None
