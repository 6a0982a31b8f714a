"""The workflow's task steps: launch, poll, cancel and finish a fine-tuning job.

Each takes the workflow state and the ports it needs, and returns a small,
JSON-ready result. Provider errors propagate with their class names, which the
state machine's Retry and Catch rules match on, except while polling: a provider
that cannot be reached then never ends the run (the job trains on regardless).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from sft_pipeline.evaluation.summary import EvaluationSummary
from sft_pipeline.jobs import (
    JobProgress,
    JobState,
    ModelRegistration,
    UploadRef,
    WorkflowRequest,
    WorkflowState,
)
from sft_pipeline.notifications import DatasetRef, Notification, Outcome
from sft_pipeline.pipeline.evaluation_steps import (
    EvaluationBucket,
    ModelLookup,
    evaluation_report,
)
from sft_pipeline.pipeline.failures import caught_error
from sft_pipeline.providers.base import (
    JobRequest,
    ProviderError,
    ProviderRateLimitError,
    ProviderTransientError,
    TrainingPort,
)
from sft_pipeline.records import DatasetRecord, JobRecord, ModelRecord, ProviderJob
from sft_pipeline.validation import DataSource
from sft_pipeline.validation.estimate import training_cost

EVENTS_KEPT = 3
EVENT_CHARS = 200
# After a create call that failed in a way the provider may not have noticed (a timeout,
# a lost connection, a 5xx), the job may exist or appear shortly: look for it this often
# (seconds between looks) before a retry could create a second, paid job.
ADOPTION_WAITS = (1.0, 2.0, 4.0, 8.0, 16.0)
POLL_ERROR_CHARS = 500


class BucketReader(Protocol):
    def source(self, bucket: str, key: str, version_id: str | None = None) -> DataSource: ...


class NotificationSender(Protocol):
    def publish(self, notification: Notification) -> str: ...


class LineageKeeper(Protocol):
    def keep_for_lineage(self, upload: UploadRef) -> None: ...


class RunFiles(LineageKeeper, EvaluationBucket, Protocol):
    """The training bucket as the finish step uses it: lineage, evaluation files, the card."""


class WorkflowRegistry(ModelLookup, Protocol):
    """What the workflow's steps record: the job as it goes, the model it made, and the
    dataset's status when no job was ever created."""

    def put_job(self, record: JobRecord) -> None: ...

    def mark_dataset(self, dataset_id: str, status: str) -> None: ...

    def get_dataset(self, dataset_id: str) -> DatasetRecord | None: ...

    def register_model(self, record: ModelRecord) -> bool:
        """Write the model once; False if it was already registered (a retried step)."""
        ...

    def set_model_evaluation(self, model_id: str, summary: EvaluationSummary) -> None:
        """Record a registered model's evaluation."""
        ...


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
    outage_notified: bool = False,
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
        outage_notified=outage_notified,
    )


def launch(
    state: WorkflowState,
    provider: TrainingPort,
    bucket: BucketReader,
    registry: WorkflowRegistry,
    now: datetime,
    *,
    sleep: Callable[[float], None] = time.sleep,
) -> JobProgress:
    """Upload the files and create the job, or find the job a previous attempt created."""
    request = state.request
    job = provider.find_job(request.dataset_id)
    if job is None:
        training_file = _upload(provider, bucket, request, request.training_key)
        validation_file = (
            _upload(provider, bucket, request, request.validation_key)
            if request.validation_key
            else None
        )
        job = _create_once(
            provider,
            JobRequest(
                base_model=request.settings.base_model,
                training_file=training_file,
                validation_file=validation_file,
                suffix=request.settings.suffix,
                seed=request.settings.seed,
                hyperparameters=request.settings.hyperparameters,
                upload_tag=request.dataset_id,
            ),
            sleep,
        )
    started_at = _timestamp(now)
    registry.put_job(JobRecord.from_provider(request.dataset_id, provider.name, job, started_at))
    return _progress(
        job, provider.name, started_at=started_at, next_wait=request.poll.next_wait(None)
    )


def _create_once(
    provider: TrainingPort, job_request: JobRequest, sleep: Callable[[float], None]
) -> ProviderJob:
    """Create the job; after an error the request may have survived, adopt the job it made.

    A timeout, a lost connection or a 5xx can come after the provider accepted the job
    (or while it is still creating it): retrying the create would start a second, paid
    job. The job carries the upload's tag, so look for it a few times first. A 429 or a
    refusal means nothing was created.
    """
    try:
        return provider.create_job(job_request)
    except ProviderTransientError:
        for wait in ADOPTION_WAITS:
            sleep(wait)
            if (job := provider.find_job(job_request.upload_tag)) is not None:
                return job
        raise


