"""The provider ports: what the pipeline needs from any provider.

Adapters (OpenAI, Amazon Bedrock) implement both ports: :class:`TrainingPort` (upload,
create, poll, cancel) for the jobs, :class:`ChatPort` for answers. Consumers take only
the port they call, so a model never trained here is answered through the chat port
alone. Adapters translate their own errors into the exceptions below. The workflow retries
on the exception *class names*, so those names are part of the contract with
statemachine/*.asl.json.
"""

from __future__ import annotations

import math
from typing import Any, BinaryIO, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field

from sft_pipeline.evaluation.report_html import LossPoint
from sft_pipeline.jobs import Hyperparameters, ProviderName
from sft_pipeline.records import ProviderJob


class ProviderError(Exception):
    """Base of every provider failure. ``code`` is stable and machine-readable."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class ProviderTransientError(ProviderError):
    """5xx, connection reset, timeout: the workflow retries with backoff and jitter."""


class ProviderRateLimitError(ProviderError):
    """429 that a short wait can fix: retried by the workflow, longer and slower."""

    def __init__(self, code: str, message: str, retry_after: float | None) -> None:
        super().__init__(code, message)
        self.retry_after = retry_after


class ProviderPermanentError(ProviderError):
    """Bad request, bad key, refused organisation, daily cap: retrying cannot help."""


ServingStatus = Literal["ready", "deploying", "needs_provisioned_throughput", "disabled"]


class Serving(BaseModel):
    """How a trained model is called: ``model`` is what inference requests name."""

    model_config = ConfigDict(frozen=True)

    model: str
    status: ServingStatus
    note: str | None = None


class TrainingMetrics(BaseModel):
    steps: int
    train_loss: float | None = None
    valid_loss: float | None = None
    # Every step the provider's result file reports, for the model card's loss chart.
    curve: list[LossPoint] = Field(default_factory=list)


def metric_value(cell: str | None) -> float | None:
    """A cell of a provider's metrics CSV as a finite number; None when empty or not one."""
    try:
        number = float((cell or "").strip())
    except ValueError:
        return None
    return number if math.isfinite(number) else None


class JobRequest(BaseModel):
    """A provider-neutral request to train one upload."""

    model_config = ConfigDict(frozen=True)

    base_model: str
    training_file: str
    validation_file: str | None = None
    suffix: str | None = None
    seed: int | None = None
    hyperparameters: Hyperparameters
    # Identifies the upload at the provider, so a retried launch finds its job.
    upload_tag: str


class TrainingPort(Protocol):
    """What trains: the workflow's job steps, and the API's job routes (events, cancel)."""

    name: ProviderName

    def upload_file(
        self, filename: str, stream: BinaryIO, size: int, *, base_model: str, upload_tag: str
    ) -> str:
        """Upload a training or validation file for ``base_model``; return the provider's file id."""
        ...

    def find_job(self, upload_tag: str) -> ProviderJob | None:
        """The job already created for this upload, if any (makes launching idempotent)."""
        ...

    def create_job(self, request: JobRequest) -> ProviderJob: ...

    def get_job(self, job_id: str) -> ProviderJob: ...

    def cancel_job(self, job_id: str) -> ProviderJob: ...

    def recent_events(self, job_id: str, limit: int) -> list[str]:
        """The newest progress messages, newest first."""
        ...

    def final_metrics(self, job: ProviderJob) -> TrainingMetrics | None:
        """Final training and validation loss from the job's result files."""
        ...

    def serve(self, job: ProviderJob) -> Serving:
        """Make a succeeded job's model callable (at OpenAI it already is)."""
        ...


class ChatPort(Protocol):
    """What answers: any model the provider serves, trained here or not."""

    name: ProviderName

    def serving_status(self, serving_model: str) -> ServingStatus:
        """Whether a model being deployed can answer yet."""
        ...

    def chat(self, body: dict[str, Any]) -> dict[str, Any]:
        """One OpenAI-compatible chat completion (request and response as JSON objects)."""
        ...


class Provider(TrainingPort, ChatPort, Protocol):
    """One provider's adapter: both ports. The composition root hands each consumer one."""
