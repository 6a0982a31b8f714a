"""What Amazon Bedrock accepts, found before any data is converted or any job exists.

Its base models (``data/bedrock_models.json``: record bounds, context window,
hyperparameter ranges, images, tool use, on-demand serving, dated price) and
:meth:`BedrockModelSpec.hyperparameters_for`, the one translation of a job's
hyperparameters, which the adapter sends and the validator checks.
:func:`nova_issues` lists what Nova's ``bedrock-conversation-2024`` records cannot
express: an error refuses the example (the job would fail, or train on something
other than what the file says), a warning names a field the conversion drops. A
dropped field is only worth a warning when it means something: a message ``name``,
``parallel_tool_calls: false``, ``strict: true`` and an image ``detail`` other than
``auto``. :func:`job_setting_problems` lists the job settings Bedrock would refuse,
and :func:`custom_model_name` is the one rule that names the custom model.

Pure functions, no AWS calls. Model facts come from the data table; the API's fixed
patterns (ids, names) are constants here, as botocore's service models state them.
The Bedrock adapter (providers.bedrock_provider, with its converters nova_format and
converse_format) builds on these rules, never the reverse.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from functools import cache
from typing import Any, Literal, Self

import orjson
from pydantic import BaseModel, ConfigDict, Field, model_validator

from sft_pipeline.jobs import Hyperparameters
from sft_pipeline.validation.formats import (
    AssistantMessage,
    ChatExample,
    FunctionMessage,
    ImagePart,
    RefusalPart,
    SystemMessage,
    TextPart,
    ToolCall,
    ToolDefinition,
    ToolMessage,
    UserMessage,
)
from sft_pipeline.validation.report import Finding, Severity
from sft_pipeline.validation.targets.base import InferencePrice, ResolvedModel, read_table
from sft_pipeline.validation.tokens import EncodingName

TITLE = "Amazon Bedrock"
# The Converse-message training format this pipeline converts OpenAI chat files to.
CONVERSE_FORMAT = "bedrock-conversation-2024"
TrainingFormat = Literal["bedrock-conversation-2024", "anthropic-messages", "prompt-completion"]
ImageFormat = Literal["png", "jpeg", "gif", "webp"]

# Nova names image formats; the S3 key's extension is all a pure check can see.
IMAGE_FORMAT_BY_EXTENSION = {
    "png": "png",
    "jpg": "jpeg",
    "jpeg": "jpeg",
    "gif": "gif",
    "webp": "webp",
}
# Converse's limits (botocore's bedrock-runtime model), which training records share:
# toolUseId and tool names are 1-64 characters of these.
TOOL_USE_ID = re.compile(r"[a-zA-Z0-9_.:-]{1,64}")
TOOL_NAME = re.compile(r"[a-zA-Z0-9_-]{1,64}")


# ---------------------------------------------------------------- base models


class _Data(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class HyperparameterRange(_Data):
    type: Literal["int", "float"]
    min: int | float
    max: int | float
    default: int | float

    @model_validator(mode="after")
    def _default_in_range(self) -> Self:
        if not self.min <= self.default <= self.max:
            raise ValueError(f"default {self.default} is outside {self.min}..{self.max}")
        return self

    def as_string(self, name: str, value: float) -> str:
        """The value as Bedrock takes it (a string), or ValueError when out of range."""
        if not self.min <= value <= self.max:
            raise ValueError(f"{name} must be from {self.min:g} to {self.max:g}, not {value:g}")
        # Plain decimals ("0.00001"), never exponents: the documented form.
        return str(int(value)) if self.type == "int" else format(Decimal(repr(value)), "f")


class BedrockModelSpec(_Data):
    """One base model. A fact listed in ``unconfirmed`` is used, but flagged as such."""

    name: str
    aliases: list[str] = Field(default_factory=list)
    region: str
    training_format: TrainingFormat
    min_records: int | None
    max_records: int | None
    context_window_tokens: int
    # None: not documented, so examples are bounded by the context window only.
    max_tokens_per_example: int | None
    text_only: bool
    image_formats: list[ImageFormat]
    validation_set_used: bool
    # None: unknown whether Bedrock trains tool use for this model.
    tool_use_training: bool | None
    hyperparameters: dict[str, HyperparameterRange]
    # None: unknown whether fine-tunes can be served per token without Provisioned Throughput.
    on_demand_deployment: bool | None
    training_per_million: float | None
    # On-demand serving per token; a fine-tune needing Provisioned Throughput has none.
    inference: InferencePrice | None = None
    fine_tuned_inference: InferencePrice | None = None
    unconfirmed: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _check_facts(self) -> Self:
        unknown = set(self.unconfirmed) - set(type(self).model_fields)
        if unknown:
            raise ValueError(f"unconfirmed notes for unknown facts: {sorted(unknown)}")
        if "epochCount" not in self.hyperparameters:
            raise ValueError("every Bedrock model trains for an epochCount")
        return self

    @property
    def default_epochs(self) -> int:
        return int(self.hyperparameters["epochCount"].default)

    def unsupported_reason(self) -> str | None:
        """Why this pipeline cannot fine-tune the model, or None when it can."""
        reasons = []
        if self.training_format != CONVERSE_FORMAT:
            reasons.append(
                f"{self.name} trains on the {self.training_format} format, "
                "which this pipeline does not produce."
            )
        if self.on_demand_deployment is False:
            reasons.append(
                f"{self.name} fine-tunes need Provisioned Throughput, billed by the hour "
                "whether they are used or not."
            )
        return " ".join(reasons) or None

    def hyperparameters_for(self, requested: Hyperparameters) -> dict[str, str]:
        """The job's hyperParameters map; "auto" leaves a value to Bedrock's default.

        The learning-rate multiplier scales this model's default learning rate,
        or is sent as is to a model that takes a multiplier. Raises ValueError
        for a value out of range or one the model does not take.
        """
        ranges = self.hyperparameters
        chosen: dict[str, float] = {}
        if requested.n_epochs != "auto":
            chosen["epochCount"] = requested.n_epochs
        if requested.batch_size != "auto":
            if "batchSize" not in ranges:
                raise ValueError(f"{self.name} has no batch size; leave batch_size on auto")
            chosen["batchSize"] = requested.batch_size
        multiplier = requested.learning_rate_multiplier
        if multiplier != "auto":
            if "learningRateMultiplier" in ranges:
                chosen["learningRateMultiplier"] = multiplier
            else:
                chosen["learningRate"] = ranges["learningRate"].default * multiplier
        return {name: ranges[name].as_string(name, value) for name, value in chosen.items()}


class BedrockLifecycle(_Data):
    """When base models stop serving (their fine-tunes with them), where it is known."""

    source: str
    checked: dt.date
    shutdown_dates: dict[str, dt.date]


class BedrockCatalog(_Data):
    as_of: dt.date
    source: str
    currency: str
    estimate_encoding: EncodingName
    reserved_strings: list[str]
    reserved_strings_ignore_case: bool
    max_images_per_message: int
    media_uri_pattern: re.Pattern[str]
    unconfirmed: dict[str, str] = Field(default_factory=dict)
    hyperparameter_schemas: dict[str, dict[str, HyperparameterRange]]
    models: dict[str, BedrockModelSpec]
    lifecycle: BedrockLifecycle
    # The base model a model trained elsewhere is retrained on (by that model's base model).
    counterparts: dict[str, str]
    default_counterpart: str

    @model_validator(mode="after")
    def _known_models(self) -> Self:
        named = {*self.lifecycle.shutdown_dates, *self.counterparts.values()}
        unknown = sorted(named - set(self.models))
        if self.default_counterpart not in self.models:
            unknown.append(self.default_counterpart)
        if unknown:
            raise ValueError(f"lifecycle dates or counterparts name unknown models: {unknown}")
        return self

    @model_validator(mode="before")
    @classmethod
    def _inline_schemas(cls, data: Any) -> Any:
        """Models name a shared schema ("hyperparameter_schema") so its ranges are written once."""
        schemas = data["hyperparameter_schemas"]
        models = {}
        for model_id, raw in data["models"].items():
            spec = dict(raw)
            name = spec.pop("hyperparameter_schema")
            if name not in schemas:
                raise ValueError(f"{model_id}: no hyperparameter schema named {name!r}")
            models[model_id] = {**spec, "hyperparameters": schemas[name]}
        return {**data, "models": models}

    @model_validator(mode="after")
    def _bucket_group(self) -> Self:
        if "bucket" not in self.media_uri_pattern.groupindex:
            raise ValueError("media_uri_pattern needs a (?P<bucket>...) group")
        return self

    def resolve(self, model: str) -> tuple[str, BedrockModelSpec] | None:
        """Find the fine-tuning model id behind itself, an alias or the inference model id."""
        if model in self.models:
            return model, self.models[model]
        for model_id, spec in self.models.items():
            if model in spec.aliases:
                return model_id, spec
        return None

    def refusal(self, model: str) -> str | None:
        """Why ``model`` cannot be fine-tuned here and what to use instead; None if it can."""
        resolved = self.resolve(model)
        if resolved is None:
            reason = f"'{model}' is not a base model Amazon Bedrock can fine-tune on chat data."
        else:
            unsupported = resolved[1].unsupported_reason()
            if unsupported is None:
                return None
            reason = unsupported
        usable = [
            f"{model_id} ({spec.aliases[0]})" if spec.aliases else model_id
            for model_id, spec in self.models.items()
            if spec.unsupported_reason() is None
        ]
        return f"{reason} Use one of: {', '.join(usable)}."

    def trainable(self, model: str) -> tuple[str, BedrockModelSpec]:
        """The model's id and facts; raises UnsupportedModelError when it cannot be used."""
        resolved = self.resolve(model)
        if resolved is None or resolved[1].unsupported_reason() is not None:
            raise UnsupportedModelError(self.refusal(model))
        return resolved


