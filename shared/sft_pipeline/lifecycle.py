"""When a registered model stops serving, and which retirement warning is due on a day.

A fine-tune stops serving with its base model: the date is the base model's shutdown date
in the provider's table (``data/<provider>_models.json``). That is about serving, not
training: OpenAI takes no new fine-tuning jobs after 2027-01-06, yet serves fine-tunes of
gpt-4o-mini until 2027-01-14. Pure functions, no AWS calls.
"""

from __future__ import annotations

import datetime as dt

from sft_pipeline.validation.targets import provider_of, resolve_model

# Days before a model stops serving when people are warned; each warning is sent once.
WARNING_DAYS = (30, 7, 1)
# A model called within this many days counts as in use, whether or not an alias serves it.
RECENT_USE_DAYS = 30


def serving_ends(base_model: str) -> dt.date | None:
    """The day the provider stops serving ``base_model`` and its fine-tunes; None if unknown."""
    provider = provider_of(base_model)
    return resolve_model(base_model, provider).shutdown_date if provider else None


def due_warning(shutdown: dt.date, today: dt.date) -> int | None:
    """The most urgent warning due ``today`` (30, 7 or 1 days), None before the first or
    once the model has stopped serving. A day the watcher did not run skips nothing that
    matters: the next run finds the most urgent warning due and sends that one."""
    days_left = (shutdown - today).days
    if days_left < 0:
        return None
    return min((days for days in WARNING_DAYS if days_left <= days), default=None)


def used_recently(last_used: dt.date | None, today: dt.date) -> bool:
    """Whether the model was called in the last ``RECENT_USE_DAYS`` days."""
    return last_used is not None and (today - last_used).days <= RECENT_USE_DAYS
