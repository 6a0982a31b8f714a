"""The workflow's task steps: launch, poll, cancel and finish a fine-tuning job.

Each takes the workflow state and the ports it needs, and returns a small,
JSON-ready result. Provider errors propagate with their class names, which the
state machine's Retry and Catch rules match on.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from sft_pipeline.adapters.registry import JobRecord, ModelRecord, Registry
from sft_pipeline.jobs import JobProgress, JobState, WorkflowRequest, WorkflowState
from sft_pipeline.notifications import DatasetRef, Notification, Outcome
from sft_pipeline.providers.base import (
    FineTuningProvider,
    JobRequest,
    ProviderError,
    ProviderJob,
)
from sft_pipeline.validation import DataSource
from sft_pipeline.validation.estimate import training_cost

EVENTS_KEPT = 3
EVENT_CHARS = 200


class FileSource(Protocol):
    def source(self, bucket: str, key: str, version_id: str | None = None) -> DataSource: ...


class NotificationSender(Protocol):
    def publish(self, notification: Notification) -> str: ...


def _timestamp(now: datetime) -> int:
    return int(now.timestamp())


def _progress(
    job: ProviderJob,
    provider: str,
    *,
    started_at: int,
    next_wait: int,
    polls: int = 0,
    events: list[str] | None = None,
    timed_out: bool = False,
) -> JobProgress:
    return JobProgress(
        provider=provider,
        job_id=job.job_id,
        status=job.status,
        state=job.state,
        started_at=started_at,
        polls=polls,
        next_wait_seconds=next_wait,
        timed_out=timed_out,
        trained_tokens=job.trained_tokens,
        estimated_finish=job.estimated_finish,
        fine_tuned_model=job.fine_tuned_model,
        latest_events=[e[:EVENT_CHARS] for e in (events or [])[:EVENTS_KEPT]],
        error_code=job.error_code,
        error_message=job.error_message[:2000] if job.error_message else None,
    )


def _job_record(
    request: WorkflowRequest,
    job: ProviderJob,
    provider: str,
    started_at: int,
    outcome: str | None = None,
) -> JobRecord:
    return JobRecord(
        dataset_id=request.dataset_id,
        provider=provider,
        job_id=job.job_id,
        status=job.status,
        outcome=outcome,
        base_model=job.base_model,
        model_id=job.fine_tuned_model,
        trained_tokens=job.trained_tokens,
        error_code=job.error_code,
        error_message=job.error_message,
        started_at=datetime.fromtimestamp(started_at, UTC),
        finished_at=datetime.fromtimestamp(job.finished_at, UTC) if job.finished_at else None,
    )


def launch(
    state: WorkflowState,
    provider: FineTuningProvider,
    files: FileSource,
    registry: Registry,
    now: datetime,
) -> JobProgress:
    """Upload the files and create the job, or find the job a previous attempt created."""
    request = state.request
    job = provider.find_job(request.dataset_id)
    if job is None:
        training_file = _upload(provider, files, request, request.training_key)
        validation_file = (
            _upload(provider, files, request, request.validation_key)
            if request.validation_key
            else None
        )
        job = provider.create_job(
            JobRequest(
                base_model=request.settings.base_model,
                training_file=training_file,
                validation_file=validation_file,
                suffix=request.settings.suffix,
                seed=request.settings.seed,
                hyperparameters=request.settings.hyperparameters,
                upload_tag=request.dataset_id,
            )
        )
    started_at = _timestamp(now)
    registry.put_job(_job_record(request, job, provider.name, started_at))
    return _progress(
        job, provider.name, started_at=started_at, next_wait=request.poll.next_wait(None)
    )


def _upload(
    provider: FineTuningProvider,
    files: FileSource,
    request: WorkflowRequest,
    key: str,
) -> str:
    # The upload itself is read at its exact version; splits and validation files are ours.
    version = request.upload.version_id if key == request.upload.key else None
    source = files.source(request.upload.bucket, key, version)
    filename = key.rsplit("/", 1)[-1]
    with source.open() as stream:
        return provider.upload_file(
            filename,
            stream,  # type: ignore[arg-type]
            source.size or 0,
            base_model=request.settings.base_model,
            upload_tag=request.dataset_id,
        )


def poll(
    state: WorkflowState, provider: FineTuningProvider, registry: Registry, now: datetime
) -> JobProgress:
    """One look at the job: status, tokens, latest events, and when to look again."""
    request, previous = state.request, _require_job(state)
    job = provider.get_job(previous.job_id)
    events = provider.recent_events(job.job_id, EVENTS_KEPT)
    elapsed = _timestamp(now) - previous.started_at
    timed_out = job.state is JobState.RUNNING and elapsed >= request.poll.max_duration_seconds
    if job.status != previous.status:
        registry.put_job(_job_record(request, job, provider.name, previous.started_at))
    return _progress(
        job,
        provider.name,
        started_at=previous.started_at,
        next_wait=request.poll.next_wait(previous.next_wait_seconds),
        polls=previous.polls + 1,
        events=events,
        timed_out=timed_out,
    )


def cancel(state: WorkflowState, provider: FineTuningProvider) -> JobProgress:
    """Stop a job that ran past the maximum duration (safe to repeat)."""
    previous = _require_job(state)
    job = provider.cancel_job(previous.job_id)
    return _progress(
        job,
        provider.name,
        started_at=previous.started_at,
        next_wait=0,
        polls=previous.polls,
        events=previous.latest_events,
        timed_out=True,
    )


def _require_job(state: WorkflowState) -> JobProgress:
    if state.job is None:
        raise ValueError("the workflow state has no job yet")
    return state.job


@dataclass(frozen=True)
class FinishResult:
    outcome: str
    model_id: str | None
    message_id: str
    newly_registered: bool

    def as_payload(self) -> dict[str, str | bool | None]:
        return {
            "outcome": self.outcome,
            "model_id": self.model_id,
            "message_id": self.message_id,
            "newly_registered": self.newly_registered,
        }


def finish(
    state: WorkflowState,
    provider: FineTuningProvider,
    registry: Registry,
    notifier: NotificationSender,
    now: datetime,
    *,
    api_base_url: str | None = None,
) -> FinishResult:
    """Record the outcome (the model with its lineage on success) and tell the user."""
    request = state.request
    outcome = Outcome(state.outcome or "failed")
    progress = state.job
    job = _latest_job(provider, progress, outcome)
    error_code, error_message = _failure(state, job)
    notification = Notification(
        outcome=outcome,
        dataset=DatasetRef.of(request.upload, request.examples),
        provider=provider.name,
        base_model=job.base_model if job else request.settings.base_model,
        job_id=progress.job_id if progress else None,
        started_at=datetime.fromtimestamp(progress.started_at, UTC) if progress else None,
        finished_at=datetime.fromtimestamp(job.finished_at, UTC)
        if job and job.finished_at
        else now,
        trained_tokens=job.trained_tokens
        if job
        else (progress.trained_tokens if progress else None),
        estimated_cost_usd=request.estimate.cost_usd,
        error_code=error_code if outcome is not Outcome.SUCCEEDED else None,
        error_message=error_message if outcome is not Outcome.SUCCEEDED else None,
        report_uri=request.report_uri,
        api_base_url=api_base_url or None,
    )
    newly_registered = False
    if job is not None and progress is not None:
        registry.put_job(
            _job_record(request, job, provider.name, progress.started_at, outcome.value)
        )
    if outcome is Outcome.SUCCEEDED and job is not None and job.fine_tuned_model and progress:
        metrics = provider.final_metrics(job)
        serving = provider.serve(job)
        actual = training_cost(job.base_model, job.trained_tokens) if job.trained_tokens else None
        dataset = registry.get_dataset(request.dataset_id)
        notification = notification.model_copy(
            update={
                "model_id": job.fine_tuned_model,
                "actual_cost_usd": actual,
                "train_loss": metrics.train_loss if metrics else None,
                "valid_loss": metrics.valid_loss if metrics else None,
                "serving_note": serving.note,
            }
        )
        newly_registered = registry.register_model(
            ModelRecord(
                model_id=job.fine_tuned_model,
                provider=provider.name,
                job_id=job.job_id,
                base_model=job.base_model,
                dataset_id=request.dataset_id,
                upload=request.upload,
                dataset_sha256=dataset.sha256 if dataset else None,
                hyperparameters=job.hyperparameters,
                trained_tokens=job.trained_tokens,
                estimated_cost_usd=request.estimate.cost_usd,
                actual_cost_usd=actual,
                train_loss=notification.train_loss,
                valid_loss=notification.valid_loss,
                started_at=datetime.fromtimestamp(progress.started_at, UTC),
                finished_at=notification.finished_at or now,
                created_at=now,
                serving_model=serving.model,
                serving_status=serving.status,
                serving_note=serving.note,
            )
        )
    message_id = notifier.publish(notification)
    return FinishResult(outcome.value, notification.model_id, message_id, newly_registered)


def _latest_job(
    provider: FineTuningProvider, progress: JobProgress | None, outcome: Outcome
) -> ProviderJob | None:
    """The job as the provider sees it now. After a failure that may be exactly what is
    unreachable, so the last poll's view has to do; a success needs the real thing."""
    if progress is None:
        return None
    try:
        return provider.get_job(progress.job_id)
    except ProviderError:
        if outcome is Outcome.SUCCEEDED:
            raise
        return None


def _failure(state: WorkflowState, job: ProviderJob | None) -> tuple[str | None, str | None]:
    """Why it did not succeed: the provider's job error, or the step error the workflow caught."""
    if job is not None and job.error_code:
        return job.error_code, job.error_message
    if job is None and state.job is not None and state.job.error_code:
        return state.job.error_code, state.job.error_message
    if state.failure:
        error_type = state.failure.get("Error", "Error")
        try:
            cause = json.loads(state.failure.get("Cause", "{}"))
            text = str(cause.get("errorMessage", "")) if isinstance(cause, dict) else str(cause)
        except json.JSONDecodeError:
            text = state.failure.get("Cause", "")
        code, sep, message = text.partition(": ")
        if sep and code.replace("_", "").isalnum():
            return code, message
        return error_type, text or error_type
    if state.outcome == Outcome.TIMED_OUT.value:
        return "timed_out", "The job ran past the maximum duration and was cancelled."
    if state.outcome == Outcome.CANCELLED.value:
        return "cancelled", "The job was cancelled at the provider."
    return None, None