class UnsupportedModelError(ValueError):
    """A Bedrock base model this pipeline cannot fine-tune; the message says what to use."""


@cache
def load_bedrock_catalog() -> BedrockCatalog:
    return BedrockCatalog.model_validate(json.loads(read_table("bedrock_models.json")))


def bedrock_spec(model: str) -> BedrockModelSpec | None:
    """The facts of a Bedrock base model (by id, alias or inference id); None if unknown."""
    resolved = load_bedrock_catalog().resolve(model)
    return resolved[1] if resolved else None


def knows(model: str) -> bool:
    return load_bedrock_catalog().resolve(model) is not None


def resolve(model: str) -> ResolvedModel:
    catalog = load_bedrock_catalog()
    resolved = catalog.resolve(model)
    if resolved is None:
        return ResolvedModel(
            provider="bedrock",
            base_model=None,
            encoding=catalog.estimate_encoding,
            tokens_approximate=True,
            price_as_of=catalog.as_of,
            unsupported_reason=catalog.refusal(model),
        )
    base, spec = resolved
    return ResolvedModel(
        provider="bedrock",
        base_model=base,
        encoding=catalog.estimate_encoding,
        tokens_approximate=True,
        max_tokens_per_example=spec.max_tokens_per_example,
        context_window_tokens=spec.context_window_tokens,
        training_per_million=spec.training_per_million,
        inference=spec.inference,
        fine_tuned_inference=spec.fine_tuned_inference,
        price_as_of=catalog.as_of,
        default_epochs=spec.default_epochs,
        unconfirmed=frozenset(spec.unconfirmed),
        shutdown_date=catalog.lifecycle.shutdown_dates.get(base),
        unsupported_reason=catalog.refusal(model),
        chat_model=base.rpartition(":")[0] if base.count(":") == 2 else None,
    )


