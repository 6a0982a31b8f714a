"""Fine-tuning providers behind one port (providers.base.FineTuningProvider).

Adding a provider means one adapter module with a ``build(settings, purpose)``
function, and one line in PROVIDER_MODULES. Nothing outside this package imports
a provider's SDK.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from sft_pipeline.providers.base import FineTuningProvider
    from sft_pipeline.settings import PipelineSettings

PROVIDER_MODULES: dict[str, str] = {
    "openai": "sft_pipeline.providers.openai_provider",
    "bedrock": "sft_pipeline.providers.bedrock_provider",
}

# Workflow steps may wait out a short rate limit; the API answers at once.
Purpose = Literal["workflow", "inference"]


class UnknownProviderError(ValueError):
    def __init__(self, name: str) -> None:
        super().__init__(f"unknown provider '{name}'; known: {', '.join(PROVIDER_MODULES)}")


def build_provider(name: str, settings: PipelineSettings, purpose: Purpose) -> FineTuningProvider:
    try:
        module = importlib.import_module(PROVIDER_MODULES[name])
    except KeyError:
        raise UnknownProviderError(name) from None
    provider: FineTuningProvider = module.build(settings, purpose)
    return provider
