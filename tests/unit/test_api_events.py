"""The sample events of the inference API (events/api_*.json): every route template.yaml
gives the API function has one, each has the shape API Gateway sends, and the API itself
answers each with its route's success status. The authorizer's event names the authorizer
template.yaml declares.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEvent
from aws_lambda_powertools.utilities.data_classes.api_gateway_authorizer_event import (
    APIGatewayAuthorizerRequestEvent,
)
from moto import mock_aws
from openai.types.chat import ChatCompletion
from pydantic import BaseModel

from sft_local.template import load_template, resources_of_type
from sft_pipeline import runtime
from sft_pipeline import settings as settings_module
from sft_pipeline.adapters.registry import Registry
from sft_pipeline.adapters.training_bucket import TrainingBucket
from sft_pipeline.aliases import single
from sft_pipeline.api import routes
from sft_pipeline.api.auth import INFERENCE_ROUTES
from sft_pipeline.api.models import (
    AliasView,
    ErrorBody,
    JobList,
    JobView,
    ModelList,
    RetrainView,
)
from sft_pipeline.api.service import LookupCache
from sft_pipeline.api_keys import KeyScope, bearer_token, looks_like_key, new_key
from sft_pipeline.jobs import JobSettings, JobState, UploadRef
from sft_pipeline.records import DatasetRecord, JobRecord, ModelRecord, ProviderJob
from tests.fakes import FakeProvider, LambdaContext, make_registry
from tests.unit.test_handlers import handler

ROOT = Path(__file__).resolve().parents[2]
EVENTS = ROOT / "events"
STAGE = "api"

# What the sample events refer to; the registry and the provider are seeded with it.
BASE_MODEL = "gpt-4o-mini-2024-07-18"
FINE_TUNE = "ft:gpt-4o-mini-2024-07-18:acme:support:AbC123xy"
FINISHED_JOB = "ftjob-AbC123xyZ987"
RUNNING_JOB = "ftjob-Lm4NoP5qRs6Tu"
ALIAS = "support-bot"
NOW = dt.datetime(2026, 12, 1, 9, 30, tzinfo=dt.UTC)

# The body each route answers with when it succeeds.
SUCCESS_BODIES: dict[tuple[str, str], type[BaseModel]] = {
    ("POST", "/v1/chat/completions"): ChatCompletion,
    ("GET", "/v1/models"): ModelList,
    ("GET", "/jobs"): JobList,
    ("GET", "/jobs/{job_id}"): JobView,
    ("POST", "/jobs/{job_id}/cancel"): JobView,
    ("PUT", "/aliases/{name}"): AliasView,
    ("POST", "/models/{model_id}/retrain"): RetrainView,
}
# Routes that answer anything but 200 when they succeed: a retrain is ordered, not done.
SUCCESS_STATUS = {("POST", "/models/{model_id}/retrain"): 202}
TRAINING_BUCKET = "sft-dev-data-123456789012-us-east-1"


def load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((EVENTS / name).read_text())
    return data


def api_function_events() -> list[str]:
    """events/api_*.json that the API function receives: the longest function folder a
    file's name starts with owns it, so api_authorizer_*.json belong to the authorizer."""
    functions = [path.name for path in (ROOT / "functions").iterdir() if path.is_dir()]
    return sorted(
        sample.name
        for sample in EVENTS.glob("api_*.json")
        if max((f for f in functions if sample.stem.startswith(f"{f}_")), key=len) == "api"
    )


API_EVENTS = api_function_events()


def function_with_code(folder: str) -> tuple[str, dict[str, Any]]:
    template = load_template(ROOT / "template.yaml")
    for logical, resource in resources_of_type(template, "AWS::Serverless::Function").items():
        if resource["Properties"]["CodeUri"].rstrip("/") == f"functions/{folder}":
            return logical, resource["Properties"]
    raise AssertionError(f"template.yaml has no function with CodeUri functions/{folder}/")