def counterpart(base_model: str) -> str:
    """The base model to retrain a model of ``base_model`` (another provider's) on."""
    catalog = load_bedrock_catalog()
    return catalog.counterparts.get(base_model, catalog.default_counterpart)


def largest_token_limit() -> int:
    return max(
        spec.max_tokens_per_example or spec.context_window_tokens
        for spec in load_bedrock_catalog().models.values()
    )


def min_examples(base_model: str) -> tuple[int, int]:
    """Nova's record minimum to train on; Bedrock documents none for a validation set, and an
    empty one is still none."""
    spec = bedrock_spec(base_model)
    return (spec and spec.min_records) or 1, 1


# ---------------------------------------------------------------- examples


class NovaIssue(BaseModel):
    model_config = ConfigDict(frozen=True)

    code: str
    message: str
    location: str | None = None
    severity: Severity


@dataclass(frozen=True, slots=True)
class NovaTarget:
    """The Bedrock base model a file is validated for, and the bucket it is uploaded to."""

    base_model: str
    dataset_bucket: str | None = None


# ---------------------------------------------------------------- checks


@dataclass
class _Issues:
    spec: BedrockModelSpec
    dataset_bucket: str | None
    found: list[NovaIssue] = field(default_factory=list)

    def error(self, code: str, message: str, location: str | None = None) -> None:
        self.found.append(
            NovaIssue(code=code, message=message, location=location, severity="error")
        )

    def warn(self, code: str, message: str, location: str | None = None) -> None:
        self.found.append(
            NovaIssue(code=code, message=message, location=location, severity="warning")
        )


