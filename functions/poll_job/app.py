"""Workflow task: one look at the job (status, tokens, latest events, next wait)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext

from sft_pipeline import runtime
from sft_pipeline.jobs import WorkflowState
from sft_pipeline.pipeline.steps import poll

logger = Logger()


@logger.inject_lambda_context
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    state = WorkflowState.model_validate(event)
    logger.append_keys(dataset_id=state.request.dataset_id)
    progress = poll(
        state,
        runtime.provider(state.request.settings.provider),
        runtime.registry(),
        datetime.now(UTC),
    )
    logger.info("Job polled", extra={"job_id": progress.job_id, "status": progress.status})
    return progress.model_dump(mode="json")
