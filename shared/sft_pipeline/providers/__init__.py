"""The registry of provider adapters: one module per provider, named by its ProviderName.

Each adapter module has a ``build(settings, purpose)`` function returning an object that
implements both ports of providers.base (TrainingPort and ChatPort). Nothing outside this
package imports a provider's SDK.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Literal

from sft_pipeline.jobs import PROVIDER_NAMES, ProviderName, is_provider_name

if TYPE_CHECKING:
    from sft_pipeline.providers.base import Provider
    from sft_pipeline.settings import ProviderSettings

PROVIDER_MODULES: dict[ProviderName, str] = {
    "openai": "sft_pipeline.providers.openai_provider",
    "bedrock": "sft_pipeline.providers.bedrock_provider",
}

# Workflow steps may wait out a short rate limit; the API answers at once.
Purpose = Literal["workflow", "inference"]


class UnknownProviderError(ValueError):
    def __init__(self, name: str) -> None:
        super().__init__(f"unknown provider '{name}'; known: {', '.join(PROVIDER_NAMES)}")


def build_provider(name: str, settings: ProviderSettings, purpose: Purpose) -> Provider:
    if not is_provider_name(name):
        raise UnknownProviderError(name)
    module = importlib.import_module(PROVIDER_MODULES[name])
    provider: Provider = module.build(settings, purpose)
    return provider
