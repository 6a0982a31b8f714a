"""Epochs for ``n_epochs=auto``, billed tokens and training cost."""

from __future__ import annotations

import datetime as dt

from sft_pipeline.jobs import ProviderName
from sft_pipeline.validation.report import Estimate
from sft_pipeline.validation.targets import TARGETS, resolve_model
from sft_pipeline.validation.targets.base import FALLBACK_MAX_TOKENS, ResolvedModel

# OpenAI cookbook heuristic for the epoch count the service picks on "auto".
TARGET_EPOCHS = 3
MIN_TARGET_EXAMPLES = 100
MAX_TARGET_EXAMPLES = 25_000
MIN_DEFAULT_EPOCHS = 1
MAX_DEFAULT_EPOCHS = 25


def auto_epochs(n_examples: int) -> int:
    if n_examples <= 0:
        return TARGET_EPOCHS
    if n_examples * TARGET_EPOCHS < MIN_TARGET_EXAMPLES:
        return min(MAX_DEFAULT_EPOCHS, MIN_TARGET_EXAMPLES // n_examples)
    if n_examples * TARGET_EPOCHS > MAX_TARGET_EXAMPLES:
        return max(MIN_DEFAULT_EPOCHS, MAX_TARGET_EXAMPLES // n_examples)
    return TARGET_EPOCHS


def token_limit(resolved: ResolvedModel) -> int:
    """The per-example bound: the documented limit, else the context window, else a fallback."""
    return resolved.max_tokens_per_example or resolved.context_window_tokens or FALLBACK_MAX_TOKENS


def estimate_cost(
    model: str,
    billable_tokens_per_epoch: int,
    n_examples: int,
    n_epochs: int | None = None,
    today: dt.date | None = None,
    *,
    provider: ProviderName | None = None,
) -> Estimate:
    """Billed tokens = epochs x billable tokens per epoch, priced per 1M.

    Billable tokens per epoch are the sum over examples of min(tokens, limit):
    the service truncates longer examples. With no epochs requested, OpenAI
    picks them from the dataset size and Bedrock uses its default epochCount.
    """
    resolved = resolve_model(model, provider)
    limit = token_limit(resolved)
    per_epoch = billable_tokens_per_epoch
    if n_epochs is not None:
        epochs = n_epochs
    elif resolved.default_epochs is not None:
        epochs = resolved.default_epochs
    else:
        epochs = auto_epochs(n_examples)
    billed = per_epoch * epochs
    price = resolved.training_per_million
    cost = None if price is None else round(billed * price / 1_000_000, 4)
    return Estimate(
        model=model,
        base_model=resolved.base_model,
        encoding=resolved.encoding,
        max_tokens_per_example=limit,
        n_epochs=epochs,
        n_epochs_source="requested" if n_epochs is not None else "auto",
        billable_tokens_per_epoch=per_epoch,
        billed_tokens=billed,
        training_price_per_million_usd=price,
        price_as_of=resolved.price_as_of.isoformat(),
        estimated_cost_usd=cost,
        notes=_notes(model, resolved, limit, today or dt.date.today()),
    )


def _notes(model: str, resolved: ResolvedModel, limit: int, today: dt.date) -> list[str]:
    base = resolved.base_model
    if base is None:
        return [
            f"'{model}' is not in the price table (as of {resolved.price_as_of}): cost unknown; "
            f"tokens counted with {resolved.encoding}."
        ]
    provider = TARGETS[resolved.provider].TITLE
    notes: list[str] = []
    if resolved.tokens_approximate:
        notes.append(
            f"{base} has no public tokenizer: token counts use {resolved.encoding} "
            "and are approximate."
        )
    if "max_tokens_per_example" in resolved.unconfirmed:
        bound = " (its context window)" if resolved.max_tokens_per_example is None else ""
        notes.append(
            f"{provider} does not document the per-example token limit of {base}; "
            f"{limit:,}{bound} is assumed."
        )
    if resolved.training_per_million is None:
        notes.append(
            f"No training price is known for {base} (as of {resolved.price_as_of}): cost unknown."
        )
    elif "training_per_million" in resolved.unconfirmed:
        notes.append(
            f"The training price of {base} (${resolved.training_per_million:g} per 1M tokens, "
            f"as of {resolved.price_as_of}) is unconfirmed; check {provider}'s pricing page."
        )
    if "on_demand_deployment" in resolved.unconfirmed:
        notes.append(
            f"Whether fine-tunes of {base} can be served on demand is unconfirmed; "
            "serving them may need Provisioned Throughput, billed by the hour."
        )
    if resolved.shutdown_date is not None:
        if resolved.shutdown_date <= today:
            notes.append(f"{base} was shut down on {resolved.shutdown_date}: it cannot be trained.")
        else:
            notes.append(
                f"{base} and its fine-tunes stop serving on {resolved.shutdown_date} "
                f"({(resolved.shutdown_date - today).days} days from now)."
            )
    return notes


def training_cost(model: str, trained_tokens: int) -> float | None:
    """What the provider charges for ``trained_tokens``; None when the price is unknown."""
    price = resolve_model(model).training_per_million
    if price is None:
        return None
    return round(trained_tokens * price / 1_000_000, 4)
