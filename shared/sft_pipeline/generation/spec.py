"""The generation spec: what to make, from which teacher, for which fine-tune.

Written in YAML or JSON with hyphenated keys (``system-prompt``, ``eval-share``); every
problem is reported with the path of the field it is about (``topics[2].count: ...``), all
at once, never as a traceback.
"""

from __future__ import annotations

import hashlib
import math
from typing import Annotated, Any, Self

import orjson
import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)

from sft_pipeline.jobs import METADATA_KEYS, ProviderName, is_provider_name
from sft_pipeline.validation.formats import ChatExample, ToolDefinition
from sft_pipeline.validation.targets import provider_of

# One spec makes at most this many examples: the cloud run's Map stays far below Step
# Functions' history limit, and a laptop run within a day.
MAX_EXAMPLES = 50_000
MAX_TURNS = 8
MAX_TOPICS = 500
MAX_SEED_EXAMPLES = 10
MAX_TOOLS = 32
# A spec is a few kilobytes; this bounds what a dropped object can make us parse.
MAX_SPEC_BYTES = 1 << 20
TEXT = 20_000

Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=TEXT)]
Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]


def _hyphenated(name: str) -> str:
    return name.replace("_", "-")


class _SpecPart(BaseModel):
    model_config = ConfigDict(
        extra="forbid", frozen=True, alias_generator=_hyphenated, populate_by_name=True
    )


class Teacher(_SpecPart):
    """The model that writes the conversations."""

    provider: ProviderName | None = None
    model: Name
    temperature: float = Field(default=0.9, ge=0, le=2, allow_inf_nan=False)
    # Room for one whole conversation; a longer answer is cut off and refused as malformed.
    max_tokens: int = Field(default=2000, ge=100, le=16_000)

    @field_validator("provider", mode="before")
    @classmethod
    def _known_provider(cls, value: object) -> object:
        if value is not None and not is_provider_name(value):
            raise ValueError(f"unknown provider {value!r}; known: openai, bedrock")
        return value

    @property
    def provider_name(self) -> ProviderName:
        """The provider named, else the one whose table knows the model, else OpenAI."""
        return self.provider or provider_of(self.model) or "openai"


class Topic(_SpecPart):
    name: Name
    description: Text | None = None
    count: int | None = Field(default=None, ge=1, le=MAX_EXAMPLES)
    weight: float | None = Field(default=None, gt=0, le=1_000_000, allow_inf_nan=False)

    @model_validator(mode="after")
    def _count_or_weight(self) -> Self:
        if self.count is not None and self.weight is not None:
            raise ValueError("give either count or weight, not both")
        if self.count is None and self.weight is None:
            raise ValueError("give a count, or a weight and the spec's total")
        return self


