"""OpenAI fine-tuning adapter: the only module that imports ``openai``.

Create calls run with SDK retries off (the API has no idempotency key, so a
retried create could start a second job); the workflow retries instead, after
looking the job up by its metadata tag. Reads keep the SDK's own retries.
"""

from __future__ import annotations

import base64
import binascii
import csv
import io
import time
from collections.abc import Callable, Mapping
from functools import lru_cache
from typing import TYPE_CHECKING, Any, BinaryIO, TypeVar

import openai
from openai.types.fine_tuning import FineTuningJob, job_create_params
from pydantic import BaseModel

from sft_pipeline.adapters.secrets import read_secret
from sft_pipeline.evaluation.report_html import LossPoint
from sft_pipeline.job_events import JobEvent, WebhookRejectedError
from sft_pipeline.jobs import JobState, ProviderName
from sft_pipeline.providers import Purpose
from sft_pipeline.providers.base import (
    JobRequest,
    ProviderError,
    ProviderPermanentError,
    ProviderRateLimitError,
    ProviderTransientError,
    Serving,
    ServingStatus,
    TrainingMetrics,
    metric_value,
)
from sft_pipeline.records import ProviderJob
from sft_pipeline.redaction import redact_secrets

UPLOAD_TAG_KEY = "sft_upload"
FILES_API_LIMIT = 512 * 1024 * 1024
UPLOAD_PART_SIZE = 64 * 1024 * 1024
# A 429 asking to wait longer than this is a quota, not a burst: retrying soon cannot help.
MAX_RATE_LIMIT_WAIT = 120.0
STATE_BY_STATUS = {
    "succeeded": JobState.SUCCEEDED,
    "failed": JobState.FAILED,
    "cancelled": JobState.CANCELLED,
}
QUOTA_CODES = frozenset({"daily_rate_limit_exceeded", "insufficient_quota"})
# Webhook types are "fine_tuning.job.<status>"; those of an ended job's status wake its run.
JOB_WEBHOOK_PREFIX = "fine_tuning.job."
T = TypeVar("T")

if TYPE_CHECKING:
    from sft_pipeline.settings import ProviderSettings


def _error_code(exc: openai.APIStatusError, default: str) -> str:
    return exc.code if isinstance(exc.code, str) and exc.code else default


def _retry_after(exc: openai.APIStatusError) -> float | None:
    headers = exc.response.headers
    for name, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        value = headers.get(name)
        if value:
            try:
                return float(value) * scale
            except ValueError:
                continue
    return None


def _endpoint(exc: openai.APIConnectionError) -> str:
    """The host the request went to (the base URL may point anywhere OpenAI-compatible);
    never the whole URL, which could carry credentials."""
    url = exc.request.url
    return f"{url.host}:{url.port}" if url.port else url.host


def translate_error(exc: openai.OpenAIError) -> ProviderError:
    """Map the SDK's exceptions onto the port's transient / rate-limited / permanent split.

    The provider's text is redacted here (OpenAI's 401 quotes the key it was sent), so
    nothing downstream ever holds a secret.
    """
    message = redact_secrets(exc.message if isinstance(exc, openai.APIError) else str(exc))
    if isinstance(exc, openai.APITimeoutError):
        return ProviderTransientError("timeout", f"{_endpoint(exc)} did not answer in time")
    if isinstance(exc, openai.APIConnectionError):
        return ProviderTransientError("connection_error", f"could not reach {_endpoint(exc)}")
    if isinstance(exc, openai.RateLimitError):
        code = _error_code(exc, "rate_limit_exceeded")
        wait = _retry_after(exc)
        if code in QUOTA_CODES or (wait is not None and wait > MAX_RATE_LIMIT_WAIT):
            return ProviderPermanentError(code, message)
        return ProviderRateLimitError(code, message, wait)
    if isinstance(exc, openai.AuthenticationError):
        return ProviderPermanentError("authentication_failed", message)
    if isinstance(exc, openai.PermissionDeniedError):
        return ProviderPermanentError("fine_tuning_unavailable", message)
    if isinstance(exc, openai.APIStatusError):
        if exc.status_code >= 500 or exc.status_code in (408, 409):
            return ProviderTransientError(f"http_{exc.status_code}", message)
        return ProviderPermanentError(_error_code(exc, f"http_{exc.status_code}"), message)
    return ProviderPermanentError("openai_error", message)


