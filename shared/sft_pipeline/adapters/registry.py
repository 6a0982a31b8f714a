"""The DynamoDB registry: datasets, their jobs, the fine-tuned models with lineage,
model aliases and the inference API's keys.

All table access lives here. One table, keyed PK/SK, with a sparse GSI
(GSI1PK/GSI1SK) that lists each kind of record: datasets, jobs, models and keys
newest first, aliases by name. Items without GSI1 keys are never listed.

    DATASET#<dataset_id> / DATASET          one per uploaded object version
    DATASET#<dataset_id> / NOTICE#<kind>    a notice about it was sent (not listed)
    DATASET#<dataset_id> / JOB              the provider job trained from it
    JOBID#<job_id>       / JOB              finds that job by the provider's id (not listed)
    MODEL#<model_id>     / MODEL            a fine-tuned model and where it came from
    ALIAS#<name>         / ALIAS            an alias: current and latest version numbers,
                                            and a copy of the current version (one read)
    ALIAS#<name>         / VERSION#<n:06d>  one alias version, written once (not listed)
    KEY#<key_hash>       / KEY              an inference API key, stored by hash
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from pydantic import BaseModel, ConfigDict

from sft_pipeline.aliases import AliasVersion, Variant
from sft_pipeline.api_keys import ApiKeyRecord
from sft_pipeline.jobs import JobSettings, UploadRef

# Tries at taking the next alias version number while other writers take it first.
ALIAS_VERSION_ATTEMPTS = 5
# Why a transaction is cancelled when another writer got there first.
_LOST_RACE_REASONS = frozenset({"ConditionalCheckFailed", "TransactionConflict"})


# The not-found names are the ones the API and the CLI were written against.
class AliasNotFound(LookupError):  # noqa: N818
    def __init__(self, alias: str) -> None:
        super().__init__(f"no alias named {alias!r}")
        self.alias = alias


class AliasVersionNotFound(LookupError):  # noqa: N818
    def __init__(self, alias: str, version: int) -> None:
        super().__init__(f"alias {alias!r} has no version {version}")
        self.alias = alias
        self.version = version


class AliasVersionConflictError(RuntimeError):
    """Other writers kept creating versions of the alias; nothing was written. Try again."""


class ApiKeyNotFound(KeyError):  # noqa: N818
    def __init__(self, key_id: str) -> None:
        super().__init__(key_id)
        self.key_id = key_id

    def __str__(self) -> str:
        return f"no API key with id {self.key_id!r}"


class DuplicateApiKeyError(ValueError):
    """A key with this hash is already stored; a key is never overwritten."""


class DatasetRecord(BaseModel):
    model_config = ConfigDict(frozen=True)

    dataset_id: str
    upload: UploadRef
    sha256: str | None = None
    bytes: int | None = None
    examples: int
    valid: bool
    status: str  # validated | rejected | launched | failed (before any job existed)
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
    # None for a run that failed before the provider created a job.
    job_id: str | None = None
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
    # What inference calls use (a Bedrock on-demand deployment), whether it can answer
    # yet (ready / deploying / needs_provisioned_throughput / disabled), and what to do.
    serving_model: str | None = None
    serving_status: str | None = None
    serving_note: str | None = None


class _AliasPointer(BaseModel):
    """The ``ALIAS`` item: which version serves, the highest number taken, and the serving content."""

    model_config = ConfigDict(frozen=True)

    alias: str
    current_version: int
    latest_version: int
    updated_at: datetime
    current: AliasVersion


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


def _dataset_key(dataset_id: str) -> dict[str, str]:
    return {"PK": f"DATASET#{dataset_id}", "SK": "DATASET"}


def _job_key(dataset_id: str) -> dict[str, str]:
    return {"PK": f"DATASET#{dataset_id}", "SK": "JOB"}


def _model_key(model_id: str) -> dict[str, str]:
    return {"PK": f"MODEL#{model_id}", "SK": "MODEL"}


# Each listed kind: the item's "kind" attribute and its GSI1 partition.
LISTINGS = {
    "dataset": "DATASET",
    "job": "JOB",
    "model": "MODEL",
    "api_key": "KEY",
    "alias": "ALIAS",
}


def _listed(key: dict[str, str], kind: str, listed_by: str, record: BaseModel) -> dict[str, Any]:
    """A record's item, listed on GSI1 under its kind (``listed_by`` orders the listing)."""
    return {
        **key,
        "kind": kind,
        "GSI1PK": LISTINGS[kind],
        "GSI1SK": listed_by,
        **_to_item(record),
    }


def _alias_key(alias: str) -> dict[str, str]:
    return {"PK": f"ALIAS#{alias}", "SK": "ALIAS"}


def _alias_version_key(alias: str, version: int) -> dict[str, str]:
    return {"PK": f"ALIAS#{alias}", "SK": f"VERSION#{version:06d}"}


