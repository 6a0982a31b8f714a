"""Workflow task: cancel a job that ran past the stack's maximum duration."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from sft_pipeline import runtime
from sft_pipeline.jobs import WorkflowState
from sft_pipeline.observability import logger
from sft_pipeline.pipeline.steps import cancel
from sft_pipeline.settings import CancelJobSettings, load_settings

# At cold start: a variable the template does not set fails here, by its name.
load_settings(CancelJobSettings)


@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    state = WorkflowState.model_validate(event)
    logger.set_correlation_id(state.request.dataset_id)
    logger.append_keys(dataset_id=state.request.dataset_id)
    progress = cancel(state, runtime.provider(state.request.settings.provider))
    logger.warning("Job cancelled after the maximum duration", extra={"job_id": progress.job_id})
    return progress.model_dump(mode="json")
