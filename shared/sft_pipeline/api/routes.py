"""The HTTP surface of the API (Powertools event handler behind API Gateway REST).

Clients authenticate with ``Authorization: Bearer <key>``; the Lambda authorizer has
checked the key before a request gets here and passes its id and scope in the request
context. Control routes answer 403 to an inference key.
"""

from __future__ import annotations

import datetime as dt
import json
import random
import time
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response
from aws_lambda_powertools.event_handler.exceptions import NotFoundError
from aws_lambda_powertools.event_handler.middlewares import NextMiddleware
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError
from aws_lambda_powertools.event_handler.openapi.models import HTTPBearer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from sft_pipeline import runtime
from sft_pipeline.api.auth import allowed
from sft_pipeline.api.models import (
    AliasUpdate,
    AliasView,
    ChatCompletionRequest,
    ErrorBody,
    ErrorDetail,
    JobList,
    JobView,
    ModelList,
    RetrainBody,
    RetrainView,
)
from sft_pipeline.api.service import (
    ApiError,
    ApiService,
    LookupCache,
    Usage,
    UsageLog,
    invalid_request,
)
from sft_pipeline.observability import Metric, logger, put_metric
from sft_pipeline.pipeline.retrain import RetrainOrders
from sft_pipeline.settings import ApiLimits, StorageSettings, load_settings

# API Gateway accepts 10 MB; a chat request this large is a mistake or an attack.
MAX_BODY_BYTES = 1024 * 1024
API_TITLE = "SFT Pipeline API"
API_VERSION = "1.0.0"

app = APIGatewayRestResolver(enable_validation=True)
app.configure_openapi(
    title=API_TITLE,
    version=API_VERSION,
    description="OpenAI-compatible chat completions over the fine-tuned model registry, "
    "with aliases, A/B splits and job control.",
    security_schemes={
        "bearer": HTTPBearer(
            description="An API key from `sft keys create`. An inference key may call chat "
            "completions and list models; the other routes need an admin key "
            "(`--scope admin`) and answer 403 insufficient_scope to an inference key."
        )
    },
    security=[{"bearer": []}],
)
_variant_draws = random.Random()
_lookups = LookupCache()


_usage = UsageLog()


def service() -> ApiService:
    return ApiService(
        registry=runtime.registry(),
        chat_models=runtime.inference_provider,
        trainers=runtime.inference_provider,
        max_output_tokens=load_settings(ApiLimits).max_output_tokens,
        lookups=_lookups,
        usage=_usage,
    )


def retrain_orders() -> RetrainOrders:
    storage = load_settings(StorageSettings)
    return RetrainOrders(runtime.training_bucket(), storage.training_bucket, storage.retrain_prefix)


def error_response(error: ApiError) -> Response[str]:
    body = ErrorBody(
        error=ErrorDetail(
            message=error.message, type=error.type, param=error.param, code=error.code
        )
    )
    return Response(
        status_code=error.status,
        content_type="application/json",
        body=body.model_dump_json(),
        headers=error.headers,
    )


@app.exception_handler(ApiError)  # type: ignore[untyped-decorator]
def _api_error(error: ApiError) -> Response[str]:
    return error_response(error)


@app.exception_handler(RequestValidationError)  # type: ignore[untyped-decorator]
def _invalid_request(error: RequestValidationError) -> Response[str]:
    return error_response(invalid_request(error.errors()))


@app.not_found
def _no_route(_error: NotFoundError) -> Response[str]:
    # The same answer API Gateway's MISSING_AUTHENTICATION_TOKEN response gives (template.yaml).
    return error_response(
        ApiError(404, "No such route: check the method and the path.", code="not_found")
    )


def _from_authorizer(name: str) -> str:
    authorizer = app.current_event.request_context.authorizer
    return str(authorizer.get(name) or "") if authorizer else ""


def _key_id() -> str:
    return _from_authorizer("key_id")


def _scope_check(
    resolver: APIGatewayRestResolver, next_middleware: NextMiddleware
) -> Response[Any]:
    """Every route checks the key's scope before it runs; see auth.allowed."""
    event = resolver.current_event
    if not allowed(_from_authorizer("scope"), event.http_method, event.resource):
        logger.info(
            "Request refused: key scope",
            extra={"key_id": _key_id(), "route": f"{event.http_method} {event.resource}"},
        )
        return error_response(
            ApiError(
                403,
                "This API key may call chat completions and list models only; jobs, "
                "cancelling, aliases and retraining need an admin key "
                "(sft keys create --scope admin).",
                code="insufficient_scope",
            )
        )
    return next_middleware(resolver)


