"""Workflow task: one look at the job (status, tokens, latest events, next wait).

A provider outage does not fail the task: the job is looked at again later, and a
long outage is told once through the notification topic.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from sft_pipeline import runtime
from sft_pipeline.jobs import WorkflowState
from sft_pipeline.observability import logger
from sft_pipeline.pipeline.steps import poll
from sft_pipeline.settings import PollJobSettings, load_settings

# At cold start: a variable the template does not set fails here, by its name.
load_settings(PollJobSettings)


@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    state = WorkflowState.model_validate(event)
    logger.set_correlation_id(state.request.dataset_id)
    logger.append_keys(dataset_id=state.request.dataset_id)
    progress = poll(
        state,
        runtime.provider(state.request.settings.provider),
        runtime.registry(),
        runtime.notifier(),
        datetime.now(UTC),
    )
    if progress.failed_polls:
        logger.warning(
            "Provider unreachable; the job is looked at again later",
            extra={
                "job_id": progress.job_id,
                "failed_polls": progress.failed_polls,
                "error": progress.poll_error,
                "next_wait_seconds": progress.next_wait_seconds,
            },
        )
        if progress.outage_notice_due and not progress.timed_out:
            logger.error("The outage notice could not be sent; the next poll tries again")
    else:
        logger.info("Job polled", extra={"job_id": progress.job_id, "status": progress.status})
    return progress.model_dump(mode="json")