def to_provider_job(job: FineTuningJob) -> ProviderJob:
    error = job.error
    hyper = job.hyperparameters.model_dump(exclude_none=True) if job.hyperparameters else {}
    return ProviderJob(
        job_id=job.id,
        status=job.status,
        state=STATE_BY_STATUS.get(job.status, JobState.RUNNING),
        base_model=job.model,
        fine_tuned_model=job.fine_tuned_model,
        trained_tokens=job.trained_tokens,
        created_at=job.created_at,
        finished_at=job.finished_at,
        estimated_finish=job.estimated_finish,
        hyperparameters={k: v for k, v in hyper.items() if isinstance(v, (int, float, str))},
        result_files=list(job.result_files),
        # While validating, OpenAI may send an empty error object: only a code counts.
        error_code=error.code if error and error.code else None,
        error_message=redact_secrets(error.message) if error and error.code else None,
    )


def parse_result_metrics(content: bytes) -> TrainingMetrics | None:
    """Final losses and the loss curve from the result CSV (which OpenAI may serve
    base64-encoded)."""
    text = content.lstrip()
    if not text.startswith(b"step"):
        try:
            text = base64.b64decode(text, validate=False)
        except (binascii.Error, ValueError):
            return None
    rows = list(csv.DictReader(io.StringIO(text.decode("utf-8", "replace"))))
    if not rows:
        return None

    def last(column: str) -> float | None:
        for row in reversed(rows):
            if (row.get(column) or "").strip():
                return metric_value(row.get(column))
        return None

    step = last("step")
    return TrainingMetrics(
        steps=int(step) if step is not None else len(rows),
        train_loss=last("train_loss"),
        valid_loss=last("valid_loss"),
        curve=[
            LossPoint(
                step=int(number),
                train_loss=metric_value(row.get("train_loss")),
                valid_loss=metric_value(row.get("valid_loss")),
            )
            for row in rows
            if (number := metric_value(row.get("step"))) is not None
        ],
    )


class OpenAIProvider:
    name: ProviderName = "openai"

    def __init__(
        self,
        client: openai.OpenAI,
        sleep: Callable[[float], None] = time.sleep,
        max_rate_limit_wait: float = 20.0,
    ) -> None:
        self._client = client
        self._create_client = client.with_options(max_retries=0)
        self._sleep = sleep
        self._max_rate_limit_wait = max_rate_limit_wait

    def _call(self, operation: Callable[[], T]) -> T:
        """Run one API call; honour one short Retry-After (a 429 means nothing was done)."""
        try:
            try:
                return operation()
            except openai.RateLimitError as limited:
                wait = _retry_after(limited)
                if wait is None or wait > self._max_rate_limit_wait:
                    raise
                self._sleep(wait)
                return operation()
        except openai.OpenAIError as exc:
            raise translate_error(exc) from exc

    def upload_file(
        self,
        filename: str,
        stream: BinaryIO,
        size: int,
        *,
        base_model: str = "",
        upload_tag: str = "",
    ) -> str:
        """OpenAI takes the chat JSONL as it is, whatever the model."""
        if size <= FILES_API_LIMIT:
            created = self._call(
                lambda: self._create_client.files.create(
                    file=(filename, stream, "application/jsonl"), purpose="fine-tune"
                )
            )
            return created.id
        upload = self._call(
            lambda: self._create_client.uploads.create(
                filename=filename, bytes=size, mime_type="text/jsonl", purpose="fine-tune"
            )
        )
        part_ids = []
        while chunk := stream.read(UPLOAD_PART_SIZE):
            part_ids.append(self._upload_part(upload.id, chunk))
        completed = self._call(
            lambda: self._create_client.uploads.complete(upload.id, part_ids=part_ids)
        )
        if completed.file is None:
            raise ProviderTransientError("upload_incomplete", f"upload {upload.id} has no file")
        return completed.file.id

    def _upload_part(self, upload_id: str, data: bytes) -> str:
        return self._call(lambda: self._create_client.uploads.parts.create(upload_id, data=data)).id

    def find_job(self, upload_tag: str) -> ProviderJob | None:
        page = self._call(
            lambda: self._client.fine_tuning.jobs.list(
                metadata={UPLOAD_TAG_KEY: upload_tag}, limit=10
            )
        )
        tagged = [j for j in page.data if (j.metadata or {}).get(UPLOAD_TAG_KEY) == upload_tag]
        return to_provider_job(max(tagged, key=lambda j: j.created_at)) if tagged else None

    def create_job(self, request: JobRequest) -> ProviderJob:
        method: job_create_params.Method = {
            "type": "supervised",
            "supervised": {"hyperparameters": request.hyperparameters.model_dump()},  # type: ignore[typeddict-item]
        }
        created = self._call(
            lambda: self._create_client.fine_tuning.jobs.create(
                model=request.base_model,
                training_file=request.training_file,
                validation_file=request.validation_file,
                suffix=request.suffix,
                seed=request.seed,
                metadata={UPLOAD_TAG_KEY: request.upload_tag},
                method=method,
            )
        )
        return to_provider_job(created)

    def get_job(self, job_id: str) -> ProviderJob:
        return to_provider_job(self._call(lambda: self._client.fine_tuning.jobs.retrieve(job_id)))

    def cancel_job(self, job_id: str) -> ProviderJob:
        job = self.get_job(job_id)
        if job.state is not JobState.RUNNING:
            return job
        return to_provider_job(self._call(lambda: self._client.fine_tuning.jobs.cancel(job_id)))

    def recent_events(self, job_id: str, limit: int) -> list[str]:
        page = self._call(lambda: self._client.fine_tuning.jobs.list_events(job_id, limit=limit))
        return [event.message for event in page.data[:limit]]

    def final_metrics(self, job: ProviderJob) -> TrainingMetrics | None:
        if not job.result_files:
            return None
        content = self._call(lambda: self._client.files.content(job.result_files[0]).content)
        return parse_result_metrics(content)

    def serve(self, job: ProviderJob) -> Serving:
        if job.fine_tuned_model is None:
            raise ProviderPermanentError("no_model", f"job {job.job_id} produced no model")
        return Serving(model=job.fine_tuned_model, status="ready")

    def serving_status(self, serving_model: str) -> ServingStatus:
        return "ready"

    def chat(self, body: dict[str, Any]) -> dict[str, Any]:
        completion = self._call(lambda: self._client.chat.completions.create(**body))
        result: dict[str, Any] = completion.model_dump(mode="json", exclude_unset=True)
        return result