def nova_issues(
    example: ChatExample, base_model: str, *, dataset_bucket: str | None = None
) -> list[NovaIssue]:
    """Every refusal (error) and every dropped field (warning) for ``base_model``.

    ``dataset_bucket``, when known, is the only bucket images may be read from.
    Raises UnsupportedModelError for a base model this pipeline cannot fine-tune.
    """
    _, spec = load_bedrock_catalog().trainable(base_model)
    issues = _Issues(spec, dataset_bucket)
    _check_example_keys(example, issues)
    _check_turn_order(example.messages, issues)
    tool_names = {tool.function.name for tool in example.tools or ()}
    call_ids: set[str] = set()
    answered: set[str] = set()
    for index, message in enumerate(example.messages):
        where = f"messages[{index}]"
        if isinstance(message, SystemMessage | UserMessage | AssistantMessage) and message.name:
            issues.warn(
                "nova_name_dropped",
                f'{where}: Nova has no "name" field; it is dropped.',
                f"{where}.name",
            )
        if isinstance(message, AssistantMessage):
            _check_assistant(message, where, tool_names, call_ids, issues)
        elif isinstance(message, FunctionMessage):
            issues.error(
                "nova_legacy_functions",
                f'{where}: Nova has no "function" role; answer tool_calls with "tool" messages.',
                where,
            )
        else:
            if isinstance(message, ToolMessage):
                _check_tool_answer(message, where, answered, issues)
            _check_texts(content_texts(message.content, where), issues)
            if isinstance(message, UserMessage) and isinstance(message.content, list):
                _check_images(message.content, where, issues)
    return issues.found


def _check_example_keys(example: ChatExample, issues: _Issues) -> None:
    if example.functions is not None:
        issues.error(
            "nova_legacy_functions",
            'Nova has no legacy "functions"; declare them as "tools".',
            "functions",
        )
    if example.parallel_tool_calls is False:
        issues.warn(
            "nova_parallel_tool_calls_dropped",
            "Nova cannot forbid parallel tool calls; parallel_tool_calls is dropped.",
            "parallel_tool_calls",
        )
    if example.tools and issues.spec.tool_use_training is False:
        issues.error(
            "nova_tools_not_supported",
            f"{issues.spec.name} cannot be fine-tuned on tool use; remove the tools.",
            "tools",
        )
    for index, tool in enumerate(example.tools or ()):
        _check_tool(tool, f"tools[{index}].function", issues)


def _check_tool(tool: ToolDefinition, where: str, issues: _Issues) -> None:
    function = tool.function
    if not TOOL_NAME.fullmatch(function.name):
        issues.error(
            "nova_invalid_tool_name",
            f'{where}: the tool name "{function.name}" does not fit Nova, which takes 1-64 '
            "letters, digits, '_' and '-'.",
            f"{where}.name",
        )
    if not (function.description or "").strip():
        issues.error(
            "nova_tool_missing_description",
            f'{where} ("{function.name}") has no description; Nova requires one.',
            f"{where}.description",
        )
    if function.parameters is not None and "type" not in function.parameters:
        issues.error(
            "nova_tool_schema_missing_type",
            f'{where}.parameters has no "type"; Nova requires one (usually "object").',
            f"{where}.parameters",
        )
    if function.strict:
        issues.warn(
            "nova_tool_strict_dropped",
            f'{where}: Nova training records have no "strict"; it is dropped.',
            f"{where}.strict",
        )


