"""The inference API on 127.0.0.1, as API Gateway would serve it (what ``sam local
start-api`` does, without Docker).

HTTP requests become API Gateway REST proxy events for the API function, after
the steps API Gateway takes first, all read from template.yaml: the route table
(the function's Api events), the REQUEST authorizer with its result cache, the
usage plan's per-key throttle, and the gateway responses for refusals.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import boto3

from sft_local.http_service import LocalHttpServer, Reply, match_path_template
from sft_local.stack import ACCOUNT, REGION, LocalStack
from sft_local.template import resources_of_type

API_LOGICAL_ID = "InferenceApi"
# API Gateway refuses larger payloads before any function runs.
MAX_PAYLOAD_BYTES = 10 * 1024 * 1024


@dataclass(frozen=True)
class Route:
    method: str
    resource: str
    function_name: str
    # False for a route whose event says ``Auth: {Authorizer: NONE}`` (a signed webhook).
    authorized: bool = True


@dataclass(frozen=True)
class Incoming:
    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes


@dataclass
class TokenBucket:
    """API Gateway's throttle: a steady rate with a burst allowance, per usage-plan key."""

    rate: float
    burst: float
    tokens: float
    updated: float = field(default_factory=time.monotonic)

    def take(self) -> bool:
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False


@dataclass
class GatewayConfig:
    routes: list[Route]
    authorizer_function: str
    identity_header: str
    cache_seconds: int
    rate: float
    burst: float
    responses: dict[str, tuple[int, dict[str, str], str]]


def gateway_config(stack: LocalStack) -> GatewayConfig:
    """Everything the local gateway does, read from the template."""
    resolve = stack.resolver.resolve
    api = resolve(stack.template["Resources"][API_LOGICAL_ID]["Properties"])
    auth = api["Auth"]
    authorizer = auth["Authorizers"][auth["DefaultAuthorizer"]]
    routes: list[Route] = []
    for logical, resource in resources_of_type(stack.template, "AWS::Serverless::Function").items():
        for event in resource["Properties"].get("Events", {}).values():
            if event["Type"] != "Api":
                continue
            props = event["Properties"]
            route_authorizer = props.get("Auth", {}).get("Authorizer", auth["DefaultAuthorizer"])
            routes.append(
                Route(
                    props["Method"].upper(),
                    props["Path"],
                    stack.ref(logical),
                    authorized=route_authorizer != "NONE",
                )
            )
    throttle = auth["UsagePlan"]["Throttle"]
    # DEFAULT_4XX / DEFAULT_5XX keep the status of what they dress (and render $context
    # variables); this gateway answers only with the named responses, which set a status.
    responses = {
        name: (
            int(spec["StatusCode"]),
            {
                k: v.strip("'")
                for k, v in spec.get("ResponseParameters", {}).get("Headers", {}).items()
            },
            spec["ResponseTemplates"]["application/json"],
        )
        for name, spec in api.get("GatewayResponses", {}).items()
        if "StatusCode" in spec
    }
    return GatewayConfig(
        routes=routes,
        authorizer_function=authorizer["FunctionArn"].rsplit(":", 1)[-1],
        identity_header=authorizer["Identity"]["Headers"][0],
        cache_seconds=int(authorizer["Identity"].get("ReauthorizeEvery", 300)),
        rate=float(throttle["RateLimit"]),
        burst=float(throttle["BurstLimit"]),
        responses=responses,
    )


