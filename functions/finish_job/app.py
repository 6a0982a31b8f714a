"""Workflow task: record the outcome and notify: a registered model with its evaluation and
model card, or why the run did not succeed."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from sft_pipeline import runtime
from sft_pipeline.jobs import WorkflowState
from sft_pipeline.observability import Metric, count, logger
from sft_pipeline.pipeline.steps import finish
from sft_pipeline.settings import FinishJobSettings, load_settings

# At cold start: a variable the template does not set fails here, by its name.
load_settings(FinishJobSettings)


@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    state = WorkflowState.model_validate(event)
    logger.set_correlation_id(state.request.dataset_id)
    logger.append_keys(dataset_id=state.request.dataset_id)
    result = finish(
        state,
        runtime.provider(state.request.settings.provider),
        runtime.registry(),
        runtime.notifier(),
        datetime.now(UTC),
        api_base_url=load_settings(FinishJobSettings).api_base_url,
        bucket=runtime.training_bucket(),
    )
    count(Metric.JOBS, result.outcome)
    logger.info("Outcome recorded", extra=result.as_payload())
    return result.as_payload()
