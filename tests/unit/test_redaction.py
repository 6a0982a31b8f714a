"""Secrets never reach people: key-like strings in provider errors and notifications are
replaced, and the words around them stay readable."""

from __future__ import annotations

import datetime as dt

import pytest
from botocore.exceptions import ClientError
from hypothesis import given
from hypothesis import strategies as st

from sft_pipeline.adapters.notifier import email_text
from sft_pipeline.adapters.slack import slack_blocks
from sft_pipeline.notifications import DatasetRef, Notification, Outcome
from sft_pipeline.providers import bedrock_provider
from sft_pipeline.redaction import REDACTED, redact_secrets

OPENAI_401 = (
    "Incorrect API key provided: sk-proj-********************************************Qx9Z. "
    "You can find your API key at https://platform.openai.com/account/api-keys."
)


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        (OPENAI_401, "Qx9Z"),
        ("Incorrect API key provided: sk-abc***...xyz.", "xyz"),
        ("key sk-sft-AAAAbbbbCCCCddddEEEEffffGGGGhhhhIIIIjjjjKKK refused", "KKK"),
        ("signature checked with whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "MfKQ9r8G"),
        ("POST https://hooks.slack.com/services/T000/B000/XXXXyyyy failed", "XXXXyyyy"),
        ("sent Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.e30.sig", "eyJhbGci"),
        ("credentials AKIAIOSFODNN7EXAMPLE were refused", "IOSFODNN7"),
        ("aws_secret_access_key=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "wJalrXUt"),
    ],
)
def test_secrets_are_replaced(text: str, secret: str) -> None:
    redacted = redact_secrets(text)
    assert secret not in redacted
    assert REDACTED in redacted


def test_the_sentence_around_a_secret_stays() -> None:
    assert redact_secrets(OPENAI_401) == (
        "Incorrect API key provided: sk-[redacted]. "
        "You can find your API key at https://platform.openai.com/account/api-keys."
    )


@pytest.mark.parametrize(
    "text",
    [
        "The job failed: 12 examples exceed the 65,536 token limit.",
        "ft:gpt-4o-mini-2024-07-18:acme:support:AbC123xy is not ready",
        "task-level settings and risk-free tokens",
        "bearer of bad news",
    ],
)
def test_text_without_secrets_is_unchanged(text: str) -> None:
    assert redact_secrets(text) == text


@given(st.text())
def test_redacting_twice_changes_nothing_more(text: str) -> None:
    once = redact_secrets(text)
    assert redact_secrets(once) == once


def test_notifications_redact_as_a_last_guard() -> None:
    """Whatever error text reaches a notification, the email and Slack never show a key."""
    notification = Notification(
        outcome=Outcome.FAILED,
        dataset=DatasetRef(dataset_id="d1", bucket="b", key="training/a.jsonl", version_id="v1"),
        error_code="authentication_failed",
        error_message=OPENAI_401,
        validation_summary="key sk-live-0123456789abcdef0123 was used",
        finished_at=dt.datetime(2026, 12, 1, tzinfo=dt.UTC),
    )
    shown = email_text(notification) + str(slack_blocks(notification))
    assert "Qx9Z" not in shown
    assert "0123456789abcdef" not in shown
    assert "sk-[redacted]" in shown


def test_bedrock_errors_are_redacted_where_they_enter() -> None:
    refused = ClientError(
        {
            "Error": {
                "Code": "AccessDeniedException",
                "Message": "User with access key AKIAIOSFODNN7EXAMPLE is not authorized",
            }
        },
        "CreateModelCustomizationJob",
    )
    translated = bedrock_provider._translate(refused)
    assert "IOSFODNN7" not in str(translated)
    assert translated.message == "User with access key [redacted] is not authorized"
