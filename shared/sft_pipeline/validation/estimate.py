"""Epochs for ``n_epochs=auto``, billed tokens and training cost."""

from __future__ import annotations

import datetime as dt

from sft_pipeline.validation.catalog import (
    FALLBACK_ENCODING,
    FALLBACK_MAX_TOKENS,
    load_catalog,
)
from sft_pipeline.validation.report import Estimate
from sft_pipeline.validation.tokens import EncodingName

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


def model_limits(model: str) -> tuple[EncodingName, int]:
    """Tokenizer and per-example token limit for a base model (or a sane fallback)."""
    resolved = load_catalog().resolve(model)
    if resolved is None:
        return FALLBACK_ENCODING, FALLBACK_MAX_TOKENS
    return resolved[1].encoding, resolved[1].max_tokens_per_example


def estimate_cost(
    model: str,
    billable_tokens_per_epoch: int,
    n_examples: int,
    n_epochs: int | None = None,
    today: dt.date | None = None,
) -> Estimate:
    """Billed tokens = epochs x billable tokens per epoch, priced per 1M.

    Billable tokens per epoch are the sum over examples of min(tokens, limit):
    the service truncates longer examples.
    """
    catalog = load_catalog()
    resolved = catalog.resolve(model)
    encoding, limit = model_limits(model)
    per_epoch = billable_tokens_per_epoch
    epochs = n_epochs if n_epochs is not None else auto_epochs(n_examples)
    billed = per_epoch * epochs
    notes: list[str] = []
    price: float | None = None
    base: str | None = None
    if resolved is None:
        notes.append(
            f"'{model}' is not in the price table (as of {catalog.as_of}): cost unknown; "
            f"tokens counted with {encoding}."
        )
    else:
        base, spec = resolved
        price = spec.training_per_million
        if spec.limit_unconfirmed:
            notes.append(
                f"OpenAI does not document the per-example token limit of {base}; "
                f"{limit:,} is assumed."
            )
        if spec.shutdown_date is not None:
            day = today or dt.date.today()
            if spec.shutdown_date <= day:
                notes.append(f"{base} was shut down on {spec.shutdown_date}: it cannot be trained.")
            else:
                notes.append(
                    f"{base} and its fine-tunes stop serving on {spec.shutdown_date} "
                    f"({(spec.shutdown_date - day).days} days from now)."
                )
    cost = None if price is None else round(billed * price / 1_000_000, 4)
    return Estimate(
        model=model,
        base_model=base,
        encoding=encoding,
        max_tokens_per_example=limit,
        n_epochs=epochs,
        n_epochs_source="requested" if n_epochs is not None else "auto",
        billable_tokens_per_epoch=per_epoch,
        billed_tokens=billed,
        training_price_per_million_usd=price,
        price_as_of=catalog.as_of.isoformat(),
        estimated_cost_usd=cost,
        notes=notes,
    )


def training_cost(model: str, trained_tokens: int) -> float | None:
    """What the provider charges for ``trained_tokens``; None when the price is unknown."""
    resolved = load_catalog().resolve(model)
    if resolved is None or resolved[1].training_per_million is None:
        return None
    return round(trained_tokens * resolved[1].training_per_million / 1_000_000, 4)
