"""The API surface: routing, authentication, faults, request parsing and the request log.

Transport-free: ``EmulatorApp.handle`` takes the method, target, headers and
body of an HTTP request and returns the status, headers and body to send.
"""

from __future__ import annotations

import json
import logging
import re
import secrets
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from email.message import Message
from email.parser import BytesHeaderParser
from typing import Protocol, TypeVar
from urllib.parse import parse_qs, urlsplit

from pydantic import BaseModel, ValidationError

from sft_local.http_service import match_path_template
from sft_local.openai_emulator.answers import complete
from sft_local.openai_emulator.errors import ApiError, invalid_request
from sft_local.openai_emulator.faults import FaultInjector
from sft_local.openai_emulator.schemas import (
    ChatCompletion,
    ChatCompletionRequest,
    CheckpointPage,
    CompleteUploadRequest,
    CreateFileRequest,
    CreateFineTuningJobRequest,
    CreateUploadRequest,
    FineTuningJob,
    FineTuningJobEvent,
    ModelList,
    Page,
)
from sft_local.openai_emulator.state import EmulatorState

logger = logging.getLogger(__name__)

API_PREFIX = "/v1"
MAX_PAGE_SIZE = 100
METADATA_QUERY = re.compile(r"^metadata\[(?P<key>.+)\]$")

Body = TypeVar("Body", bound=BaseModel)


class Identified(Protocol):
    @property
    def id(self) -> str: ...


Item = TypeVar("Item", bound=Identified)


@dataclass(frozen=True)
class RecordedRequest:
    """One line of the request log: what came in and the status it got."""

    method: str
    path: str
    route: str | None
    status: int
    request_id: str


@dataclass
class ApiResponse:
    status: int
    body: bytes
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def of(cls, model: BaseModel) -> ApiResponse:
        return cls(200, model.model_dump_json().encode())

    @classmethod
    def error(cls, error: ApiError) -> ApiResponse:
        return cls(error.status, json.dumps(error.body()).encode(), headers=dict(error.headers))


@dataclass(frozen=True)
class FormField:
    content: bytes
    filename: str | None


@dataclass(frozen=True)
class ApiRequest:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: Mapping[str, str]
    body: bytes
    params: dict[str, str]

    def parse(self, model: type[Body]) -> Body:
        try:
            data = json.loads(self.body or b"{}")
        except ValueError:
            raise invalid_request(
                "We could not parse the JSON body of your request. "
                "The body must be valid JSON with Content-Type: application/json."
            ) from None
        return validated(model, data)

    def form(self) -> dict[str, FormField]:
        """The fields of a multipart/form-data body, byte for byte."""
        header = Message()
        header["content-type"] = self.headers.get("content-type", "")
        boundary = header.get_param("boundary")
        if header.get_content_type() != "multipart/form-data" or not isinstance(boundary, str):
            raise invalid_request("The request body must be multipart/form-data.")
        fields: dict[str, FormField] = {}
        for chunk in self.body.split(b"--" + boundary.encode())[1:]:
            if chunk.startswith(b"--"):
                break
            head, separator, content = chunk.removeprefix(b"\r\n").partition(b"\r\n\r\n")
            part = BytesHeaderParser().parsebytes(head + b"\r\n\r\n")
            name = part.get_param("name", header="content-disposition")
            if not separator or not isinstance(name, str):
                raise invalid_request("The multipart/form-data body is malformed.")
            fields[name] = FormField(content.removesuffix(b"\r\n"), part.get_filename())
        return fields

    def query_value(self, name: str) -> str | None:
        values = self.query.get(name)
        return values[-1] if values else None

    def page_size(self, default: int) -> int:
        raw = self.query_value("limit")
        if raw is None:
            return default
        if not raw.isdigit() or not 1 <= int(raw) <= MAX_PAGE_SIZE:
            raise invalid_request(
                f"Invalid 'limit': expected an integer from 1 to {MAX_PAGE_SIZE}, got '{raw}'.",
                param="limit",
                code="invalid_value",
            )
        return int(raw)

    def metadata_filter(self) -> dict[str, str] | None:
        """``metadata[k]=v`` pairs to match; ``metadata=null`` asks for jobs without metadata."""
        if self.query_value("metadata") == "null":
            return {}
        pairs = {
            match["key"]: values[-1]
            for name, values in self.query.items()
            if (match := METADATA_QUERY.match(name))
        }
        return pairs or None


