"""OpenAI's fine-tuning webhooks, as the emulator sends them when a job ends.

Signed the Standard Webhooks way, as OpenAI signs them: ``webhook-id``, ``webhook-timestamp``
and ``webhook-signature`` (``v1,`` and the base64 HMAC-SHA256 of ``id.timestamp.body``,
keyed with the base64 part of the ``whsec_`` secret). The timestamp is wall time, not the
emulator's clock: it is checked against the receiver's clock.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import urllib.error
import urllib.request
from dataclasses import dataclass

from sft_local.openai_emulator.state import new_id

SECRET_PREFIX = "whsec_"
DELIVERY_TIMEOUT_SECONDS = 10.0


@dataclass(frozen=True)
class JobEnd:
    """A fine-tuning job reached a final status at ``at`` (the emulator's clock, seconds)."""

    job_id: str
    status: str
    at: float

    @property
    def event_type(self) -> str:
        return f"fine_tuning.job.{self.status}"


@dataclass(frozen=True)
class SentWebhook:
    """A webhook as it went out, and what the receiver answered (status 0: no answer)."""

    url: str
    headers: dict[str, str]
    body: bytes
    status: int
    answer: bytes = b""


def signed_webhook(
    end: JobEnd, secret: str, *, now: float | None = None
) -> tuple[dict[str, str], bytes]:
    """The headers and body of the webhook that tells of ``end``."""
    body = json.dumps(
        {
            "object": "event",
            "id": new_id("evt_"),
            "type": end.event_type,
            "created_at": int(end.at),
            "data": {"id": end.job_id},
        }
    ).encode()
    webhook_id = new_id("wh_")
    timestamp = str(int(time.time() if now is None else now))
    return {
        "content-type": "application/json",
        "webhook-id": webhook_id,
        "webhook-timestamp": timestamp,
        "webhook-signature": "v1," + signature(secret, webhook_id, timestamp, body),
    }, body


def signature(secret: str, webhook_id: str, timestamp: str, body: bytes) -> str:
    key = base64.b64decode(secret.removeprefix(SECRET_PREFIX))
    signed = f"{webhook_id}.{timestamp}.".encode() + body
    return base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


def post(url: str, headers: dict[str, str], body: bytes) -> SentWebhook:
    """POST the webhook; what the receiver answered, as OpenAI would log it."""
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=DELIVERY_TIMEOUT_SECONDS) as response:
            return SentWebhook(url, headers, body, int(response.status), response.read())
    except urllib.error.HTTPError as error:
        return SentWebhook(url, headers, body, error.code, error.read())
    except OSError:
        return SentWebhook(url, headers, body, 0)


class WebhookSender:
    """Sends each job end to one endpoint, signed with one secret."""

    def __init__(self, url: str, secret: str) -> None:
        if not secret.startswith(SECRET_PREFIX):
            raise ValueError(f"a webhook secret starts with {SECRET_PREFIX}")
        self.url = url
        self._secret = secret

    def __call__(self, end: JobEnd) -> SentWebhook:
        headers, body = signed_webhook(end, self._secret)
        return post(self.url, headers, body)