class LocalGateway:
    """Turns one HTTP request into what API Gateway would answer."""

    def __init__(self, config: GatewayConfig, stage: str = "api") -> None:
        self.config = config
        self.stage = stage
        self._lambda = boto3.client("lambda", region_name=REGION)
        self._policies: dict[str, tuple[float, dict[str, Any] | None]] = {}
        self._buckets: dict[str, TokenBucket] = {}
        self._lock = threading.Lock()

    def handle(
        self, method: str, raw_path: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        path, _, query = raw_path.partition("?")
        matched = self._route(method, urlsplit(path).path)
        if matched is None:
            # No route for this path, or not for this method: API Gateway asks for no key first.
            return self._gateway_response("MISSING_AUTHENTICATION_TOKEN")
        route, parameters = matched
        if len(body) > MAX_PAYLOAD_BYTES:
            return self._gateway_response("REQUEST_TOO_LARGE")
        policy: dict[str, Any] = {}
        if route.authorized:
            token = _header(headers, self.config.identity_header)
            if not token:
                return self._gateway_response("UNAUTHORIZED")
            authorized = self._authorize(token, method, route)
            if authorized is None:
                return self._gateway_response("UNAUTHORIZED")
            if not self._bucket(authorized["usageIdentifierKey"]).take():
                return self._gateway_response("THROTTLED")
            policy = authorized
        incoming = Incoming(method, path, query, headers, body)
        event = self._proxy_event(incoming, route, parameters, policy)
        result = self._lambda.invoke(FunctionName=route.function_name, Payload=json.dumps(event))
        payload = json.loads(result["Payload"].read() or b"{}")
        if result.get("FunctionError"):
            return (
                502,
                {"Content-Type": "application/json"},
                b'{"message": "Internal server error"}',
            )
        response_headers = {k: str(v) for k, v in (payload.get("headers") or {}).items()}
        for name, values in (payload.get("multiValueHeaders") or {}).items():
            response_headers[name] = ", ".join(str(v) for v in values)
        return (
            int(payload.get("statusCode", 200)),
            response_headers,
            str(payload.get("body", "")).encode(),
        )

    def _route(self, method: str, path: str) -> tuple[Route, dict[str, str]] | None:
        for route in self.config.routes:
            if route.method == method:
                # API Gateway hands path parameters to the function decoded, as this does.
                parameters = match_path_template(route.resource, path)
                if parameters is not None:
                    return route, parameters
        return None

    def _authorize(self, token: str, method: str, route: Route) -> dict[str, Any] | None:
        """Run the REQUEST authorizer, caching its answer per token as API Gateway does."""
        now = time.monotonic()
        with self._lock:
            cached = self._policies.get(token)
            if cached and now - cached[0] < self.config.cache_seconds:
                return cached[1]
        method_arn = (
            f"arn:aws:execute-api:{REGION}:{ACCOUNT}:local/{self.stage}/{method}{route.resource}"
        )
        event = {
            "type": "REQUEST",
            "methodArn": method_arn,
            "resource": route.resource,
            "path": route.resource,
            "httpMethod": method,
            "headers": {self.config.identity_header: token},
            "requestContext": {"stage": self.stage, "apiId": "local", "accountId": ACCOUNT},
        }
        result = self._lambda.invoke(
            FunctionName=self.config.authorizer_function, Payload=json.dumps(event)
        )
        answer = json.loads(result["Payload"].read() or b"{}")
        allowed = not result.get("FunctionError") and _allows(answer)
        policy = answer if allowed else None
        with self._lock:
            self._policies[token] = (now, policy)
        return policy

    def _bucket(self, usage_key: str) -> TokenBucket:
        with self._lock:
            if usage_key not in self._buckets:
                self._buckets[usage_key] = TokenBucket(
                    self.config.rate, self.config.burst, self.config.burst
                )
            return self._buckets[usage_key]

    def _gateway_response(self, name: str) -> tuple[int, dict[str, str], bytes]:
        status, headers, template = self.config.responses[name]
        return status, {"Content-Type": "application/json", **headers}, template.encode()

    def _proxy_event(
        self, incoming: Incoming, route: Route, parameters: dict[str, str], policy: dict[str, Any]
    ) -> dict[str, Any]:
        method, path, headers, body = (
            incoming.method,
            incoming.path,
            incoming.headers,
            incoming.body,
        )
        pairs = parse_qsl(incoming.query, keep_blank_values=True)
        return {
            "resource": route.resource,
            "path": path,
            "httpMethod": method,
            "headers": headers,
            "multiValueHeaders": {k: [v] for k, v in headers.items()},
            "queryStringParameters": dict(pairs) or None,
            "multiValueQueryStringParameters": {
                k: [v for n, v in pairs if n == k] for k, _ in pairs
            }
            or None,
            "pathParameters": parameters or None,
            "stageVariables": None,
            "body": body.decode("utf-8", "replace") if body else None,
            "isBase64Encoded": False,
            "requestContext": {
                "resourcePath": route.resource,
                "httpMethod": method,
                "path": f"/{self.stage}{path}",
                "stage": self.stage,
                "requestId": str(uuid.uuid4()),
                "accountId": ACCOUNT,
                "apiId": "local",
                "identity": {"sourceIp": "127.0.0.1", "apiKey": policy.get("usageIdentifierKey")},
                "authorizer": {
                    "principalId": policy.get("principalId"),
                    **(policy.get("context") or {}),
                },
            },
        }


def _header(headers: dict[str, str], name: str) -> str | None:
    lowered = name.lower()
    return next((value for key, value in headers.items() if key.lower() == lowered), None)


def _allows(answer: dict[str, Any]) -> bool:
    statements = answer.get("policyDocument", {}).get("Statement", [])
    return bool(statements) and all(s.get("Effect") == "Allow" for s in statements)


class LocalApiServer:
    """A real HTTP server on 127.0.0.1 in front of :class:`LocalGateway`."""

    def __init__(self, stack: LocalStack, port: int = 0) -> None:
        self.gateway = LocalGateway(gateway_config(stack))
        self._http = LocalHttpServer(self._serve, name="local-api", port=port)

    def _serve(self, method: str, target: str, headers: dict[str, str], body: bytes) -> Reply:
        status, response_headers, payload = self.gateway.handle(method, target, headers, body)
        return Reply(status, payload, response_headers)

    @property
    def base_url(self) -> str:
        return self._http.url("/v1")

    def url(self, path: str) -> str:
        """The address of a route, e.g. ``/webhooks/fine-tuning``."""
        return self._http.url(path)

    def __enter__(self) -> LocalApiServer:
        self._http.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._http.stop()
