"""The event-driven fast path: a waiting run parks its task token, a provider's event about
the job's end takes it and resumes the run, which then polls the job as it would have after
the interval.

At-least-once safe: a delivery is acted on once (its id is claimed first), a token is taken
by one event only (a single delete returns it). An event that finds no token (the run is
polling between two waits) notes the job's end, and the run's next wait, which looks for
the note after parking its token, ends at once instead of after an interval. Each side
writes before it reads the other's item, so one of them always sees the other.
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

    def note_job_end(self, job_id: str, now: datetime) -> None: ...

    def take_job_end_note(self, job_id: str, now: datetime) -> bool: ...

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


class Parked(BaseModel):
    """A parked wait, and what ended it at once if the job's end was noted before it."""

    model_config = ConfigDict(frozen=True)

    token: WaitToken
    # None: the wait runs until the job's end event or the interval.
    ended_at_once: Resumed | None = None


def park(request: ParkRequest, tokens: WaitTokens, runs: WaitingRuns, now: datetime) -> Parked:
    """Park the run's wait under its job id, until the interval is over (and a grace); if the
    job's end event came while no wait was parked, end this wait now."""
    token = WaitToken.park(
        request.job_id, request.task_token, request.execution_arn, request.wait_seconds, now
    )
    tokens.park_wait_token(token)
    if not tokens.take_job_end_note(request.job_id, now):
        return Parked(token=token)
    return Parked(token=token, ended_at_once=resume_waiting_run(request.job_id, tokens, runs, now))


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
    job_id = event.ended_job_id
    try:
        resumed = resume_waiting_run(job_id, tokens, runs, now)
        if resumed is not Resumed.NOT_WAITING:
            return resumed
        tokens.note_job_end(job_id, now)
        # A wait parked since the first look may have looked for the note before it was there.
        resumed = resume_waiting_run(job_id, tokens, runs, now)
        if resumed is Resumed.NOT_WAITING:
            return Resumed.NOTED
        tokens.take_job_end_note(job_id, now)  # used up: the next wait must not end at once
        return resumed
    except Exception:
        tokens.release_event_delivery(event.delivery_id)
        raise
