"""Workflow task (one Map item): every contender answers and is graded on one shard."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from sft_pipeline import runtime
from sft_pipeline.observability import logger
from sft_pipeline.pipeline.evaluation_steps import ShardRequest, evaluate_shard
from sft_pipeline.settings import EvaluateShardSettings, load_settings

# At cold start: a variable the template does not set fails here, by its name.
load_settings(EvaluateShardSettings)


@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    shard = ShardRequest.model_validate(event)
    logger.append_keys(shard_key=shard.shard_key)
    chat = runtime.chat_provider(shard.provider).chat
    done = evaluate_shard(shard.bucket, shard.shard_key, runtime.training_bucket(), chat)
    logger.info("Shard evaluated", extra=done.model_dump())
    return done.model_dump(mode="json")