# Control-plane calls stay well under the task timeouts, the SDK's retries of reads included;
# inference answers or fails inside API Gateway's 29 seconds.
TIMEOUTS: dict[str, tuple[float, int, float]] = {
    # purpose: (timeout seconds, SDK retries, longest Retry-After waited out here)
    "workflow": (60.0, 2, 20.0),
    "inference": (25.0, 1, 0.0),
}


def build(settings: ProviderSettings, purpose: Purpose) -> OpenAIProvider:
    """The provider with its key read through the secrets cache (a rotated key is picked up)."""
    return _provider(read_secret(settings.openai_secret_arn), settings.openai_base_url, purpose)


@lru_cache(maxsize=4)
def _provider(api_key: str, base_url: str, purpose: Purpose) -> OpenAIProvider:
    """One provider (client and connection pool) per key: a rotated key gets a new one."""
    timeout, retries, rate_limit_wait = TIMEOUTS[purpose]
    client = openai.OpenAI(
        api_key=api_key, base_url=base_url or None, timeout=timeout, max_retries=retries
    )
    return OpenAIProvider(client, max_rate_limit_wait=rate_limit_wait)


class _WebhookSubject(BaseModel):
    id: str = ""


class _JobWebhook(BaseModel):
    """The part of a webhook's body the pipeline reads: ``{type, data: {id}}``."""

    type: str
    data: _WebhookSubject = _WebhookSubject()


def unwrap_job_webhook(payload: bytes, headers: Mapping[str, str], secret: str) -> JobEvent:
    """A webhook verified with the SDK's own Standard Webhooks check (OpenAI's and Azure
    OpenAI's scheme: HMAC over id, timestamp and body, 5 minutes' tolerance), as a job event.

    Raises WebhookRejectedError for a bad or missing signature, a stale or future timestamp,
    or a body that is not the signed JSON; the message never holds the secret."""
    try:
        _webhook_client().webhooks.unwrap(payload, headers, secret=secret)
        body = _JobWebhook.model_validate_json(payload)
    except ValueError as exc:  # InvalidWebhookSignatureError and ValidationError are ValueErrors
        raise WebhookRejectedError(_first_line(exc)) from None
    # Signed, so the header is there: the SDK read it to check the signature.
    delivery_id = next(value for name, value in headers.items() if name.lower() == "webhook-id")
    status = body.type.removeprefix(JOB_WEBHOOK_PREFIX)
    ended = body.type.startswith(JOB_WEBHOOK_PREFIX) and status in STATE_BY_STATUS
    return JobEvent(
        delivery_id=delivery_id,
        kind=body.type[:200],
        ended_job_id=body.data.id if ended and body.data.id else None,
    )


@lru_cache(maxsize=1)
def _webhook_client() -> openai.OpenAI:
    """Verifying a webhook calls no API: this client only carries the SDK's helper."""
    return openai.OpenAI(api_key="not-used-to-verify-webhooks", max_retries=0)


def _first_line(exc: Exception) -> str:
    return str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
