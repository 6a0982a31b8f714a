"""Fine-tuned models in the registry table, each with its lineage, written once; the
evaluation summary is added once the held-out evaluation has run, the last day it served
as it serves, and each retirement warning sent about it beside it."""

from __future__ import annotations

from datetime import date
from typing import Any

from sft_pipeline.adapters.dynamodb.table import RegistryTable, from_item, listed, to_item
from sft_pipeline.evaluation.summary import EvaluationSummary
from sft_pipeline.notifications import RetirementWarning
from sft_pipeline.records import ModelRecord

# The summary is stored as JSON text: the item converter drops None values inside maps,
# and the summary's optional fields (no decision, the candidate's own comparison) have none.
EVALUATION_ATTRIBUTE = "evaluation"


def _model_key(model_id: str) -> dict[str, str]:
    return {"PK": f"MODEL#{model_id}", "SK": "MODEL"}


def _warning_key(model_id: str, shutdown: date, days: int) -> dict[str, str]:
    return {"PK": f"MODEL#{model_id}", "SK": f"RETIREMENT#{shutdown.isoformat()}#{days:02d}"}


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

    def every_model(self) -> list[ModelRecord]:
        """Every registered model, oldest first."""
        return [_record(item) for item in self._every("model")]

    def record_model_use(self, model_id: str, day: date) -> bool:
        """Note that the model answered on ``day``: one write the first time that day, and
        none after (False), so the API can call it for every answer it serves."""
        try:
            self._table.update_item(
                Key=_model_key(model_id),
                UpdateExpression="SET last_used_on = :day",
                ConditionExpression="attribute_exists(PK) AND "
                "(attribute_not_exists(last_used_on) OR last_used_on < :day)",
                ExpressionAttributeValues={":day": day.isoformat()},
            )
        except self._client.exceptions.ConditionalCheckFailedException:
            return False
        return True

    def claim_retirement_warning(self, warning: RetirementWarning) -> bool:
        """Take the one right to send this warning (model, shutdown date, days); False if it
        was taken. The item records what was sent, and when."""
        try:
            self._table.put_item(
                Item={
                    **_warning_key(warning.model_id, warning.shutdown_date, warning.threshold_days),
                    "kind": "retirement_warning",
                    **to_item(warning),
                },
                ConditionExpression="attribute_not_exists(PK)",
            )
        except self._client.exceptions.ConditionalCheckFailedException:
            return False
        return True

    def release_retirement_warning(self, warning: RetirementWarning) -> None:
        """Give the right back when the warning could not be sent, so the next run sends it."""
        self._table.delete_item(
            Key=_warning_key(warning.model_id, warning.shutdown_date, warning.threshold_days)
        )