def _check_turn_order(messages: Sequence[Any], issues: _Issues) -> None:
    """Nova: system first, then user and assistant turns alternating, user first, assistant last."""
    previous_role: str | None = None
    last_turn = None
    for index, message in enumerate(messages):
        where = f"messages[{index}]"
        if message.role == "system":
            if previous_role is not None:
                issues.error(
                    "nova_late_system_message",
                    f"{where} is a system message after the conversation started; "
                    "Nova has a system prompt only before the first turn.",
                    where,
                )
            continue
        if previous_role is None and message.role != "user":
            issues.error(
                "nova_first_turn_not_user",
                f"{where} is the first turn but has role {message.role}; "
                "Nova conversations start with a user turn.",
                where,
            )
        if message.role == "assistant" and previous_role == "assistant":
            issues.error(
                "nova_consecutive_assistant_turns",
                f"{where} follows another assistant message; Nova turns must alternate "
                "between user and assistant.",
                where,
            )
        elif message.role == "user" and previous_role == "user":
            issues.warn(
                "nova_user_turns_merged",
                f"{where} follows another user message; both become one Nova user turn.",
                where,
            )
        previous_role = message.role
        last_turn = index, message.role
    if last_turn is not None and last_turn[1] != "assistant":
        where = f"messages[{last_turn[0]}]"
        issues.error(
            "nova_last_turn_not_assistant",
            f"{where} is the last message but not an assistant message; Nova conversations "
            "end with the assistant turn to train on.",
            where,
        )


def _check_assistant(
    message: AssistantMessage,
    where: str,
    tool_names: set[str],
    call_ids: set[str],
    issues: _Issues,
) -> None:
    if message.weight == 0:
        issues.error(
            "nova_weight_zero",
            f"{where} has weight 0, but Nova has no per-turn weights and would train on it; "
            "set weight 1 or end the example before this turn.",
            f"{where}.weight",
        )
    if message.refusal is not None:
        issues.error(
            "nova_refusal",
            f'{where}: Nova has no "refusal" field; write the refusal as the content text.',
            f"{where}.refusal",
        )
    if message.function_call is not None:
        issues.error(
            "nova_legacy_functions",
            f'{where}: Nova has no "function_call"; use tool_calls.',
            f"{where}.function_call",
        )
    if isinstance(message.content, list):
        for part_index, part in enumerate(message.content):
            if isinstance(part, RefusalPart):
                issues.error(
                    "nova_refusal",
                    f'{where}: Nova has no "refusal" part; write the refusal as a text part.',
                    f"{where}.content[{part_index}]",
                )
    content = spoken_content(message)
    if content is not None:
        _check_texts(content_texts(content, where), issues)
    for call_index, call in enumerate(message.tool_calls or ()):
        call_where = f"{where}.tool_calls[{call_index}]"
        _check_tool_call(call, call_where, issues)
        if not TOOL_USE_ID.fullmatch(call.id):
            issues.error(
                "nova_invalid_tool_call_id",
                f'{call_where}: the id "{call.id[:80]}" does not fit Nova, which takes 1-64 '
                "letters, digits, '_', '.', ':' and '-'.",
                f"{call_where}.id",
            )
        if call.id in call_ids:
            issues.error(
                "nova_duplicate_tool_call_id",
                f'{call_where}: the id "{call.id}" is used by an earlier tool call; '
                "Nova needs unique ids.",
                f"{call_where}.id",
            )
        call_ids.add(call.id)
        if call.function.name not in tool_names:
            issues.error(
                "nova_undefined_tool",
                f'{call_where} calls "{call.function.name}", which the example\'s tools do not '
                "declare; Nova needs every called tool in tools.",
                f"{call_where}.function.name",
            )


def _check_tool_answer(
    message: ToolMessage, where: str, answered: set[str], issues: _Issues
) -> None:
    if message.tool_call_id in answered:
        issues.error(
            "nova_tool_call_answered_twice",
            f'{where} answers tool call "{message.tool_call_id}" a second time; Nova takes '
            "one result per call.",
            f"{where}.tool_call_id",
        )
    answered.add(message.tool_call_id)


def _check_tool_call(call: ToolCall, where: str, issues: _Issues) -> None:
    arguments = call.function.arguments
    try:
        parsed = orjson.loads(arguments)
    except orjson.JSONDecodeError:
        parsed = None
    if not isinstance(parsed, dict):
        issues.error(
            "nova_tool_arguments_not_object",
            f'{where}: the arguments of "{call.function.name}" must be a JSON object, '
            "which becomes Nova's toolUse input.",
            f"{where}.function.arguments",
        )
    _check_reserved(arguments, f"{where}.function.arguments", issues)


