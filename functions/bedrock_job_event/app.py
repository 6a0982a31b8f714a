"""EventBridge (Amazon Bedrock's "Model Customization Job State Change", job ended) -> wakes
the run waiting for the job. EventBridge retries a failed invocation; a lost event costs
the run one poll interval, nothing else."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from sft_pipeline import runtime
from sft_pipeline.observability import logger
from sft_pipeline.pipeline.job_events import handle_job_event
from sft_pipeline.providers.bedrock_provider import job_event_from_eventbridge
from sft_pipeline.settings import BedrockJobEventSettings, load_settings

# At cold start: a variable the template does not set fails here, by its name.
load_settings(BedrockJobEventSettings)


@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, str]:
    job_event = job_event_from_eventbridge(event)
    outcome = handle_job_event(job_event, runtime.registry(), runtime.workflow(), datetime.now(UTC))
    logger.info(
        "Job event handled",
        extra={"event": job_event.kind, "job_id": job_event.ended_job_id, "outcome": outcome},
    )
    return {"outcome": outcome.value}
