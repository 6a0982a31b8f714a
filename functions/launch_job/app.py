"""Workflow task: upload the training data to the provider and create the job (idempotent)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from sft_pipeline import runtime
from sft_pipeline.jobs import WorkflowState
from sft_pipeline.observability import logger
from sft_pipeline.pipeline.steps import launch
from sft_pipeline.settings import LaunchJobSettings, load_settings

# At cold start: a variable the template does not set fails here, by its name.
load_settings(LaunchJobSettings)


@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    state = WorkflowState.model_validate(event)
    logger.set_correlation_id(state.request.dataset_id)
    logger.append_keys(dataset_id=state.request.dataset_id)
    progress = launch(
        state,
        runtime.provider(state.request.settings.provider),
        runtime.training_bucket(),
        runtime.registry(),
        datetime.now(UTC),
    )
    logger.info("Job launched", extra={"job_id": progress.job_id, "status": progress.status})
    return progress.model_dump(mode="json")