Handler = Callable[[ApiRequest], BaseModel | ApiResponse]


@dataclass(frozen=True)
class Route:
    method: str
    template: str
    handler: Handler

    @property
    def name(self) -> str:
        return f"{self.method} {self.template}"

    def match(self, method: str, path: str) -> dict[str, str] | None:
        """The decoded ``{name}`` segments when ``method`` and ``path`` address this route."""
        return match_path_template(self.template, path) if method == self.method else None


class EmulatorApp:
    """OpenAI's /v1 endpoints for files, uploads, fine-tuning jobs, models and chat."""

    def __init__(
        self,
        state: EmulatorState,
        *,
        api_key: str | None,
        chat_latency: float,
        sleep: Callable[[float], object],
    ) -> None:
        self.state = state
        self._api_key = api_key
        # Injected delays and chat latency; the server's cuts them short on shutdown.
        self._sleep = sleep
        self._state_lock = threading.Lock()
        self._log_lock = threading.Lock()
        self._log: list[RecordedRequest] = []
        self.routes = (
            Route("POST", "/files", self._create_file),
            Route("GET", "/files/{file_id}", self._retrieve_file),
            Route("GET", "/files/{file_id}/content", self._file_content),
            Route("DELETE", "/files/{file_id}", self._delete_file),
            Route("POST", "/uploads", self._create_upload),
            Route("POST", "/uploads/{upload_id}/parts", self._add_upload_part),
            Route("POST", "/uploads/{upload_id}/complete", self._complete_upload),
            Route("POST", "/uploads/{upload_id}/cancel", self._cancel_upload),
            Route("POST", "/fine_tuning/jobs", self._create_job),
            Route("GET", "/fine_tuning/jobs", self._list_jobs),
            Route("GET", "/fine_tuning/jobs/{job_id}", self._retrieve_job),
            Route("POST", "/fine_tuning/jobs/{job_id}/cancel", self._cancel_job),
            Route("GET", "/fine_tuning/jobs/{job_id}/events", self._list_events),
            Route("GET", "/fine_tuning/jobs/{job_id}/checkpoints", self._list_checkpoints),
            Route("GET", "/models", self._list_models),
            Route("GET", "/models/{model}", self._retrieve_model),
            Route("POST", "/chat/completions", self._create_chat_completion),
        )
        self.faults = FaultInjector(
            (route.name for route in self.routes), chat_latency=chat_latency
        )

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._log_lock:
            return list(self._log)

    def catch_up(self) -> None:
        """Move every job on to now (the job-end events ask, between requests)."""
        with self._state_lock:
            self.state.catch_up()

    def handle(
        self, method: str, target: str, headers: Mapping[str, str], body: bytes
    ) -> ApiResponse:
        """Answer one request; ``headers`` must have lower-case names."""
        url = urlsplit(target)
        route, params = self._route(method, url.path)
        request = ApiRequest(
            method=method,
            path=url.path,
            query=parse_qs(url.query, keep_blank_values=True),
            headers=headers,
            body=body,
            params=params,
        )
        try:
            response = self._respond(route, request)
        except ApiError as error:
            response = ApiResponse.error(error)
        except Exception as exc:
            # A defect in the emulator still answers in OpenAI's shape, and leaves a trace.
            logger.exception("emulator failed on %s %s", method, url.path)
            response = ApiResponse.error(ApiError(500, repr(exc), type="server_error"))
        request_id = "req_" + secrets.token_hex(16)
        response.headers["x-request-id"] = request_id
        route_name = None if route is None else route.name
        with self._log_lock:
            self._log.append(
                RecordedRequest(method, url.path, route_name, response.status, request_id)
            )
        return response

    def _route(self, method: str, path: str) -> tuple[Route | None, dict[str, str]]:
        if path.startswith(API_PREFIX + "/"):
            for route in self.routes:
                params = route.match(method, path.removeprefix(API_PREFIX))
                if params is not None:
                    return route, params
        return None, {}

    def _respond(self, route: Route | None, request: ApiRequest) -> ApiResponse:
        self._authenticate(request.headers.get("authorization", ""))
        route_name = None if route is None else route.name
        delay = self.faults.take_delay(route_name)
        if delay:
            self._sleep(delay)
        error = self.faults.take_error(route_name)
        if error is not None:
            raise error
        if route is None:
            raise ApiError(404, f"Invalid URL ({request.method} {request.path})")
        with self._state_lock:
            self.state.catch_up()
            result = route.handler(request)
        if isinstance(result, ChatCompletion):
            # Outside the state lock, so answers in flight overlap as a real service's do.
            self._sleep(self.faults.chat_latency(result.model))
        return result if isinstance(result, ApiResponse) else ApiResponse.of(result)

    def _authenticate(self, authorization: str) -> None:
        scheme, _, key = authorization.partition(" ")
        if scheme.lower() != "bearer" or not key.strip():
            raise ApiError(
                401,
                "You didn't provide an API key. You need to provide your API key in an "
                "Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
            )
        if self._api_key is not None and key.strip() != self._api_key:
            # Word for word OpenAI's, which quotes the key's first and last characters.
            raise ApiError(
                401,
                f"Incorrect API key provided: {_redacted(key.strip())}. You can find your API "
                "key at https://platform.openai.com/account/api-keys.",
                code="invalid_api_key",
            )

    # Files

    def _create_file(self, request: ApiRequest) -> BaseModel:
        form = request.form()
        upload = form.get("file")
        if upload is None or upload.filename is None:
            raise _missing("file")
        purpose = form.get("purpose")
        if purpose is None:
            raise _missing("purpose")
        fields = validated(CreateFileRequest, {"purpose": purpose.content.decode()})
        return self.state.add_file(upload.filename, fields.purpose, upload.content)

    def _retrieve_file(self, request: ApiRequest) -> BaseModel:
        return self.state.get_file(request.params["file_id"]).info

    def _file_content(self, request: ApiRequest) -> ApiResponse:
        content = self.state.get_file(request.params["file_id"]).content
        return ApiResponse(200, content, content_type="application/octet-stream")

    def _delete_file(self, request: ApiRequest) -> BaseModel:
        return self.state.delete_file(request.params["file_id"])

    # Uploads

    def _create_upload(self, request: ApiRequest) -> BaseModel:
        return self.state.create_upload(request.parse(CreateUploadRequest))

    def _add_upload_part(self, request: ApiRequest) -> BaseModel:
        data = request.form().get("data")
        if data is None:
            raise _missing("data")
        return self.state.add_upload_part(request.params["upload_id"], data.content)

    def _complete_upload(self, request: ApiRequest) -> BaseModel:
        completion = request.parse(CompleteUploadRequest)
        return self.state.complete_upload(request.params["upload_id"], completion)

    def _cancel_upload(self, request: ApiRequest) -> BaseModel:
        return self.state.cancel_upload(request.params["upload_id"])

    # Fine-tuning jobs

    def _create_job(self, request: ApiRequest) -> BaseModel:
        job = self.state.create_job(
            request.parse(CreateFineTuningJobRequest), self.faults.take_job_failure
        )
        self.faults.job_created(self.state.get_job(job.id).model_name)
        return job

    def _list_jobs(self, request: ApiRequest) -> BaseModel:
        jobs = self.state.list_jobs(request.metadata_filter())
        page, has_more = paginate(request, jobs, default_size=20)
        return Page[FineTuningJob](data=page, has_more=has_more)

    def _retrieve_job(self, request: ApiRequest) -> BaseModel:
        return self.state.get_job(request.params["job_id"]).job

    def _cancel_job(self, request: ApiRequest) -> BaseModel:
        return self.state.cancel_job(request.params["job_id"])

    def _list_events(self, request: ApiRequest) -> BaseModel:
        events = self.state.get_job(request.params["job_id"]).events[::-1]
        page, has_more = paginate(request, events, default_size=20)
        return Page[FineTuningJobEvent](data=page, has_more=has_more)

    def _list_checkpoints(self, request: ApiRequest) -> BaseModel:
        checkpoints = self.state.get_job(request.params["job_id"]).checkpoints[::-1]
        page, has_more = paginate(request, checkpoints, default_size=10)
        return CheckpointPage(
            data=page,
            has_more=has_more,
            first_id=page[0].id if page else None,
            last_id=page[-1].id if page else None,
        )

    # Models and chat

    def _list_models(self, request: ApiRequest) -> BaseModel:
        return ModelList(data=self.state.list_models())

    def _retrieve_model(self, request: ApiRequest) -> BaseModel:
        return self.state.get_model(request.params["model"])

    def _create_chat_completion(self, request: ApiRequest) -> BaseModel:
        """A fine-tune answers from its training file, a base model generically (see
        ``answers``); streaming is refused with 400."""
        chat = request.parse(ChatCompletionRequest)
        if chat.stream:
            raise invalid_request(
                "Streaming is not supported by the emulator; send stream=false.",
                param="stream",
                code="unsupported_value",
            )
        model, memory = self.state.served_model(chat.model)
        return complete(
            model,
            chat,
            memory,
            degradation=self.faults.degradation(model),
            created=int(self.state.now()),
            generation_fault=self.faults.take_generation_fault,
        )


