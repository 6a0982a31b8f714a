"""What each provider accepts, one module per provider, registered under its ProviderName.

A target module (see base.Target) holds the provider's base-model table, limits, record
and job-setting rules; the validator, the held-out split and the provider's adapter all
read the same module, so a rule is written once.
"""

from __future__ import annotations

from sft_pipeline.jobs import ProviderName
from sft_pipeline.validation.targets import bedrock, openai
from sft_pipeline.validation.targets.base import FALLBACK_MAX_TOKENS, ResolvedModel, Target

TARGETS: dict[ProviderName, Target] = {"openai": openai, "bedrock": bedrock}


def provider_of(model: str) -> ProviderName | None:
    """Which provider fine-tunes ``model``; None when no table knows it."""
    return next((name for name, target in TARGETS.items() if target.knows(model)), None)


def resolve_model(model: str, provider: ProviderName | None = None) -> ResolvedModel:
    """Look ``model`` up in ``provider``'s table; by default the table that knows it, else OpenAI's."""
    return TARGETS[provider or provider_of(model) or "openai"].resolve(model)


def largest_token_limit() -> int:
    """The largest per-example bound of any model any provider fine-tunes."""
    return max(FALLBACK_MAX_TOKENS, *(target.largest_token_limit() for target in TARGETS.values()))
