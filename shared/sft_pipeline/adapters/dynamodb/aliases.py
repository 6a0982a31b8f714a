"""Model aliases in the registry table: a pointer item per alias, and its numbered versions."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict

from sft_pipeline.adapters.dynamodb.table import RegistryTable, from_item, listed, to_item
from sft_pipeline.aliases import (
    AliasNotFound,
    AliasVersion,
    AliasVersionConflictError,
    AliasVersionNotFound,
    Variant,
)

# Tries at taking the next alias version number while other writers take it first.
ALIAS_VERSION_ATTEMPTS = 5
# Why a transaction is cancelled when another writer got there first.
_LOST_RACE_REASONS = frozenset({"ConditionalCheckFailed", "TransactionConflict"})


class _AliasPointer(BaseModel):
    """The ``ALIAS`` item: which version serves, the highest number taken, and the serving content."""

    model_config = ConfigDict(frozen=True)

    alias: str
    current_version: int
    latest_version: int
    updated_at: datetime
    current: AliasVersion


def _alias_key(alias: str) -> dict[str, str]:
    return {"PK": f"ALIAS#{alias}", "SK": "ALIAS"}


def _alias_version_key(alias: str, version: int) -> dict[str, str]:
    return {"PK": f"ALIAS#{alias}", "SK": f"VERSION#{version:06d}"}


class AliasTable(RegistryTable):
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
                            "Item": listed(
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
                                **to_item(version),
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
                ":current": to_item(target),
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
        return AliasVersion.model_validate(from_item(item))

    def list_aliases(self) -> list[tuple[str, int, AliasVersion]]:
        """Every alias as (name, current version number, current version), by name."""
        pointers = (_AliasPointer.model_validate(item) for item in self._every("alias"))
        return [(pointer.alias, pointer.current_version, pointer.current) for pointer in pointers]

    def list_alias_versions(self, alias: str) -> list[AliasVersion]:
        """Every version of the alias, oldest first."""
        versions = [
            AliasVersion.model_validate(from_item(item))
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
        return _AliasPointer.model_validate(from_item(item)) if item else None

    def _alias_pointer(self, alias: str) -> _AliasPointer:
        pointer = self._find_alias_pointer(alias)
        if pointer is None:
            raise AliasNotFound(alias)
        return pointer
