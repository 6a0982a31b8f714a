"""Publishing notifications to the SNS topic (email subscribers and the Slack notifier)."""

from __future__ import annotations

from typing import Any

from sft_pipeline.notifications import Notification, sns_message


class Notifier:
    def __init__(self, client: Any, topic_arn: str) -> None:
        self._client = client
        self._topic_arn = topic_arn

    def publish(self, notification: Notification) -> str:
        response = self._client.publish(TopicArn=self._topic_arn, **sns_message(notification))
        return str(response["MessageId"])