def _check_texts(texts: Iterator[tuple[str, str]], issues: _Issues) -> None:
    for where, text in texts:
        if not text.strip():
            issues.error("nova_empty_text", f"{where} is empty; Nova refuses empty text.", where)
        else:
            _check_reserved(text, where, issues)


def _check_reserved(text: str, where: str, issues: _Issues) -> None:
    pattern, canonical = _reserved_strings()
    match = pattern.search(text)
    if match:
        reserved = canonical[match.group().casefold()]
        seen = "" if match.group() == reserved else f' (written "{match.group()}")'
        issues.error(
            "nova_reserved_string",
            f'{where} contains "{reserved}"{seen}, which Bedrock reserves for its prompt '
            "template; the training job would fail. Rephrase it.",
            where,
        )


@cache
def _reserved_strings() -> tuple[re.Pattern[str], dict[str, str]]:
    catalog = load_bedrock_catalog()
    flags = re.IGNORECASE if catalog.reserved_strings_ignore_case else 0
    pattern = re.compile("|".join(map(re.escape, catalog.reserved_strings)), flags)
    return pattern, {text.casefold(): text for text in catalog.reserved_strings}


def _check_images(parts: Sequence[TextPart | ImagePart], where: str, issues: _Issues) -> None:
    images = [(index, part) for index, part in enumerate(parts) if isinstance(part, ImagePart)]
    limit = load_bedrock_catalog().max_images_per_message
    if len(images) > limit:
        issues.error(
            "nova_too_many_images",
            f"{where} has {len(images)} images; Nova takes at most {limit} per message.",
            where,
        )
    for index, part in images:
        _check_image(part, f"{where}.content[{index}]", issues)


def _check_image(part: ImagePart, where: str, issues: _Issues) -> None:
    spec = issues.spec
    if spec.text_only:
        issues.error(
            "nova_images_not_supported",
            f"{where} is an image, but {spec.name} is text-only.",
            where,
        )
        return
    if part.image_url.detail not in (None, "auto"):
        issues.warn(
            "nova_image_detail_dropped",
            f'{where}: Nova has no image detail; "{part.image_url.detail}" is dropped.',
            f"{where}.image_url.detail",
        )
    url = part.image_url.url
    if not url.startswith("s3://"):
        if url.startswith("data:"):
            kind = "a base64 data URL"
        elif url.startswith(("http://", "https://")):
            kind = "an http(s) URL"
        else:
            kind = "not an s3:// URI"
        issues.error(
            "nova_image_not_in_s3",
            f"{where}: the image is {kind}; Bedrock reads training images only from S3. "
            "Upload it to the dataset's bucket and use its s3:// URI.",
            where,
        )
        return
    match = load_bedrock_catalog().media_uri_pattern.match(url)
    if match is None:
        issues.error(
            "nova_invalid_image_uri",
            f"{where}: {url} is not a usable S3 URI: Bedrock needs s3://<bucket>/<key>, "
            "a valid bucket name and a key of only letters, digits and _ - / .",
            where,
        )
        return
    if issues.dataset_bucket is not None and match["bucket"] != issues.dataset_bucket:
        issues.error(
            "nova_image_other_bucket",
            f'{where}: the image is in bucket "{match["bucket"]}"; Bedrock reads training '
            f'images only from the dataset\'s bucket "{issues.dataset_bucket}".',
            where,
        )
    image_format = image_format_of(url)
    if image_format not in spec.image_formats:
        named = image_format or "an image whose key's extension names no image format"
        issues.error(
            "nova_unsupported_image_format",
            f"{where}: {spec.name} takes {', '.join(spec.image_formats)} images, not {named}.",
            where,
        )


def image_format_of(uri: str) -> str | None:
    """Nova's format name for an image, from its key's extension."""
    _, dot, extension = uri.rpartition(".")
    return IMAGE_FORMAT_BY_EXTENSION.get(extension.lower()) if dot else None


def content_texts(content: str | Sequence[Any], where: str) -> Iterator[tuple[str, str]]:
    """(location, text) of each text in a message's content; empty content counts as one."""
    if isinstance(content, str) or not content:
        yield f"{where}.content", content if isinstance(content, str) else ""
        return
    for index, part in enumerate(content):
        if isinstance(part, TextPart):
            yield f"{where}.content[{index}]", part.text


