"""The validation step: an uploaded object version becomes a reported, recorded dataset,
then one workflow execution, or a rejection that is recorded and notified.

Repeated S3 events for the same version are harmless: validation is
deterministic, records are keyed by the version, and the execution name is too.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from sft_pipeline.adapters.registry import DatasetRecord, Registry
from sft_pipeline.adapters.s3_objects import TrainingObjects
from sft_pipeline.jobs import (
    Estimate,
    JobSettings,
    JobSettingsError,
    UploadRef,
    WorkflowRequest,
    settings_from_metadata,
)
from sft_pipeline.notifications import DatasetRef, Notification, Outcome
from sft_pipeline.pipeline.split import split_holdout
from sft_pipeline.settings import PipelineSettings
from sft_pipeline.validation import (
    DataSource,
    ValidationOptions,
    ValidationReport,
    validate,
)
from sft_pipeline.validation.render import render_text


class WorkflowStarter(Protocol):
    def start(self, execution_name: str, request: WorkflowRequest) -> tuple[str, bool]: ...


class NotificationSender(Protocol):
    def publish(self, notification: Notification) -> str: ...


@dataclass(frozen=True)
class IngestPorts:
    storage: TrainingObjects
    registry: Registry
    workflow: WorkflowStarter
    notifier: NotificationSender


@dataclass(frozen=True)
class IngestResult:
    dataset_id: str
    status: str  # launched | already_launched | rejected
    report_uri: str
    summary: str
    execution_arn: str | None = None


def report_key(settings: PipelineSettings, upload: UploadRef) -> str:
    """Reports live under their own prefix, so writing one never triggers validation."""
    name = upload.key.removeprefix(settings.training_prefix)
    return f"{settings.reports_prefix}{name}.{upload.version_id or 'null'}.report"


def ingest_upload(
    upload: UploadRef, ports: IngestPorts, settings: PipelineSettings, now: datetime | None = None
) -> IngestResult:
    started = now or datetime.now(UTC)
    upload, metadata = ports.storage.head(upload)
    job_settings, setting_problems = _job_settings(metadata, settings.job_defaults())
    validation_source = _validation_source(ports.storage, upload, job_settings)
    report = validate(
        ports.storage.source(upload.bucket, upload.key, upload.version_id),
        ValidationOptions(
            model=job_settings.base_model,
            provider=job_settings.provider,
            dataset_bucket=upload.bucket,
            hyperparameters=job_settings.hyperparameters,
            suffix=job_settings.suffix,
        ),
        validation_source,
    )
    rejection = _rejection(report, job_settings, setting_problems)
    key = report_key(settings, upload)
    ports.storage.put(upload.bucket, f"{key}.txt", render_text(report).encode(), "text/plain")
    report_uri = ports.storage.put(
        upload.bucket, f"{key}.json", report.model_dump_json(indent=2).encode(), "application/json"
    )
    summary = report.summary()
    estimate = report.estimate
    record = DatasetRecord(
        dataset_id=upload.dataset_id,
        upload=upload,
        sha256=report.file.sha256 if report.file else None,
        bytes=report.file.bytes if report.file else None,
        examples=report.stats.examples,
        valid=report.valid,
        status="rejected" if rejection else "validated",
        summary=summary,
        report_uri=report_uri,
        billed_tokens=estimate.billed_tokens if estimate else None,
        estimated_cost_usd=estimate.estimated_cost_usd if estimate else None,
        settings=job_settings,
        rejection_code=rejection,
        created_at=started,
    )
    ports.registry.put_dataset(record)
    dataset = DatasetRef.of(upload, report.stats.examples)
    if rejection:
        ports.notifier.publish(
            Notification(
                outcome=Outcome.REJECTED,
                dataset=dataset,
                base_model=job_settings.base_model,
                estimated_cost_usd=estimate.estimated_cost_usd if estimate else None,
                error_code=rejection,
                error_message=_rejection_message(report),
                report_uri=report_uri,
                validation_summary=summary,
            )
        )
        return IngestResult(upload.dataset_id, "rejected", report_uri, summary)
    training_key, validation_key = upload.key, job_settings.validation_key
    if job_settings.holdout_percent and validation_key is None:
        training_key, validation_key = split_holdout(
            ports.storage, upload, settings.prepared_prefix, job_settings.holdout_percent
        )
    request = WorkflowRequest(
        dataset_id=upload.dataset_id,
        upload=upload,
        training_key=training_key,
        validation_key=validation_key,
        examples=report.stats.examples,
        settings=job_settings,
        poll=settings.poll_policy(),
        estimate=Estimate(
            billed_tokens=estimate.billed_tokens if estimate else 0,
            cost_usd=estimate.estimated_cost_usd if estimate else None,
        ),
        report_uri=report_uri,
        submitted_at=int(started.timestamp()),
    )
    execution_arn, started_now = ports.workflow.start(upload.execution_name, request)
    ports.registry.mark_dataset(upload.dataset_id, "launched")
    return IngestResult(
        upload.dataset_id,
        "launched" if started_now else "already_launched",
        report_uri,
        summary,
        execution_arn,
    )


def _job_settings(metadata: dict[str, str], defaults: JobSettings) -> tuple[JobSettings, list[str]]:
    try:
        return settings_from_metadata(metadata, defaults), []
    except JobSettingsError as problem:
        return defaults, problem.problems


def _validation_source(
    storage: TrainingObjects, upload: UploadRef, settings: JobSettings
) -> DataSource | None:
    if settings.validation_key is None:
        return None
    return storage.source(upload.bucket, settings.validation_key)


def _rejection(
    report: ValidationReport, settings: JobSettings, setting_problems: list[str]
) -> str | None:
    """Add the pipeline's own refusals to the report; return the rejection code, if any."""
    for problem in setting_problems:
        report.refuse("invalid_job_setting", f"Upload metadata: {problem}.")
    cap = settings.cost_cap_usd
    estimate = report.estimate
    if cap is not None and estimate is not None:
        if estimate.estimated_cost_usd is None:
            report.refuse(
                "cost_unknown",
                f"The training price of {settings.base_model} is unknown, so the cost cap "
                f"(${cap:,.2f}) cannot be checked; set cost-cap-usd=0 on the upload to launch anyway.",
            )
        elif estimate.estimated_cost_usd > cap:
            report.refuse(
                "cost_cap_exceeded",
                f"Estimated training cost ${estimate.estimated_cost_usd:,.2f} is over the cap of "
                f"${cap:,.2f}; raise cost-cap-usd on the upload or the stack's CostCapUsd.",
            )
    if report.valid:
        return None
    for code in ("invalid_job_setting", "cost_cap_exceeded", "cost_unknown"):
        if code in report.error_counts and len(report.error_counts) == 1:
            return code
    return "invalid_training_file"


def _rejection_message(report: ValidationReport) -> str:
    first = report.errors[0] if report.errors else None
    if first is None:
        return report.summary()
    where = f"line {first.line}: " if first.line else ""
    return f"{where}{first.message}"
