"""Job events in the registry table: the parked wait of each waiting run, and the event
deliveries already handled. Both expire through the table's TTL attribute."""

from __future__ import annotations

from datetime import datetime

from sft_pipeline.adapters.dynamodb.table import RegistryTable, from_item, to_item
from sft_pipeline.job_events import EVENT_DELIVERY_MEMORY, WaitToken

# The attribute the table's TimeToLiveSpecification names (epoch seconds).
TTL_ATTRIBUTE = "expires_at"


def _wait_key(job_id: str) -> dict[str, str]:
    return {"PK": f"JOBID#{job_id}", "SK": "WAIT"}


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