def spoken_content(message: AssistantMessage) -> str | Sequence[Any] | None:
    """The content Nova gets: blank content beside tool calls says nothing and is left out."""
    content = message.content
    if content is None or not message.tool_calls:
        return content
    return None if all(not text.strip() for _, text in content_texts(content, "")) else content


# ---------------------------------------------------------------- job settings

# CreateModelCustomizationJob's customModelName (botocore's bedrock model): at most
# 63 characters, each "-" or "_" after a letter or digit.
CUSTOM_MODEL_NAME = re.compile(r"(?:[0-9a-zA-Z][_-]?){1,63}")
CUSTOM_MODEL_NAME_MAX = 63
UNNAMED_SUFFIX = "model"
# Dataset ids are 32 lowercase hex digits; any stands in for one when checking a suffix.
SAMPLE_DATASET_ID = "0" * 32


def custom_model_name(suffix: str | None, dataset_id: str) -> str:
    """``sft-<suffix>-<first 12 characters of the dataset id>``: one upload, one name.

    Raises ValueError, saying what to change, when Bedrock would refuse the name.
    """
    middle = suffix or UNNAMED_SUFFIX
    name = f"sft-{middle}-{dataset_id[:12]}"
    rule = "Bedrock names the custom model sft-<suffix>-<12 characters of the dataset id>"
    if len(name) > CUSTOM_MODEL_NAME_MAX:
        room = CUSTOM_MODEL_NAME_MAX - (len(name) - len(middle))
        raise ValueError(
            f'suffix "{middle}" has {len(middle)} characters; {rule} in at most '
            f"{CUSTOM_MODEL_NAME_MAX} characters, so a suffix may have at most {room}"
        )
    if not CUSTOM_MODEL_NAME.fullmatch(name):
        raise ValueError(
            f'suffix "{middle}" does not fit the name Bedrock requires ({rule}): a "-" or "_" '
            "must stand between two letters or digits, never two in a row nor one at the end"
        )
    return name


def job_setting_problems(
    base_model: str, hyperparameters: Hyperparameters, suffix: str | None
) -> list[str]:
    """What Bedrock would refuse in a job's settings for ``base_model``, in words."""
    problems = []
    spec = bedrock_spec(base_model)
    if spec is not None:
        try:
            spec.hyperparameters_for(hyperparameters)
        except ValueError as invalid:
            problems.append(f"Amazon Bedrock would refuse the job: {invalid}.")
    try:
        custom_model_name(suffix, SAMPLE_DATASET_ID)
    except ValueError as invalid:
        problems.append(f"{invalid}.")
    return problems


# ---------------------------------------------------------------- the file


def file_findings(
    base_model: str, examples: int, with_tools: int, has_validation_file: bool
) -> tuple[list[Finding], list[Finding]]:
    """Errors and warnings about a whole file for ``base_model``: the record bounds, a
    validation set Bedrock ignores, tool use it may not train."""
    spec = load_bedrock_catalog().models[base_model]
    errors: list[Finding] = []
    warnings: list[Finding] = []
    if spec.min_records is not None and 0 < examples < spec.min_records:
        errors.append(
            Finding(
                code="too_few_examples",
                message=f"The file has {examples:,} examples; Amazon Bedrock requires at "
                f"least {spec.min_records:,} to fine-tune {base_model}.",
            )
        )
    if spec.max_records is not None and examples > spec.max_records:
        errors.append(
            Finding(
                code="too_many_examples",
                message=f"The file has {examples:,} examples; Amazon Bedrock accepts at "
                f"most {spec.max_records:,} to fine-tune {base_model}. Split or sample the data.",
            )
        )
    if has_validation_file and not spec.validation_set_used:
        warnings.append(
            Finding(
                code="validation_file_not_used",
                file="validation",
                message=f"Amazon Bedrock does not use a validation set when it fine-tunes "
                f"{base_model}; the validation file has no effect.",
            )
        )
    tool_note = spec.unconfirmed.get("tool_use_training")
    if with_tools and tool_note:
        warnings.append(
            Finding(
                code="tool_use_unconfirmed",
                message=f"{with_tools:,} examples use tools, and whether Amazon Bedrock "
                f"trains tool use for {base_model} is unconfirmed: {tool_note}",
            )
        )
    return errors, warnings
