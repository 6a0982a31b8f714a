"""Fine-tunable base models: tokenizer, per-example limit, dated training price.

The table lives in ``data/openai_models.json`` so a price change is a one-line
data edit, not a code change.
"""

from __future__ import annotations

import datetime as dt
import json
from functools import cache
from importlib import resources

from pydantic import BaseModel, Field

from sft_pipeline.validation.tokens import EncodingName

# Unknown models are counted with the newest tokenizer and the smallest documented limit.
FALLBACK_ENCODING: EncodingName = "o200k_base"
FALLBACK_MAX_TOKENS = 65536


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
    raw = resources.files("sft_pipeline").joinpath("data", "openai_models.json").read_bytes()
    return ModelCatalog.model_validate(json.loads(raw))
