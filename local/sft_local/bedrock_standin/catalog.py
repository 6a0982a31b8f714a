"""The Amazon Nova models that take supervised fine-tuning, and the hyperparameters they accept.

Fine-tuning addresses a base model by its context-suffixed ID (``…:128k``), not
by its inference ID. Nova takes three hyperparameters, each sent as a string;
Nova 2 Lite is held to the same three, as its own set is not published.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from sft_local.bedrock_standin.errors import validation_error

FINE_TUNABLE_BASE_MODELS = (
    "amazon.nova-micro-v1:0:128k",
    "amazon.nova-lite-v1:0:300k",
    "amazon.nova-pro-v1:0:300k",
    "amazon.nova-2-lite-v1:0:256k",
)


@dataclass(frozen=True)
class HyperparameterRange:
    integer: bool
    low: float
    high: float

    def problem(self, raw: str) -> str | None:
        """What is wrong with ``raw`` as a value in this range, or None."""
        kind = "an integer" if self.integer else "a number"
        expected = f"{kind} from {self.low:g} to {self.high:g}, got '{raw}'"
        try:
            value = int(raw) if self.integer else float(raw)
        except ValueError:
            return expected
        if not math.isfinite(value) or not self.low <= value <= self.high:
            return expected
        return None


NOVA_HYPERPARAMETERS = {
    "epochCount": HyperparameterRange(integer=True, low=1, high=5),
    "learningRate": HyperparameterRange(integer=False, low=1e-6, high=1e-4),
    "learningRateWarmupSteps": HyperparameterRange(integer=True, low=0, high=100),
}
DEFAULT_EPOCH_COUNT = 2
# Cross-region inference profiles put a geography before the model ID.
INFERENCE_PROFILE_PREFIXES = ("us.", "eu.", "apac.", "global.")


def base_model_id(identifier: str, region: str) -> str:
    """The fine-tunable model an identifier names: a model ID or its foundation-model ARN."""
    arn_prefix = f"arn:aws:bedrock:{region}::foundation-model/"
    model_id = identifier.removeprefix(arn_prefix)
    if model_id not in FINE_TUNABLE_BASE_MODELS:
        raise validation_error(
            f"The base model {identifier} cannot be fine-tuned in {region}. "
            f"Use one of: {', '.join(FINE_TUNABLE_BASE_MODELS)}."
        )
    return model_id


def on_demand_model_id(identifier: str, region: str) -> str | None:
    """The base model a Converse ``modelId`` invokes on demand, or None when it names none.

    That is a fine-tunable model's inference ID (without the context suffix), its
    foundation-model ARN or an inference profile of it.
    """
    model_id = identifier.removeprefix(f"arn:aws:bedrock:{region}::foundation-model/")
    for prefix in INFERENCE_PROFILE_PREFIXES:
        model_id = model_id.removeprefix(prefix)
    inference_ids = {model.rpartition(":")[0] for model in FINE_TUNABLE_BASE_MODELS}
    return model_id if model_id in inference_ids else None


def check_hyperparameters(hyperparameters: Mapping[str, str]) -> None:
    for name, raw in hyperparameters.items():
        allowed = NOVA_HYPERPARAMETERS.get(name)
        if allowed is None:
            raise validation_error(
                f"Unknown hyperparameter {name}. Amazon Nova accepts: "
                f"{', '.join(NOVA_HYPERPARAMETERS)}."
            )
        problem = allowed.problem(raw)
        if problem is not None:
            raise validation_error(f"Hyperparameter {name} must be {problem}.")


def epoch_count(hyperparameters: Mapping[str, str]) -> int:
    raw = hyperparameters.get("epochCount")
    return DEFAULT_EPOCH_COUNT if raw is None else int(raw)