def template_routes() -> set[tuple[str, str]]:
    """(method, resource) of every Api event of the API function in template.yaml."""
    _, function = function_with_code("api")
    return {
        (event["Properties"]["Method"].upper(), event["Properties"]["Path"])
        for event in function["Events"].values()
        if event["Type"] == "Api"
    }


def test_every_api_route_has_a_sample_event() -> None:
    sampled = {
        (event.http_method, event.resource)
        for event in (APIGatewayProxyEvent(load(name)) for name in API_EVENTS)
    }
    assert sampled == template_routes()
    assert set(SUCCESS_BODIES) == template_routes()


@pytest.mark.parametrize("name", API_EVENTS)
def test_api_event_has_the_shape_api_gateway_sends(name: str) -> None:
    event = APIGatewayProxyEvent(load(name))
    parameters = event.path_parameters or {}
    filled = re.sub(r"\{([^}]+)\}", lambda found: parameters[found[1]], event.resource)
    assert event.path == filled
    context = event.request_context
    assert (context.resource_path, context.http_method) == (event.resource, event.http_method)
    assert (context.stage, context.path) == (STAGE, f"/{STAGE}{event.path}")
    assert context.authorizer.get("key_id")
    assert context.authorizer.get("principalId")
    token = bearer_token(event.headers.get("Authorization"))
    assert token is not None
    assert looks_like_key(token)
    if event.body is not None:
        assert event.headers.get("Content-Type") == "application/json"
        json.loads(event.body)


def seed(registry: Registry, provider: FakeProvider) -> None:
    """A finished job with its dataset and model, an alias serving that model, a running job."""
    upload = UploadRef(
        bucket=TRAINING_BUCKET,
        key="training/support set.jsonl",
        version_id="3HL4kqtJlcpXroDTDmJ.rmSpXd3dIbrHY",
    )
    registry.put_dataset(
        DatasetRecord(
            dataset_id=upload.dataset_id,
            upload=upload,
            examples=1204,
            valid=True,
            status="launched",
            summary="VALID: 1,204 examples, 0 errors, 2 warnings",
            created_at=NOW,
            sha256="9" * 64,
            settings=JobSettings(base_model=BASE_MODEL, alias=ALIAS),
        )
    )
    registry.put_job(
        JobRecord(
            dataset_id=upload.dataset_id,
            provider="openai",
            job_id=FINISHED_JOB,
            status="succeeded",
            outcome="succeeded",
            base_model=BASE_MODEL,
            model_id=FINE_TUNE,
            started_at=NOW,
            finished_at=NOW,
        )
    )
    registry.register_model(
        ModelRecord(
            model_id=FINE_TUNE,
            provider="openai",
            job_id=FINISHED_JOB,
            base_model=BASE_MODEL,
            dataset_id=upload.dataset_id,
            upload=upload,
            dataset_sha256="9" * 64,
            hyperparameters={"n_epochs": 3},
            started_at=NOW,
            finished_at=NOW,
            created_at=NOW,
        )
    )
    registry.create_alias_version(ALIAS, single(FINE_TUNE), None, NOW)
    registry.put_job(
        JobRecord(
            dataset_id="running-dataset",
            provider="openai",
            job_id=RUNNING_JOB,
            status="running",
            base_model=BASE_MODEL,
            started_at=NOW,
        )
    )
    provider.jobs[RUNNING_JOB] = ProviderJob(
        job_id=RUNNING_JOB,
        status="running",
        state=JobState.RUNNING,
        base_model=BASE_MODEL,
        created_at=int(NOW.timestamp()),
    )


