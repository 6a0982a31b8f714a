"""What every kind of record shares in the registry table: item conversion, the GSI1
listing of each kind, and queries that follow DynamoDB's pages."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from typing import Any

from pydantic import BaseModel

# Each listed kind: the item's "kind" attribute and its GSI1 partition.
LISTINGS = {
    "dataset": "DATASET",
    "job": "JOB",
    "model": "MODEL",
    "api_key": "KEY",
    "alias": "ALIAS",
}
_KEY_ATTRIBUTES = ("PK", "SK", "GSI1PK", "GSI1SK", "kind")


def to_item(model: BaseModel) -> dict[str, Any]:
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


def from_item(item: dict[str, Any]) -> dict[str, Any]:
    """The record's fields of an item: keys dropped, Decimals back to int or float."""

    def convert(value: Any) -> Any:
        if isinstance(value, Decimal):
            return int(value) if value == value.to_integral_value() else float(value)
        if isinstance(value, dict):
            return {k: convert(v) for k, v in value.items()}
        if isinstance(value, list):
            return [convert(v) for v in value]
        return value

    return {k: convert(v) for k, v in item.items() if k not in _KEY_ATTRIBUTES}


def listed(key: dict[str, str], kind: str, listed_by: str, record: BaseModel) -> dict[str, Any]:
    """A record's item, listed on GSI1 under its kind (``listed_by`` orders the listing)."""
    return {
        **key,
        "kind": kind,
        "GSI1PK": LISTINGS[kind],
        "GSI1SK": listed_by,
        **to_item(record),
    }


class RegistryTable:
    """The table one kind of record lives in; each kind's adapter adds its own methods."""

    def __init__(self, table: Any) -> None:
        """``table`` is a boto3 DynamoDB Table resource."""
        self._table = table

    @property
    def _client(self) -> Any:
        """The table's low-level client: transactions, and the exceptions to catch."""
        return self._table.meta.client

    def _newest(self, kind: str, limit: int) -> list[dict[str, Any]]:
        """Up to ``limit`` records of one kind, newest first (GSI1SK is their timestamp)."""
        page = self._table.query(
            IndexName="GSI1",
            KeyConditionExpression="GSI1PK = :kind",
            ExpressionAttributeValues={":kind": LISTINGS[kind]},
            ScanIndexForward=False,
            Limit=limit,
        )
        return [from_item(item) for item in page["Items"]]

    def _every(self, kind: str, newest_first: bool = False) -> Iterator[dict[str, Any]]:
        """Every record of one kind, in GSI1SK order."""
        for item in self._query_all(
            IndexName="GSI1",
            KeyConditionExpression="GSI1PK = :kind",
            ExpressionAttributeValues={":kind": LISTINGS[kind]},
            ScanIndexForward=not newest_first,
        ):
            yield from_item(item)

    def _query_all(self, **query: Any) -> Iterator[dict[str, Any]]:
        """Every item a query matches, following DynamoDB's 1 MB pages."""
        while True:
            page = self._table.query(**query)
            yield from page["Items"]
            if "LastEvaluatedKey" not in page:
                return
            query["ExclusiveStartKey"] = page["LastEvaluatedKey"]
