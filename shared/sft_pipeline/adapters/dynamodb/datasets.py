"""Datasets in the registry table: one per uploaded object version, and the notices sent about it."""

from __future__ import annotations

from datetime import datetime

from sft_pipeline.adapters.dynamodb.table import RegistryTable, from_item, listed
from sft_pipeline.records import DatasetRecord


def _dataset_key(dataset_id: str) -> dict[str, str]:
    return {"PK": f"DATASET#{dataset_id}", "SK": "DATASET"}


def _notice_key(dataset_id: str, kind: str) -> dict[str, str]:
    return {"PK": f"DATASET#{dataset_id}", "SK": f"NOTICE#{kind}"}


class DatasetTable(RegistryTable):
    def put_dataset(self, record: DatasetRecord) -> None:
        """Upsert: a repeated S3 event re-validates the same version to the same result."""
        self._table.put_item(
            Item=listed(
                _dataset_key(record.dataset_id), "dataset", record.created_at.isoformat(), record
            )
        )

    def get_dataset(self, dataset_id: str) -> DatasetRecord | None:
        item = self._table.get_item(Key=_dataset_key(dataset_id)).get("Item")
        return DatasetRecord.model_validate(from_item(item)) if item else None

    def mark_dataset(self, dataset_id: str, status: str) -> None:
        self._table.update_item(
            Key=_dataset_key(dataset_id),
            UpdateExpression="SET #status = :status",
            ExpressionAttributeNames={"#status": "status"},
            ExpressionAttributeValues={":status": status},
        )

    def claim_notice(self, dataset_id: str, kind: str, now: datetime) -> bool:
        """Take the one right to send this notice about the dataset; False if it was taken.

        A conditional put, so repeated and concurrent deliveries of one S3 event notify once.
        """
        try:
            self._table.put_item(
                Item={
                    **_notice_key(dataset_id, kind),
                    "kind": "notice",
                    "claimed_at": now.isoformat(),
                },
                ConditionExpression="attribute_not_exists(PK)",
            )
        except self._client.exceptions.ConditionalCheckFailedException:
            return False
        return True

    def release_notice(self, dataset_id: str, kind: str) -> None:
        """Give the right back when the notice could not be sent, so a retry sends it."""
        self._table.delete_item(Key=_notice_key(dataset_id, kind))
