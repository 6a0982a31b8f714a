"""Inference API keys in the registry table, stored by hash and never overwritten."""

from __future__ import annotations

from datetime import datetime

from sft_pipeline.adapters.dynamodb.table import RegistryTable, from_item, listed
from sft_pipeline.api_keys import ApiKeyNotFound, ApiKeyRecord, DuplicateApiKeyError


def _api_key_key(key_hash: str) -> dict[str, str]:
    return {"PK": f"KEY#{key_hash}", "SK": "KEY"}


class ApiKeyTable(RegistryTable):
    def put_api_key(self, record: ApiKeyRecord) -> None:
        try:
            self._table.put_item(
                Item=listed(
                    _api_key_key(record.key_hash), "api_key", record.created_at.isoformat(), record
                ),
                ConditionExpression="attribute_not_exists(PK)",
            )
        except self._client.exceptions.ConditionalCheckFailedException:
            raise DuplicateApiKeyError(f"API key {record.key_id} is already stored") from None

    def get_api_key(self, key_hash: str) -> ApiKeyRecord | None:
        """The key with this hash: one read, as the authorizer needs on every request."""
        item = self._table.get_item(Key=_api_key_key(key_hash)).get("Item")
        return ApiKeyRecord.model_validate(from_item(item)) if item else None

    def find_api_key(self, key_id: str) -> ApiKeyRecord | None:
        """The key with this public id. Keys are few and only an operator looks one up by
        id, so reading them all is enough (a filter expression would read as many)."""
        return next((record for record in self.list_api_keys() if record.key_id == key_id), None)

    def list_api_keys(self) -> list[ApiKeyRecord]:
        """Every key, revoked ones included, newest first."""
        return [
            ApiKeyRecord.model_validate(item) for item in self._every("api_key", newest_first=True)
        ]

    def revoke_api_key(self, key_id: str, now: datetime) -> ApiKeyRecord:
        """Mark the key revoked. Repeating it keeps the first revocation time."""
        record = self.find_api_key(key_id)
        if record is None:
            raise ApiKeyNotFound(key_id)
        attributes = self._table.update_item(
            Key=_api_key_key(record.key_hash),
            UpdateExpression="SET revoked_at = if_not_exists(revoked_at, :now)",
            ExpressionAttributeValues={":now": now.isoformat()},
            ReturnValues="ALL_NEW",
        )["Attributes"]
        return ApiKeyRecord.model_validate(from_item(attributes))