app.use(middlewares=[_scope_check])


@app.post("/v1/chat/completions", summary="Create a chat completion (OpenAI-compatible)")
def chat_completions(request: ChatCompletionRequest) -> Response[str]:
    started = time.perf_counter()
    outcome = "error"
    label, served = request.model, request.model
    try:
        result = service().chat(request, _variant_draws.random())
        outcome, served = "ok", result.served_model
        label = result.alias or result.served_model
        if result.usage is not None:
            _record_usage(label, served, result.usage)
        headers = {"x-sft-model": result.served_model}
        if result.alias is not None:
            headers["x-sft-alias"] = result.alias
            headers["x-sft-variant"] = str(result.variant)
        return Response(200, "application/json", json.dumps(result.body), headers)
    finally:
        _record_variant(label, served, outcome, (time.perf_counter() - started) * 1000)


def _record_variant(model: str, served: str, outcome: str, latency_ms: float) -> None:
    """One latency and one error metric per (alias or model, served model), for A/B comparison."""
    dimensions = {"model": model, "served_model": served}
    put_metric(Metric.LATENCY, MetricUnit.Milliseconds, latency_ms, **dimensions)
    put_metric(Metric.ERRORS, MetricUnit.Count, 0.0 if outcome == "ok" else 1.0, **dimensions)


def _record_usage(model: str, served: str, usage: Usage) -> None:
    """Tokens and cost per answer, beside its latency, under the same dimensions."""
    dimensions = {"model": model, "served_model": served}
    put_metric(Metric.INPUT_TOKENS, MetricUnit.Count, usage.input_tokens, **dimensions)
    put_metric(Metric.OUTPUT_TOKENS, MetricUnit.Count, usage.output_tokens, **dimensions)
    if usage.cost_usd is not None:
        put_metric(Metric.COST, MetricUnit.NoUnit, usage.cost_usd, **dimensions)


@app.get("/v1/models", summary="List fine-tuned models and aliases, with shutdown dates")
def list_models() -> ModelList:
    return service().list_models(dt.datetime.now(dt.UTC).date())


@app.get("/jobs", summary="List fine-tuning jobs, newest first")
def list_jobs() -> JobList:
    return service().list_jobs()


@app.get("/jobs/<job_id>", summary="A job: status, events, metrics, lineage, report location")
def get_job(job_id: str) -> JobView:
    return service().get_job(job_id)


@app.post("/jobs/<job_id>/cancel", summary="Cancel a running job")
def cancel_job(job_id: str) -> JobView:
    logger.info("Cancelling job", extra={"job_id": job_id, "key_id": _key_id()})
    return service().cancel_job(job_id)


@app.put("/aliases/<name>", summary="Point an alias at a model or an A/B split, or roll it back")
def put_alias(name: str, update: AliasUpdate) -> AliasView:
    view = service().put_alias(name, update, dt.datetime.now(dt.UTC))
    logger.info(
        "Alias updated", extra={"alias": name, "version": view.current_version, "key_id": _key_id()}
    )
    return view


@app.post(
    "/models/<model_id>/retrain",
    summary="Retrain a model (or an alias's model) on another provider, on the same data version",
    responses={202: {"description": "The retrain is ordered: its run's dataset id"}},
)
def retrain_model(model_id: str, body: RetrainBody) -> Response[RetrainView]:
    view = service().retrain(model_id, body, _key_id(), retrain_orders())
    logger.info(
        "Retrain ordered",
        extra={"model": model_id, "dataset_id": view.dataset_id, "key_id": _key_id()},
    )
    return Response(202, "application/json", view)


def handle(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    body = event.get("body") or ""
    if len(body.encode() if isinstance(body, str) else body) > MAX_BODY_BYTES:
        too_large = ErrorBody(
            error=ErrorDetail(
                message=f"The request body is over {MAX_BODY_BYTES // 1024} KiB.",
                type="invalid_request_error",
                code="request_too_large",
            )
        )
        return {
            "statusCode": 413,
            "headers": {"Content-Type": "application/json"},
            "body": too_large.model_dump_json(),
            "isBase64Encoded": False,
        }
    return app.resolve(event, context)
