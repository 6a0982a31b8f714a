"""What every target answers about a base model, and the protocol each target module follows."""

from __future__ import annotations

import datetime as dt
from importlib import resources
from typing import Protocol

from pydantic import BaseModel, ConfigDict, Field

from sft_pipeline.jobs import Hyperparameters, ProviderName
from sft_pipeline.validation.tokens import EncodingName

# Unknown models are counted with the newest tokenizer and the smallest documented limit.
FALLBACK_ENCODING: EncodingName = "o200k_base"
FALLBACK_MAX_TOKENS = 65536


def read_table(name: str) -> bytes:
    """A provider's data table (``data/<provider>_models.json``), shipped with the package."""
    return resources.files("sft_pipeline").joinpath("data", name).read_bytes()


class InferencePrice(BaseModel):
    """What serving a model costs, in the table's currency per 1M tokens, as of its date."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    input_per_million: float = Field(ge=0)
    output_per_million: float = Field(ge=0)


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
    # Serving the model as named (an ``ft:`` id at the fine-tuned rate), and serving a
    # fine-tune of it; None when unknown, never zero.
    inference: InferencePrice | None = None
    fine_tuned_inference: InferencePrice | None = None
    price_as_of: dt.date
    # The epochs the provider trains when none are requested; None: OpenAI's "auto".
    default_epochs: int | None = None
    # Names of the facts above that no source confirms.
    unconfirmed: frozenset[str] = frozenset()
    shutdown_date: dt.date | None = None
    # Why the provider cannot fine-tune it here, with what to use instead.
    unsupported_reason: str | None = None
    # What a chat call names to ask the base model itself, when not its fine-tuning id
    # (Bedrock invokes the inference ID, without the context-window suffix, on demand).
    chat_model: str | None = None


class Target(Protocol):
    """What one provider accepts. Each target is a module of validation.targets that the
    validator, the held-out split and the provider's adapter all read."""

    # The provider's name as people read it: "Amazon Bedrock".
    TITLE: str

    def knows(self, model: str) -> bool:
        """Whether the provider's table has ``model`` (by any of its names)."""
        ...

    def resolve(self, model: str) -> ResolvedModel:
        """The model's facts; for a model the table does not know, what can be assumed."""
        ...

    def largest_token_limit(self) -> int:
        """The largest per-example bound of any model in the table."""
        ...

    def min_examples(self, base_model: str) -> tuple[int, int]:
        """The fewest training and validation examples a job on ``base_model`` takes."""
        ...

    def counterpart(self, base_model: str) -> str:
        """The base model to retrain on here a model another provider trained on ``base_model``."""
        ...

    def job_setting_problems(
        self, base_model: str, hyperparameters: Hyperparameters, suffix: str | None
    ) -> list[str]:
        """What the provider would refuse in a job's settings for ``base_model``, in words."""
        ...
