"""API Gateway -> the OpenAI-compatible inference and control API."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from sft_pipeline.api.routes import handle
from sft_pipeline.observability import logger
from sft_pipeline.settings import ApiSettings, load_settings

# At cold start: a variable the template does not set fails here, by its name.
load_settings(ApiSettings)


@logger.inject_lambda_context(
    correlation_id_path=correlation_paths.API_GATEWAY_REST, clear_state=True
)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return handle(event, context)
