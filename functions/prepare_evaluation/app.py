"""Workflow task: write the evaluation's plan and the held-out set's shards to S3."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from sft_pipeline import runtime
from sft_pipeline.jobs import WorkflowState
from sft_pipeline.observability import logger
from sft_pipeline.pipeline.evaluation_steps import prepare
from sft_pipeline.settings import PrepareEvaluationSettings, load_settings

# At cold start: a variable the template does not set fails here, by its name.
load_settings(PrepareEvaluationSettings)


@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    state = WorkflowState.model_validate(event)
    logger.set_correlation_id(state.request.dataset_id)
    settings = load_settings(PrepareEvaluationSettings)
    prepared = prepare(
        state,
        runtime.training_bucket(),
        runtime.registry(),
        runtime.chat_provider(state.request.settings.provider),
        concurrency=settings.evaluation_concurrency,
        judge_model=settings.evaluation_judge_model or None,
    )
    logger.info(
        "Evaluation prepared",
        extra={"examples": prepared.examples, "skipped": prepared.skipped},
    )
    return prepared.model_dump(mode="json")
