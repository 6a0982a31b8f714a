"""The validation step: an uploaded object version becomes a reported, recorded dataset,
then one workflow execution, or a rejection that is recorded and notified once.

Repeated S3 events for the same version are harmless: validation is
deterministic, records are keyed by the version, the execution name is too, and
the rejection notice is claimed by a conditional write before it is sent.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from sft_pipeline.adapters.training_bucket import TrainingBucket
from sft_pipeline.evaluation.answers import EvalExample, read_examples
from sft_pipeline.evaluation.contenders import Contender, few_shot_budget
from sft_pipeline.evaluation.pricing import estimate_evaluation_cost, inference_cost
from sft_pipeline.jobs import (
    EXECUTION_NAME_PREFIX,
    MAX_S3_KEY_BYTES,
    Estimate,
    JobSettings,
    JobSettingsError,
    UploadRef,
    WorkflowRequest,
    settings_from_metadata,
)
from sft_pipeline.notifications import DatasetRef, Notification, Outcome
from sft_pipeline.pipeline.retrain import RetrainLookup, plan_retrain
from sft_pipeline.pipeline.split import count_split, split_holdout, split_problems
from sft_pipeline.records import DatasetRecord
from sft_pipeline.retraining import RetrainOrder
from sft_pipeline.settings import JobDefaultsSettings
from sft_pipeline.validation import (
    DataSource,
    ValidationOptions,
    ValidationReport,
    validate,
)
from sft_pipeline.validation.reader import StreamTally, iter_lines
from sft_pipeline.validation.render import render_text
from sft_pipeline.validation.targets import resolve_model
from sft_pipeline.validation.tokens import get_encoding

REPORT_EXTENSIONS = (".json", ".txt")
# A shortened report name keeps this much of the key's sha256 to stay unique.
KEY_HASH_CHARS = 16
# The evaluation's contenders counted before the run: the candidate, its base model and the
# few-shot prompt. Whether the alias has a champion is known only when the evaluation runs.
EVALUATION_CONTENDERS = 3
# Held-out examples priced at a time, so the estimate's memory does not grow with the file.
PRICING_CHUNK = 1000


class WorkflowStarter(Protocol):
    def start(self, execution_name: str, request: WorkflowRequest) -> tuple[str, bool]: ...


class NotificationSender(Protocol):
    def publish(self, notification: Notification) -> str: ...


class DatasetRegistry(Protocol):
    """What the validation step records: the dataset, its status, and the one right to send
    a rejection notice."""

    def put_dataset(self, record: DatasetRecord) -> None: ...

    def mark_dataset(self, dataset_id: str, status: str) -> None: ...

    def claim_notice(self, dataset_id: str, kind: str, now: datetime) -> bool:
        """Take the right to send this notice; False if an earlier delivery took it."""
        ...

    def release_notice(self, dataset_id: str, kind: str) -> None: ...


@dataclass(frozen=True)
class ValidateUploadPorts:
    bucket: TrainingBucket
    registry: DatasetRegistry
    workflow: WorkflowStarter
    notifier: NotificationSender


@dataclass(frozen=True)
class ValidateUploadResult:
    dataset_id: str
    status: str  # launched | already_launched | rejected
    report_uri: str
    summary: str
    execution_arn: str | None = None


def report_key(settings: JobDefaultsSettings, upload: UploadRef) -> str:
    """Where the upload's report goes (without its extension).

    Reports live under their own prefix, so writing one never triggers validation.
    The name is the training key's, readable, unless that would pass S3's 1,024-byte
    limit: then it is cut at a character boundary and a hash of the whole key keeps
    it unique (the report itself names the full key).
    """
    name = upload.key.removeprefix(settings.training_prefix)
    tail = f".{upload.version_id or 'null'}.report"
    room = (
        MAX_S3_KEY_BYTES
        - len(settings.reports_prefix.encode())
        - len(tail.encode())
        - max(len(extension) for extension in REPORT_EXTENSIONS)
    )
    if len(name.encode()) > room:
        digest = hashlib.sha256(upload.key.encode()).hexdigest()[:KEY_HASH_CHARS]
        kept = name.encode()[: room - KEY_HASH_CHARS - 1].decode(errors="ignore")
        name = f"{kept}~{digest}"
    return f"{settings.reports_prefix}{name}{tail}"


@dataclass(frozen=True)
class _Run:
    """One run to validate and start: the exact upload version, the run's own dataset id
    (an upload's, or a retrain's), its settings, and where its report goes."""

    upload: UploadRef
    dataset_id: str
    settings: JobSettings
    setting_problems: list[str]
    report_key: str
    # A retrain's lineage: the sha256 the version must still have, the model retrained,
    # and the versions of the named files the original run read.
    expected_sha256: str | None = None
    retrained_from: str | None = None
    named_files: tuple[UploadRef, ...] = ()


def validate_upload(
    upload: UploadRef,
    ports: ValidateUploadPorts,
    settings: JobDefaultsSettings,
    now: datetime | None = None,
) -> ValidateUploadResult:
    started = now or datetime.now(UTC)
    upload, metadata = ports.bucket.head(upload)
    ports.bucket.mark_unregistered(upload)
    job_settings, setting_problems = _job_settings(metadata, settings.job_defaults())
    run = _Run(
        upload=upload,
        dataset_id=upload.dataset_id,
        settings=job_settings,
        setting_problems=setting_problems,
        report_key=report_key(settings, upload),
    )
    return _validate_and_start(run, ports, settings, started)


def validate_retrain(
    order: RetrainOrder,
    ports: ValidateUploadPorts,
    models: RetrainLookup,
    settings: JobDefaultsSettings,
    now: datetime | None = None,
) -> ValidateUploadResult:
    """A retrain order: the lineage's exact version validated for the new provider and
    started as a run of its own, or refused (version gone, sha256 changed) and notified.
    Raises RetrainRefused when the registry no longer allows it (the model is gone)."""
    started = now or datetime.now(UTC)
    plan = plan_retrain(order.request(), models, order.requested_by)
    run = _Run(
        upload=plan.upload,
        dataset_id=plan.dataset_id,
        settings=plan.settings,
        setting_problems=[],
        report_key=f"{settings.reports_prefix}retrains/{plan.dataset_id}.report",
        expected_sha256=plan.sha256,
        retrained_from=plan.model.model_id,
        named_files=plan.named_files,
    )
    if not ports.bucket.version_exists(plan.upload):
        message = (
            f"{plan.upload.uri} version {plan.upload.version_id} is gone: "
            f"{plan.model.model_id} was trained on it, and only that version may retrain it."
        )
        return _refuse_unread(run, ports, "lineage_version_gone", message, started)
    return _validate_and_start(run, ports, settings, started)


def _validate_and_start(
    run: _Run, ports: ValidateUploadPorts, settings: JobDefaultsSettings, started: datetime
) -> ValidateUploadResult:
    upload, job_settings, setting_problems = run.upload, run.settings, list(run.setting_problems)
    validation_file = _named_file(
        ports.bucket, run, job_settings.validation_key, "validation-key", setting_problems
    )
    evaluation_file = _named_file(
        ports.bucket, run, job_settings.eval_key, "eval-key", setting_problems
    )
    validation_source = _source(ports.bucket, validation_file)
    evaluation_source = _source(ports.bucket, evaluation_file)
    report = validate(
        ports.bucket.source(upload.bucket, upload.key, upload.version_id),
        ValidationOptions(
            model=job_settings.base_model,
            provider=job_settings.provider,
            dataset_bucket=upload.bucket,
            hyperparameters=job_settings.hyperparameters,
            suffix=job_settings.suffix,
        ),
        validation_source,
        evaluation=evaluation_source,
    )
    if job_settings.alias and not _has_held_out_set(job_settings):
        report.warn(
            "no_evaluation_set",
            f"No held-out set (eval-key, validation-key or holdout-percent): the model will be "
            f"registered but not promoted to {job_settings.alias} automatically.",
        )
    held_out_source, held_out_share = evaluation_source or validation_source, 1.0
    if _splits(job_settings) and report.valid:
        source = ports.bucket.source(upload.bucket, upload.key, upload.version_id)
        train, held_out = count_split(source, job_settings.holdout_percent)
        setting_problems += split_problems(job_settings, train, held_out)
        if held_out_source is None:
            held_out_source, held_out_share = source, held_out / max(train + held_out, 1)
    if held_out_source is not None and report.valid:
        _estimate_evaluation(report, job_settings, held_out_source, held_out_share)
    if run.expected_sha256 and report.file and report.file.sha256 != run.expected_sha256:
        report.refuse(
            "lineage_changed",
            f"{upload.uri} version {upload.version_id} now has sha256 {report.file.sha256}; "
            f"{run.retrained_from} was trained on sha256 {run.expected_sha256}.",
        )
    rejection = _rejection(report, job_settings, setting_problems)
    report_uri = _write_report(ports.bucket, run.report_key, upload, report)
    summary = report.summary()
    estimate = report.estimate
    record = DatasetRecord(
        dataset_id=run.dataset_id,
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
        retrained_from=run.retrained_from,
        validation_file=validation_file,
        eval_file=evaluation_file,
    )
    ports.registry.put_dataset(record)
    if rejection:
        _notify_rejection_once(
            ports,
            Notification(
                outcome=Outcome.REJECTED,
                dataset=_dataset_ref(run, report.stats.examples),
                base_model=job_settings.base_model,
                estimated_cost_usd=estimate.estimated_cost_usd if estimate else None,
                error_code=rejection,
                error_message=_rejection_message(report),
                report_uri=report_uri,
                validation_summary=summary,
            ),
            started,
        )
        return ValidateUploadResult(run.dataset_id, "rejected", report_uri, summary)
    training_key, validation_key = upload.key, job_settings.validation_key
    if _splits(job_settings):
        training_key, validation_key = split_holdout(
            ports.bucket, upload, settings.prepared_prefix, job_settings.holdout_percent
        )
    request = WorkflowRequest(
        dataset_id=run.dataset_id,
        upload=upload,
        training_key=training_key,
        validation_key=validation_key,
        eval_key=job_settings.eval_key or validation_key,
        # No validation file is named when the run splits its own (it reads it as written).
        validation_version_id=validation_file.version_id if validation_file else None,
        eval_version_id=evaluation_file.version_id if evaluation_file else None,
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
    execution_arn, started_now = ports.workflow.start(
        EXECUTION_NAME_PREFIX + run.dataset_id, request
    )
    ports.registry.mark_dataset(run.dataset_id, "launched")
    return ValidateUploadResult(
        run.dataset_id,
        "launched" if started_now else "already_launched",
        report_uri,
        summary,
        execution_arn,
    )


def _dataset_ref(run: _Run, examples: int | None) -> DatasetRef:
    upload = run.upload
    return DatasetRef(
        dataset_id=run.dataset_id,
        bucket=upload.bucket,
        key=upload.key,
        version_id=upload.version_id,
        examples=examples,
    )


def _refuse_unread(
    run: _Run, ports: ValidateUploadPorts, code: str, message: str, started: datetime
) -> ValidateUploadResult:
    """Refuse a run whose file could not even be read: recorded, and notified once."""
    ports.registry.put_dataset(
        DatasetRecord(
            dataset_id=run.dataset_id,
            upload=run.upload,
            examples=0,
            valid=False,
            status="rejected",
            summary=message,
            settings=run.settings,
            rejection_code=code,
            created_at=started,
            retrained_from=run.retrained_from,
        )
    )
    _notify_rejection_once(
        ports,
        Notification(
            outcome=Outcome.REJECTED,
            dataset=_dataset_ref(run, None),
            provider=run.settings.provider,
            base_model=run.settings.base_model,
            error_code=code,
            error_message=message,
        ),
        started,
    )
    return ValidateUploadResult(run.dataset_id, "rejected", "", message)


def _job_settings(metadata: dict[str, str], defaults: JobSettings) -> tuple[JobSettings, list[str]]:
    try:
        return settings_from_metadata(metadata, defaults), []
    except JobSettingsError as problem:
        return defaults, problem.problems


def _splits(settings: JobSettings) -> bool:
    """The held-out split is made only when no validation file is named."""
    return bool(settings.holdout_percent) and settings.validation_key is None


def _has_held_out_set(settings: JobSettings) -> bool:
    """In order: the eval file, else the validation file, named or split off."""
    return bool(settings.eval_key or settings.validation_key or settings.holdout_percent)


def _named_file(
    bucket: TrainingBucket, run: _Run, key: str | None, setting: str, problems: list[str]
) -> UploadRef | None:
    """The file a metadata ``setting`` names in the upload's bucket, at the version the run
    validates and later reads: the current one, or for a retrain the one the original run
    read. A missing file or version joins ``problems``."""
    if key is None:
        return None
    where = f"s3://{run.upload.bucket}/{key}"
    pinned = next((file for file in run.named_files if file.key == key), None)
    if pinned is not None:
        if bucket.version_exists(pinned):
            return pinned
        problems.append(
            f"{setting}: {where} version {pinned.version_id} is gone: "
            f"{run.retrained_from} was validated and evaluated with it"
        )
        return None
    found = bucket.find_version(run.upload.bucket, key)
    if found is None:
        problems.append(f"{setting}: there is no object {where}")
    return found


def _source(bucket: TrainingBucket, file: UploadRef | None) -> DataSource | None:
    return None if file is None else bucket.source(file.bucket, file.key, file.version_id)


def _estimate_evaluation(
    report: ValidationReport, settings: JobSettings, held_out: DataSource, share: float
) -> None:
    """Price the held-out evaluation before it runs, so the cost cap counts it: every held-out
    prompt (``share`` of the file's examples) asked of each contender, each answer as long as
    the training file's average reply, the few-shot prompt's examples as long as its average
    example."""
    estimate, stats = report.estimate, report.stats
    if estimate is None or stats.tokens_per_example is None:
        return
    base = settings.base_model
    resolved = resolve_model(base, settings.provider)
    encoding = get_encoding(resolved.encoding)

    def count(text: str) -> int:
        return len(encoding.encode(text, disallowed_special=()))

    contenders = [
        Contender(name="candidate", model=base, fine_tune_of=base),
        Contender(name="base", model=base),
        Contender(name="few_shot", model=base),
    ]
    replies = stats.assistant_tokens_per_example
    reply_tokens = math.ceil(replies.mean) if replies else 0
    limit = resolved.max_tokens_per_example
    shot_tokens = min(
        settings.few_shot_k * math.ceil(stats.tokens_per_example.mean),
        few_shot_budget(limit),
    )
    examples, cost = 0, 0.0
    for chunk in _chunks(_held_out_examples(held_out)):
        examples += len(chunk)
        chunk_cost = estimate_evaluation_cost(contenders, chunk, count, reply_tokens)
        shots_cost = inference_cost(base, shot_tokens * len(chunk), 0)
        if chunk_cost is None or shots_cost is None:
            cost = math.nan
            break
        cost += chunk_cost + shots_cost
    report.estimate = estimate.model_copy(
        update={
            "evaluation_examples": round(examples * share),
            "evaluation_contenders": EVALUATION_CONTENDERS,
            "evaluation_cost_usd": None if math.isnan(cost) else round(cost * share, 4),
            "notes": [
                *estimate.notes,
                "The evaluation's estimate counts the candidate, its base model and the "
                "few-shot prompt; a champion (the alias's current version) adds about a third.",
            ],
        }
    )


def _held_out_examples(source: DataSource) -> Iterator[EvalExample]:
    """The file's gradable examples; lines the validator refused are not priced."""
    with source.open() as stream:
        for line in iter_lines(stream, StreamTally()):
            try:
                yield from read_examples([line.raw])
            except ValueError:  # an EvalDataError, or a line that is not JSON
                continue


def _chunks(examples: Iterator[EvalExample]) -> Iterator[list[EvalExample]]:
    chunk: list[EvalExample] = []
    for example in examples:
        chunk.append(example)
        if len(chunk) == PRICING_CHUNK:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _write_report(
    bucket: TrainingBucket, key: str, upload: UploadRef, report: ValidationReport
) -> str:
    """The text and JSON reports; both name the exact upload, whatever the report's key."""
    version = upload.version_id or "null"
    text = f"Report on {upload.uri} (version {version})\n{render_text(report)}"
    bucket.put(upload.bucket, f"{key}.txt", text.encode(), "text/plain")
    named = {"upload": upload.model_dump(mode="json"), **report.model_dump(mode="json")}
    body = json.dumps(named, indent=2, ensure_ascii=False).encode()
    return bucket.put(upload.bucket, f"{key}.json", body, "application/json")


def _notify_rejection_once(
    ports: ValidateUploadPorts, notification: Notification, now: datetime
) -> None:
    dataset_id = notification.dataset.dataset_id
    if not ports.registry.claim_notice(dataset_id, Outcome.REJECTED, now):
        return  # an earlier delivery of this version's event sent it
    try:
        ports.notifier.publish(notification)
    except Exception:
        # Unsent: the retried delivery must be able to send it.
        ports.registry.release_notice(dataset_id, Outcome.REJECTED)
        raise


def _rejection(
    report: ValidationReport, settings: JobSettings, setting_problems: list[str]
) -> str | None:
    """Add the pipeline's own refusals to the report; return the rejection code, if any."""
    for problem in setting_problems:
        report.refuse("invalid_job_setting", f"Upload metadata: {problem}.")
    cap = settings.cost_cap_usd
    estimate = report.estimate
    if cap is not None and estimate is not None:
        evaluated = estimate.evaluation_examples is not None
        if estimate.estimated_cost_usd is None:
            report.refuse(
                "cost_unknown",
                f"The training price of {settings.base_model} is unknown, so the cost cap "
                f"(${cap:,.2f}) cannot be checked; set cost-cap-usd=0 on the upload to launch anyway.",
            )
        elif evaluated and estimate.evaluation_cost_usd is None:
            report.refuse(
                "cost_unknown",
                f"The inference price of {settings.base_model} or its fine-tunes is unknown, so "
                f"the held-out evaluation's cost cannot be counted against the cost cap "
                f"(${cap:,.2f}); set cost-cap-usd=0 on the upload to launch anyway.",
            )
        elif not evaluated and estimate.estimated_cost_usd > cap:
            report.refuse(
                "cost_cap_exceeded",
                f"Estimated training cost ${estimate.estimated_cost_usd:,.2f} is over the cap of "
                f"${cap:,.2f}; raise cost-cap-usd on the upload or the stack's CostCapUsd.",
            )
        elif evaluated:
            training, evaluation = estimate.estimated_cost_usd, estimate.evaluation_cost_usd or 0.0
            if training + evaluation > cap:
                report.refuse(
                    "cost_cap_exceeded",
                    f"Estimated cost ${training + evaluation:,.2f} (training "
                    f"${training:,.2f} + evaluation ${evaluation:,.2f}) is over the cap of "
                    f"${cap:,.2f}; raise cost-cap-usd on the upload or the stack's CostCapUsd.",
                )
    if report.valid:
        return None
    for code in ("invalid_job_setting", "cost_cap_exceeded", "cost_unknown", "lineage_changed"):
        if code in report.error_counts and len(report.error_counts) == 1:
            return code
    return "invalid_training_file"


def _rejection_message(report: ValidationReport) -> str:
    first = report.errors[0] if report.errors else None
    if first is None:
        return report.summary()
    where = f"line {first.line}: " if first.line else ""
    return f"{where}{first.message}"
