"""Generation task: merge the round's batches (deduplicated across the run), then top up what
is missing or write the validated result and notify; or, after a caught error, notify why."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from sft_pipeline import runtime
from sft_pipeline.generation.run import GenerationState
from sft_pipeline.observability import logger
from sft_pipeline.pipeline.generation_steps import (
    GenerationPorts,
    generation_failed,
    merge_generation,
)
from sft_pipeline.settings import FinishGenerationSettings, load_settings

# At cold start: a variable the template does not set fails here, by its name.
load_settings(FinishGenerationSettings)


@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    state = GenerationState.model_validate(event)
    logger.set_correlation_id(state.run.run_id)
    logger.append_keys(run_id=state.run.run_id, round=state.run.round)
    ports = GenerationPorts(runtime.training_bucket(), runtime.registry(), runtime.notifier())
    if state.failure is not None:
        merged = generation_failed(state, ports)
        logger.warning("Generation failed", extra={"failure": state.failure})
    else:
        merged = merge_generation(state, ports, load_settings(FinishGenerationSettings))
        logger.info(
            "Generation merged", extra={"status": merged.status, "batches": len(merged.batches)}
        )
    return merged.model_dump(mode="json")
