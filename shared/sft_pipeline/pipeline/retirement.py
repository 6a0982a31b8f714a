"""The retirement watcher's step: warn 30, 7 and 1 days before a model in use stops serving.

A model is in use when an alias's current version serves it or the API answered with it in
the last 30 days. Each warning (model, shutdown date, threshold) is claimed in the registry
by a conditional write before it is sent and given back if sending fails, so a rerun the
same day or the next sends nothing twice, and a day without a run still gets the most
urgent warning due, once.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Protocol

from pydantic import BaseModel, ConfigDict

from sft_pipeline.aliases import AliasVersion
from sft_pipeline.jobs import PROVIDER_NAMES
from sft_pipeline.lifecycle import due_warning, serving_ends, used_recently
from sft_pipeline.notifications import DatasetRef, Notification, Outcome, RetirementWarning
from sft_pipeline.records import ModelRecord


class RetirementRegistry(Protocol):
    def every_model(self) -> list[ModelRecord]: ...

    def list_aliases(self) -> list[tuple[str, int, AliasVersion]]: ...

    def claim_retirement_warning(self, warning: RetirementWarning) -> bool:
        """Take the right to send this warning; False if an earlier run took it."""
        ...

    def release_retirement_warning(self, warning: RetirementWarning) -> None: ...


class NotificationSender(Protocol):
    def publish(self, notification: Notification) -> str: ...


class WatchEvent(BaseModel):
    """The schedule sends {}; an operator may rerun a past day with {"today": "YYYY-MM-DD"}."""

    model_config = ConfigDict(extra="ignore")

    today: dt.date | None = None


@dataclass(frozen=True)
class WatchResult:
    models: int
    # "model_id:threshold" of each warning sent by this run.
    sent: list[str] = field(default_factory=list)
    # Warnings that could not be sent: the next run sends them.
    failed: list[str] = field(default_factory=list)


class WarningsNotSentError(RuntimeError):
    """Some warnings could not be published; they stay unclaimed for the next run."""


def watch_retirements(
    registry: RetirementRegistry,
    notifier: NotificationSender,
    today: dt.date,
    *,
    stack_name: str,
) -> WatchResult:
    """Send each warning due today about a model in use; raises WarningsNotSentError after
    trying every model if any could not be sent (the others are sent, and claimed)."""
    serving = _aliases_by_model(registry.list_aliases())
    models = registry.every_model()
    sent, failed = [], []
    for model in models:
        warning = retirement_warning(model, serving.get(model.model_id, []), today, stack_name)
        if warning is None or not registry.claim_retirement_warning(warning):
            continue
        label = f"{model.model_id}:{warning.threshold_days}"
        try:
            notifier.publish(_notification(model, warning))
        except Exception:  # one topic hiccup must not silence the other models' warnings
            registry.release_retirement_warning(warning)
            failed.append(label)
            continue
        sent.append(label)
    if failed:
        raise WarningsNotSentError(f"could not send {', '.join(failed)}; the next run retries")
    return WatchResult(models=len(models), sent=sent, failed=failed)


def retirement_warning(
    model: ModelRecord, aliases: list[str], today: dt.date, stack_name: str
) -> RetirementWarning | None:
    """The warning due today about ``model``, or None: no known end, none due, or not in
    use (no alias serves it and it was not called in the last 30 days)."""
    shutdown = serving_ends(model.base_model)
    threshold = due_warning(shutdown, today) if shutdown else None
    if shutdown is None or threshold is None:
        return None
    if not aliases and not used_recently(model.last_used_on, today):
        return None
    # Any other provider will do; the alias carries over, so name it rather than the id.
    provider = next(name for name in PROVIDER_NAMES if name != model.provider)
    subject = aliases[0] if aliases else model.model_id
    return RetirementWarning(
        model_id=model.model_id,
        shutdown_date=shutdown,
        threshold_days=threshold,
        days_left=(shutdown - today).days,
        aliases=aliases,
        last_used_on=model.last_used_on,
        retrain_command=f"sft retrain {subject} --provider {provider} --stack {stack_name}",
        retrain_api=f'POST /models/{subject}/retrain {{"provider": "{provider}"}}',
    )


def _aliases_by_model(aliases: list[tuple[str, int, AliasVersion]]) -> dict[str, list[str]]:
    """Which aliases' current versions serve each model, by alias name."""
    serving: dict[str, list[str]] = {}
    for name, _, version in aliases:
        for variant in version.variants:
            serving.setdefault(variant.model, []).append(name)
    return serving


def _notification(model: ModelRecord, warning: RetirementWarning) -> Notification:
    upload = model.upload
    return Notification(
        outcome=Outcome.RETIREMENT_WARNING,
        dataset=DatasetRef(
            dataset_id=model.dataset_id,
            bucket=upload.bucket,
            key=upload.key,
            version_id=upload.version_id,
        ),
        provider=model.provider,
        base_model=model.base_model,
        job_id=model.job_id,
        model_id=model.model_id,
        retirement=warning,
    )
