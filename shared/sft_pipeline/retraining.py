"""Retraining a registered model on another provider: what a person asks, the run's own
identity, and the original run's settings mapped onto the new provider.

The new run trains on the exact dataset version of the model's lineage; only the provider,
the base model and whatever the new provider cannot take change. Pure, no AWS calls.
"""

from __future__ import annotations

import hashlib
import json
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from sft_pipeline.aliases import AliasName
from sft_pipeline.jobs import Hyperparameters, JobSettings, ProviderName
from sft_pipeline.validation.targets import TARGETS, resolve_model

# The alias a retrain carries is moved when the new model is at least as good as the old.
RETRAIN_PROMOTE_POLICY = "if-not-worse"
# Object keys of retrain orders: <prefix><dataset id>.json.
ORDER_SUFFIX = ".json"


class RetrainRefused(Exception):  # noqa: N818 - a refusal, named as the API answers it
    """The retrain cannot be done; ``problems`` say why, ``kind`` how the API answers."""

    def __init__(self, kind: str, problems: list[str]) -> None:
        super().__init__(" ".join(problems))
        self.kind = kind  # not_found | conflict | invalid
        self.problems = problems


class RetrainRequest(BaseModel):
    """What a person asks: a model (id or alias) retrained on ``provider``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    model: str = Field(min_length=1, max_length=2048)
    provider: ProviderName
    # None: the new provider's counterpart of the original base model.
    base_model: str | None = Field(default=None, min_length=1, max_length=200)
    # None: the alias named as ``model``, else the one the original run was for.
    alias: AliasName | None = None
    # Replace the original's values (n_epochs, batch_size, learning_rate_multiplier).
    hyperparameters: dict[str, int | float | str] = Field(default_factory=dict, max_length=3)


class RetrainOrder(BaseModel):
    """A resolved retrain, as the validation step runs it: the very model, the new base
    model, the alias carried and the final hyperparameters. Its identity is the run's
    dataset id, so the same retrain asked twice is one run."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    model_id: str = Field(min_length=1, max_length=2048)
    provider: ProviderName
    base_model: str = Field(min_length=1, max_length=200)
    alias: AliasName | None = None
    hyperparameters: Hyperparameters
    # Who asked: an API key's id, or "cli".
    requested_by: Annotated[str, Field(max_length=100)] = ""

    @property
    def dataset_id(self) -> str:
        identity = self.model_dump(mode="json", exclude={"requested_by"})
        digest = hashlib.sha256(b"retrain\n" + json.dumps(identity, sort_keys=True).encode())
        return digest.hexdigest()[:32]

    def request(self) -> RetrainRequest:
        """The request that resolves to this very order again."""
        return RetrainRequest(
            model=self.model_id,
            provider=self.provider,
            base_model=self.base_model,
            alias=self.alias,
            hyperparameters=self.hyperparameters.model_dump(),
        )


def retrained_settings(
    original: JobSettings, request: RetrainRequest, alias: str | None
) -> JobSettings:
    """The original run's settings on the new provider; RetrainRefused (invalid) with every
    reason when the new provider cannot take them."""
    target = TARGETS[request.provider]
    base_model = request.base_model or target.counterpart(original.base_model)
    resolved = resolve_model(base_model, request.provider)
    if resolved.base_model is None or resolved.unsupported_reason:
        raise RetrainRefused(
            "invalid",
            [resolved.unsupported_reason or f"{base_model} is not a {target.TITLE} base model."],
        )
    try:
        hyperparameters = Hyperparameters.model_validate(
            {**original.hyperparameters.model_dump(), **request.hyperparameters}
        )
    except ValidationError as invalid:
        raise RetrainRefused(
            "invalid",
            [
                f"{'.'.join(str(part) for part in error['loc'][:1])}: {error['msg']}."
                for error in invalid.errors(include_url=False)
            ],
        ) from None
    problems = target.job_setting_problems(resolved.base_model, hyperparameters, original.suffix)
    if problems:
        raise RetrainRefused(
            "invalid",
            [
                *problems,
                f"These settings of the original run do not map onto {target.TITLE}: "
                "ask again with other hyperparameters (e.g. batch_size=auto).",
            ],
        )
    return original.model_copy(
        update={
            "provider": request.provider,
            "base_model": resolved.base_model,
            "hyperparameters": hyperparameters,
            "alias": alias,
            "promote": RETRAIN_PROMOTE_POLICY if alias else original.promote,
        }
    )
