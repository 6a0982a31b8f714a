"""Bedrock's REST/JSON protocol, read from botocore's service models.

Each operation's method, path template and success status come from its
``http`` trait, so the routes are exactly the ones the SDK calls. A request's
path labels, query parameters and JSON body are gathered into one set of
parameters and checked against the operation's input shape (required members,
lengths, ranges, enums, patterns, unions) as the service checks them: every
violation is listed in one ValidationException, in the service's wording.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from datetime import datetime
from functools import cache
from typing import Literal, TypeVar

import botocore.session
from botocore.model import ListShape, MapShape, OperationModel, Shape, StructureShape
from pydantic import BaseModel, ValidationError

from sft_local.bedrock_standin.errors import BedrockError, validation_error
from sft_local.http_service import match_path_template

ServiceName = Literal["bedrock", "bedrock-runtime"]

Parsed = TypeVar("Parsed", bound=BaseModel)


@cache
def operation_model(service: ServiceName, name: str) -> OperationModel:
    return botocore.session.get_session().get_service_model(service).operation_model(name)


def match_path(operation: OperationModel, method: str, path: str) -> dict[str, str] | None:
    """The decoded path labels when ``method`` and ``path`` address ``operation``."""
    if method != operation.http["method"]:
        return None
    return match_path_template(operation.http["requestUri"], path)


def request_parameters(
    operation: OperationModel,
    labels: Mapping[str, str],
    query: Mapping[str, list[str]],
    body: bytes,
) -> dict[str, object]:
    """The body's members plus the path labels and query parameters, under their member names."""
    try:
        params = json.loads(body) if body.strip() else {}
    except ValueError:
        raise BedrockError(
            "SerializationException", 400, "The request body is not valid JSON."
        ) from None
    if not isinstance(params, dict):
        raise BedrockError("SerializationException", 400, "The request body must be a JSON object.")
    shape = operation.input_shape
    members = {} if shape is None else shape.members
    for name, member in members.items():
        location = member.serialization.get("location")
        wire_name = member.serialization.get("name", name)
        if location == "uri":
            params[name] = labels[wire_name]
        elif location == "querystring" and wire_name in query:
            params[name] = _query_value(member, query[wire_name][-1])
    return params


def check_input(operation: OperationModel, params: Mapping[str, object]) -> None:
    """Raise the ValidationException the service sends when ``params`` break the input shape."""
    if operation.input_shape is None:
        return
    violations = list(_violations(operation.input_shape, params, ""))
    if violations:
        raise validation_error(_validation_message(violations))


def parse(model: type[Parsed], params: Mapping[str, object]) -> Parsed:
    """``params`` as ``model``; what the model requires beyond the input shape is a ValidationException."""
    try:
        return model.model_validate(params)
    except ValidationError as exc:
        violations = [
            _violation(
                problem["input"] if problem["type"] != "missing" else None,
                _path(problem["loc"]),
                "Member must not be null" if problem["type"] == "missing" else problem["msg"],
            )
            for problem in exc.errors()
        ]
        raise validation_error(_validation_message(violations)) from None


def _path(location: tuple[int | str, ...]) -> str:
    """A pydantic error location as the service writes a member path: ``messages.1.member.role``."""
    return ".".join(f"{part + 1}.member" if isinstance(part, int) else part for part in location)


def _query_value(member: Shape, raw: str) -> object:
    if member.type_name in ("integer", "long") and re.fullmatch(r"-?\d+", raw):
        return int(raw)
    return raw


def _validation_message(violations: list[str]) -> str:
    count = len(violations)
    return f"{count} validation error{'s' if count > 1 else ''} detected: " + "; ".join(violations)


def _violation(value: object, path: str, constraint: str) -> str:
    shown = (
        "null" if value is None else f"'{value}'" if isinstance(value, str) else json.dumps(value)
    )
    return f"Value {shown} at '{path}' failed to satisfy constraint: {constraint}"


def _violations(shape: Shape, value: object, path: str) -> Iterator[str]:
    if shape.metadata.get("document"):
        return
    if isinstance(shape, StructureShape):
        yield from _structure_violations(shape, value, path)
    elif isinstance(shape, ListShape):
        if not isinstance(value, list):
            yield _violation(value, path, "Member must be a list")
            return
        yield from _size_violations(shape, value, len(value), path, "length")
        for index, item in enumerate(value, start=1):
            yield from _violations(shape.member, item, f"{path}.{index}.member")
    elif isinstance(shape, MapShape):
        if not isinstance(value, dict):
            yield _violation(value, path, "Member must be a map")
            return
        yield from _size_violations(shape, value, len(value), path, "length")
        for key, item in value.items():
            yield from _violations(shape.key, key, f"{path}.key")
            yield from _violations(shape.value, item, f"{path}.{key}")
    else:
        yield from _scalar_violations(shape, value, path)


def _structure_violations(shape: StructureShape, value: object, path: str) -> Iterator[str]:
    if not isinstance(value, dict):
        yield _violation(value, path, "Member must be an object")
        return
    prefix = f"{path}." if path else ""
    for name in shape.required_members:
        if value.get(name) is None:
            yield _violation(None, prefix + name, "Member must not be null")
    present = [name for name in shape.members if value.get(name) is not None]
    if shape.metadata.get("union") and len(present) != 1:
        yield _violation(value, path, "Member must have exactly one member set")
    for name in present:
        yield from _violations(shape.members[name], value[name], prefix + name)


def _scalar_violations(shape: Shape, value: object, path: str) -> Iterator[str]:
    kind = shape.type_name
    if kind == "string":
        if not isinstance(value, str):
            yield _violation(value, path, "Member must be a string")
            return
        enum = shape.metadata.get("enum")
        if enum and value not in enum:
            yield _violation(
                value, path, f"Member must satisfy enum value set: [{', '.join(enum)}]"
            )
        yield from _size_violations(shape, value, len(value), path, "length")
        pattern = shape.metadata.get("pattern")
        if pattern is not None and not _compiled(pattern).fullmatch(value):
            yield _violation(
                value, path, f"Member must satisfy regular expression pattern: {pattern}"
            )
    elif kind in ("integer", "long"):
        if not isinstance(value, int) or isinstance(value, bool):
            yield _violation(value, path, "Member must be an integer")
            return
        yield from _size_violations(shape, value, value, path, "value")
    elif kind in ("float", "double"):
        if not isinstance(value, int | float) or isinstance(value, bool):
            yield _violation(value, path, "Member must be a number")
            return
        yield from _size_violations(shape, value, value, path, "value")
    elif kind == "boolean":
        if not isinstance(value, bool):
            yield _violation(value, path, "Member must be a boolean")
    elif kind == "timestamp":
        if not _is_timestamp(value):
            yield _violation(value, path, "Member must be a timestamp")
    elif kind == "blob" and not isinstance(value, str):
        yield _violation(value, path, "Member must be base64-encoded data")


def _size_violations(
    shape: Shape, value: object, size: float, path: str, measure: Literal["length", "value"]
) -> Iterator[str]:
    low = shape.metadata.get("min")
    high = shape.metadata.get("max")
    if low is not None and size < low:
        yield _violation(value, path, f"Member must have {measure} greater than or equal to {low}")
    if high is not None and size > high:
        yield _violation(value, path, f"Member must have {measure} less than or equal to {high}")


def _is_timestamp(value: object) -> bool:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return True
    if not isinstance(value, str):
        return False
    try:
        datetime.fromisoformat(value)
    except ValueError:
        return False
    return True


@cache
def _compiled(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)
