"""The API surface: routing, faults, input checks, the request log and error answers.

Transport-free: ``StandInApp.handle`` takes the method, target and body of an
HTTP request and returns the status, headers and body to send.
"""

from __future__ import annotations

import json
import logging
import threading
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from urllib.parse import parse_qs, urlsplit

from botocore.model import OperationModel
from pydantic import BaseModel

from sft_local.bedrock_standin.conversation import answer
from sft_local.bedrock_standin.errors import BedrockError, internal_error
from sft_local.bedrock_standin.faults import BedrockFaults
from sft_local.bedrock_standin.protocol import (
    ServiceName,
    check_input,
    match_path,
    operation_model,
    parse,
    request_parameters,
)
from sft_local.bedrock_standin.schemas import (
    ConverseRequest,
    CreateCustomModelDeploymentRequest,
    CreateCustomModelDeploymentResponse,
    CreateModelCustomizationJobRequest,
    CreateModelCustomizationJobResponse,
    DeploymentIdentifierRequest,
    EmptyResponse,
    JobIdentifierRequest,
    ListModelCustomizationJobsRequest,
)
from sft_local.bedrock_standin.state import DeploymentView, JobView, StandInState

logger = logging.getLogger(__name__)

Params = dict[str, object]


@dataclass(frozen=True)
class RecordedRequest:
    """One line of the request log: what came in and the status it got."""

    method: str
    path: str
    operation: str | None
    status: int
    request_id: str


@dataclass
class ApiResponse:
    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def error(cls, error: BedrockError) -> ApiResponse:
        body = json.dumps({"message": error.message}).encode()
        return cls(error.status, body, {"x-amzn-ErrorType": error.code})


@dataclass(frozen=True)
class Delayed:
    """An answer to send once ``seconds`` have passed, as a model's takes its time."""

    response: BaseModel
    seconds: float


Handler = Callable[[Params], BaseModel | Delayed]


@dataclass(frozen=True)
class Operation:
    model: OperationModel
    handler: Handler

    @property
    def name(self) -> str:
        return self.model.name


class StandInApp:
    """Bedrock's model customization, deployment and Converse operations."""

    def __init__(
        self, state: StandInState, *, chat_latency: float, sleep: Callable[[float], object]
    ) -> None:
        self.state = state
        self._sleep = sleep
        self._state_lock = threading.Lock()
        self._log_lock = threading.Lock()
        self._log: list[RecordedRequest] = []
        handlers: dict[tuple[ServiceName, str], Handler] = {
            ("bedrock", "CreateModelCustomizationJob"): self._create_job,
            ("bedrock", "GetModelCustomizationJob"): self._get_job,
            ("bedrock", "StopModelCustomizationJob"): self._stop_job,
            ("bedrock", "ListModelCustomizationJobs"): self._list_jobs,
            ("bedrock", "CreateCustomModelDeployment"): self._create_deployment,
            ("bedrock", "GetCustomModelDeployment"): self._get_deployment,
            ("bedrock-runtime", "Converse"): self._converse,
        }
        self.operations = tuple(
            Operation(operation_model(service, name), handler)
            for (service, name), handler in handlers.items()
        )
        self.faults = BedrockFaults(
            (operation.name for operation in self.operations), chat_latency=chat_latency
        )

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._log_lock:
            return list(self._log)

    def jobs(self) -> Mapping[str, JobView]:
        with self._state_lock:
            self.state.catch_up()
            return MappingProxyType({arn: job.view() for arn, job in self.state.jobs.items()})

    def deployments(self) -> Mapping[str, DeploymentView]:
        with self._state_lock:
            self.state.catch_up()
            return MappingProxyType(
                {arn: deployment.view() for arn, deployment in self.state.deployments.items()}
            )

    def catch_up(self) -> None:
        with self._state_lock:
            self.state.catch_up()

    def handle(self, method: str, target: str, body: bytes) -> ApiResponse:
        url = urlsplit(target)
        operation, labels = self._route(method, url.path)
        try:
            response = self._respond(operation, labels, url.query, body)
        except BedrockError as error:
            response = ApiResponse.error(error)
        except Exception:
            # A defect in the stand-in still answers in Bedrock's shape, and leaves a trace.
            logger.exception("the Bedrock stand-in failed on %s %s", method, url.path)
            response = ApiResponse.error(internal_error())
        request_id = str(uuid.uuid4())
        response.headers["x-amzn-RequestId"] = request_id
        name = None if operation is None else operation.name
        with self._log_lock:
            self._log.append(RecordedRequest(method, url.path, name, response.status, request_id))
        return response

    def _route(self, method: str, path: str) -> tuple[Operation | None, dict[str, str]]:
        for operation in self.operations:
            labels = match_path(operation.model, method, path)
            if labels is not None:
                return operation, labels
        return None, {}

    def _respond(
        self, operation: Operation | None, labels: dict[str, str], query: str, body: bytes
    ) -> ApiResponse:
        error = self.faults.take_error(None if operation is None else operation.name)
        if error is not None:
            raise error
        if operation is None:
            raise BedrockError(
                "UnknownOperationException", 404, "The requested operation is unknown."
            )
        params = request_parameters(
            operation.model, labels, parse_qs(query, keep_blank_values=True), body
        )
        check_input(operation.model, params)
        with self._state_lock:
            self.state.catch_up()
            result = operation.handler(params)
        if isinstance(result, Delayed):
            # Outside the state lock, so answers in flight overlap as a real service's do.
            self._sleep(result.seconds)
            result = result.response
        status = int(operation.model.http.get("responseCode", 200))
        return ApiResponse(status, result.model_dump_json(exclude_none=True).encode())

    # Model customization jobs

    def _create_job(self, params: Params) -> BaseModel:
        request = parse(CreateModelCustomizationJobRequest, params)
        job_arn = self.state.create_job(request, self.faults.take_job_failure)
        self.faults.job_created(self.state.get_job(job_arn).model_arn)
        return CreateModelCustomizationJobResponse(job_arn=job_arn)

    def _get_job(self, params: Params) -> BaseModel:
        return self.state.get_job(parse(JobIdentifierRequest, params).job_identifier).describe()

    def _stop_job(self, params: Params) -> BaseModel:
        self.state.stop_job(parse(JobIdentifierRequest, params).job_identifier)
        return EmptyResponse()

    def _list_jobs(self, params: Params) -> BaseModel:
        return self.state.list_jobs(parse(ListModelCustomizationJobsRequest, params))

    # Custom model deployments

    def _create_deployment(self, params: Params) -> BaseModel:
        request = parse(CreateCustomModelDeploymentRequest, params)
        arn = self.state.create_deployment(request, self.faults.take_deployment_failure)
        return CreateCustomModelDeploymentResponse(custom_model_deployment_arn=arn)

    def _get_deployment(self, params: Params) -> BaseModel:
        identifier = parse(DeploymentIdentifierRequest, params).custom_model_deployment_identifier
        return self.state.get_deployment(identifier).describe()

    # Runtime

    def _converse(self, params: Params) -> Delayed:
        """A custom model answers from its training data, a base model generically."""
        request = parse(ConverseRequest, params)
        names, memory = self.state.model_for_inference(request.model_id)
        latency = self.faults.chat_latency(*names)
        response = answer(
            request,
            memory,
            degradation=self.faults.degradation(*names),
            latency_ms=round(latency * 1000),
            generation_fault=self.faults.take_generation_fault,
        )
        return Delayed(response, latency)
