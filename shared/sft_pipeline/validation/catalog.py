"""Fine-tunable base models of both providers: tokenizer, limits, dated training price.

The tables live in ``data/openai_models.json`` and ``data/bedrock_models.json``
so a price change, or a Bedrock fact that turns out to be wrong, is a data
edit, not a code change. :func:`resolve_model` answers the same questions for
either provider.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from decimal import Decimal
from functools import cache
from importlib import resources
from typing import Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from sft_pipeline.jobs import Hyperparameters, ProviderName
from sft_pipeline.validation.tokens import EncodingName

PROVIDER_TITLES: dict[ProviderName, str] = {"openai": "OpenAI", "bedrock": "Amazon Bedrock"}

# Unknown models are counted with the newest tokenizer and the smallest documented limit.
FALLBACK_ENCODING: EncodingName = "o200k_base"
FALLBACK_MAX_TOKENS = 65536

# The Converse-message training format this pipeline converts OpenAI chat files to.
CONVERSE_FORMAT = "bedrock-conversation-2024"
TrainingFormat = Literal["bedrock-conversation-2024", "anthropic-messages", "prompt-completion"]
ImageFormat = Literal["png", "jpeg", "gif", "webp"]


def _read_table(name: str) -> bytes:
    return resources.files("sft_pipeline").joinpath("data", name).read_bytes()


# ---------------------------------------------------------------- OpenAI


class BaseModelSpec(BaseModel):
    aliases: list[str] = Field(default_factory=list)
    encoding: EncodingName
    max_tokens_per_example: int
    limit_unconfirmed: bool = False
    training_per_million: float | None
    shutdown_date: dt.date | None = None


class ModelCatalog(BaseModel):
    as_of: dt.date
    source: str
    currency: str
    default_model: str
    models: dict[str, BaseModelSpec]

    def resolve(self, model: str) -> tuple[str, BaseModelSpec] | None:
        """Find the snapshot behind an alias, a snapshot name or an ``ft:`` model id."""
        name = model.split(":")[1] if model.startswith("ft:") and ":" in model[3:] else model
        if name in self.models:
            return name, self.models[name]
        for snapshot, spec in self.models.items():
            if name in spec.aliases:
                return snapshot, spec
        return None


@cache
def load_catalog() -> ModelCatalog:
    return ModelCatalog.model_validate(json.loads(_read_table("openai_models.json")))


# ---------------------------------------------------------------- Amazon Bedrock


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
    return BedrockCatalog.model_validate(json.loads(_read_table("bedrock_models.json")))


def bedrock_spec(model: str) -> BedrockModelSpec | None:
    """The facts of a Bedrock base model (by id, alias or inference id); None if unknown."""
    resolved = load_bedrock_catalog().resolve(model)
    return resolved[1] if resolved else None


# ---------------------------------------------------------------- either provider


class ResolvedModel(BaseModel):
    """What the validator and the estimate need to know of a base model, whoever trains it."""

    model_config = ConfigDict(frozen=True)

    provider: ProviderName
    # None when the model is not in the provider's table.
    base_model: str | None
    encoding: EncodingName
    # True when the provider's tokenizer is not public and ``encoding`` only approximates it.
    tokens_approximate: bool = False
    max_tokens_per_example: int | None = None
    context_window_tokens: int | None = None
    training_per_million: float | None = None
    price_as_of: dt.date
    # The epochs the provider trains when none are requested; None: OpenAI's "auto".
    default_epochs: int | None = None
    # Names of the facts above that no source confirms.
    unconfirmed: frozenset[str] = frozenset()
    shutdown_date: dt.date | None = None
    # Why the provider cannot fine-tune it here, with what to use instead.
    unsupported_reason: str | None = None


def provider_of(model: str) -> ProviderName | None:
    """Which provider fine-tunes ``model``; None when neither table knows it."""
    if load_catalog().resolve(model) is not None:
        return "openai"
    if load_bedrock_catalog().resolve(model) is not None:
        return "bedrock"
    return None


def resolve_model(model: str, provider: ProviderName | None = None) -> ResolvedModel:
    """Look ``model`` up in ``provider``'s table; by default the table that knows it, else OpenAI's."""
    chosen = provider or provider_of(model) or "openai"
    return _resolve_openai(model) if chosen == "openai" else _resolve_bedrock(model)


def _resolve_openai(model: str) -> ResolvedModel:
    catalog = load_catalog()
    resolved = catalog.resolve(model)
    if resolved is None:
        return ResolvedModel(
            provider="openai",
            base_model=None,
            encoding=FALLBACK_ENCODING,
            price_as_of=catalog.as_of,
        )
    base, spec = resolved
    return ResolvedModel(
        provider="openai",
        base_model=base,
        encoding=spec.encoding,
        max_tokens_per_example=spec.max_tokens_per_example,
        training_per_million=spec.training_per_million,
        price_as_of=catalog.as_of,
        unconfirmed=frozenset({"max_tokens_per_example"} if spec.limit_unconfirmed else ()),
        shutdown_date=spec.shutdown_date,
    )


def _resolve_bedrock(model: str) -> ResolvedModel:
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
        price_as_of=catalog.as_of,
        default_epochs=spec.default_epochs,
        unconfirmed=frozenset(spec.unconfirmed),
        unsupported_reason=catalog.refusal(model),
    )
