"""Fine-tuned models in the registry table, each with its lineage, written once; the
evaluation summary is added once the held-out evaluation has run."""

from __future__ import annotations

from typing import Any

from sft_pipeline.adapters.dynamodb.table import RegistryTable, from_item, listed
from sft_pipeline.evaluation.summary import EvaluationSummary
from sft_pipeline.records import ModelRecord

# The summary is stored as JSON text: the item converter drops None values inside maps,
# and the summary's optional fields (no decision, the candidate's own comparison) have none.
EVALUATION_ATTRIBUTE = "evaluation"


def _model_key(model_id: str) -> dict[str, str]:
    return {"PK": f"MODEL#{model_id}", "SK": "MODEL"}


def _item(record: ModelRecord) -> dict[str, Any]:
    item = listed(
        _model_key(record.model_id),
        "model",
        record.created_at.isoformat(),
        record.model_copy(update={"evaluation": None}),
    )
    if record.evaluation is not None:
        item[EVALUATION_ATTRIBUTE] = record.evaluation.model_dump_json()
    return item


def _record(item: dict[str, Any]) -> ModelRecord:
    fields = from_item(item)
    if isinstance(stored := fields.pop(EVALUATION_ATTRIBUTE, None), str):
        fields[EVALUATION_ATTRIBUTE] = EvaluationSummary.model_validate_json(stored)
    return ModelRecord.model_validate(fields)


class ModelTable(RegistryTable):
    def register_model(self, record: ModelRecord) -> bool:
        """Write the model once. Returns False if it was already registered (a retried step)."""
        try:
            self._table.put_item(Item=_item(record), ConditionExpression="attribute_not_exists(PK)")
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

    def set_model_evaluation(self, model_id: str, summary: EvaluationSummary) -> None:
        """Record the evaluation of a registered model (a rerun replaces it)."""
        self._table.update_item(
            Key=_model_key(model_id),
            UpdateExpression="SET #evaluation = :evaluation",
            ExpressionAttributeNames={"#evaluation": EVALUATION_ATTRIBUTE},
            ExpressionAttributeValues={":evaluation": summary.model_dump_json()},
            ConditionExpression="attribute_exists(PK)",
        )

    def get_model(self, model_id: str) -> ModelRecord | None:
        item = self._table.get_item(Key=_model_key(model_id)).get("Item")
        return _record(item) if item else None

    def list_models(self, limit: int = 50) -> list[ModelRecord]:
        return [_record(item) for item in self._newest("model", limit)]
