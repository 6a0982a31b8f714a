"""Retraining a model elsewhere: the plan (lineage, mapped settings, refusals), the order the
validation step runs (same version and sha256, or a refusal), the API route and the CLI."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from sft_pipeline import settings as settings_module
from sft_pipeline.adapters.training_bucket import TrainingBucket
from sft_pipeline.aliases import Variant, single
from sft_pipeline.api.models import RetrainBody
from sft_pipeline.api.service import ApiError, ApiService
from sft_pipeline.jobs import Hyperparameters, JobSettings, UploadRef
from sft_pipeline.pipeline.retrain import RetrainOrders, plan_retrain
from sft_pipeline.pipeline.validate_upload import ValidateUploadPorts, validate_retrain
from sft_pipeline.records import DatasetRecord, ModelRecord
from sft_pipeline.retraining import RetrainOrder, RetrainRefused, RetrainRequest
from sft_pipeline.settings import JobDefaultsSettings
from tests.fakes import (
    FakeBucket,
    FakeNotifier,
    FakeProvider,
    FakeWorkflow,
    InMemoryRegistry,
    registry_table,
)
from tests.unit.test_cli import run_cli

NOW = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)
BUCKET = "sft-dev-data"
MODEL = "ft:gpt-4o-mini-2024-07-18:acme:support:AbC123xy"
ALIAS = "support-bot"
TRAINING = (
    "\n".join(
        json.dumps(
            {
                "messages": [
                    {"role": "system", "content": "You help with tents."},
                    {"role": "user", "content": f"Question {i} about tent pole number {i}?"},
                    {"role": "assistant", "content": f"Answer {i}: use pole {i} and stake it."},
                ]
            }
        )
        for i in range(12)
    ).encode()
    + b"\n"
)
SHA256 = hashlib.sha256(TRAINING).hexdigest()
UPLOAD = UploadRef(bucket=BUCKET, key="training/support.jsonl", version_id="v1")


def seed(
    registry: Any,
    *,
    settings: JobSettings | None = None,
    sha256: str | None = SHA256,
    eval_file: UploadRef | None = None,
) -> None:
    """An OpenAI model trained on UPLOAD (n_epochs 3, for ALIAS), which ALIAS serves."""
    original = settings or JobSettings(
        base_model="gpt-4o-mini-2024-07-18",
        suffix="support",
        hyperparameters=Hyperparameters(n_epochs=3),
        alias=ALIAS,
    )
    registry.put_dataset(
        DatasetRecord(
            dataset_id=UPLOAD.dataset_id,
            upload=UPLOAD,
            sha256=sha256,
            examples=12,
            valid=True,
            status="launched",
            summary="VALID",
            settings=original,
            created_at=NOW,
            eval_file=eval_file,
        )
    )
    registry.register_model(
        ModelRecord(
            model_id=MODEL,
            provider="openai",
            job_id="ftjob-1",
            base_model="gpt-4o-mini-2024-07-18",
            dataset_id=UPLOAD.dataset_id,
            upload=UPLOAD,
            dataset_sha256=sha256,
            hyperparameters={"n_epochs": 3},
            started_at=NOW,
            finished_at=NOW,
            created_at=NOW,
        )
    )
    registry.create_alias_version(ALIAS, single(MODEL), None, NOW)


@pytest.fixture
def registry() -> InMemoryRegistry:
    registry = InMemoryRegistry()
    seed(registry)
    return registry


def to_bedrock(model: str = ALIAS, **changes: Any) -> RetrainRequest:
    return RetrainRequest(model=model, provider="bedrock", **changes)


# ---------------------------------------------------------------- the plan


def test_the_plan_keeps_the_lineage_and_maps_the_settings(registry: InMemoryRegistry) -> None:
    plan = plan_retrain(to_bedrock(), registry, "key_1")
    assert (plan.upload, plan.sha256, plan.model.model_id) == (UPLOAD, SHA256, MODEL)
    settings = plan.settings
    assert (settings.provider, settings.base_model) == ("bedrock", "amazon.nova-lite-v1:0:300k")
    assert settings.hyperparameters == Hyperparameters(n_epochs=3)
    assert (settings.alias, settings.promote, settings.suffix) == (
        ALIAS,
        "if-not-worse",
        "support",
    )
    assert plan.dataset_id != UPLOAD.dataset_id


def test_the_same_retrain_asked_twice_is_one_run(registry: InMemoryRegistry) -> None:
    by_alias = plan_retrain(to_bedrock(), registry, "key_1")
    by_model_id = plan_retrain(to_bedrock(MODEL), registry, "cli")
    assert by_alias.dataset_id == by_model_id.dataset_id
    # The order resolves to itself: the validation step plans the very same run.
    assert plan_retrain(by_alias.order.request(), registry).order == by_alias.order.model_copy(
        update={"requested_by": ""}
    )
    other_base = plan_retrain(to_bedrock(base_model="amazon.nova-pro-v1:0:300k"), registry)
    assert other_base.dataset_id != by_alias.dataset_id


def test_an_alias_names_the_variant_most_traffic_goes_to(registry: InMemoryRegistry) -> None:
    registry.create_alias_version(
        "canary",
        [Variant(model="gpt-4o-mini-2024-07-18", weight=60), Variant(model=MODEL, weight=40)],
        None,
        NOW,
    )
    plan = plan_retrain(to_bedrock("canary"), registry)
    assert (plan.model.model_id, plan.settings.alias) == (MODEL, "canary")


@pytest.mark.parametrize(
    ("request_", "kind", "reason"),
    [
        (to_bedrock("no-such-alias"), "not_found", "No registered model or alias"),
        (to_bedrock("ft:gpt-4o-mini-2024-07-18:acme::gone"), "not_found", "No registered model"),
        (to_bedrock(hyperparameters={"n_epochs": 9}), "invalid", "epochCount must be from 1 to 5"),
        (to_bedrock(base_model="gpt-4o"), "invalid", "not a base model Amazon Bedrock can"),
        (to_bedrock(hyperparameters={"n_epochs": 0}), "invalid", "n_epochs"),
    ],
)
def test_what_cannot_be_retrained_is_refused_with_reasons(
    registry: InMemoryRegistry, request_: RetrainRequest, kind: str, reason: str
) -> None:
    with pytest.raises(RetrainRefused) as refused:
        plan_retrain(request_, registry)
    assert refused.value.kind == kind
    assert reason in " ".join(refused.value.problems)


def test_a_setting_bedrock_has_no_place_for_is_refused_until_replaced() -> None:
    registry = InMemoryRegistry()
    seed(
        registry,
        settings=JobSettings(
            base_model="gpt-4o-mini-2024-07-18", hyperparameters=Hyperparameters(batch_size=8)
        ),
    )
    with pytest.raises(RetrainRefused) as refused:
        plan_retrain(to_bedrock(), registry)
    assert refused.value.kind == "invalid"
    assert "no batch size" in refused.value.problems[0]
    assert "batch_size=auto" in refused.value.problems[-1]
    plan = plan_retrain(to_bedrock(hyperparameters={"batch_size": "auto"}), registry)
    assert plan.settings.hyperparameters.batch_size == "auto"


def test_a_lineage_without_a_sha256_cannot_be_retrained_exactly() -> None:
    registry = InMemoryRegistry()
    seed(registry, sha256=None)
    with pytest.raises(RetrainRefused) as refused:
        plan_retrain(to_bedrock(), registry)
    assert refused.value.kind == "conflict"
    assert "sha256" in refused.value.problems[0]


def test_a_model_without_its_dataset_record_is_refused(registry: InMemoryRegistry) -> None:
    registry.datasets.clear()
    with pytest.raises(RetrainRefused) as refused:
        plan_retrain(to_bedrock(), registry)
    assert refused.value.kind == "conflict"


# ---------------------------------------------------------------- the validation step


def ports(registry: InMemoryRegistry, data: bytes | None = TRAINING) -> ValidateUploadPorts:
    bucket = FakeBucket()
    if data is not None:
        bucket.objects[(BUCKET, UPLOAD.key)] = data
    return ValidateUploadPorts(bucket, registry, FakeWorkflow(), FakeNotifier())  # type: ignore[arg-type]


def defaults(monkeypatch: pytest.MonkeyPatch) -> JobDefaultsSettings:
    monkeypatch.setenv("DEFAULT_COST_CAP_USD", "0")
    return JobDefaultsSettings()


def order(registry: InMemoryRegistry) -> RetrainOrder:
    return plan_retrain(to_bedrock(), registry, "key_1").order


def test_a_retrain_starts_a_run_on_the_same_version_and_sha256(
    registry: InMemoryRegistry, monkeypatch: pytest.MonkeyPatch
) -> None:
    wanted = order(registry)
    step = ports(registry)
    result = validate_retrain(wanted, step, registry, defaults(monkeypatch), NOW)
    assert (result.status, result.dataset_id) == ("launched", wanted.dataset_id)
    workflow = step.workflow
    assert isinstance(workflow, FakeWorkflow)
    [(execution, request)] = workflow.started.items()
    assert execution == f"ft-{wanted.dataset_id}"
    assert (request.dataset_id, request.upload) == (wanted.dataset_id, UPLOAD)
    assert request.settings.provider == "bedrock"
    assert request.settings.alias == ALIAS
    record = registry.datasets[wanted.dataset_id]
    assert (record.sha256, record.upload, record.retrained_from) == (SHA256, UPLOAD, MODEL)
    # The original run's records are untouched; asking again starts nothing new.
    assert registry.datasets[UPLOAD.dataset_id].settings is not None
    again = validate_retrain(wanted, step, registry, defaults(monkeypatch), NOW)
    assert again.status == "already_launched"
    assert len(workflow.started) == 1


def test_a_version_whose_sha256_changed_is_refused_and_notified(
    registry: InMemoryRegistry, monkeypatch: pytest.MonkeyPatch
) -> None:
    step = ports(registry, TRAINING.replace(b"pole 3", b"pole 4"))
    result = validate_retrain(order(registry), step, registry, defaults(monkeypatch), NOW)
    assert result.status == "rejected"
    assert isinstance(step.workflow, FakeWorkflow) and step.workflow.started == {}
    assert isinstance(step.notifier, FakeNotifier)
    [notice] = step.notifier.sent
    assert notice.error_code == "lineage_changed"
    assert SHA256 in (notice.error_message or "")
    assert registry.datasets[result.dataset_id].rejection_code == "lineage_changed"


def test_a_version_that_is_gone_is_refused_and_notified(
    registry: InMemoryRegistry, monkeypatch: pytest.MonkeyPatch
) -> None:
    step = ports(registry, data=None)
    result = validate_retrain(order(registry), step, registry, defaults(monkeypatch), NOW)
    assert result.status == "rejected"
    assert isinstance(step.notifier, FakeNotifier)
    [notice] = step.notifier.sent
    assert notice.error_code == "lineage_version_gone"
    assert notice.dataset.version_id == "v1"
    record = registry.datasets[result.dataset_id]
    assert (record.status, record.retrained_from) == ("rejected", MODEL)


HELD_OUT = UploadRef(bucket=BUCKET, key="evaluation/heldout.jsonl", version_id="e1")


def evaluated_registry() -> InMemoryRegistry:
    """The model of ``seed``, its run evaluated on HELD_OUT's version e1."""
    registry = InMemoryRegistry()
    settings = JobSettings(
        base_model="gpt-4o-mini-2024-07-18",
        suffix="support",
        hyperparameters=Hyperparameters(n_epochs=3),
        alias=ALIAS,
        eval_key=HELD_OUT.key,
    )
    seed(registry, settings=settings, eval_file=HELD_OUT)
    return registry


