"""Workflow task: register a succeeded job's model with its lineage, before it is evaluated."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from sft_pipeline import runtime
from sft_pipeline.jobs import WorkflowState
from sft_pipeline.observability import logger
from sft_pipeline.pipeline.steps import register
from sft_pipeline.settings import RegisterModelSettings, load_settings

# At cold start: a variable the template does not set fails here, by its name.
load_settings(RegisterModelSettings)


@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    state = WorkflowState.model_validate(event)
    logger.set_correlation_id(state.request.dataset_id)
    logger.append_keys(dataset_id=state.request.dataset_id)
    registration = register(
        state,
        runtime.provider(state.request.settings.provider),
        runtime.registry(),
        datetime.now(UTC),
        lineage=runtime.training_bucket(),
    )
    logger.info("Model registered", extra=registration.model_dump())
    return registration.model_dump(mode="json")
