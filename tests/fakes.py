"""In-memory stand-ins for the pipeline's ports, for unit tests of the steps and handlers.

mypy checks (``make typecheck``) that each fake is what its consumers take, as the real
adapter is: see the end of this module.
"""

from __future__ import annotations

import io
import itertools
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

import boto3

from sft_local.template import load_template
from sft_pipeline.adapters.registry import Registry
from sft_pipeline.aliases import (
    AliasNotFound,
    AliasVersion,
    AliasVersionNotFound,
    Variant,
)
from sft_pipeline.api_keys import ApiKeyNotFound, ApiKeyRecord, DuplicateApiKeyError
from sft_pipeline.evaluation.summary import EvaluationSummary
from sft_pipeline.job_events import JOB_END_NOTE_LIFETIME, WaitToken
from sft_pipeline.jobs import JobState, UploadRef, WorkflowRequest
from sft_pipeline.notifications import Notification, RetirementWarning
from sft_pipeline.providers.base import (
    JobRequest,
    ProviderError,
    Serving,
    ServingStatus,
    TrainingMetrics,
)
from sft_pipeline.records import DatasetRecord, JobRecord, ModelRecord, ProviderJob
from sft_pipeline.validation import DataSource
from sft_pipeline.validation.reader import BinaryReadable

REPO = Path(__file__).resolve().parents[1]


@dataclass
class FakeProvider:
    """A provider whose jobs change only when the test says so."""

    name: str = "fake"
    jobs: dict[str, ProviderJob] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    uploads: list[tuple[str, bytes]] = field(default_factory=list)
    events: list[str] = field(default_factory=lambda: ["Step 5/10: training loss=0.90"])
    fail_with: ProviderError | None = None
    created: list[JobRequest] = field(default_factory=list)
    chats: list[dict[str, Any]] = field(default_factory=list)
    serving: ServingStatus = "ready"
    _ids: Iterator[int] = field(default_factory=lambda: itertools.count(1))

    def _check(self) -> None:
        if self.fail_with is not None:
            raise self.fail_with

    def upload_file(
        self, filename: str, stream: BinaryIO, size: int, *, base_model: str, upload_tag: str
    ) -> str:
        self._check()
        self.uploads.append((filename, stream.read()))
        return f"file-{len(self.uploads)}"

    def find_job(self, upload_tag: str) -> ProviderJob | None:
        self._check()
        job_id = self.tags.get(upload_tag)
        return self.jobs[job_id] if job_id else None

    def create_job(self, request: JobRequest) -> ProviderJob:
        self._check()
        self.created.append(request)
        job = ProviderJob(
            job_id=f"ftjob-{next(self._ids)}",
            status="validating_files",
            state=JobState.RUNNING,
            base_model=request.base_model,
            created_at=1_700_000_000,
        )
        self.jobs[job.job_id] = job
        self.tags[request.upload_tag] = job.job_id
        return job

    def set(self, job_id: str, **changes: Any) -> ProviderJob:
        self.jobs[job_id] = self.jobs[job_id].model_copy(update=changes)
        return self.jobs[job_id]

    def get_job(self, job_id: str) -> ProviderJob:
        self._check()
        return self.jobs[job_id]

    def cancel_job(self, job_id: str) -> ProviderJob:
        self._check()
        return self.set(job_id, status="cancelled", state=JobState.CANCELLED)

    def recent_events(self, job_id: str, limit: int) -> list[str]:
        self._check()
        return self.events[:limit]

    def final_metrics(self, job: ProviderJob) -> TrainingMetrics | None:
        return TrainingMetrics(steps=10, train_loss=0.25, valid_loss=0.31)

    def serve(self, job: ProviderJob) -> Serving:
        return Serving(model=job.fine_tuned_model or job.job_id, status=self.serving)

    def serving_status(self, serving_model: str) -> ServingStatus:
        return self.serving

    def chat(self, body: dict[str, Any]) -> dict[str, Any]:
        self._check()
        self.chats.append(body)
        return {
            "id": f"chatcmpl-{len(self.chats)}",
            "object": "chat.completion",
            "created": 1_700_000_000,
            "model": body["model"],
            "choices": [
                {
                    "index": 0,
                    "finish_reason": "stop",
                    "message": {"role": "assistant", "content": "ok"},
                }
            ],
        }


