"""The event-driven fast path: a waiting run parks its task token, a provider's event about
the job's end takes it and resumes the run, which then polls the job as it would have after
the interval.

At-least-once safe: a delivery is acted on once (its id is claimed first), a token is taken
by one event only (a single delete returns it), and an event that finds no token changes
nothing: the run's next poll, due within one interval, ends it all the same.
"""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from pydantic import BaseModel, ConfigDict, Field

from sft_pipeline.job_events import (
    MAX_JOB_ID_CHARS,
    MAX_TASK_TOKEN_CHARS,
    JobEvent,
    Resumed,
    WaitToken,
)


class WaitTokens(Protocol):
    """Where waits are parked and events remembered (the registry)."""

    def park_wait_token(self, token: WaitToken) -> None: ...

    def take_wait_token(self, job_id: str, now: datetime) -> WaitToken | None: ...

    def claim_event_delivery(self, delivery_id: str, now: datetime) -> bool: ...

    def release_event_delivery(self, delivery_id: str) -> None: ...


class WaitingRuns(Protocol):
    """The workflow: ends a wait; False if that wait is already over."""

    def resume(self, task_token: str) -> bool: ...


class ParkRequest(BaseModel):
    """What the workflow's wait task hands over: its token, its run and the job it waits for."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    task_token: str = Field(min_length=1, max_length=MAX_TASK_TOKEN_CHARS)
    # The run's upload, for the logs' correlation id.
    dataset_id: str = Field(min_length=1, max_length=64)
    execution_arn: str = Field(min_length=1, max_length=2048)
    job_id: str = Field(min_length=1, max_length=MAX_JOB_ID_CHARS)
    wait_seconds: int = Field(ge=0)


def park(request: ParkRequest, tokens: WaitTokens, now: datetime) -> WaitToken:
    """Park the run's wait under its job id, until the interval is over (and a grace)."""
    token = WaitToken.park(
        request.job_id, request.task_token, request.execution_arn, request.wait_seconds, now
    )
    tokens.park_wait_token(token)
    return token


def resume_waiting_run(
    job_id: str, tokens: WaitTokens, runs: WaitingRuns, now: datetime
) -> Resumed:
    """Wake the run waiting for this job, if one is."""
    token = tokens.take_wait_token(job_id, now)
    if token is None:
        return Resumed.NOT_WAITING
    return Resumed.RESUMED if runs.resume(token.task_token) else Resumed.WAIT_OVER


def handle_job_event(
    event: JobEvent, tokens: WaitTokens, runs: WaitingRuns, now: datetime
) -> Resumed:
    """Act once on a verified event: a job's end wakes the run waiting for it.

    A delivery that could not be acted on (the workflow unreachable) is forgotten again, so
    the provider's retry of it is acted on."""
    if event.ended_job_id is None:
        return Resumed.IGNORED
    if not tokens.claim_event_delivery(event.delivery_id, now):
        return Resumed.DUPLICATE
    try:
        return resume_waiting_run(event.ended_job_id, tokens, runs, now)
    except Exception:
        tokens.release_event_delivery(event.delivery_id)
        raise
