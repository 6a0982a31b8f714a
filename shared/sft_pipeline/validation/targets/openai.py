"""What OpenAI's fine-tuning accepts: its base models (tokenizer, per-example token limit,
dated training price, shutdown date, from ``data/openai_models.json``) and its minimum
number of examples. The chat format itself is OpenAI's, checked by validation.rules for
every provider.
"""

from __future__ import annotations

import datetime as dt
import json
from functools import cache

from pydantic import BaseModel, Field

from sft_pipeline.jobs import Hyperparameters
from sft_pipeline.validation.targets.base import (
    FALLBACK_ENCODING,
    InferencePrice,
    ResolvedModel,
    read_table,
)
from sft_pipeline.validation.tokens import EncodingName

TITLE = "OpenAI"
# OpenAI refuses a training or validation file with fewer examples.
MIN_EXAMPLES = 10


class BaseModelSpec(BaseModel):
    aliases: list[str] = Field(default_factory=list)
    encoding: EncodingName
    max_tokens_per_example: int
    limit_unconfirmed: bool = False
    training_per_million: float | None
    inference: InferencePrice | None = None
    fine_tuned_inference: InferencePrice | None = None
    # True when the base model's own serving price is not from the dated source.
    inference_unconfirmed: bool = False
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
    return ModelCatalog.model_validate(json.loads(read_table("openai_models.json")))


def knows(model: str) -> bool:
    return load_catalog().resolve(model) is not None


def resolve(model: str) -> ResolvedModel:
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
    fine_tune = model.startswith("ft:")
    unconfirmed = {"max_tokens_per_example"} if spec.limit_unconfirmed else set()
    if spec.inference_unconfirmed and not fine_tune:
        unconfirmed.add("inference")
    return ResolvedModel(
        provider="openai",
        base_model=base,
        encoding=spec.encoding,
        max_tokens_per_example=spec.max_tokens_per_example,
        training_per_million=spec.training_per_million,
        inference=spec.fine_tuned_inference if fine_tune else spec.inference,
        fine_tuned_inference=spec.fine_tuned_inference,
        price_as_of=catalog.as_of,
        unconfirmed=frozenset(unconfirmed),
        shutdown_date=spec.shutdown_date,
    )


def largest_token_limit() -> int:
    return max(spec.max_tokens_per_example for spec in load_catalog().models.values())


def min_examples(base_model: str) -> tuple[int, int]:
    return MIN_EXAMPLES, MIN_EXAMPLES


def counterpart(base_model: str) -> str:
    """OpenAI's default base model, whatever another provider trained on."""
    return load_catalog().default_model


def job_setting_problems(
    base_model: str, hyperparameters: Hyperparameters, suffix: str | None
) -> list[str]:
    """None: the job settings' own bounds (jobs.Hyperparameters) are OpenAI's."""
    return []