@dataclass
class FakeBucket:
    objects: dict[tuple[str, str], bytes] = field(default_factory=dict)
    metadata: dict[str, str] = field(default_factory=dict)
    lineage: dict[UploadRef, str] = field(default_factory=dict)
    # Every read: the key and the version asked for (None: the current one).
    reads: list[tuple[str, str | None]] = field(default_factory=list)

    def head(self, upload: UploadRef) -> tuple[UploadRef, dict[str, str]]:
        return upload, dict(self.metadata)

    def put(self, bucket: str, key: str, body: bytes, content_type: str) -> str:
        self.objects[(bucket, key)] = body
        return f"s3://{bucket}/{key}"

    def upload_file(self, bucket: str, key: str, path: str) -> None:
        self.objects[(bucket, key)] = Path(path).read_bytes()

    def mark_unregistered(self, upload: UploadRef) -> None:
        self.lineage.setdefault(upload, "unregistered")

    def keep_for_lineage(self, upload: UploadRef) -> None:
        self.lineage[upload] = "registered"

    def source(self, bucket: str, key: str, version_id: str | None = None) -> DataSource:
        data = self.objects[(bucket, key)]
        self.reads.append((key, version_id))

        @contextmanager
        def opener() -> Iterator[BinaryReadable]:
            yield io.BytesIO(data)

        return DataSource(name=f"s3://{bucket}/{key}", open=opener, size=len(data))

    def find_version(self, bucket: str, key: str) -> UploadRef | None:
        return UploadRef(bucket=bucket, key=key) if (bucket, key) in self.objects else None

    def version_exists(self, upload: UploadRef) -> bool:
        return (upload.bucket, upload.key) in self.objects

    def read(self, bucket: str, key: str, max_bytes: int) -> bytes:
        return self.objects[(bucket, key)][:max_bytes]


@dataclass
class FakeNotifier:
    sent: list[Notification] = field(default_factory=list)

    def publish(self, notification: Notification) -> str:
        self.sent.append(notification)
        return f"message-{len(self.sent)}"


@dataclass
class FakeWorkflow:
    started: dict[str, WorkflowRequest] = field(default_factory=dict)

    def start(self, execution_name: str, request: WorkflowRequest) -> tuple[str, bool]:
        arn = f"arn:aws:states:us-east-1:123456789012:execution:fine-tune:{execution_name}"
        if execution_name in self.started:
            return arn, False
        self.started[execution_name] = request
        return arn, True


def registry_table(name: str = "registry") -> Any:
    """A moto DynamoDB table with the key schema template.yaml declares (call inside mock_aws)."""
    props = load_template(REPO / "template.yaml")["Resources"]["RegistryTable"]["Properties"]
    client = boto3.client("dynamodb", region_name="us-east-1")
    client.create_table(
        TableName=name,
        AttributeDefinitions=props["AttributeDefinitions"],
        KeySchema=props["KeySchema"],
        GlobalSecondaryIndexes=props["GlobalSecondaryIndexes"],
        BillingMode=props["BillingMode"],
    )
    return boto3.resource("dynamodb", region_name="us-east-1").Table(name)


def make_registry() -> Registry:
    """The DynamoDB registry on a moto table (call inside mock_aws)."""
    return Registry(registry_table())