class GenerationSpec(_SpecPart):
    """One generation run: the topics and how many of each, the system prompt the examples
    carry, how the teacher should write them, and where the result goes."""

    name: Annotated[
        str, StringConstraints(strip_whitespace=True, pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")
    ] = "generated"
    teacher: Teacher
    topics: list[Topic] = Field(min_length=1, max_length=MAX_TOPICS)
    # With weighted topics: how many examples in all.
    total: int | None = Field(default=None, ge=1, le=MAX_EXAMPLES)
    system_prompt: Text
    persona: Text | None = None
    style: list[Text] = Field(default_factory=list, max_length=50)
    # User turns per conversation: 1 for single-turn examples.
    turns: int = Field(default=1, ge=1, le=MAX_TURNS)
    tools: list[ToolDefinition] | None = Field(default=None, min_length=1, max_length=MAX_TOOLS)
    seed_examples: list[ChatExample] = Field(default_factory=list, max_length=MAX_SEED_EXAMPLES)
    seed: int = Field(default=0, ge=0, le=2_147_483_647)
    # The share of each topic's examples held out for evaluation, disjoint from training.
    eval_share: float = Field(default=0.0, ge=0, le=0.5, allow_inf_nan=False)
    # The training upload's metadata (base-model, suffix, n-epochs, alias...): the validator
    # checks examples against that base model, and the cloud run uploads with it.
    train: dict[str, str] = Field(default_factory=dict)
    # In the bucket: start fine-tuning on the result (training/), or leave it for review
    # (generated/).
    auto_train: bool = True
    # The most the teacher's calls may cost, in USD; None: the stack's CostCapUsd (cloud),
    # no cap (laptop).
    cost_cap_usd: float | None = Field(default=None, ge=0, le=1_000_000, allow_inf_nan=False)

    @field_validator("train", mode="before")
    @classmethod
    def _metadata(cls, value: object) -> object:
        if not isinstance(value, dict):
            return value
        unknown = sorted(
            str(key) for key in value if str(key).lower().removeprefix("sft-") not in METADATA_KEYS
        )
        if unknown:
            raise ValueError(
                f"unknown upload metadata key(s) {', '.join(unknown)}; known: "
                f"{', '.join(METADATA_KEYS)}"
            )
        # S3 metadata values are strings; YAML reads numbers and booleans as such.
        return {str(key): _scalar_text(item) for key, item in value.items()}

    @model_validator(mode="after")
    def _counts(self) -> Self:
        weighted = [topic.weight is not None for topic in self.topics]
        if any(weighted) and not all(weighted):
            raise ValueError("topics: give every topic a count, or every topic a weight")
        if all(weighted) and self.total is None:
            raise ValueError("total: weighted topics need the total number of examples")
        if not any(weighted) and self.total is not None:
            raise ValueError("total: only weighted topics take a total; counts already add up")
        if sum(self.counts()) > MAX_EXAMPLES:
            raise ValueError(f"topics: at most {MAX_EXAMPLES:,} examples in all")
        if self.eval_share and any(
            key.lower().removeprefix("sft-") == "eval-key" for key in self.train
        ):
            raise ValueError("train: eval-key is set by the run itself when eval-share is given")
        names = [topic.name.casefold() for topic in self.topics]
        if len(set(names)) != len(names):
            raise ValueError("topics: each topic needs its own name")
        return self

    def counts(self) -> list[int]:
        """Examples per topic, in the spec's order; weights shared out by largest remainder."""
        if self.total is None:
            return [topic.count or 0 for topic in self.topics]
        weights = [topic.weight or 0.0 for topic in self.topics]
        shares = [self.total * weight / sum(weights) for weight in weights]
        counts = [math.floor(share) for share in shares]
        by_remainder = sorted(
            range(len(shares)), key=lambda i: (counts[i] - shares[i], i)
        )  # largest remainder first, ties to the earlier topic
        for index in by_remainder[: self.total - sum(counts)]:
            counts[index] += 1
        return counts

    def training_target(self, default_model: str) -> tuple[str, ProviderName | None]:
        """The base model (and provider, if named) the examples are for, from ``train``."""
        named = {key.lower().removeprefix("sft-"): value for key, value in self.train.items()}
        provider = named.get("provider")
        return named.get("base-model", default_model), (
            provider if is_provider_name(provider) else None
        )

    @property
    def tool_names(self) -> list[str]:
        return [tool.function.name for tool in self.tools or []]

    def fingerprint(self) -> str:
        """The same for the same spec however it is written (YAML or JSON, order, spacing)."""
        canonical = orjson.dumps(
            self.model_dump(mode="json", by_alias=True), option=orjson.OPT_SORT_KEYS
        )
        return hashlib.sha256(canonical).hexdigest()


class SpecError(ValueError):
    """The spec cannot be used; ``problems`` name each field and what is wrong with it."""

    def __init__(self, source: str, problems: list[str]) -> None:
        super().__init__(f"{source}: " + "; ".join(problems))
        self.source = source
        self.problems = problems


def load_spec(text: bytes | str, source: str = "spec") -> GenerationSpec:
    """Parse and check a spec written in YAML or JSON (JSON is YAML too)."""
    if len(text) > MAX_SPEC_BYTES:
        raise SpecError(source, [f"the spec is over {MAX_SPEC_BYTES // 1024} KiB"])
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(error, "problem", None) or str(error)
        raise SpecError(source, [f"{where}not valid YAML or JSON ({problem})"]) from None
    if not isinstance(data, dict):
        raise SpecError(source, ["the spec must be a mapping of keys (teacher, topics, ...)"])
    try:
        return GenerationSpec.model_validate(data)
    except ValidationError as invalid:
        raise SpecError(source, [_problem(error) for error in invalid.errors()]) from None


def _problem(error: Any) -> str:
    path = _path(error["loc"])
    message = str(error["msg"]).removeprefix("Value error, ")
    if error["type"] == "extra_forbidden":
        message = "unknown field"
    elif error["type"] == "missing":
        message = "required"
    if path and message.startswith(f"{path}: "):
        return message  # a model-wide check that names its own field
    return f"{path}: {message}" if path else message


def _path(loc: tuple[Any, ...]) -> str:
    """``("topics", 2, "count")`` as ``topics[2].count``."""
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        elif part in {"function-after[_count_or_weight()]", "function-after[_counts()]"}:
            continue
        else:
            text += f".{part}" if text else str(part)
    return text


def _scalar_text(value: object) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)
