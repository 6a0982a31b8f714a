"""The sample events of the inference API (events/api_*.json): each has the shape API
Gateway sends, names a route and an authorizer that template.yaml declares, and carries
a request the API's own models accept.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEvent
from aws_lambda_powertools.utilities.data_classes.api_gateway_authorizer_event import (
    APIGatewayAuthorizerRequestEvent,
)

from sft_local.template import load_template, resources_of_type
from sft_pipeline.api.models import ChatCompletionRequest
from sft_pipeline.api_keys import bearer_token, looks_like_key

ROOT = Path(__file__).resolve().parents[2]
EVENTS = ROOT / "events"


def load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((EVENTS / name).read_text())
    return data


def function_with_code(folder: str) -> tuple[str, dict[str, Any]]:
    template = load_template(ROOT / "template.yaml")
    for logical, resource in resources_of_type(template, "AWS::Serverless::Function").items():
        if resource["Properties"]["CodeUri"].rstrip("/") == f"functions/{folder}":
            return logical, resource["Properties"]
    raise AssertionError(f"template.yaml has no function with CodeUri functions/{folder}/")


def test_api_event_is_a_routed_chat_completion() -> None:
    event = APIGatewayProxyEvent(load("api_chat_completions.json"))
    _, function = function_with_code("api")
    routes = {
        (e["Properties"]["Path"], e["Properties"]["Method"].upper())
        for e in function["Events"].values()
        if e["Type"] == "Api"
    }
    assert (event.resource, event.http_method) in routes
    request = ChatCompletionRequest.model_validate(event.json_body)
    assert request.messages[-1].role == "user"
    assert event.request_context.authorizer.get("key_id")


def test_authorizer_event_matches_the_api_authorizer() -> None:
    raw = load("api_authorizer_request.json")
    event = APIGatewayAuthorizerRequestEvent(raw)
    logical, _ = function_with_code("api_authorizer")
    template = load_template(ROOT / "template.yaml")
    authorizers = [
        authorizer
        for api in resources_of_type(template, "AWS::Serverless::Api").values()
        for authorizer in api["Properties"].get("Auth", {}).get("Authorizers", {}).values()
        if authorizer.get("FunctionArn", {}).get("Fn::GetAtt", [None])[0] == logical
    ]
    assert len(authorizers) == 1
    assert raw["type"] == authorizers[0]["FunctionPayloadType"]
    for header in authorizers[0]["Identity"]["Headers"]:
        assert event.headers.get(header), f"the authorizer's identity source {header}"
    token = bearer_token(event.headers.get("Authorization"))
    assert token is not None
    assert looks_like_key(token)
    assert event.method_arn.startswith("arn:aws:execute-api:")
