"""Workflow task: register the model (with lineage) or record the failure, and notify."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from sft_pipeline import runtime
from sft_pipeline.jobs import WorkflowState
from sft_pipeline.pipeline.steps import finish

logger = Logger()
metrics = Metrics()


@logger.inject_lambda_context
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    state = WorkflowState.model_validate(event)
    logger.append_keys(dataset_id=state.request.dataset_id)
    result = finish(
        state,
        runtime.provider(state.request.settings.provider),
        runtime.registry(),
        runtime.notifier(),
        datetime.now(UTC),
        api_base_url=runtime.settings().api_base_url,
        lineage=runtime.storage(),
    )
    metrics.add_metric(
        name=f"Jobs{result.outcome.title().replace('_', '')}", unit=MetricUnit.Count, value=1
    )
    logger.info("Outcome recorded", extra=result.as_payload())
    return result.as_payload()
