"""Fine-tuned models in the registry table, each with its lineage, written once."""

from __future__ import annotations

from sft_pipeline.adapters.dynamodb.table import RegistryTable, from_item, listed
from sft_pipeline.records import ModelRecord


def _model_key(model_id: str) -> dict[str, str]:
    return {"PK": f"MODEL#{model_id}", "SK": "MODEL"}


class ModelTable(RegistryTable):
    def register_model(self, record: ModelRecord) -> bool:
        """Write the model once. Returns False if it was already registered (a retried step)."""
        try:
            self._table.put_item(
                Item=listed(
                    _model_key(record.model_id), "model", record.created_at.isoformat(), record
                ),
                ConditionExpression="attribute_not_exists(PK)",
            )
        except self._client.exceptions.ConditionalCheckFailedException:
            return False
        return True

    def set_model_serving(self, model_id: str, status: str) -> None:
        self._table.update_item(
            Key=_model_key(model_id),
            UpdateExpression="SET serving_status = :status",
            ExpressionAttributeValues={":status": status},
            ConditionExpression="attribute_exists(PK)",
        )

    def get_model(self, model_id: str) -> ModelRecord | None:
        item = self._table.get_item(Key=_model_key(model_id)).get("Item")
        return ModelRecord.model_validate(from_item(item)) if item else None

    def list_models(self, limit: int = 50) -> list[ModelRecord]:
        return [ModelRecord.model_validate(item) for item in self._newest("model", limit)]
