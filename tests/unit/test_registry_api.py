"""The registry's records: datasets, jobs (also by provider id), models, alias versions, API keys.

Every test that needs no look at the table itself runs twice: on the DynamoDB registry (moto)
and on the in-memory one the unit tests of the steps use, so the fake behaves as the adapter.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from moto import mock_aws

from sft_pipeline.adapters.dynamodb.aliases import ALIAS_VERSION_ATTEMPTS
from sft_pipeline.adapters.registry import Registry
from sft_pipeline.aliases import (
    AliasNotFound,
    AliasVersionConflictError,
    AliasVersionNotFound,
    Variant,
    single,
)
from sft_pipeline.api_keys import ApiKeyNotFound, DuplicateApiKeyError, new_key
from sft_pipeline.evaluation.gate import GatePolicy
from sft_pipeline.jobs import UploadRef
from sft_pipeline.records import DatasetRecord, JobRecord, ModelRecord
from tests.evaluation_samples import evaluation_summary
from tests.fakes import InMemoryRegistry, registry_table

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
MODEL_A = "ft:gpt-4o-mini-2024-07-18:acme:support-a:AAA111"
MODEL_B = "ft:gpt-4o-mini-2024-07-18:acme:support-b:BBB222"
MODEL_C = "ft:gpt-4.1-mini-2025-04-14:acme:support-c:CCC333"
CANARY = [Variant(model=MODEL_A, weight=90), Variant(model=MODEL_B, weight=10)]


@pytest.fixture
def table() -> Iterator[Any]:
    with mock_aws():
        yield registry_table()


AnyRegistry = Registry | InMemoryRegistry


def minutes(n: int) -> datetime:
    return NOW + timedelta(minutes=n)


def three_versions(registry: AnyRegistry) -> None:
    registry.create_alias_version("support-bot", single(MODEL_A), None, minutes(1))
    registry.create_alias_version("support-bot", CANARY, "canary 10%", minutes(2))
    registry.create_alias_version("support-bot", single(MODEL_C), None, minutes(3))


# Aliases


def test_versions_are_numbered_from_1_and_the_newest_serves(registry: AnyRegistry) -> None:
    first = registry.create_alias_version("support-bot", single(MODEL_A), None, NOW)
    second = registry.create_alias_version("support-bot", CANARY, "canary 10%", minutes(1))
    assert (first.version, second.version) == (1, 2)
    assert (second.alias, second.variants, second.note, second.created_at) == (
        "support-bot",
        CANARY,
        "canary 10%",
        minutes(1),
    )
    assert registry.get_alias_version("support-bot", None) == second
    assert registry.get_alias_version("support-bot", 1) == first


def test_roll_back_to_2_then_forward_to_3(registry: AnyRegistry) -> None:
    three_versions(registry)
    rolled_back = registry.set_alias_current("support-bot", 2, minutes(4))
    assert (rolled_back.version, rolled_back.variants) == (2, CANARY)
    assert registry.get_alias_version("support-bot", None) == rolled_back
    assert registry.get_alias_version("support-bot", 3).variants == single(MODEL_C)
    [(name, current, content)] = registry.list_aliases()
    assert (name, current, content) == ("support-bot", 2, rolled_back)
    registry.set_alias_current("support-bot", 3, minutes(5))
    assert registry.get_alias_version("support-bot", None).version == 3


def test_a_new_version_after_a_roll_back_takes_the_next_unused_number(
    registry: AnyRegistry,
) -> None:
    three_versions(registry)
    registry.set_alias_current("support-bot", 1, minutes(4))
    fourth = registry.create_alias_version("support-bot", single(MODEL_B), None, minutes(5))
    assert fourth.version == 4
    assert [v.version for v in registry.list_alias_versions("support-bot")] == [1, 2, 3, 4]
    assert registry.list_alias_versions("support-bot")[1].note == "canary 10%"


def test_unknown_aliases_and_versions_raise(registry: AnyRegistry) -> None:
    three_versions(registry)
    with pytest.raises(AliasNotFound, match="'billing-bot'"):
        registry.get_alias_version("billing-bot", None)
    with pytest.raises(AliasNotFound):
        registry.get_alias_version("billing-bot", 1)
    with pytest.raises(AliasNotFound):
        registry.set_alias_current("billing-bot", 1, NOW)
    with pytest.raises(AliasNotFound):
        registry.list_alias_versions("billing-bot")
    with pytest.raises(AliasVersionNotFound, match="'support-bot' has no version 4"):
        registry.get_alias_version("support-bot", 4)
    with pytest.raises(AliasVersionNotFound):
        registry.set_alias_current("support-bot", 9, NOW)
    assert registry.get_alias_version("support-bot", None).version == 3


def test_an_invalid_split_writes_nothing(registry: AnyRegistry) -> None:
    with pytest.raises(ValueError, match="add up to 100"):
        registry.create_alias_version("support-bot", CANARY[:1], None, NOW)
    with pytest.raises(ValueError, match="not an alias name"):
        registry.create_alias_version("Support", single(MODEL_A), None, NOW)
    assert registry.list_aliases() == []
    with pytest.raises(AliasNotFound):
        registry.get_alias_version("support-bot", None)


def test_list_aliases_is_sorted_by_name_with_each_current_version(registry: AnyRegistry) -> None:
    registry.create_alias_version("zeta", single(MODEL_C), None, NOW)
    three_versions(registry)
    registry.create_alias_version("alpha", CANARY, None, NOW)
    listed = [
        (name, current, version.variants) for name, current, version in registry.list_aliases()
    ]
    assert listed == [
        ("alpha", 1, CANARY),
        ("support-bot", 3, single(MODEL_C)),
        ("zeta", 1, single(MODEL_C)),
    ]


class RivalWriter:
    """The table, with another writer creating a version of the same alias right after
    the allocation read (a consistent read) of the first ``times`` attempts."""

    def __init__(self, table: Any, rival: Callable[[], object], times: int) -> None:
        self._table = table
        self._rival = rival
        self._times = times

    def __getattr__(self, name: str) -> Any:
        return getattr(self._table, name)

    def get_item(self, **request: Any) -> Any:
        response = self._table.get_item(**request)
        if request.get("ConsistentRead") and self._times > 0:
            self._times -= 1
            self._rival()
        return response


def test_a_writer_that_loses_the_race_retries_and_takes_the_next_number(table: Any) -> None:
    rival = Registry(table)
    registry = Registry(
        RivalWriter(
            table,
            lambda: rival.create_alias_version("support-bot", single(MODEL_A), "rival", NOW),
            times=1,
        )
    )
    mine = registry.create_alias_version("support-bot", CANARY, "mine", minutes(1))
    versions = registry.list_alias_versions("support-bot")
    assert [(v.version, v.note) for v in versions] == [(1, "rival"), (2, "mine")]
    assert mine.version == 2
    assert registry.get_alias_version("support-bot", None) == mine


def test_a_writer_that_always_loses_gives_up_without_writing(table: Any) -> None:
    rival = Registry(table)
    registry = Registry(
        RivalWriter(
            table,
            lambda: rival.create_alias_version("support-bot", single(MODEL_A), "rival", NOW),
            times=ALIAS_VERSION_ATTEMPTS,
        )
    )
    with pytest.raises(AliasVersionConflictError, match="nothing was written"):
        registry.create_alias_version("support-bot", CANARY, "mine", minutes(1))
    versions = rival.list_alias_versions("support-bot")
    assert [v.note for v in versions] == ["rival"] * ALIAS_VERSION_ATTEMPTS
    assert rival.get_alias_version("support-bot", None).version == ALIAS_VERSION_ATTEMPTS


class OneItemPages:
    """The table, answering every query one item per page, as a large table answers 1 MB at a time."""

    def __init__(self, table: Any) -> None:
        self._table = table

    def __getattr__(self, name: str) -> Any:
        return getattr(self._table, name)

    def query(self, **request: Any) -> Any:
        return self._table.query(**request, Limit=1)


def test_listings_follow_every_page(table: Any) -> None:
    registry = Registry(OneItemPages(table))
    three_versions(registry)
    registry.create_alias_version("alpha", CANARY, None, NOW)
    for n in range(3):
        registry.put_api_key(new_key(f"key {n}", minutes(n))[1])
    assert [v.version for v in registry.list_alias_versions("support-bot")] == [1, 2, 3]
    assert [name for name, _, _ in registry.list_aliases()] == ["alpha", "support-bot"]
    assert [k.name for k in registry.list_api_keys()] == ["key 2", "key 1", "key 0"]


# API keys


def test_a_key_is_found_by_hash_and_by_id_and_listed_newest_first(registry: AnyRegistry) -> None:
    _, older = new_key("ci bot", NOW)
    _, newer = new_key("support app", minutes(1))
    registry.put_api_key(older)
    registry.put_api_key(newer.model_copy(update={"usage_key_id": "abc123"}))
    assert registry.get_api_key(older.key_hash) == older
    assert registry.find_api_key(newer.key_id) == newer.model_copy(
        update={"usage_key_id": "abc123"}
    )
    assert [record.key_id for record in registry.list_api_keys()] == [newer.key_id, older.key_id]
    assert registry.get_api_key("0" * 64) is None
    assert registry.find_api_key("key_000000000000") is None


def test_a_stored_key_is_never_overwritten(registry: AnyRegistry) -> None:
    _, record = new_key("ci bot", NOW)
    registry.put_api_key(record)
    with pytest.raises(DuplicateApiKeyError, match=record.key_id):
        registry.put_api_key(record.model_copy(update={"name": "someone else"}))
    assert registry.get_api_key(record.key_hash) == record


def test_only_the_hash_reaches_the_table(table: Any) -> None:
    registry = Registry(table)
    secret, record = new_key("ci bot", NOW)
    registry.put_api_key(record)
    assert secret not in str(table.scan()["Items"])
    assert record.key_hash in str(table.scan()["Items"])


def test_revoking_is_idempotent_and_keeps_the_first_time(registry: AnyRegistry) -> None:
    _, record = new_key("ci bot", NOW)
    registry.put_api_key(record)
    revoked = registry.revoke_api_key(record.key_id, minutes(5))
    assert (revoked.revoked_at, revoked.active) == (minutes(5), False)
    again = registry.revoke_api_key(record.key_id, minutes(9))
    assert again == revoked
    stored = registry.get_api_key(record.key_hash)
    assert stored is not None
    assert not stored.active


def test_a_keys_scope_is_stored_and_a_key_from_before_scopes_reads_as_inference(
    table: Any,
) -> None:
    registry = Registry(table)
    _, admin = new_key("ops", NOW, "admin")
    _, legacy = new_key("old app", minutes(1), "admin")
    registry.put_api_key(admin)
    registry.put_api_key(legacy)
    table.update_item(
        Key={"PK": f"KEY#{legacy.key_hash}", "SK": "KEY"},
        UpdateExpression="REMOVE #scope",
        ExpressionAttributeNames={"#scope": "scope"},
    )
    assert registry.get_api_key(admin.key_hash) == admin
    stored = registry.get_api_key(legacy.key_hash)
    assert stored is not None
    assert stored.scope == "inference"
    assert {record.name: record.scope for record in registry.list_api_keys()} == {
        "ops": "admin",
        "old app": "inference",
    }


def test_revoking_an_unknown_key_raises_a_key_error(registry: AnyRegistry) -> None:
    with pytest.raises(ApiKeyNotFound) as missing:
        registry.revoke_api_key("key_000000000000", NOW)
    assert isinstance(missing.value, KeyError)
    assert str(missing.value) == "no API key with id 'key_000000000000'"


# Jobs by provider id


def job(dataset_id: str, job_id: str, started: int, status: str = "running") -> JobRecord:
    return JobRecord(
        dataset_id=dataset_id,
        provider="openai",
        job_id=job_id,
        status=status,
        base_model="gpt-4o-mini-2024-07-18",
        started_at=minutes(started),
    )


def test_a_job_is_found_by_its_provider_id(registry: AnyRegistry) -> None:
    registry.put_job(job("d1", "ftjob-1", 0))
    registry.put_job(job("d1", "ftjob-1", 0, status="succeeded"))
    found = registry.get_job_by_id("ftjob-1")
    assert found is not None
    assert (found.dataset_id, found.status) == ("d1", "succeeded")
    assert found == registry.get_job("d1")
    assert registry.get_job_by_id("ftjob-unknown") is None


def test_list_jobs_is_newest_first(registry: AnyRegistry) -> None:
    for n in (1, 0, 2):
        registry.put_job(job(f"d{n}", f"ftjob-{n}", started=n))
    assert [j.job_id for j in registry.list_jobs()] == ["ftjob-2", "ftjob-1", "ftjob-0"]
    assert [j.job_id for j in registry.list_jobs(limit=2)] == ["ftjob-2", "ftjob-1"]
    assert registry.list_models() == []


def test_the_job_id_pointers_are_not_listed(table: Any) -> None:
    registry = Registry(table)
    for n in range(3):
        registry.put_job(job(f"d{n}", f"ftjob-{n}", started=n))
    assert len(registry.list_jobs()) == 3
    pointers = [item for item in table.scan()["Items"] if item["PK"].startswith("JOBID#")]
    assert len(pointers) == 3
    assert all("GSI1PK" not in item and "GSI1SK" not in item for item in pointers)


def test_a_run_without_a_job_is_recorded_and_listed(registry: AnyRegistry) -> None:
    failed = JobRecord(dataset_id="d9", provider="openai", status="not_created", outcome="failed")
    registry.put_job(failed)
    assert registry.get_job("d9") == failed
    assert registry.list_jobs() == [failed]


# Datasets and models

UPLOAD = UploadRef(bucket="data", key="training/support.jsonl", version_id="v1")


def dataset(status: str = "validated") -> DatasetRecord:
    return DatasetRecord(
        dataset_id=UPLOAD.dataset_id,
        upload=UPLOAD,
        sha256="ab" * 32,
        bytes=2654,
        examples=14,
        valid=True,
        status=status,
        summary="14 examples, valid",
        estimated_cost_usd=0.011,
        created_at=NOW,
    )


def model(model_id: str = MODEL_A, created: int = 0) -> ModelRecord:
    return ModelRecord(
        model_id=model_id,
        provider="openai",
        job_id="ftjob-1",
        base_model="gpt-4o-mini-2024-07-18",
        dataset_id=UPLOAD.dataset_id,
        upload=UPLOAD,
        hyperparameters={"n_epochs": 3, "learning_rate_multiplier": 0.5, "batch_size": "auto"},
        trained_tokens=3664,
        estimated_cost_usd=0.011,
        actual_cost_usd=0.0109,
        train_loss=0.25,
        started_at=NOW,
        finished_at=minutes(30),
        created_at=minutes(created),
    )


def test_a_dataset_reads_back_as_written_and_takes_a_new_status(registry: AnyRegistry) -> None:
    registry.put_dataset(dataset())
    assert registry.get_dataset(UPLOAD.dataset_id) == dataset()
    registry.mark_dataset(UPLOAD.dataset_id, "launched")
    assert registry.get_dataset(UPLOAD.dataset_id) == dataset("launched")
    registry.put_dataset(dataset())  # a repeated S3 event writes the same record again
    assert registry.get_dataset(UPLOAD.dataset_id) == dataset()
    assert registry.get_dataset("unknown") is None


def test_a_notice_is_claimed_once_until_it_is_released(registry: AnyRegistry) -> None:
    assert registry.claim_notice("d1", "rejected", NOW)
    assert not registry.claim_notice("d1", "rejected", minutes(1))
    assert registry.claim_notice("d1", "other", NOW)
    assert registry.claim_notice("d2", "rejected", NOW)
    registry.release_notice("d1", "rejected")
    assert registry.claim_notice("d1", "rejected", minutes(2))


def test_a_model_is_registered_once_and_listed_newest_first(registry: AnyRegistry) -> None:
    assert registry.register_model(model())
    assert not registry.register_model(model().model_copy(update={"train_loss": 9.0}))
    assert registry.get_model(MODEL_A) == model()
    assert registry.register_model(model(MODEL_B, created=1))
    assert [m.model_id for m in registry.list_models()] == [MODEL_B, MODEL_A]
    assert [m.model_id for m in registry.list_models(limit=1)] == [MODEL_B]
    registry.set_model_serving(MODEL_A, "ready")
    assert registry.get_model(MODEL_A) == model().model_copy(update={"serving_status": "ready"})
    assert registry.get_model(MODEL_C) is None


def test_a_registered_model_takes_its_evaluation(registry: AnyRegistry) -> None:
    """Every field of the summary comes back, None ones included (no gate decision, the
    candidate's own comparison), in the record read alone and in the listing."""
    registry.register_model(model())
    assert registry.get_model(MODEL_A).evaluation is None  # type: ignore[union-attr]
    for summary in (evaluation_summary(), evaluation_summary(GatePolicy(alias=None))):
        registry.set_model_evaluation(MODEL_A, summary)
        assert registry.get_model(MODEL_A) == model().model_copy(update={"evaluation": summary})
        assert registry.list_models()[0].evaluation == summary
    registry.set_model_evaluation(
        MODEL_A, summary := evaluation_summary().model_copy(update={"decision": None})
    )
    assert registry.get_model(MODEL_A).evaluation == summary  # type: ignore[union-attr]


# The table's layout: data already stored must stay readable, so it never changes.


def test_each_kind_of_record_keeps_its_keys(table: Any) -> None:
    registry = Registry(table)
    registry.put_dataset(dataset())
    registry.claim_notice(UPLOAD.dataset_id, "rejected", NOW)
    registry.put_job(job(UPLOAD.dataset_id, "ftjob-1", 0))
    registry.register_model(model())
    registry.create_alias_version("support-bot", single(MODEL_A), None, NOW)
    _, key = new_key("ci bot", NOW)
    registry.put_api_key(key)
    dataset_pk = f"DATASET#{UPLOAD.dataset_id}"
    stamp = NOW.isoformat()
    assert {
        (item["PK"], item["SK"], item["kind"], item.get("GSI1PK"), item.get("GSI1SK"))
        for item in table.scan()["Items"]
    } == {
        (dataset_pk, "DATASET", "dataset", "DATASET", stamp),
        (dataset_pk, "NOTICE#rejected", "notice", None, None),
        (dataset_pk, "JOB", "job", "JOB", stamp),
        ("JOBID#ftjob-1", "JOB", "job_id", None, None),
        (f"MODEL#{MODEL_A}", "MODEL", "model", "MODEL", stamp),
        ("ALIAS#support-bot", "ALIAS", "alias", "ALIAS", "support-bot"),
        ("ALIAS#support-bot", "VERSION#000001", "alias_version", None, None),
        (f"KEY#{key.key_hash}", "KEY", "api_key", "KEY", stamp),
    }