@pytest.fixture
def seeded_api(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The API's ports faked: a moto registry with what the events name, and a fake in
    place of the provider they were trained with (openai)."""
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("TRAINING_BUCKET", TRAINING_BUCKET)
    monkeypatch.setattr(settings_module, "_loaded", {})
    with mock_aws():
        registry, provider = make_registry(), FakeProvider()
        seed(registry, provider)
        boto3.client("s3").create_bucket(Bucket=TRAINING_BUCKET)
        monkeypatch.setattr(runtime, "training_bucket", lambda: TrainingBucket(boto3.client("s3")))
        monkeypatch.setattr(runtime, "registry", lambda: registry)
        monkeypatch.setattr(runtime, "inference_provider", {"openai": provider}.__getitem__)
        monkeypatch.setattr(routes, "_lookups", LookupCache())
        yield


@pytest.mark.usefixtures("seeded_api")
@pytest.mark.parametrize("name", API_EVENTS)
def test_api_event_is_answered_by_its_route(name: str) -> None:
    raw = load(name)
    response = routes.handle(raw, LambdaContext())  # type: ignore[arg-type]
    event = APIGatewayProxyEvent(raw)
    route = (event.http_method, event.resource)
    assert response["statusCode"] == SUCCESS_STATUS.get(route, 200), response["body"]
    SUCCESS_BODIES[(event.http_method, event.resource)].model_validate_json(response["body"])
    for value in (event.path_parameters or {}).values():
        assert value in response["body"]


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


# Key scopes


def with_scope(raw: dict[str, Any], scope: str | None) -> dict[str, Any]:
    """The sample event as API Gateway sends it for a key of ``scope`` (None: no scope)."""
    event = json.loads(json.dumps(raw))
    authorizer = event["requestContext"]["authorizer"]
    authorizer.pop("scope", None)
    if scope is not None:
        authorizer["scope"] = scope
    return event


def test_inference_routes_are_routes_of_the_template() -> None:
    assert template_routes() >= INFERENCE_ROUTES


@pytest.mark.usefixtures("seeded_api")
@pytest.mark.parametrize("scope", ["inference", None, "", "Admin"])
@pytest.mark.parametrize("name", API_EVENTS)
def test_control_routes_answer_403_to_any_key_but_an_admin_key(
    name: str, scope: str | None
) -> None:
    raw = with_scope(load(name), scope)
    response = routes.handle(raw, LambdaContext())  # type: ignore[arg-type]
    event = APIGatewayProxyEvent(raw)
    if (event.http_method, event.resource) in INFERENCE_ROUTES:
        assert response["statusCode"] == 200, response["body"]
        return
    assert response["statusCode"] == 403
    error = ErrorBody.model_validate_json(response["body"]).error
    assert (error.type, error.code, error.param) == (
        "invalid_request_error",
        "insufficient_scope",
        None,
    )
    assert "admin key" in error.message


@pytest.mark.usefixtures("seeded_api")
def test_a_refused_cancel_cancels_nothing() -> None:
    raw = with_scope(load("api_cancel_job.json"), "inference")
    assert routes.handle(raw, LambdaContext())["statusCode"] == 403  # type: ignore[arg-type]
    provider = runtime.inference_provider("openai")
    assert isinstance(provider, FakeProvider)
    assert provider.jobs[RUNNING_JOB].status == "running"


@pytest.mark.parametrize("scope", ["inference", "admin"])
def test_the_authorizer_hands_the_keys_scope_to_the_api(
    monkeypatch: pytest.MonkeyPatch, scope: KeyScope
) -> None:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    # What the authorizer's settings require at import (the registry itself is faked).
    monkeypatch.setenv("REGISTRY_TABLE", "registry")
    with mock_aws():
        registry = make_registry()
        secret, record = new_key("web app", NOW, scope)
        registry.put_api_key(record)
        monkeypatch.setattr(runtime, "registry", lambda: registry)
        raw = load("api_authorizer_request.json")
        raw["headers"]["Authorization"] = f"Bearer {secret}"
        policy = handler("api_authorizer")(raw, LambdaContext())
    assert policy["context"] == {"key_id": record.key_id, "scope": scope}
    assert policy["usageIdentifierKey"] == record.key_hash


# Gateway responses


def gateway_responses() -> dict[str, dict[str, Any]]:
    template = load_template(ROOT / "template.yaml")
    [api] = resources_of_type(template, "AWS::Serverless::Api").values()
    responses: dict[str, dict[str, Any]] = api["Properties"]["GatewayResponses"]
    return responses


def test_an_unknown_route_or_method_is_openais_404_not_a_missing_token() -> None:
    response = gateway_responses()["MISSING_AUTHENTICATION_TOKEN"]
    assert response["StatusCode"] == 404
    body = ErrorBody.model_validate_json(response["ResponseTemplates"]["application/json"])
    assert (body.error.type, body.error.code) == ("invalid_request_error", "not_found")


@pytest.mark.parametrize("name", sorted(gateway_responses()))
def test_every_gateway_response_has_openais_error_shape(name: str) -> None:
    template = gateway_responses()[name]["ResponseTemplates"]["application/json"]
    # $context.error.messageString is rendered by API Gateway as a quoted JSON string.
    rendered = template.replace("$context.error.messageString", json.dumps("Invalid request"))
    body = json.loads(rendered)
    assert set(body) == {"error"}
    assert set(body["error"]) == {"message", "type", "param", "code"}
    ErrorBody.model_validate(body)


@pytest.mark.usefixtures("seeded_api")
def test_the_function_answers_an_unknown_route_as_the_gateway_does() -> None:
    raw = load("api_list_jobs.json")
    raw["resource"] = raw["path"] = raw["requestContext"]["resourcePath"] = "/v1/nothing"
    response = routes.handle(raw, LambdaContext())  # type: ignore[arg-type]
    gateway = gateway_responses()["MISSING_AUTHENTICATION_TOKEN"]
    assert response["statusCode"] == gateway["StatusCode"]
    assert json.loads(response["body"]) == json.loads(
        gateway["ResponseTemplates"]["application/json"]
    )


# Refusals of a request body


@pytest.mark.usefixtures("seeded_api")
@pytest.mark.parametrize(
    ("name", "body", "message", "param", "code"),
    [
        (
            "api_chat_completions.json",
            '{"model": "support-bot", "messages": [}',
            "We could not parse the JSON body of your request. "
            "Send valid JSON with Content-Type: application/json.",
            None,
            None,
        ),
        (
            "api_chat_completions.json",
            "[1, 2]",
            "The request body must be a JSON object.",
            None,
            None,
        ),
        (
            "api_chat_completions.json",
            '{"messages": [{"role": "user", "content": "Hi"}]}',
            "Missing required parameter: 'model'.",
            "model",
            "missing_required_parameter",
        ),
        (
            "api_chat_completions.json",
            '{"model": "support-bot", "messages": [{"role": "bot", "content": "Hi"}]}',
            "Invalid 'messages[0].role': input should be 'system', 'developer', 'user', "
            "'assistant', 'tool' or 'function'.",
            "messages[0].role",
            "invalid_value",
        ),
        (
            "api_put_alias.json",
            '{"variants": []}',
            "Invalid 'variants': empty array. Expected an array with minimum length 1, "
            "but got an empty array instead.",
            "variants",
            "invalid_alias_update",
        ),
        (
            "api_put_alias.json",
            '{"model": "gpt-4o-mini", "colour": "red"}',
            "Unrecognized request argument supplied: colour",
            "colour",
            "unknown_parameter",
        ),
    ],
)
def test_a_bad_body_is_refused_in_a_plain_sentence_naming_the_param(
    name: str, body: str, message: str, param: str | None, code: str | None
) -> None:
    raw = load(name)
    raw["body"] = body
    response = routes.handle(raw, LambdaContext())  # type: ignore[arg-type]
    assert response["statusCode"] == 400
    error = ErrorBody.model_validate_json(response["body"]).error
    assert (error.message, error.param, error.code) == (message, param, code)
