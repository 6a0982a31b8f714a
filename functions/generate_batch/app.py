"""Generation task (one Map item): one batch of examples asked of the teacher and written."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from sft_pipeline import runtime
from sft_pipeline.generation.run import BatchInput
from sft_pipeline.observability import logger
from sft_pipeline.pipeline.generation_steps import generate_batch
from sft_pipeline.settings import GenerateBatchSettings, load_settings

# At cold start: a variable the template does not set fails here, by its name.
load_settings(GenerateBatchSettings)


@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    item = BatchInput.model_validate(event)
    logger.set_correlation_id(item.run.run_id)
    logger.append_keys(run_id=item.run.run_id, batch=item.batch_key)
    result = generate_batch(
        item,
        runtime.training_bucket(),
        lambda provider: runtime.chat_provider(provider).chat,
        lambda: context.get_remaining_time_in_millis() / 1000,
    )
    logger.info("Batch generated", extra=result)
    return result
