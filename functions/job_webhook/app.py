"""API Gateway (a public route: no bearer key, the signature is the authentication) -> a
provider's fine-tuning webhook (OpenAI, Azure OpenAI: Standard Webhooks) wakes the run
waiting for the job. Answers at once: 400 for what is not provably from the provider,
2xx for everything else, so the provider retries only what failed here."""

from __future__ import annotations

import base64
import binascii
import json
from datetime import UTC, datetime
from typing import Any

from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from sft_pipeline import runtime
from sft_pipeline.adapters.secrets import read_secret
from sft_pipeline.job_events import WebhookRejectedError
from sft_pipeline.observability import logger
from sft_pipeline.pipeline.job_events import handle_job_event
from sft_pipeline.providers.openai_provider import unwrap_job_webhook
from sft_pipeline.settings import JobWebhookSettings, load_settings

# At cold start: a variable the template does not set fails here, by its name.
load_settings(JobWebhookSettings)

# A job webhook is a few hundred bytes; anything far larger is not one.
MAX_WEBHOOK_BYTES = 64 * 1024


@logger.inject_lambda_context(
    correlation_id_path=correlation_paths.API_GATEWAY_REST, clear_state=True
)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    body = _body(event)
    if body is None:
        return _answer(413, "webhook_too_large")
    secret = read_secret(load_settings(JobWebhookSettings).openai_webhook_secret_arn)
    try:
        job_event = unwrap_job_webhook(body, event.get("headers") or {}, secret)
    except WebhookRejectedError as rejected:
        logger.warning("Webhook rejected", extra={"reason": str(rejected)})
        return _answer(400, "invalid_webhook")
    outcome = handle_job_event(job_event, runtime.registry(), runtime.workflow(), datetime.now(UTC))
    logger.info(
        "Webhook handled",
        extra={"event": job_event.kind, "job_id": job_event.ended_job_id, "outcome": outcome},
    )
    return _answer(200, outcome.value)


def _body(event: dict[str, Any]) -> bytes | None:
    """The body exactly as signed, or None when it is too large to be a webhook."""
    raw = event.get("body") or ""
    if len(raw) > MAX_WEBHOOK_BYTES * 2:  # checked before decoding anything
        return None
    try:
        body = (
            base64.b64decode(raw, validate=True) if event.get("isBase64Encoded") else raw.encode()
        )
    except binascii.Error:
        body = b""  # not base64 after all: refused by the signature check
    return body if len(body) <= MAX_WEBHOOK_BYTES else None


def _answer(status: int, code: str) -> dict[str, Any]:
    return {
        "statusCode": status,
        "headers": {"Content-Type": "application/json"},
        "body": json.dumps({"status": code}),
    }
