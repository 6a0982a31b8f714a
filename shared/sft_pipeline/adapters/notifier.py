"""Publishing notifications to the SNS topic (email subscribers and the Slack notifier).

One publish carries two variants: email subscribers read ``email_text``, Lambda
subscribers (the Slack notifier) get the model as JSON and parse it with
``notification_from_sns``.
"""

from __future__ import annotations

import json
from typing import Any, Literal, TypedDict

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


class Notifier:
    def __init__(self, client: Any, topic_arn: str) -> None:
        self._client = client
        self._topic_arn = topic_arn

    def publish(self, notification: Notification) -> str:
        response = self._client.publish(TopicArn=self._topic_arn, **sns_message(notification))
        return str(response["MessageId"])


class MessageAttribute(TypedDict):
    DataType: Literal["String"]
    StringValue: str


class SnsPublishArgs(TypedDict):
    Subject: str
    Message: str
    MessageStructure: Literal["json"]
    MessageAttributes: dict[str, MessageAttribute]


def sns_message(n: Notification) -> SnsPublishArgs:
    """Everything ``sns.publish`` needs except TopicArn.

    Email subscribers get the readable text; Lambda subscribers get the model as JSON.
    The ``status`` attribute lets subscriptions filter (e.g. email on failures only).
    """
    text = email_text(n)
    return {
        "Subject": subject_for(n),
        "Message": json.dumps({"default": text, "email": text, "lambda": n.model_dump_json()}),
        "MessageStructure": "json",
        "MessageAttributes": {"status": {"DataType": "String", "StringValue": n.outcome.value}},
    }


def notification_from_sns(message: str) -> Notification:
    """Parse the message a Lambda subscriber receives (the JSON variant); ValidationError if not one."""
    return Notification.model_validate_json(message)


def email_text(n: Notification) -> str:
    """The plain-text email body."""
    style = STYLES[n.outcome]
    lines = [f"{style.title}: {headline(n)}", style.sentence, ""]
    lines += _aligned(summary_facts(n))
    if evaluation := evaluation_text(n):
        lines += ["", f"{evaluation.heading}:", f"  {evaluation.sentence}"]
        lines += [f"  {row}" for row in evaluation.table]
    if n.error_code or n.error_message:
        code = f" ({n.error_code})" if n.error_code else ""
        lines += ["", f"Error{code}:", f"  {n.error_message or 'no message from the provider'}"]
    if hint := hint_for(n):
        lines += ["", "What to do:", f"  {hint}"]
    if n.serving_note:
        lines += ["", "Serving:", f"  {n.serving_note}"]
    if example := usage_example(n):
        lines += ["", "Call the model:", *(f"  {line}" for line in example)]
    if references := reference_facts(n):
        lines += ["", *_aligned(references)]
    return "\n".join(lines) + "\n"


def _aligned(facts: list[Fact]) -> list[str]:
    return [f"{fact.label + ':':<16}{fact.value}" for fact in facts]