def validated(model: type[Body], data: object) -> Body:
    """``data`` as ``model``, or the 400 OpenAI sends for the first problem found."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problem = exc.errors()[0]
        param = _param(problem["loc"])
        if not param:
            raise invalid_request(f"Invalid request body: {problem['msg']}.") from None
        if problem["type"] == "missing":
            raise _missing(param) from None
        if problem["type"] == "extra_forbidden":
            raise invalid_request(
                f"Unrecognized request argument supplied: {param}",
                param=param,
                code="unknown_parameter",
            ) from None
        raise invalid_request(
            f"Invalid '{param}': {problem['msg']}.", param=param, code="invalid_value"
        ) from None


def paginate(
    request: ApiRequest, items: list[Item], *, default_size: int
) -> tuple[list[Item], bool]:
    """The page of newest-first ``items`` after the ``after`` id, and whether more follow."""
    size = request.page_size(default_size)
    after = request.query_value("after")
    start = 0
    if after is not None:
        ids = [item.id for item in items]
        if after not in ids:
            raise invalid_request(
                f"Invalid 'after': no item with id '{after}' in this list.", param="after"
            )
        start = ids.index(after) + 1
    return items[start : start + size], start + size < len(items)


def _param(location: tuple[int | str, ...]) -> str:
    """A pydantic error location as OpenAI writes a parameter: ``messages[0].role``."""
    param = ""
    for part in location:
        param += f"[{part}]" if isinstance(part, int) else f".{part}"
    return param.removeprefix(".")


def _missing(param: str) -> ApiError:
    return invalid_request(
        f"Missing required parameter: '{param}'.", param=param, code="missing_required_parameter"
    )


def _redacted(key: str) -> str:
    visible = 4 if len(key) > 8 else 0
    return key[:visible] + "*" * (len(key) - 2 * visible) + key[len(key) - visible :]
