"""In-memory stand-ins for the pipeline's ports, for unit tests of the steps and handlers."""

from __future__ import annotations

import io
import itertools
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import boto3

from sft_local.template import load_template
from sft_pipeline.adapters.registry import Registry
from sft_pipeline.jobs import JobState, UploadRef, WorkflowRequest
from sft_pipeline.notifications import Notification
from sft_pipeline.providers.base import (
    JobRequest,
    ProviderError,
    ProviderJob,
    Serving,
    ServingStatus,
    TrainingMetrics,
)
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
class FakeFiles:
    objects: dict[tuple[str, str], bytes] = field(default_factory=dict)
    metadata: dict[str, str] = field(default_factory=dict)
    lineage: dict[UploadRef, str] = field(default_factory=dict)

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

        @contextmanager
        def opener() -> Iterator[BinaryReadable]:
            yield io.BytesIO(data)

        return DataSource(name=f"s3://{bucket}/{key}", open=opener, size=len(data))

    def find_source(self, bucket: str, key: str) -> DataSource | None:
        return self.source(bucket, key) if (bucket, key) in self.objects else None


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
    return Registry(registry_table())


@dataclass
class LambdaContext:
    """What Powertools reads from the Lambda context object."""

    function_name: str = "test-function"
    memory_limit_in_mb: int = 512
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:test-function"
    aws_request_id: str = "request-1"
