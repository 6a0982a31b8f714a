"""SNS subscriber: posts each run's notification to Slack as a Block Kit message."""

from __future__ import annotations

from aws_lambda_powertools.utilities.data_classes import SNSEvent, event_source
from aws_lambda_powertools.utilities.typing import LambdaContext

from sft_pipeline.adapters.notifier import notification_from_sns
from sft_pipeline.adapters.secrets import read_secret
from sft_pipeline.adapters.slack import SlackWebhook, slack_blocks
from sft_pipeline.observability import logger
from sft_pipeline.settings import SlackNotifierSettings, load_settings

# At cold start: a variable the template does not set fails here, by its name.
load_settings(SlackNotifierSettings)


@logger.inject_lambda_context(clear_state=True)
@event_source(data_class=SNSEvent)
def lambda_handler(event: SNSEvent, context: LambdaContext) -> dict[str, int]:
    settings = load_settings(SlackNotifierSettings)
    webhook = SlackWebhook.from_secret(
        read_secret(settings.webhook_secret_arn), settings.timeout_seconds
    )
    if webhook is None:
        logger.info("Slack is switched off in the webhook secret; nothing posted")
        return {"posted": 0}
    posted = 0
    for record in event.records:
        notification = notification_from_sns(record.sns.message)
        logger.set_correlation_id(notification.dataset.dataset_id)
        # Raises SlackDeliveryError on failure: Lambda retries, then dead-letters the event.
        webhook.post(slack_blocks(notification))
        posted += 1
        logger.info(
            "Posted to Slack",
            extra={"dataset_id": notification.dataset.dataset_id, "outcome": notification.outcome},
        )
    return {"posted": posted}
