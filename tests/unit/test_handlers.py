"""Each Lambda handler with in-memory fakes: event in, one domain call, a small result out."""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import quote_plus

import pytest
from moto import mock_aws

from sft_pipeline import runtime
from sft_pipeline.jobs import JobState, UploadRef
from sft_pipeline.observability import logger
from sft_pipeline.pipeline.validate_upload import report_key
from sft_pipeline.records import ProviderJob
from sft_pipeline.settings import JobDefaultsSettings
from tests.conftest import as_lines, good_examples
from tests.fakes import (
    FakeBucket,
    FakeNotifier,
    FakeProvider,
    FakeWorkflow,
    InMemoryRegistry,
    LambdaContext,
)

REPO = Path(__file__).resolve().parents[2]
EVENTS = REPO / "events"


def handler(function: str) -> Callable[[dict[str, Any], Any], Any]:
    spec = importlib.util.spec_from_file_location(
        f"handler_{function}", REPO / "functions" / function / "app.py"
    )
    assert spec is not None and spec.loader is not None
    module: ModuleType = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.lambda_handler  # type: ignore[no-any-return]


def event(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((EVENTS / name).read_text())
    return loaded


class Ports:
    def __init__(self) -> None:
        self.registry = InMemoryRegistry()
        self.bucket = FakeBucket()
        self.workflow = FakeWorkflow()
        self.notifier = FakeNotifier()
        self.provider = FakeProvider()


@pytest.fixture
def ports(monkeypatch: pytest.MonkeyPatch, template_environment: dict[str, str]) -> Iterator[Ports]:
    with mock_aws():
        fakes = Ports()
        monkeypatch.setattr(runtime, "training_bucket", lambda: fakes.bucket)
        monkeypatch.setattr(runtime, "registry", lambda: fakes.registry)
        monkeypatch.setattr(runtime, "workflow", lambda: fakes.workflow)
        monkeypatch.setattr(runtime, "notifier", lambda: fakes.notifier)
        monkeypatch.setattr(runtime, "provider", lambda _name: fakes.provider)
        yield fakes


def seed_job(provider: FakeProvider, job_id: str, **changes: Any) -> None:
    fields: dict[str, Any] = {"status": "running", "state": JobState.RUNNING, **changes}
    provider.jobs[job_id] = ProviderJob(
        job_id=job_id, base_model="gpt-4o-mini-2024-07-18", created_at=1, **fields
    )


def test_validate_upload_launches_once(ports: Ports) -> None:
    s3_event = event("validate_upload_s3_put.json")
    record = s3_event["Records"][0]["s3"]
    upload = UploadRef(
        bucket=record["bucket"]["name"],
        key="training/support set.jsonl",
        version_id=record["object"]["versionId"],
    )
    ports.bucket.objects[(upload.bucket, upload.key)] = as_lines(good_examples(12))
    ports.bucket.metadata = {"suffix": "support", "n-epochs": "3"}
    validate = handler("validate_upload")

    first = validate(s3_event, LambdaContext())
    assert first["results"][0]["status"] == "launched"
    assert first["results"][0]["dataset_id"] == upload.dataset_id
    [(name, request)] = ports.workflow.started.items()
    assert name == upload.execution_name
    assert (request.settings.suffix, request.settings.hyperparameters.n_epochs) == ("support", 3)
    assert ports.bucket.objects[
        (upload.bucket, "reports/support set.jsonl." + upload.version_id + ".report.json")
    ]  # type: ignore[operator]

    again = validate(s3_event, LambdaContext())
    assert again["results"][0]["status"] == "already_launched"
    assert len(ports.workflow.started) == 1


def test_validate_upload_rejects_and_notifies(ports: Ports) -> None:
    s3_event = event("validate_upload_s3_put.json")
    bucket = s3_event["Records"][0]["s3"]["bucket"]["name"]
    ports.bucket.objects[(bucket, "training/support set.jsonl")] = b'{"messages": []}\n'
    result = handler("validate_upload")(s3_event, LambdaContext())
    assert result["results"][0]["status"] == "rejected"
    assert ports.workflow.started == {}
    [sent] = ports.notifier.sent
    assert sent.outcome == "rejected" and sent.error_code == "invalid_training_file"


def test_validate_upload_skips_the_s3_test_event(ports: Ports) -> None:
    assert handler("validate_upload")(
        event("validate_upload_s3_test_event.json"), LambdaContext()
    ) == {"results": []}
    assert ports.notifier.sent == [] and ports.workflow.started == {}


def test_launch_job(ports: Ports) -> None:
    launch_event = event("launch_job.json")
    upload = launch_event["request"]["upload"]
    ports.bucket.objects[(upload["bucket"], upload["key"])] = as_lines(good_examples(12))
    result = handler("launch_job")(launch_event, LambdaContext())
    assert (result["job_id"], result["state"], result["next_wait_seconds"]) == (
        "ftjob-1",
        "running",
        60,
    )
    json.dumps(result)  # the workflow carries it as JSON


def test_poll_job(ports: Ports) -> None:
    poll_event = event("poll_job.json")
    job_id = poll_event["job"]["job_id"]
    seed_job(ports.provider, job_id, trained_tokens=1200)
    result = handler("poll_job")(poll_event, LambdaContext())
    assert (result["job_id"], result["polls"], result["trained_tokens"]) == (
        job_id,
        poll_event["job"]["polls"] + 1,
        1200,
    )
    assert result["latest_events"] == ports.provider.events


def test_cancel_job(ports: Ports) -> None:
    cancel_event = event("cancel_job.json")
    seed_job(ports.provider, cancel_event["job"]["job_id"])
    result = handler("cancel_job")(cancel_event, LambdaContext())
    assert (result["state"], result["timed_out"]) == ("cancelled", True)


def test_finish_job_succeeded(ports: Ports) -> None:
    finish_event = event("finish_job_succeeded.json")
    job = finish_event["job"]
    seed_job(
        ports.provider,
        job["job_id"],
        status="succeeded",
        state=JobState.SUCCEEDED,
        fine_tuned_model=job["fine_tuned_model"],
        trained_tokens=50_000,
        finished_at=job["started_at"] + 600,
    )
    result = handler("finish_job")(finish_event, LambdaContext())
    assert (result["outcome"], result["model_id"], result["newly_registered"]) == (
        "succeeded",
        job["fine_tuned_model"],
        True,
    )
    assert ports.registry.get_model(job["fine_tuned_model"]) is not None


def test_finish_job_failed(ports: Ports) -> None:
    result = handler("finish_job")(event("finish_job_failed.json"), LambdaContext())
    assert result["outcome"] == "failed" and result["model_id"] is None
    [sent] = ports.notifier.sent
    assert sent.error_code == "fine_tuning_unavailable"


def emitted_metrics(stdout: str) -> list[tuple[str, str, list[list[str]], str]]:
    """(namespace, metric name, dimension sets, outcome) of each CloudWatch EMF document."""
    documents = [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]
    return [
        (directive["Namespace"], metric["Name"], directive["Dimensions"], document["outcome"])
        for document in documents
        if "_aws" in document
        for directive in document["_aws"]["CloudWatchMetrics"]
        for metric in directive["Metrics"]
    ]


def test_outcomes_are_counted_under_fixed_metric_names(
    ports: Ports, capsys: pytest.CaptureFixture[str]
) -> None:
    """Alarms and dashboards name a metric: the outcome is a dimension, not part of the name."""
    s3_event = event("validate_upload_s3_put.json")
    bucket = s3_event["Records"][0]["s3"]["bucket"]["name"]
    ports.bucket.objects[(bucket, "training/support set.jsonl")] = b'{"messages": []}\n'
    handler("validate_upload")(s3_event, LambdaContext())
    handler("finish_job")(event("finish_job_failed.json"), LambdaContext())
    assert emitted_metrics(capsys.readouterr().out) == [
        ("SftPipeline", "Uploads", [["outcome"]], "rejected"),
        ("SftPipeline", "Jobs", [["outcome"]], "failed"),
    ]


def test_workflow_tasks_log_with_the_dataset_id_as_correlation_id(
    ports: Ports, caplog: pytest.LogCaptureFixture
) -> None:
    # What an earlier invocation in the same container left: none of it may carry over.
    logger.set_correlation_id("an-earlier-run")
    logger.append_keys(key="training/earlier.jsonl")
    finish_event = event("finish_job_failed.json")
    handler("finish_job")(finish_event, LambdaContext())
    [record] = [r for r in caplog.records if r.getMessage() == "Outcome recorded"]
    # The line as CloudWatch gets it: the logger's formatter adds the keys set for the run.
    outcome = json.loads(logger.registered_formatter.format(record))
    assert (
        outcome["correlation_id"] == outcome["dataset_id"] == finish_event["request"]["dataset_id"]
    )
    assert "key" not in outcome


def upload_of(s3_event: dict[str, Any]) -> UploadRef:
    record = s3_event["Records"][0]["s3"]
    return UploadRef(
        bucket=record["bucket"]["name"],
        key="training/support set.jsonl",
        version_id=record["object"]["versionId"],
    )


NOVA = {"provider": "bedrock", "base-model": "amazon.nova-micro-v1:0:128k"}


@pytest.mark.parametrize(
    ("examples", "metadata", "problem"),
    [
        (
            60,
            {"holdout-percent": "5"},
            "holdout-percent 5 of 60 examples leaves 3 for validation; OpenAI needs at least 10",
        ),
        (
            16,
            {"holdout-percent": "50"},
            "holdout-percent 50 of 16 examples leaves 6 for training; OpenAI needs at least 10",
        ),
        (
            16,
            {"holdout-percent": "50", **NOVA},
            "leaves 6 for training; Amazon Bedrock needs at least 8",
        ),
        (20, {"holdout-percent": "50", **NOVA}, None),  # 8 to train on: Nova's minimum
    ],
)
def test_a_holdout_the_provider_would_refuse_is_refused_with_the_numbers(
    ports: Ports, examples: int, metadata: dict[str, str], problem: str | None
) -> None:
    s3_event = event("validate_upload_s3_put.json")
    upload = upload_of(s3_event)
    ports.bucket.objects[(upload.bucket, upload.key)] = as_lines(good_examples(examples))
    ports.bucket.metadata = metadata
    [result] = handler("validate_upload")(s3_event, LambdaContext())["results"]
    if problem is None:
        assert result["status"] == "launched"
        return
    assert result["status"] == "rejected" and ports.workflow.started == {}
    [sent] = ports.notifier.sent
    assert sent.error_code == "invalid_job_setting" and problem in (sent.error_message or "")
    report = json.loads(ports.bucket.objects[(upload.bucket, result["report"].split("/", 3)[3])])
    assert problem in report["errors"][0]["message"]
    # Nothing was split or uploaded for a run that will not happen.
    assert not [key for _, key in ports.bucket.objects if key.startswith("prepared/")]


def test_a_rejected_version_delivered_again_notifies_once(ports: Ports) -> None:
    s3_event = event("validate_upload_s3_put.json")
    upload = upload_of(s3_event)
    ports.bucket.objects[(upload.bucket, upload.key)] = b'{"messages": []}\n'
    validate = handler("validate_upload")
    for _ in range(3):
        [result] = validate(s3_event, LambdaContext())["results"]
        assert result["status"] == "rejected"
    assert len(ports.notifier.sent) == 1
    record = ports.registry.get_dataset(upload.dataset_id)
    assert record is not None and record.status == "rejected"


@pytest.mark.filterwarnings("ignore:No application metrics to publish")
def test_a_rejection_notice_that_could_not_be_sent_is_sent_by_the_retry(
    ports: Ports, monkeypatch: pytest.MonkeyPatch
) -> None:
    s3_event = event("validate_upload_s3_put.json")
    upload = upload_of(s3_event)
    ports.bucket.objects[(upload.bucket, upload.key)] = b'{"messages": []}\n'
    sent_first = ports.notifier.publish

    def outage(notification: Any) -> str:
        monkeypatch.setattr(ports.notifier, "publish", sent_first)
        raise ConnectionError("SNS is unreachable")

    monkeypatch.setattr(ports.notifier, "publish", outage)
    validate = handler("validate_upload")
    with pytest.raises(ConnectionError):
        validate(s3_event, LambdaContext())
    validate(s3_event, LambdaContext())  # Lambda's retry of the asynchronous event
    assert len(ports.notifier.sent) == 1


def test_missing_or_odd_validation_keys_are_reported_not_crashed(ports: Ports) -> None:
    s3_event = event("validate_upload_s3_put.json")
    upload = upload_of(s3_event)
    ports.bucket.objects[(upload.bucket, upload.key)] = as_lines(good_examples(12))
    validate = handler("validate_upload")
    for value, problem in [
        ("validation/missing.jsonl", "there is no object s3://"),
        ("", "must be the key of an object"),
        ("../x", "must be the key of an object"),
    ]:
        ports.notifier.sent.clear()
        ports.registry.release_notice(upload.dataset_id, "rejected")  # a new upload each time
        ports.bucket.metadata = {"validation-key": value}
        [result] = validate(s3_event, LambdaContext())["results"]
        assert result["status"] == "rejected"
        [sent] = ports.notifier.sent
        assert sent.error_code == "invalid_job_setting" and problem in (sent.error_message or "")


def test_report_keys_stay_readable_when_short_and_within_s3s_limit_when_long() -> None:
    settings = JobDefaultsSettings()
    short = UploadRef(bucket="b", key="training/support.jsonl", version_id="v" * 32)
    assert report_key(settings, short) == f"reports/support.jsonl.{'v' * 32}.report"
    near_limit = "training/" + "ü" * 400 + "/" + "x" * 200 + ".jsonl"  # 1,015 bytes
    twin = near_limit.replace("x.jsonl", "y.jsonl")
    keys = [
        report_key(settings, UploadRef(bucket="b", key=key, version_id="v" * 32))
        for key in (near_limit, twin)
    ]
    assert keys[0] != keys[1]
    for key in keys:
        assert key.startswith("reports/üü") and key.endswith(f".{'v' * 32}.report")
        assert max(len(f"{key}{extension}".encode()) for extension in (".json", ".txt")) <= 1024


def test_a_long_keys_report_names_the_whole_key(ports: Ports) -> None:
    s3_event = event("validate_upload_s3_put.json")
    record = s3_event["Records"][0]["s3"]
    key = "training/" + "é" * 462 + "/" + "support" * 10 + ".jsonl"  # 1,010 bytes
    record["object"]["key"] = quote_plus(key)
    ports.bucket.objects[(record["bucket"]["name"], key)] = b'{"messages": []}\n'
    [result] = handler("validate_upload")(s3_event, LambdaContext())["results"]
    report_path = result["report"].split("/", 3)[3]
    naive = f"reports/{key.removeprefix('training/')}.{record['object']['versionId']}.report.json"
    assert len(report_path.encode()) <= 1024 < len(naive.encode())
    report = json.loads(ports.bucket.objects[(record["bucket"]["name"], report_path)])
    assert report["upload"]["key"] == key and report["valid"] is False
    text = ports.bucket.objects[(record["bucket"]["name"], report_path.replace(".json", ".txt"))]
    assert key in text.decode()