@dataclass
class InMemoryRegistry:
    """The registry in dicts, behaving as the DynamoDB one does (tests/unit/test_registry_api.py
    runs its tests on both): records come back equal, listings in the same order, and the
    same errors for what is missing, duplicated or already taken."""

    datasets: dict[str, DatasetRecord] = field(default_factory=dict)
    notices: set[tuple[str, str]] = field(default_factory=set)
    jobs: dict[str, JobRecord] = field(default_factory=dict)  # by dataset id
    job_ids: dict[str, str] = field(default_factory=dict)  # provider job id -> dataset id
    job_listed_at: dict[str, datetime] = field(default_factory=dict)
    models: dict[str, ModelRecord] = field(default_factory=dict)
    # Each alias: its versions, oldest first, and the number of the one that serves.
    alias_versions: dict[str, list[AliasVersion]] = field(default_factory=dict)
    alias_current: dict[str, int] = field(default_factory=dict)
    keys: dict[str, ApiKeyRecord] = field(default_factory=dict)  # by hash
    # By (model, shutdown date, days before): each retirement warning claimed.
    retirement_warnings: dict[tuple[str, date, int], RetirementWarning] = field(
        default_factory=dict
    )
    wait_tokens: dict[str, WaitToken] = field(default_factory=dict)  # by provider job id
    event_deliveries: set[str] = field(default_factory=set)
    # Provider job ids whose end came while no wait was parked, with the note's expiry.
    job_end_notes: dict[str, datetime] = field(default_factory=dict)

    # Datasets

    def put_dataset(self, record: DatasetRecord) -> None:
        self.datasets[record.dataset_id] = record

    def get_dataset(self, dataset_id: str) -> DatasetRecord | None:
        return self.datasets.get(dataset_id)

    def mark_dataset(self, dataset_id: str, status: str) -> None:
        if dataset_id in self.datasets:
            self.datasets[dataset_id] = self.datasets[dataset_id].model_copy(
                update={"status": status}
            )

    def claim_notice(self, dataset_id: str, kind: str, now: datetime) -> bool:
        if (dataset_id, kind) in self.notices:
            return False
        self.notices.add((dataset_id, kind))
        return True

    def release_notice(self, dataset_id: str, kind: str) -> None:
        self.notices.discard((dataset_id, kind))

    # Jobs

    def put_job(self, record: JobRecord) -> None:
        self.jobs[record.dataset_id] = record
        self.job_listed_at[record.dataset_id] = record.started_at or datetime.now(UTC)
        if record.job_id is not None:
            self.job_ids[record.job_id] = record.dataset_id

    def get_job(self, dataset_id: str) -> JobRecord | None:
        return self.jobs.get(dataset_id)

    def get_job_by_id(self, job_id: str) -> JobRecord | None:
        dataset_id = self.job_ids.get(job_id)
        return self.jobs[dataset_id] if dataset_id else None

    def list_jobs(self, limit: int = 50) -> list[JobRecord]:
        newest = sorted(self.jobs, key=lambda dataset_id: self.job_listed_at[dataset_id])
        return [self.jobs[dataset_id] for dataset_id in reversed(newest)][:limit]

    # Models

    def register_model(self, record: ModelRecord) -> bool:
        if record.model_id in self.models:
            return False
        self.models[record.model_id] = record
        return True

    def set_model_serving(self, model_id: str, status: str) -> None:
        self.models[model_id] = self.models[model_id].model_copy(update={"serving_status": status})

    def set_model_evaluation(self, model_id: str, summary: EvaluationSummary) -> None:
        self.models[model_id] = self.models[model_id].model_copy(update={"evaluation": summary})

    def get_model(self, model_id: str) -> ModelRecord | None:
        return self.models.get(model_id)

    def list_models(self, limit: int = 50) -> list[ModelRecord]:
        newest = sorted(self.models.values(), key=lambda model: model.created_at, reverse=True)
        return newest[:limit]

    def every_model(self) -> list[ModelRecord]:
        return sorted(self.models.values(), key=lambda model: model.created_at)

    def record_model_use(self, model_id: str, day: date) -> bool:
        model = self.models.get(model_id)
        if model is None or (model.last_used_on is not None and model.last_used_on >= day):
            return False
        self.models[model_id] = model.model_copy(update={"last_used_on": day})
        return True

    def claim_retirement_warning(self, warning: RetirementWarning) -> bool:
        key = (warning.model_id, warning.shutdown_date, warning.threshold_days)
        if key in self.retirement_warnings:
            return False
        self.retirement_warnings[key] = warning
        return True

    def release_retirement_warning(self, warning: RetirementWarning) -> None:
        self.retirement_warnings.pop(
            (warning.model_id, warning.shutdown_date, warning.threshold_days), None
        )

    # Aliases

    def create_alias_version(
        self, alias: str, variants: list[Variant], note: str | None, now: datetime
    ) -> AliasVersion:
        versions = self.alias_versions.get(alias, [])
        version = AliasVersion(
            alias=alias, version=len(versions) + 1, variants=variants, note=note, created_at=now
        )
        self.alias_versions[alias] = [*versions, version]
        self.alias_current[alias] = version.version
        return version

    def set_alias_current(self, alias: str, version: int, now: datetime) -> AliasVersion:
        target = self.get_alias_version(alias, version)
        self.alias_current[alias] = version
        return target

    def get_alias_version(self, alias: str, version: int | None = None) -> AliasVersion:
        versions = self.list_alias_versions(alias)
        number = self.alias_current[alias] if version is None else version
        if not 1 <= number <= len(versions):
            raise AliasVersionNotFound(alias, number)
        return versions[number - 1]

    def list_aliases(self) -> list[tuple[str, int, AliasVersion]]:
        return [
            (name, self.alias_current[name], self.get_alias_version(name))
            for name in sorted(self.alias_versions)
        ]

    def list_alias_versions(self, alias: str) -> list[AliasVersion]:
        if alias not in self.alias_versions:
            raise AliasNotFound(alias)
        return list(self.alias_versions[alias])

    # Inference API keys

    def put_api_key(self, record: ApiKeyRecord) -> None:
        if record.key_hash in self.keys:
            raise DuplicateApiKeyError(f"API key {record.key_id} is already stored")
        self.keys[record.key_hash] = record

    def get_api_key(self, key_hash: str) -> ApiKeyRecord | None:
        return self.keys.get(key_hash)

    def find_api_key(self, key_id: str) -> ApiKeyRecord | None:
        return next((record for record in self.keys.values() if record.key_id == key_id), None)

    def list_api_keys(self) -> list[ApiKeyRecord]:
        return sorted(self.keys.values(), key=lambda record: record.created_at, reverse=True)

    def revoke_api_key(self, key_id: str, now: datetime) -> ApiKeyRecord:
        record = self.find_api_key(key_id)
        if record is None:
            raise ApiKeyNotFound(key_id)
        if record.revoked_at is None:
            record = record.model_copy(update={"revoked_at": now})
            self.keys[record.key_hash] = record
        return record

    # Job events

    def park_wait_token(self, token: WaitToken) -> None:
        self.wait_tokens[token.job_id] = token

    def take_wait_token(self, job_id: str, now: datetime) -> WaitToken | None:
        token = self.wait_tokens.pop(job_id, None)
        return None if token is None or token.expired(now) else token

    def note_job_end(self, job_id: str, now: datetime) -> None:
        self.job_end_notes[job_id] = now + JOB_END_NOTE_LIFETIME

    def take_job_end_note(self, job_id: str, now: datetime) -> bool:
        expiry = self.job_end_notes.pop(job_id, None)
        return expiry is not None and now < expiry

    def claim_event_delivery(self, delivery_id: str, now: datetime) -> bool:
        if delivery_id in self.event_deliveries:
            return False
        self.event_deliveries.add(delivery_id)
        return True

    def release_event_delivery(self, delivery_id: str) -> None:
        self.event_deliveries.discard(delivery_id)


