"""Workflow task: the evaluation's statistics over every shard, the gate, and the promotion."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from sft_pipeline import runtime
from sft_pipeline.observability import logger, record_evaluation_score
from sft_pipeline.pipeline.evaluation_steps import Prepared, aggregate
from sft_pipeline.settings import AggregateEvaluationSettings, load_settings

# At cold start: a variable the template does not set fails here, by its name.
load_settings(AggregateEvaluationSettings)


@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    prepared = Prepared.model_validate(event)
    result = aggregate(prepared, runtime.training_bucket(), runtime.registry(), datetime.now(UTC))
    if result.summary and result.model_id and (candidate := result.summary.result("candidate")):
        record_evaluation_score(result.model_id, candidate.score.mean)
    logger.info("Evaluation aggregated", extra=result.outcome.model_dump())
    return result.outcome.model_dump(mode="json")
