"""In-memory files, uploads, fine-tuning jobs and models, and the jobs' life on the clock.

A job's phases are scheduled when it is created. ``catch_up`` applies every
transition whose time has come, stamped with its scheduled time rather than the
time it was noticed, so a test that jumps the clock forward sees the same
history a patient client would. The state is not thread-safe: the caller
serialises access and calls ``catch_up`` before each request.
"""

from __future__ import annotations

import hashlib
import random
import secrets
import string
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from sft_local.openai_emulator.answers import TrainingMemory, training_memory
from sft_local.openai_emulator.catalog import BASE_MODELS, BaseModelInfo, find_base_model
from sft_local.openai_emulator.errors import invalid_request, model_not_found, not_found
from sft_local.openai_emulator.schemas import (
    MAX_SEED,
    CompleteUploadRequest,
    CreateFineTuningJobRequest,
    CreateUploadRequest,
    EventLevel,
    FileDeleted,
    FileObject,
    FineTuneMethod,
    FineTuningJob,
    FineTuningJobCheckpoint,
    FineTuningJobEvent,
    JobError,
    Model,
    StoredFilePurpose,
    Upload,
    UploadPart,
)
from sft_local.openai_emulator.training import (
    MIN_TRAINING_EXAMPLES,
    StepMetrics,
    TrainingPlan,
    dataset_problem,
    plan_training,
    results_csv,
    step_metrics,
)

TERMINAL_STATUSES = frozenset({"succeeded", "failed", "cancelled"})
UPLOAD_LIFETIME_SECONDS = 3600
ID_ALPHABET = string.ascii_letters + string.digits


def new_id(prefix: str, length: int = 24) -> str:
    return prefix + "".join(secrets.choice(ID_ALPHABET) for _ in range(length))


@dataclass(frozen=True)
class JobTimeline:
    """Seconds a fine-tuning job spends validating its files, queued, and running."""

    validating: float = 5.0
    queued: float = 5.0
    running: float = 30.0

    def __post_init__(self) -> None:
        if min(self.validating, self.queued, self.running) < 0:
            raise ValueError(f"phase durations must not be negative: {self}")


@dataclass(frozen=True)
class JobFailure:
    """How a job fails at the end of validation; becomes the job's ``error``."""

    code: str
    message: str
    param: str | None


@dataclass
class StoredFile:
    info: FileObject
    content: bytes


@dataclass
class StoredUpload:
    upload: Upload
    parts: dict[str, bytes] = field(default_factory=dict)


@dataclass
class FineTunedModel:
    model: Model
    base: BaseModelInfo
    memory: TrainingMemory


@dataclass
class JobRecord:
    job: FineTuningJob
    base: BaseModelInfo
    # Named at creation so checkpoints can carry it; published when the job succeeds.
    model_name: str
    plan: TrainingPlan
    # Read at creation: the training file may be deleted before the model answers.
    memory: TrainingMemory
    failure: JobFailure | None
    created: float
    timeline: JobTimeline
    events: list[FineTuningJobEvent] = field(default_factory=list)
    checkpoints: list[FineTuningJobCheckpoint] = field(default_factory=list)
    reported: list[StepMetrics] = field(default_factory=list)
    last_step: int = 0

    @property
    def validated_at(self) -> float:
        return self.created + self.timeline.validating

    @property
    def started_at(self) -> float:
        return self.validated_at + self.timeline.queued

    @property
    def finishes_at(self) -> float:
        return self.started_at + self.timeline.running

    def step_time(self, step: int) -> float:
        return self.started_at + self.timeline.running * step / self.plan.total_steps

    def add_event(
        self,
        at: float,
        message: str,
        *,
        level: EventLevel = "info",
        metrics: Mapping[str, float | int] | None = None,
    ) -> None:
        self.events.append(
            FineTuningJobEvent(
                id=new_id("ftevent-"),
                created_at=int(at),
                level=level,
                message=message,
                type="message" if metrics is None else "metrics",
                data=dict(metrics or {}),
            )
        )


