"""The DynamoDB registry: datasets, their jobs and the fine-tuned models, with lineage.

All table access lives here. One table, keyed PK/SK, with a GSI (GSI1PK/GSI1SK)
that lists each kind of record newest first.

    DATASET#<dataset_id> / DATASET   one per uploaded object version
    DATASET#<dataset_id> / JOB       the provider job trained from it
    MODEL#<model_id>     / MODEL     a fine-tuned model and where it came from
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from pydantic import BaseModel, ConfigDict

from sft_pipeline.jobs import JobSettings, UploadRef


class DatasetRecord(BaseModel):
    model_config = ConfigDict(frozen=True)

    dataset_id: str
    upload: UploadRef
    sha256: str | None = None
    bytes: int | None = None
    examples: int
    valid: bool
    status: str  # validated | rejected | launched
    summary: str
    report_uri: str | None = None
    billed_tokens: int | None = None
    estimated_cost_usd: float | None = None
    settings: JobSettings | None = None
    rejection_code: str | None = None
    created_at: datetime


class JobRecord(BaseModel):
    model_config = ConfigDict(frozen=True)

    dataset_id: str
    provider: str
    job_id: str
    status: str
    outcome: str | None = None
    base_model: str | None = None
    model_id: str | None = None
    trained_tokens: int | None = None
    error_code: str | None = None
    error_message: str | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None


class ModelRecord(BaseModel):
    """A fine-tuned model with its lineage back to the exact S3 object version."""

    model_config = ConfigDict(frozen=True)

    model_id: str
    provider: str
    job_id: str
    base_model: str
    dataset_id: str
    upload: UploadRef
    dataset_sha256: str | None = None
    hyperparameters: dict[str, int | float | str]
    trained_tokens: int | None = None
    estimated_cost_usd: float | None = None
    actual_cost_usd: float | None = None
    train_loss: float | None = None
    valid_loss: float | None = None
    started_at: datetime
    finished_at: datetime
    created_at: datetime


def _to_item(model: BaseModel) -> dict[str, Any]:
    """JSON-mode dump (dates as ISO strings) with floats as Decimal, as DynamoDB needs."""

    def convert(value: Any) -> Any:
        if isinstance(value, float):
            return Decimal(str(value))
        if isinstance(value, dict):
            return {k: convert(v) for k, v in value.items() if v is not None}
        if isinstance(value, list):
            return [convert(v) for v in value]
        return value

    converted: dict[str, Any] = convert(model.model_dump(mode="json"))
    return converted


def _from_item(item: dict[str, Any]) -> dict[str, Any]:
    def convert(value: Any) -> Any:
        if isinstance(value, Decimal):
            return int(value) if value == value.to_integral_value() else float(value)
        if isinstance(value, dict):
            return {k: convert(v) for k, v in value.items()}
        if isinstance(value, list):
            return [convert(v) for v in value]
        return value

    return {
        k: convert(v) for k, v in item.items() if k not in ("PK", "SK", "GSI1PK", "GSI1SK", "kind")
    }


class Registry:
    def __init__(self, table: Any) -> None:
        """``table`` is a boto3 DynamoDB Table resource."""
        self._table = table

    def put_dataset(self, record: DatasetRecord) -> None:
        """Upsert: a repeated S3 event re-validates the same version to the same result."""
        self._table.put_item(
            Item={
                "PK": f"DATASET#{record.dataset_id}",
                "SK": "DATASET",
                "kind": "dataset",
                "GSI1PK": "DATASET",
                "GSI1SK": record.created_at.isoformat(),
                **_to_item(record),
            }
        )

    def get_dataset(self, dataset_id: str) -> DatasetRecord | None:
        item = self._table.get_item(Key={"PK": f"DATASET#{dataset_id}", "SK": "DATASET"}).get(
            "Item"
        )
        return DatasetRecord.model_validate(_from_item(item)) if item else None

    def mark_dataset(self, dataset_id: str, status: str) -> None:
        self._table.update_item(
            Key={"PK": f"DATASET#{dataset_id}", "SK": "DATASET"},
            UpdateExpression="SET #status = :status",
            ExpressionAttributeNames={"#status": "status"},
            ExpressionAttributeValues={":status": status},
        )

    def put_job(self, record: JobRecord) -> None:
        self._table.put_item(
            Item={
                "PK": f"DATASET#{record.dataset_id}",
                "SK": "JOB",
                "kind": "job",
                "GSI1PK": "JOB",
                "GSI1SK": (record.started_at or datetime.now(UTC)).isoformat(),
                **_to_item(record),
            }
        )

    def get_job(self, dataset_id: str) -> JobRecord | None:
        item = self._table.get_item(Key={"PK": f"DATASET#{dataset_id}", "SK": "JOB"}).get("Item")
        return JobRecord.model_validate(_from_item(item)) if item else None

    def register_model(self, record: ModelRecord) -> bool:
        """Write the model once. Returns False if it was already registered (a retried step)."""
        client = self._table.meta.client
        try:
            self._table.put_item(
                Item={
                    "PK": f"MODEL#{record.model_id}",
                    "SK": "MODEL",
                    "kind": "model",
                    "GSI1PK": "MODEL",
                    "GSI1SK": record.created_at.isoformat(),
                    **_to_item(record),
                },
                ConditionExpression="attribute_not_exists(PK)",
            )
        except client.exceptions.ConditionalCheckFailedException:
            return False
        return True

    def get_model(self, model_id: str) -> ModelRecord | None:
        item = self._table.get_item(Key={"PK": f"MODEL#{model_id}", "SK": "MODEL"}).get("Item")
        return ModelRecord.model_validate(_from_item(item)) if item else None

    def list_models(self, limit: int = 50) -> list[ModelRecord]:
        page = self._table.query(
            IndexName="GSI1",
            KeyConditionExpression="GSI1PK = :kind",
            ExpressionAttributeValues={":kind": "MODEL"},
            ScanIndexForward=False,
            Limit=limit,
        )
        return [ModelRecord.model_validate(_from_item(item)) for item in page["Items"]]
