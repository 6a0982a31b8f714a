"""Posting messages to a Slack incoming webhook, with the standard library only.

Any failure raises ``SlackDeliveryError`` so that the Lambda invocation fails and
AWS retries it, then keeps the event in the dead-letter queue.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from http.client import HTTPException
from typing import Any
from urllib.error import HTTPError
from urllib.parse import urlsplit
from urllib.request import Request, urlopen

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

# What the webhook secret holds when Slack is switched off.
DISABLED_VALUES = frozenset({"", "disabled"})
# Slack answers within a second; waiting much longer only burns Lambda time before the retry.
DEFAULT_TIMEOUT_SECONDS = 5.0


class SlackDeliveryError(RuntimeError):
    """Slack did not accept the message (HTTP error, timeout or network failure)."""


class SlackSettings(BaseSettings):
    """The Slack notifier's environment: ``SLACK_WEBHOOK_SECRET_ARN``, ``SLACK_TIMEOUT_SECONDS``."""

    model_config = SettingsConfigDict(env_prefix="SLACK_", frozen=True)

    webhook_secret_arn: str
    timeout_seconds: float = Field(default=DEFAULT_TIMEOUT_SECONDS, gt=0)


@dataclass(frozen=True)
class SlackWebhook:
    """One incoming webhook. The URL is a credential, so it stays out of repr and errors."""

    url: str = field(repr=False)
    timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS

    def __post_init__(self) -> None:
        if urlsplit(self.url).scheme not in {"https", "http"}:
            raise ValueError("the Slack webhook URL must be an http(s) URL")

    @classmethod
    def from_secret(
        cls, secret: str, timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS
    ) -> SlackWebhook | None:
        """The webhook the secret names, or None when it says Slack is switched off."""
        url = secret.strip()
        if url.lower() in DISABLED_VALUES:
            return None
        return cls(url, timeout_seconds)

    def post(self, message: Mapping[str, Any]) -> None:
        """Post one message; raises SlackDeliveryError unless Slack answers 2xx."""
        request = Request(
            self.url,
            data=json.dumps(message).encode(),
            headers={"Content-Type": "application/json; charset=utf-8"},
            method="POST",
        )
        try:
            with urlopen(request, timeout=self.timeout_seconds) as response:
                response.read()
        except HTTPError as exc:
            # Slack names the problem in the body, e.g. "invalid_blocks" or "no_service".
            detail = exc.read(200).decode(errors="replace").strip() or exc.reason
            raise SlackDeliveryError(f"Slack answered HTTP {exc.code}: {detail}") from exc
        except (OSError, HTTPException) as exc:
            raise SlackDeliveryError(f"Slack could not be reached: {exc!r}") from exc
