"""Slack: a notification as a Block Kit message, posted to an incoming webhook with the
standard library only.

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

from sft_pipeline.adapters.notification_text import (
    STYLES,
    Fact,
    evaluation_text,
    headline,
    reference_facts,
    subject_for,
    summary_facts,
)
from sft_pipeline.notifications import Notification, hint_for, usage_example
from sft_pipeline.settings import DEFAULT_SLACK_TIMEOUT_SECONDS

# What the webhook secret holds when Slack is switched off.
DISABLED_VALUES = frozenset({"", "disabled"})
# Block Kit's limits: Slack refuses the whole message (400 invalid_blocks) past any of them.
SLACK_HEADER_MAX_CHARS = 150
SLACK_TEXT_MAX_CHARS = 3000
SLACK_FIELD_MAX_CHARS = 2000
SLACK_MAX_FIELDS = 10
SLACK_MAX_CONTEXT_ELEMENTS = 10


class SlackDeliveryError(RuntimeError):
    """Slack did not accept the message (HTTP error, timeout or network failure)."""


@dataclass(frozen=True)
class SlackWebhook:
    """One incoming webhook. The URL is a credential, so it stays out of repr and errors."""

    url: str = field(repr=False)
    timeout_seconds: float = DEFAULT_SLACK_TIMEOUT_SECONDS

    def __post_init__(self) -> None:
        if urlsplit(self.url).scheme not in {"https", "http"}:
            raise ValueError("the Slack webhook URL must be an http(s) URL")

    @classmethod
    def from_secret(
        cls, secret: str, timeout_seconds: float = DEFAULT_SLACK_TIMEOUT_SECONDS
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


def slack_blocks(n: Notification) -> dict[str, Any]:
    """A Slack Block Kit message, within Slack's size limits whatever the input."""
    style = STYLES[n.outcome]
    blocks: list[dict[str, Any]] = [
        {
            "type": "header",
            "text": {
                "type": "plain_text",
                "text": _clip(
                    f"{style.emoji} {style.title}: {headline(n)}", SLACK_HEADER_MAX_CHARS
                ),
                "emoji": True,
            },
        },
        {
            "type": "section",
            "fields": [
                _mrkdwn(f"*{fact.label}*\n{_slack_value(fact)}", SLACK_FIELD_MAX_CHARS)
                for fact in summary_facts(n)[:SLACK_MAX_FIELDS]
            ],
        },
    ]
    if evaluation := evaluation_text(n):
        sentence = _clip(_escape(evaluation.sentence), SLACK_TEXT_MAX_CHARS // 2)
        text = f"*{_escape(evaluation.heading)}*\n{sentence}"
        if evaluation.table:
            # The table is clipped inside its code block, so the block stays closed.
            room = SLACK_TEXT_MAX_CHARS - len(text) - len("\n``````")
            text += "\n```" + _clip(_escape("\n".join(evaluation.table)), room) + "```"
        blocks.append(_section(text))
    if n.error_code or n.error_message:
        code = f" `{_escape(n.error_code)}`" if n.error_code else ""
        message = _escape(n.error_message or "no message from the provider")
        blocks.append(_section(f"*Error*{code}\n{message}"))
    if hint := hint_for(n):
        blocks.append(_section(f"*What to do*\n{_escape(hint)}"))
    if n.serving_note:
        blocks.append(_section(f"*Serving*\n{_escape(n.serving_note)}"))
    if example := usage_example(n):
        blocks.append(_section("*Call the model*\n```" + _escape("\n".join(example)) + "```"))
    if references := reference_facts(n):
        elements = [
            _mrkdwn(f"{fact.label}: {_slack_value(fact)}", SLACK_TEXT_MAX_CHARS)
            for fact in references[:SLACK_MAX_CONTEXT_ELEMENTS]
        ]
        blocks.append({"type": "context", "elements": elements})
    return {"text": subject_for(n), "blocks": blocks}


def _slack_value(fact: Fact) -> str:
    if fact.kind == "link":
        return f"<{fact.value}|open>"
    value = _escape(fact.value)
    return f"`{value}`" if fact.kind == "code" else value


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": _mrkdwn(text, SLACK_TEXT_MAX_CHARS)}


def _mrkdwn(text: str, limit: int) -> dict[str, str]:
    return {"type": "mrkdwn", "text": _clip(text, limit)}


def _escape(text: str) -> str:
    """Slack mrkdwn treats &, < and > as control characters."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _clip(text: str, limit: int) -> str:
    """Cut to ``limit`` characters with an ellipsis, never through an ``&amp;``-style entity."""
    if len(text) <= limit:
        return text
    cut = text[: limit - 1]
    amp = cut.rfind("&")
    if amp != -1 and ";" not in cut[amp:]:
        cut = cut[:amp]
    return cut + "…"