def _api_key_key(key_hash: str) -> dict[str, str]:
    return {"PK": f"KEY#{key_hash}", "SK": "KEY"}


class Registry:
    def __init__(self, table: Any) -> None:
        """``table`` is a boto3 DynamoDB Table resource."""
        self._table = table

    @property
    def _client(self) -> Any:
        """The table's low-level client: transactions, and the exceptions to catch."""
        return self._table.meta.client

    def put_dataset(self, record: DatasetRecord) -> None:
        """Upsert: a repeated S3 event re-validates the same version to the same result."""
        self._table.put_item(
            Item=_listed(
                _dataset_key(record.dataset_id), "dataset", record.created_at.isoformat(), record
            )
        )

    def get_dataset(self, dataset_id: str) -> DatasetRecord | None:
        item = self._table.get_item(Key=_dataset_key(dataset_id)).get("Item")
        return DatasetRecord.model_validate(_from_item(item)) if item else None

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
                    "PK": f"DATASET#{dataset_id}",
                    "SK": f"NOTICE#{kind}",
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
        self._table.delete_item(Key={"PK": f"DATASET#{dataset_id}", "SK": f"NOTICE#{kind}"})

    def put_job(self, record: JobRecord) -> None:
        listed_by = (record.started_at or datetime.now(UTC)).isoformat()
        self._table.put_item(Item=_listed(_job_key(record.dataset_id), "job", listed_by, record))
        if record.job_id is None:
            return
        # The API knows a job by the provider's id only; no GSI1 keys keep it out of list_jobs.
        self._table.put_item(
            Item={
                "PK": f"JOBID#{record.job_id}",
                "SK": "JOB",
                "kind": "job_id",
                "dataset_id": record.dataset_id,
            }
        )

    def get_job(self, dataset_id: str) -> JobRecord | None:
        item = self._table.get_item(Key=_job_key(dataset_id)).get("Item")
        return JobRecord.model_validate(_from_item(item)) if item else None

    def get_job_by_id(self, job_id: str) -> JobRecord | None:
        pointer = self._table.get_item(Key={"PK": f"JOBID#{job_id}", "SK": "JOB"}).get("Item")
        return self.get_job(pointer["dataset_id"]) if pointer else None

    def list_jobs(self, limit: int = 50) -> list[JobRecord]:
        return [JobRecord.model_validate(item) for item in self._newest("job", limit)]

    def register_model(self, record: ModelRecord) -> bool:
        """Write the model once. Returns False if it was already registered (a retried step)."""
        try:
            self._table.put_item(
                Item=_listed(
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
        return ModelRecord.model_validate(_from_item(item)) if item else None

    def list_models(self, limit: int = 50) -> list[ModelRecord]:
        return [ModelRecord.model_validate(item) for item in self._newest("model", limit)]

    # Aliases

    def create_alias_version(
        self, alias: str, variants: list[Variant], note: str | None, now: datetime
    ) -> AliasVersion:
        """Write the alias's next version and make it current; creates the alias if new.

        The number is the pointer's ``latest_version`` + 1. The version item and the
        pointer are written in one transaction that holds only if ``latest_version``
        is still what was read, so concurrent writers never share a number and a
        crash never leaves a pointer to a missing version. A writer that loses the
        race reads again and takes the next number.
        """
        # Checked before a number is taken, so a bad split never reaches the table.
        draft = AliasVersion(alias=alias, version=1, variants=variants, note=note, created_at=now)
        for _ in range(ALIAS_VERSION_ATTEMPTS):
            pointer = self._find_alias_pointer(alias, consistent=True)
            taken = pointer.latest_version if pointer else 0
            version = draft.model_copy(update={"version": taken + 1})
            if self._commit_alias_version(version, taken, now):
                return version
        raise AliasVersionConflictError(
            f"alias {alias!r} changed {ALIAS_VERSION_ATTEMPTS} times while a version was "
            "being created; nothing was written, try again"
        )

    def _commit_alias_version(self, version: AliasVersion, taken: int, now: datetime) -> bool:
        """Write ``version`` as latest and current if no one took a number since; False if one did."""
        pointer = _AliasPointer(
            alias=version.alias,
            current_version=version.version,
            latest_version=version.version,
            updated_at=now,
            current=version,
        )
        table = self._table.name
        # The Table resource's client takes plain Python values, as the resource does.
        try:
            self._client.transact_write_items(
                TransactItems=[
                    {
                        "Put": {
                            "TableName": table,
                            "Item": _listed(
                                _alias_key(version.alias), "alias", version.alias, pointer
                            ),
                            "ConditionExpression": "attribute_not_exists(PK) OR latest_version = :taken",
                            "ExpressionAttributeValues": {":taken": taken},
                        }
                    },
                    {
                        "Put": {
                            "TableName": table,
                            "Item": {
                                **_alias_version_key(version.alias, version.version),
                                "kind": "alias_version",
                                **_to_item(version),
                            },
                            "ConditionExpression": "attribute_not_exists(PK)",
                        }
                    },
                ]
            )
        except self._client.exceptions.TransactionCanceledException as exc:
            reasons = {reason.get("Code") for reason in exc.response.get("CancellationReasons", [])}
            if reasons & _LOST_RACE_REASONS:
                return False
            raise
        return True

    def set_alias_current(self, alias: str, version: int, now: datetime) -> AliasVersion:
        """Serve an existing version again (roll back or forward); versions never change."""
        target = self.get_alias_version(alias, version)
        self._table.update_item(
            Key=_alias_key(alias),
            UpdateExpression="SET current_version = :version, #current = :current, "
            "updated_at = :now",
            ExpressionAttributeNames={"#current": "current"},  # CURRENT is a reserved word
            ExpressionAttributeValues={
                ":version": version,
                ":current": _to_item(target),
                ":now": now.isoformat(),
            },
        )
        return target

    def get_alias_version(self, alias: str, version: int | None = None) -> AliasVersion:
        """The given version of the alias, or the current one for None (a single read)."""
        if version is None:
            return self._alias_pointer(alias).current
        item = self._table.get_item(Key=_alias_version_key(alias, version)).get("Item")
        if item is None:
            self._alias_pointer(alias)  # an unknown alias is reported as such
            raise AliasVersionNotFound(alias, version)
        return AliasVersion.model_validate(_from_item(item))

    def list_aliases(self) -> list[tuple[str, int, AliasVersion]]:
        """Every alias as (name, current version number, current version), by name."""
        pointers = (_AliasPointer.model_validate(item) for item in self._every("alias"))
        return [(pointer.alias, pointer.current_version, pointer.current) for pointer in pointers]

    def list_alias_versions(self, alias: str) -> list[AliasVersion]:
        """Every version of the alias, oldest first."""
        versions = [
            AliasVersion.model_validate(_from_item(item))
            for item in self._query_all(
                KeyConditionExpression="PK = :pk AND begins_with(SK, :versions)",
                ExpressionAttributeValues={":pk": f"ALIAS#{alias}", ":versions": "VERSION#"},
            )
        ]
        if not versions:
            raise AliasNotFound(alias)
        return versions

    def _find_alias_pointer(self, alias: str, consistent: bool = False) -> _AliasPointer | None:
        item = self._table.get_item(Key=_alias_key(alias), ConsistentRead=consistent).get("Item")
        return _AliasPointer.model_validate(_from_item(item)) if item else None

    def _alias_pointer(self, alias: str) -> _AliasPointer:
        pointer = self._find_alias_pointer(alias)
        if pointer is None:
            raise AliasNotFound(alias)
        return pointer

    # Inference API keys

    def put_api_key(self, record: ApiKeyRecord) -> None:
        try:
            self._table.put_item(
                Item=_listed(
                    _api_key_key(record.key_hash), "api_key", record.created_at.isoformat(), record
                ),
                ConditionExpression="attribute_not_exists(PK)",
            )
        except self._client.exceptions.ConditionalCheckFailedException:
            raise DuplicateApiKeyError(f"API key {record.key_id} is already stored") from None

    def get_api_key(self, key_hash: str) -> ApiKeyRecord | None:
        """The key with this hash: one read, as the authorizer needs on every request."""
        item = self._table.get_item(Key=_api_key_key(key_hash)).get("Item")
        return ApiKeyRecord.model_validate(_from_item(item)) if item else None

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
        return ApiKeyRecord.model_validate(_from_item(attributes))

    # Queries

    def _newest(self, kind: str, limit: int) -> list[dict[str, Any]]:
        """Up to ``limit`` records of one kind, newest first (GSI1SK is their timestamp)."""
        page = self._table.query(
            IndexName="GSI1",
            KeyConditionExpression="GSI1PK = :kind",
            ExpressionAttributeValues={":kind": LISTINGS[kind]},
            ScanIndexForward=False,
            Limit=limit,
        )
        return [_from_item(item) for item in page["Items"]]

    def _every(self, kind: str, newest_first: bool = False) -> Iterator[dict[str, Any]]:
        """Every record of one kind, in GSI1SK order."""
        for item in self._query_all(
            IndexName="GSI1",
            KeyConditionExpression="GSI1PK = :kind",
            ExpressionAttributeValues={":kind": LISTINGS[kind]},
            ScanIndexForward=not newest_first,
        ):
            yield _from_item(item)

    def _query_all(self, **query: Any) -> Iterator[dict[str, Any]]:
        """Every item a query matches, following DynamoDB's 1 MB pages."""
        while True:
            page = self._table.query(**query)
            yield from page["Items"]
            if "LastEvaluatedKey" not in page:
                return
            query["ExclusiveStartKey"] = page["LastEvaluatedKey"]