class EmulatorState:
    """Everything the emulated organisation owns. See the module docstring for the clock."""

    def __init__(
        self,
        *,
        timeline: JobTimeline,
        organization: str,
        now: Callable[[], float],
        on_job_end: Callable[[str, str, float], None] | None = None,
    ):
        self.timeline = timeline
        # Told (job id, final status, when) as each job ends: the webhooks' source.
        self._on_job_end = on_job_end
        self.organization = organization
        self.organization_id = f"org-{organization}"
        self.now = now
        self._files: dict[str, StoredFile] = {}
        self._uploads: dict[str, StoredUpload] = {}
        self._jobs: dict[str, JobRecord] = {}
        self._fine_tuned_models: dict[str, FineTunedModel] = {}

    # Files

    def add_file(self, filename: str, purpose: StoredFilePurpose, content: bytes) -> FileObject:
        _check_fine_tune_filename(filename, purpose, param="file")
        return self._store_file(filename, purpose, content, self.now())

    def get_file(self, file_id: str) -> StoredFile:
        stored = self._files.get(file_id)
        if stored is None:
            raise not_found("file", file_id, param="id")
        return stored

    def delete_file(self, file_id: str) -> FileDeleted:
        self.get_file(file_id)
        del self._files[file_id]
        return FileDeleted(id=file_id)

    def _store_file(
        self, filename: str, purpose: StoredFilePurpose, content: bytes, at: float
    ) -> FileObject:
        info = FileObject(
            id=new_id("file-"),
            bytes=len(content),
            created_at=int(at),
            filename=filename,
            purpose=purpose,
        )
        self._files[info.id] = StoredFile(info, content)
        return info

    # Uploads

    def create_upload(self, request: CreateUploadRequest) -> Upload:
        _check_fine_tune_filename(request.filename, request.purpose, param="filename")
        created_at = int(self.now())
        upload = Upload(
            id=new_id("upload_"),
            bytes=request.bytes,
            created_at=created_at,
            expires_at=created_at + UPLOAD_LIFETIME_SECONDS,
            filename=request.filename,
            purpose=request.purpose,
        )
        self._uploads[upload.id] = StoredUpload(upload)
        return upload

    def add_upload_part(self, upload_id: str, data: bytes) -> UploadPart:
        stored = self._pending_upload(upload_id)
        part = UploadPart(id=new_id("part_"), created_at=int(self.now()), upload_id=upload_id)
        stored.parts[part.id] = data
        return part

    def complete_upload(self, upload_id: str, request: CompleteUploadRequest) -> Upload:
        stored = self._pending_upload(upload_id)
        unknown = [part_id for part_id in request.part_ids if part_id not in stored.parts]
        if unknown:
            raise invalid_request(f"Unknown part ids: {', '.join(unknown)}", param="part_ids")
        content = b"".join(stored.parts[part_id] for part_id in request.part_ids)
        upload = stored.upload
        if len(content) != upload.bytes:
            raise invalid_request(
                f"The parts add up to {len(content)} bytes, "
                f"but the upload was created for {upload.bytes} bytes.",
                param="part_ids",
            )
        if request.md5 is not None and hashlib.md5(content).hexdigest() != request.md5:
            raise invalid_request("The md5 checksum does not match the parts.", param="md5")
        upload.file = self._store_file(upload.filename, upload.purpose, content, self.now())
        upload.status = "completed"
        return upload

    def cancel_upload(self, upload_id: str) -> Upload:
        stored = self._pending_upload(upload_id)
        stored.upload.status = "cancelled"
        return stored.upload

    def _pending_upload(self, upload_id: str) -> StoredUpload:
        stored = self._uploads.get(upload_id)
        if stored is None:
            raise not_found("upload", upload_id, param="upload_id")
        upload = stored.upload
        if upload.status == "pending" and self.now() >= upload.expires_at:
            upload.status = "expired"
        if upload.status != "pending":
            raise invalid_request(
                f"Upload {upload_id} is already {upload.status}.", param="upload_id"
            )
        return stored

    # Fine-tuning jobs

    def create_job(
        self,
        request: CreateFineTuningJobRequest,
        injected_failure: Callable[[], JobFailure | None],
    ) -> FineTuningJob:
        """Checks the request, then schedules the job; ``injected_failure`` is asked only then."""
        model_name, base = self._fine_tunable_model(request.model)
        training = self._fine_tune_file(request.training_file, "training_file")
        validation = (
            None
            if request.validation_file is None
            else self._fine_tune_file(request.validation_file, "validation_file")
        )
        now = self.now()
        method = request.resolved_method()
        job = FineTuningJob(
            id=new_id("ftjob-"),
            created_at=int(now),
            # The requested settings, "auto" included, until validation resolves them.
            hyperparameters=method.hyperparameters,
            model=model_name,
            organization_id=self.organization_id,
            training_file=request.training_file,
            validation_file=request.validation_file,
            seed=random.randint(0, MAX_SEED) if request.seed is None else request.seed,
            integrations=request.integrations,
            metadata=request.metadata,
            method=method,
        )
        record = JobRecord(
            job=job,
            base=base,
            model_name=self._fine_tuned_model_name(base, request.suffix),
            plan=plan_training(method.hyperparameters, training.content),
            memory=training_memory(training.content),
            failure=injected_failure() or _dataset_failure(training, validation),
            created=now,
            timeline=self.timeline,
        )
        record.add_event(now, f"Created fine-tuning job: {job.id}")
        record.add_event(now, f"Validating training file: {job.training_file}")
        self._jobs[job.id] = record
        return job

    def list_jobs(self, metadata: Mapping[str, str] | None) -> list[FineTuningJob]:
        """Newest first. An empty ``metadata`` mapping selects the jobs that have none."""
        jobs = [record.job for record in reversed(self._jobs.values())]
        if metadata is None:
            return jobs
        if not metadata:
            return [job for job in jobs if not job.metadata]
        return [
            job
            for job in jobs
            if job.metadata and all(job.metadata.get(k) == v for k, v in metadata.items())
        ]

    def get_job(self, job_id: str) -> JobRecord:
        record = self._jobs.get(job_id)
        if record is None:
            raise not_found("fine-tuning job", job_id, param="fine_tuning_job_id")
        return record

    def cancel_job(self, job_id: str) -> FineTuningJob:
        record = self.get_job(job_id)
        job = record.job
        if job.status in TERMINAL_STATUSES:
            raise invalid_request(f"Job {job_id} has already {job.status}; it cannot be cancelled.")
        job.status = "cancelled"
        job.estimated_finish = None
        record.add_event(self.now(), "Fine-tuning job cancelled")
        self._ended(job.id, job.status, self.now())
        return job

    def catch_up(self) -> None:
        now = self.now()
        for record in self._jobs.values():
            self._advance_job(record, now)

    def _advance_job(self, record: JobRecord, now: float) -> None:
        job = record.job
        if job.status == "validating_files" and now >= record.validated_at:
            if record.failure is not None:
                self._fail_job(record, record.failure)
                return
            job.status = "queued"
            job.hyperparameters = record.plan.hyperparameters
            job.method = FineTuneMethod.of(record.plan.hyperparameters)
            record.add_event(record.validated_at, "Files validated, moving job to queued state")
        if job.status == "queued" and now >= record.started_at:
            job.status = "running"
            job.estimated_finish = int(record.finishes_at)
            record.add_event(record.started_at, "Fine-tuning job started")
        if job.status == "running":
            self._train(record, until=min(now, record.finishes_at))
            if now >= record.finishes_at:
                self._succeed_job(record)

    def _train(self, record: JobRecord, until: float) -> None:
        """Report metrics and save checkpoints for the steps reached by ``until``."""
        plan = record.plan
        reported = set(plan.reported_steps())
        kept = set(plan.checkpoint_steps())
        for step in sorted(step for step in reported | kept if step > record.last_step):
            at = record.step_time(step)
            if at > until:
                return
            record.last_step = step
            metrics = step_metrics(
                step,
                plan.total_steps,
                seed=record.job.seed,
                with_validation=record.job.validation_file is not None,
            )
            if step in reported:
                record.reported.append(metrics)
                record.add_event(at, metrics.event_message(), metrics=metrics.event_data())
            if step in kept:
                record.checkpoints.append(
                    FineTuningJobCheckpoint(
                        id=new_id("ftckpt_"),
                        created_at=int(at),
                        fine_tuned_model_checkpoint=f"{record.model_name}:ckpt-step-{step}",
                        fine_tuning_job_id=record.job.id,
                        metrics=metrics.checkpoint_metrics(),
                        step_number=step,
                    )
                )
                record.add_event(at, f"Checkpoint created at step {step}")

    def _fail_job(self, record: JobRecord, failure: JobFailure) -> None:
        job = record.job
        job.status = "failed"
        job.finished_at = int(record.validated_at)
        job.error = JobError(code=failure.code, message=failure.message, param=failure.param)
        record.add_event(record.validated_at, failure.message, level="error")
        self._ended(job.id, job.status, record.validated_at)

    def _succeed_job(self, record: JobRecord) -> None:
        job = record.job
        finished = record.finishes_at
        model_name = record.model_name
        results = self._store_file(
            "step_metrics.csv", "fine-tune-results", results_csv(record.reported), finished
        )
        job.status = "succeeded"
        job.fine_tuned_model = model_name
        job.finished_at = int(finished)
        job.estimated_finish = None
        job.trained_tokens = record.plan.trained_tokens
        job.result_files = [results.id]
        self._fine_tuned_models[model_name] = FineTunedModel(
            Model(
                id=model_name,
                created=int(finished),
                owned_by=self.organization_id,
                shutdown_date=record.base.shutdown_date,
            ),
            record.base,
            record.memory,
        )
        record.add_event(finished, f"New fine-tuned model created: {model_name}")
        record.add_event(finished, "The job has successfully completed")
        self._ended(job.id, job.status, finished)

    def _ended(self, job_id: str, status: str, at: float) -> None:
        if self._on_job_end is not None:
            self._on_job_end(job_id, status, at)

    def _fine_tunable_model(self, name: str) -> tuple[str, BaseModelInfo]:
        """The model name the job reports (the dated snapshot) and the base it builds on."""
        base = find_base_model(name)
        if base is not None:
            return base.snapshot, base
        fine_tuned = self._fine_tuned_models.get(name)
        if fine_tuned is not None:
            return name, fine_tuned.base
        raise invalid_request(
            f"Model {name} is not available for fine-tuning or does not exist.",
            param="model",
            code="model_not_available",
        )

    def _fine_tuned_model_name(self, base: BaseModelInfo, suffix: str | None) -> str:
        """``ft:<base>:<org>:<suffix>:<id>``, the suffix slot left empty when there is none."""
        return f"ft:{base.snapshot}:{self.organization}:{suffix or ''}:{new_id('', length=8)}"

    def _fine_tune_file(self, file_id: str, param: str) -> StoredFile:
        stored = self._files.get(file_id)
        if stored is None:
            raise invalid_request(f"Invalid file ID for {param}: {file_id}", param=param)
        if stored.info.purpose != "fine-tune":
            raise invalid_request(
                f"File {file_id} has purpose '{stored.info.purpose}', "
                "but fine-tuning needs purpose 'fine-tune'.",
                param=param,
            )
        return stored

    # Models

    def list_models(self) -> list[Model]:
        listed = [self.get_model(info.snapshot) for info in BASE_MODELS]
        listed += [self.get_model(info.alias) for info in BASE_MODELS]
        return listed + [fine_tuned.model for fine_tuned in self._fine_tuned_models.values()]

    def get_model(self, name: str) -> Model:
        base = find_base_model(name)
        if base is not None:
            return Model(
                id=name, created=base.created, owned_by="system", shutdown_date=base.shutdown_date
            )
        fine_tuned = self._fine_tuned_models.get(name)
        if fine_tuned is None:
            raise model_not_found(name)
        return fine_tuned.model

    def served_model(self, name: str) -> tuple[str, TrainingMemory | None]:
        """The name a chat completion reports (the snapshot behind an alias, else ``name``),
        and what the model learnt, None for a base model."""
        base = find_base_model(name)
        if base is not None:
            return base.snapshot, None
        fine_tuned = self._fine_tuned_models.get(name)
        if fine_tuned is None:
            raise model_not_found(name)
        return name, fine_tuned.memory


def _check_fine_tune_filename(filename: str, purpose: str, *, param: str) -> None:
    if purpose == "fine-tune" and not filename.endswith(".jsonl"):
        raise invalid_request(
            f"Invalid file format for Fine-Tuning API. Must be .jsonl, got '{filename}'.",
            param=param,
        )


def _dataset_failure(training: StoredFile, validation: StoredFile | None) -> JobFailure | None:
    training_problem = dataset_problem(training.content, min_examples=MIN_TRAINING_EXAMPLES)
    if training_problem is not None:
        return JobFailure("invalid_training_file", training_problem, "training_file")
    if validation is None:
        return None
    validation_problem = dataset_problem(validation.content, min_examples=1)
    if validation_problem is not None:
        return JobFailure("invalid_validation_file", validation_problem, "validation_file")
    return None