@dataclass
class FakeWaitingRuns:
    """The workflow's waits: the tokens of the runs that still wait, and those resumed."""

    waiting: set[str] = field(default_factory=set)
    resumed: list[str] = field(default_factory=list)
    error: Exception | None = None

    def resume(self, task_token: str) -> bool:
        if self.error is not None:
            raise self.error
        if task_token not in self.waiting:
            return False
        self.waiting.remove(task_token)
        self.resumed.append(task_token)
        return True


@dataclass
class LambdaContext:
    """What Powertools reads from the Lambda context object."""

    function_name: str = "test-function"
    memory_limit_in_mb: int = 512
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:test-function"
    aws_request_id: str = "request-1"


if TYPE_CHECKING:
    from sft_pipeline.adapters.workflow import Workflow
    from sft_pipeline.api.auth import KeyLookup
    from sft_pipeline.api.service import ApiRegistry
    from sft_pipeline.api_keys import ApiKeyStore
    from sft_pipeline.pipeline.job_events import WaitingRuns, WaitTokens
    from sft_pipeline.pipeline.retirement import RetirementRegistry
    from sft_pipeline.pipeline.retrain import RetrainLookup
    from sft_pipeline.pipeline.steps import WorkflowRegistry
    from sft_pipeline.pipeline.validate_upload import DatasetRegistry

    # Each consumer's registry, played by the fake and by the DynamoDB adapter alike.
    for _registry in (InMemoryRegistry(), Registry(None)):
        _validation_step: DatasetRegistry = _registry
        _workflow: WorkflowRegistry = _registry
        _api: ApiRegistry = _registry
        _authorizer: KeyLookup = _registry
        _keys: ApiKeyStore = _registry
        _watcher: RetirementRegistry = _registry
        _retrain: RetrainLookup = _registry
        _wait_tokens: WaitTokens = _registry
    for _runs in (FakeWaitingRuns(), Workflow(None, "")):
        _waiting_runs: WaitingRuns = _runs