def _upload(
    provider: TrainingPort,
    bucket: BucketReader,
    request: WorkflowRequest,
    key: str,
) -> str:
    source = bucket.source(request.upload.bucket, key, request.version_of(key))
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
    state: WorkflowState,
    provider: TrainingPort,
    registry: WorkflowRegistry,
    notifier: NotificationSender,
    now: datetime,
) -> JobProgress:
    """One look at the job: status, tokens, latest events, and when to look again.

    A provider that cannot be reached (5xx, timeout, 429, lost connection) does not end
    the run: the job trains on at the provider. The look is tried again later, for as
    long as the job's maximum duration allows, and a long outage is told once.
    """
    request, previous = state.request, _require_job(state)
    elapsed = _timestamp(now) - previous.started_at
    try:
        job = provider.get_job(previous.job_id)
    except (ProviderTransientError, ProviderRateLimitError) as error:
        return _unreachable(state, previous, error, notifier, now)
    try:
        events = provider.recent_events(job.job_id, EVENTS_KEPT)
    except (ProviderTransientError, ProviderRateLimitError):
        events = previous.latest_events  # the status is what counts; events can wait
    timed_out = job.state is JobState.RUNNING and elapsed >= request.poll.max_duration_seconds
    if job.status != previous.status:
        registry.put_job(
            JobRecord.from_provider(request.dataset_id, provider.name, job, previous.started_at)
        )
    return _progress(
        job,
        provider.name,
        started_at=previous.started_at,
        next_wait=request.poll.next_wait(previous.next_wait_seconds),
        polls=previous.polls + 1,
        events=events,
        timed_out=timed_out,
        outage_notified=previous.outage_notified,
    )


def _unreachable(
    state: WorkflowState,
    previous: JobProgress,
    error: ProviderTransientError | ProviderRateLimitError,
    notifier: NotificationSender,
    now: datetime,
) -> JobProgress:
    """The job as last seen, a longer wait, and the outage counted (and told once)."""
    policy = state.request.poll
    wait = policy.next_wait(previous.next_wait_seconds)
    if isinstance(error, ProviderRateLimitError) and error.retry_after:
        wait = max(wait, math.ceil(error.retry_after))
    elapsed = _timestamp(now) - previous.started_at
    progress = previous.model_copy(
        update={
            "polls": previous.polls + 1,
            "next_wait_seconds": wait,
            "timed_out": elapsed >= policy.max_duration_seconds,
            "failed_polls": previous.failed_polls + 1,
            "unreachable_since": previous.unreachable_since or _timestamp(now),
            "poll_error": str(error)[:POLL_ERROR_CHARS],
        }
    )
    if progress.outage_notice_due and not progress.timed_out:
        progress.outage_notified = _tell_outage(state, progress, error, notifier)
    return progress


def _tell_outage(
    state: WorkflowState,
    progress: JobProgress,
    error: ProviderError,
    notifier: NotificationSender,
) -> bool:
    """Say the provider is unreachable and the job goes on; False if that could not be sent."""
    request = state.request
    notice = Notification(
        outcome=Outcome.PROVIDER_UNREACHABLE,
        dataset=DatasetRef.of(request.upload, request.examples),
        provider=progress.provider,
        base_model=request.settings.base_model,
        job_id=progress.job_id,
        started_at=datetime.fromtimestamp(progress.started_at, UTC),
        trained_tokens=progress.trained_tokens,
        estimated_cost_usd=request.estimate.cost_usd,
        error_code=error.code,
        error_message=f"The last {progress.failed_polls} checks got no answer: {error.message}",
        report_uri=request.report_uri,
    )
    try:
        notifier.publish(notice)
    except Exception:  # a notice must never end the run; the next poll sends it again
        return False
    return True


def cancel(state: WorkflowState, provider: TrainingPort) -> JobProgress:
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


def _registered(state: WorkflowState) -> ModelRegistration:
    if state.registered is None:
        raise ValueError("the workflow state has no registered model")
    return state.registered


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


