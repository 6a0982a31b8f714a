"""Job events in the registry table: the parked wait of each waiting run, the end of a job
that no wait was parked for, and the event deliveries already handled. All expire through
the table's TTL attribute."""

from __future__ import annotations

from datetime import datetime

from sft_pipeline.adapters.dynamodb.table import RegistryTable, from_item, to_item
from sft_pipeline.job_events import EVENT_DELIVERY_MEMORY, JOB_END_NOTE_LIFETIME, WaitToken

# The attribute the table's TimeToLiveSpecification names (epoch seconds).
TTL_ATTRIBUTE = "expires_at"


def _wait_key(job_id: str) -> dict[str, str]:
    return {"PK": f"JOBID#{job_id}", "SK": "WAIT"}


def _end_note_key(job_id: str) -> dict[str, str]:
    return {"PK": f"JOBID#{job_id}", "SK": "ENDED"}


def _delivery_key(delivery_id: str) -> dict[str, str]:
    return {"PK": f"EVENT#{delivery_id}", "SK": "EVENT"}


class JobEventTable(RegistryTable):
    def park_wait_token(self, token: WaitToken) -> None:
        """Park the run's wait under its job id; a later wait of the same run replaces it."""
        self._table.put_item(Item={**_wait_key(token.job_id), "kind": "wait", **to_item(token)})

    def take_wait_token(self, job_id: str, now: datetime) -> WaitToken | None:
        """Remove the job's parked wait and return it, or None if no run waits. One delete
        returns the item, so of two events taking at once exactly one gets the token."""
        old = self._table.delete_item(Key=_wait_key(job_id), ReturnValues="ALL_OLD")
        item = old.get("Attributes")
        if not item:
            return None
        token = WaitToken.model_validate(from_item(item))
        return None if token.expired(now) else token

    def note_job_end(self, job_id: str, now: datetime) -> None:
        """Note that the job ended while no wait was parked, for the run's next wait."""
        self._table.put_item(
            Item={
                **_end_note_key(job_id),
                "kind": "job_end",
                "noted_at": now.isoformat(),
                TTL_ATTRIBUTE: int((now + JOB_END_NOTE_LIFETIME).timestamp()),
            }
        )

    def take_job_end_note(self, job_id: str, now: datetime) -> bool:
        """Remove the job's end note; True if there was one (one delete: one taker)."""
        old = self._table.delete_item(Key=_end_note_key(job_id), ReturnValues="ALL_OLD")
        item = old.get("Attributes")
        return bool(item) and now.timestamp() < int(item[TTL_ATTRIBUTE])

    def claim_event_delivery(self, delivery_id: str, now: datetime) -> bool:
        """Take the one right to act on this delivery (a webhook id); False if it was taken."""
        try:
            self._table.put_item(
                Item={
                    **_delivery_key(delivery_id),
                    "kind": "event_delivery",
                    "received_at": now.isoformat(),
                    TTL_ATTRIBUTE: int((now + EVENT_DELIVERY_MEMORY).timestamp()),
                },
                ConditionExpression="attribute_not_exists(PK)",
            )
        except self._client.exceptions.ConditionalCheckFailedException:
            return False
        return True

    def release_event_delivery(self, delivery_id: str) -> None:
        """Forget a delivery that could not be acted on, so the provider's retry is."""
        self._table.delete_item(Key=_delivery_key(delivery_id))
