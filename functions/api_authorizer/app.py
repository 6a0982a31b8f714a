"""API Gateway REQUEST authorizer: a valid bearer key gets in, its hash becomes the
usage-plan key, so API Gateway throttles each key on its own, and its scope goes to the
API function, which refuses control routes to inference keys."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.data_classes import event_source
from aws_lambda_powertools.utilities.data_classes.api_gateway_authorizer_event import (
    APIGatewayAuthorizerRequestEvent,
    APIGatewayAuthorizerResponse,
)
from aws_lambda_powertools.utilities.typing import LambdaContext

from sft_pipeline import runtime
from sft_pipeline.api.auth import authenticate
from sft_pipeline.observability import logger
from sft_pipeline.settings import ApiAuthorizerSettings, load_settings

# At cold start: a variable the template does not set fails here, by its name.
load_settings(ApiAuthorizerSettings)


@logger.inject_lambda_context(clear_state=True)
@event_source(data_class=APIGatewayAuthorizerRequestEvent)
def lambda_handler(
    event: APIGatewayAuthorizerRequestEvent, context: LambdaContext
) -> dict[str, Any]:
    key = authenticate(event.headers.get("Authorization"), runtime.registry())
    if key is None:
        logger.info("Request refused: missing, unknown or revoked key")
        # API Gateway answers 401 for exactly this message, and says nothing more.
        raise PermissionError("Unauthorized")
    policy = APIGatewayAuthorizerResponse.from_route_arn(
        event.method_arn,
        principal_id=key.key_id,
        context={"key_id": key.key_id, "scope": key.scope},
        usage_identifier_key=key.key_hash,
    )
    # One decision for every route: API Gateway caches it per key.
    policy.allow_all_routes()
    return policy.asdict()
