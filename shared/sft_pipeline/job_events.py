"""Provider job events as the workflow sees them: a wake-up call, never an outcome.

The workflow waits for a job's end in a task that holds a Step Functions task token; the
token is parked in the registry under the provider's job id. An event that says a job
ended (an OpenAI or Azure webhook, a Bedrock EventBridge event) takes that token and
resumes the wait early; the poll that follows reads the job's status from the provider,
so a forged or mistaken event can at most cause one extra look. Pure models, no AWS calls.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

# A parked token outlives the wait it belongs to by this much, then the table's TTL sweeps
# it (a timed-out task's token is refused by Step Functions anyway).
WAIT_TOKEN_GRACE = timedelta(hours=1)
# A job's end that came while no wait was parked is noted for the run's next wait, which is
# due within one poll interval (at most 600 s), for this long.
JOB_END_NOTE_LIFETIME = timedelta(hours=1)
# OpenAI retries an unanswered webhook for up to 72 hours; a delivery id is remembered longer.
EVENT_DELIVERY_MEMORY = timedelta(days=4)
# What resumes a wait: the output of the wait task, which the workflow discards.
WAKE_UP_OUTPUT = '{"woken_by": "job_event"}'
# Step Functions task tokens are at most 2,048 characters.
MAX_TASK_TOKEN_CHARS = 2048
MAX_JOB_ID_CHARS = 2048


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class WaitToken(_Frozen):
    """A workflow execution waiting for its job's end: the task token that resumes it."""

    job_id: str = Field(min_length=1, max_length=MAX_JOB_ID_CHARS)
    task_token: str = Field(min_length=1, max_length=MAX_TASK_TOKEN_CHARS)
    execution_arn: str = Field(min_length=1, max_length=2048)
    parked_at: datetime
    # Epoch seconds, as DynamoDB's TTL reads them.
    expires_at: int

    @classmethod
    def park(
        cls, job_id: str, task_token: str, execution_arn: str, wait_seconds: int, now: datetime
    ) -> WaitToken:
        expiry = now + timedelta(seconds=wait_seconds) + WAIT_TOKEN_GRACE
        return cls(
            job_id=job_id,
            task_token=task_token,
            execution_arn=execution_arn,
            parked_at=now,
            expires_at=int(expiry.timestamp()),
        )

    def expired(self, now: datetime) -> bool:
        """Past its TTL: DynamoDB deletes expired items only eventually, so reads check."""
        return now.timestamp() >= self.expires_at


class JobEvent(_Frozen):
    """A provider's event, verified: the delivery (repeated deliveries share its id), what it
    says, and the job whose end it reports. Only the job id is used; the job's outcome
    comes from the poll that the event triggers."""

    delivery_id: str = Field(min_length=1, max_length=256)
    # The provider's own name for what happened, for the logs.
    kind: str = Field(max_length=200)
    # None: the event is not about a job's end.
    ended_job_id: str | None = Field(default=None, min_length=1, max_length=MAX_JOB_ID_CHARS)


class Resumed(StrEnum):
    """What an event did to the workflow."""

    # A waiting execution was woken: it polls the job now.
    RESUMED = "resumed"
    # No execution waits for this job: already woken by another event.
    NOT_WAITING = "not_waiting"
    # No execution waits for this job now (it is between two waits, or the job is not one
    # of ours): the end is noted, and the run's next wait ends as soon as it is parked.
    NOTED = "noted"
    # The parked wait had already ended (timed out, or the execution stopped).
    WAIT_OVER = "wait_over"
    # The same delivery came again: nothing was done twice.
    DUPLICATE = "duplicate"
    # The event is not about a job's end.
    IGNORED = "ignored"


class WebhookRejectedError(ValueError):
    """A webhook that is not provably from the provider: bad or missing signature, a
    timestamp outside the tolerance, or a body that is not the signed JSON."""