def register(
    state: WorkflowState,
    provider: TrainingPort,
    registry: WorkflowRegistry,
    now: datetime,
    *,
    lineage: LineageKeeper,
) -> ModelRegistration:
    """Record a succeeded job's model with its lineage and serve it (safe to repeat).

    It runs before the evaluation, so an evaluation that fails never costs the model its
    record. ``lineage`` keeps the trained upload version from the bucket's expiry; it is
    tagged before the model is registered, so no registered model points at an expirable
    version."""
    request, progress = state.request, _require_job(state)
    job = provider.get_job(progress.job_id)
    if not job.fine_tuned_model:
        raise ValueError(f"job {job.job_id} succeeded without a fine-tuned model")
    metrics = provider.final_metrics(job)
    serving = provider.serve(job)
    actual = training_cost(job.base_model, job.trained_tokens) if job.trained_tokens else None
    registry.put_job(
        JobRecord.from_provider(
            request.dataset_id, provider.name, job, progress.started_at, Outcome.SUCCEEDED.value
        )
    )
    dataset = registry.get_dataset(request.dataset_id)
    lineage.keep_for_lineage(request.upload)
    newly_registered = registry.register_model(
        ModelRecord(
            model_id=job.fine_tuned_model,
            provider=provider.name,
            job_id=job.job_id,
            base_model=job.base_model,
            dataset_id=request.dataset_id,
            upload=request.upload,
            dataset_sha256=dataset.sha256 if dataset else None,
            retrained_from=dataset.retrained_from if dataset else None,
            hyperparameters=job.hyperparameters,
            trained_tokens=job.trained_tokens,
            estimated_cost_usd=request.estimate.cost_usd,
            actual_cost_usd=actual,
            train_loss=metrics.train_loss if metrics else None,
            valid_loss=metrics.valid_loss if metrics else None,
            started_at=datetime.fromtimestamp(progress.started_at, UTC),
            finished_at=datetime.fromtimestamp(job.finished_at, UTC) if job.finished_at else now,
            created_at=now,
            serving_model=serving.model,
            serving_status=serving.status,
            serving_note=serving.note,
        )
    )
    return ModelRegistration(
        model_id=job.fine_tuned_model,
        serving_model=serving.model,
        serving_status=serving.status,
        serving_note=serving.note,
        actual_cost_usd=actual,
        train_loss=metrics.train_loss if metrics else None,
        valid_loss=metrics.valid_loss if metrics else None,
        newly_registered=newly_registered,
    )


def finish(
    state: WorkflowState,
    provider: TrainingPort,
    registry: WorkflowRegistry,
    notifier: NotificationSender,
    now: datetime,
    *,
    api_base_url: str | None = None,
    bucket: RunFiles,
) -> FinishResult:
    """Record the outcome and tell the user: on success the registered model (registered
    here if the registration step could not), its evaluation and its model card."""
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
    if outcome is Outcome.SUCCEEDED and job is not None and job.fine_tuned_model:
        if state.registered is None:
            state = state.model_copy(
                update={"registered": register(state, provider, registry, now, lineage=bucket)}
            )
        registration = _registered(state)
        metrics = provider.final_metrics(job)
        report = evaluation_report(state, bucket, registry, metrics.curve if metrics else [])
        notification = notification.model_copy(
            update={
                "model_id": registration.model_id,
                "actual_cost_usd": registration.actual_cost_usd,
                "train_loss": registration.train_loss,
                "valid_loss": registration.valid_loss,
                "serving_note": registration.serving_note,
                "evaluation": report.summary,
                "evaluation_decision": report.decision,
                "evaluation_skipped": report.skipped,
                "evaluation_error": report.error,
                "model_card_uri": report.model_card_uri,
            }
        )
        message_id = notifier.publish(notification)
        return FinishResult(
            outcome.value, registration.model_id, message_id, registration.newly_registered
        )
    registry.put_job(
        JobRecord.from_provider(
            request.dataset_id, provider.name, job, progress.started_at, outcome.value
        )
        if job is not None and progress is not None
        else JobRecord.last_seen(
            request.dataset_id,
            provider.name,
            progress,
            outcome=outcome.value,
            base_model=notification.base_model,
            error_code=notification.error_code,
            error_message=notification.error_message,
            finished_at=now,
        )
    )
    if progress is None:
        # No job was ever created: the upload is not left looking launched.
        registry.mark_dataset(request.dataset_id, "failed")
    message_id = notifier.publish(notification)
    return FinishResult(outcome.value, None, message_id, False)


def _latest_job(
    provider: TrainingPort, progress: JobProgress | None, outcome: Outcome
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
        code, message = caught_error(state.failure)
        if state.outcome == Outcome.TIMED_OUT.value:
            # Only the cancel step's Catch leads to a timeout with a failure.
            return "cancel_failed", (
                "The job ran past the maximum duration and could not be cancelled "
                f"({code}: {message}); it may still be running: cancel it at the provider."
            )
        return code, message
    if state.outcome == Outcome.TIMED_OUT.value:
        return "timed_out", "The job ran past the maximum duration and was cancelled."
    if state.outcome == Outcome.CANCELLED.value:
        return "cancelled", "The job was cancelled at the provider."
    return None, None