def test_a_retrain_reads_the_eval_file_at_the_version_the_original_run_read(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    registry = evaluated_registry()
    step = ports(registry)
    assert isinstance(step.bucket, FakeBucket)
    step.bucket.objects[(BUCKET, HELD_OUT.key)] = TRAINING  # whatever the key holds now
    wanted = order(registry)
    result = validate_retrain(wanted, step, registry, defaults(monkeypatch), NOW)
    assert result.status == "launched"
    assert (HELD_OUT.key, "e1") in step.bucket.reads
    assert isinstance(step.workflow, FakeWorkflow)
    [request] = step.workflow.started.values()
    assert (request.eval_key, request.eval_version_id) == (HELD_OUT.key, "e1")
    assert registry.datasets[wanted.dataset_id].eval_file == HELD_OUT


def test_a_retrain_whose_eval_version_is_gone_is_refused_with_the_reason(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    registry = evaluated_registry()
    step = ports(registry)  # the held-out file is not in the bucket any more
    result = validate_retrain(order(registry), step, registry, defaults(monkeypatch), NOW)
    assert result.status == "rejected"
    assert isinstance(step.notifier, FakeNotifier)
    [notice] = step.notifier.sent
    assert f"eval-key: s3://{BUCKET}/{HELD_OUT.key} version e1 is gone" in (
        notice.error_message or ""
    )


def test_the_s3_adapter_tells_a_deleted_version_from_a_kept_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    with mock_aws():
        s3 = boto3.client("s3")
        s3.create_bucket(Bucket=BUCKET)
        s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
        kept = s3.put_object(Bucket=BUCKET, Key=UPLOAD.key, Body=TRAINING)["VersionId"]
        gone = s3.put_object(Bucket=BUCKET, Key=UPLOAD.key, Body=b"x")["VersionId"]
        s3.delete_object(Bucket=BUCKET, Key=UPLOAD.key, VersionId=gone)
        bucket = TrainingBucket(s3)
        assert bucket.version_exists(UPLOAD.model_copy(update={"version_id": kept}))
        assert not bucket.version_exists(UPLOAD.model_copy(update={"version_id": gone}))
        assert not bucket.version_exists(UPLOAD.model_copy(update={"version_id": "never-made"}))


# ---------------------------------------------------------------- the API


class Orders:
    def __init__(self) -> None:
        self.written: dict[str, bytes] = {}

    def put(self, bucket: str, key: str, body: bytes, content_type: str) -> str:
        self.written[f"{bucket}/{key}"] = body
        return f"s3://{bucket}/{key}"


def api_retrain(registry: InMemoryRegistry, name: str, body: dict[str, Any]) -> Orders:
    writer = Orders()
    service = ApiService(registry, lambda _: FakeProvider(), lambda _: FakeProvider())
    service.retrain(
        name, RetrainBody.model_validate(body), "key_1", RetrainOrders(writer, BUCKET, "retrain/")
    )
    return writer


def test_the_api_writes_one_order_per_retrain(registry: InMemoryRegistry) -> None:
    writer = api_retrain(registry, ALIAS, {"provider": "bedrock"})
    api_retrain(registry, ALIAS, {"provider": "bedrock"})
    [(key, body)] = writer.written.items()
    written = RetrainOrder.model_validate_json(body)
    assert key == f"{BUCKET}/retrain/{written.dataset_id}.json"
    assert (written.model_id, written.requested_by) == (MODEL, "key_1")


@pytest.mark.parametrize(
    ("name", "body", "status", "code"),
    [
        ("nobody", {"provider": "bedrock"}, 404, "model_not_found"),
        (
            ALIAS,
            {"provider": "bedrock", "hyperparameters": {"n_epochs": 9}},
            400,
            "retrain_not_possible",
        ),
    ],
)
def test_the_api_refuses_with_the_status_of_each_refusal(
    registry: InMemoryRegistry, name: str, body: dict[str, Any], status: int, code: str
) -> None:
    with pytest.raises(ApiError) as refused:
        api_retrain(registry, name, body)
    assert (refused.value.status, refused.value.code) == (status, code)


def test_the_api_answers_409_when_the_lineage_cannot_be_read_again() -> None:
    registry = InMemoryRegistry()
    seed(registry, sha256=None)
    with pytest.raises(ApiError) as refused:
        api_retrain(registry, ALIAS, {"provider": "bedrock"})
    assert (refused.value.status, refused.value.code) == (409, "lineage_unavailable")


# ---------------------------------------------------------------- the CLI


@pytest.fixture
def stack(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setattr(settings_module, "_loaded", {})
    with mock_aws():
        table = registry_table()
        from sft_pipeline.adapters.registry import Registry  # noqa: PLC0415

        seed(Registry(table))
        s3 = boto3.client("s3")
        s3.create_bucket(Bucket=BUCKET)
        outputs = {"RegistryTableName": table.name, "TrainingBucketName": BUCKET}
        template = {
            "Resources": {"Topic": {"Type": "AWS::SNS::Topic"}},
            "Outputs": {key: {"Value": value} for key, value in outputs.items()},
        }
        boto3.client("cloudformation").create_stack(
            StackName="sft-dev", TemplateBody=json.dumps(template)
        )
        yield s3


def test_the_cli_orders_the_retrain_where_the_stack_runs_it(
    stack: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, _ = run_cli(
        capsys, "retrain", ALIAS, "--provider", "bedrock", "--stack", "sft-dev", "--json"
    )
    assert status == 0
    shown = json.loads(out)
    assert shown["upload"] == UPLOAD.model_dump()
    assert shown["dataset_sha256"] == SHA256
    body = stack.get_object(Bucket=BUCKET, Key=f"retrain/{shown['dataset_id']}.json")["Body"]
    written = RetrainOrder.model_validate_json(body.read())
    assert (written.model_id, written.alias, written.requested_by) == (MODEL, ALIAS, "cli")


def test_the_cli_prints_why_it_cannot_retrain(
    stack: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    status, _, err = run_cli(
        capsys, "retrain", ALIAS, "--provider", "bedrock", "--n-epochs", "9", "--stack", "sft-dev"
    )
    assert status == 1
    assert "cannot retrain" in err and "epochCount must be from 1 to 5" in err
    assert stack.list_objects_v2(Bucket=BUCKET).get("KeyCount", 0) == 0
    status, _, err = run_cli(capsys, "retrain", ALIAS, "--provider", "bedrock", "--stack", "gone")
    assert status == 2
    assert "no stack named 'gone'" in err
