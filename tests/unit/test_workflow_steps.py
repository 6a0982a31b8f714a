"""The workflow's steps with in-memory fakes: launch, poll, cancel, finish."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from moto import mock_aws

from sft_pipeline.adapters.registry import DatasetRecord, Registry
from sft_pipeline.jobs import (
    Estimate,
    JobSettings,
    JobState,
    PollPolicy,
    UploadRef,
    WorkflowRequest,
    WorkflowState,
)
from sft_pipeline.notifications import Outcome
from sft_pipeline.pipeline.steps import cancel, finish, launch, poll
from sft_pipeline.providers.base import ProviderPermanentError, ProviderTransientError
from tests.fakes import FakeFiles, FakeNotifier, FakeProvider, make_registry

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
UPLOAD = UploadRef(bucket="data", key="training/support.jsonl", version_id="v1")


def request(**changes: object) -> WorkflowRequest:
    base = WorkflowRequest(
        dataset_id=UPLOAD.dataset_id,
        upload=UPLOAD,
        training_key=UPLOAD.key,
        validation_key=None,
        examples=62,
        settings=JobSettings(base_model="gpt-4o-mini-2024-07-18", suffix="support"),
        poll=PollPolicy(interval_seconds=60, max_interval_seconds=300, max_duration_seconds=3600),
        estimate=Estimate(billed_tokens=30_000, cost_usd=0.09),
        report_uri="s3://data/reports/support.jsonl.v1.report.json",
        submitted_at=int(NOW.timestamp()),
    )
    return base.model_copy(update=changes)


@pytest.fixture
def registry() -> Iterator[Registry]:
    with mock_aws():
        yield make_registry()


@pytest.fixture
def files() -> FakeFiles:
    return FakeFiles(
        {("data", UPLOAD.key): b'{"messages": []}\n' * 3, ("data", "valid.jsonl"): b"{}\n"}
    )


def launched(
    provider: FakeProvider, files: FakeFiles, registry: Registry, **changes: object
) -> WorkflowState:
    state = WorkflowState(request=request(**changes))
    state.job = launch(state, provider, files, registry, NOW)
    return state


def test_launch_uploads_and_creates_the_job(files: FakeFiles, registry: Registry) -> None:
    provider = FakeProvider()
    state = launched(provider, files, registry, validation_key="valid.jsonl")
    assert state.job is not None
    assert (state.job.status, state.job.state, state.job.next_wait_seconds) == (
        "validating_files",
        JobState.RUNNING,
        60,
    )
    assert [name for name, _ in provider.uploads] == ["support.jsonl", "valid.jsonl"]
    [created] = provider.created
    assert (created.training_file, created.validation_file, created.suffix, created.upload_tag) == (
        "file-1",
        "file-2",
        "support",
        UPLOAD.dataset_id,
    )
    record = registry.get_job(UPLOAD.dataset_id)
    assert record is not None and record.job_id == state.job.job_id


def test_a_retried_launch_reuses_the_job_it_already_created(
    files: FakeFiles, registry: Registry
) -> None:
    provider = FakeProvider()
    first = launched(provider, files, registry)
    second = launched(provider, files, registry)
    assert first.job is not None and second.job is not None
    assert second.job.job_id == first.job.job_id
    assert len(provider.created) == 1 and len(provider.uploads) == 1


def test_poll_backs_off_to_the_cap_and_reports_progress(
    files: FakeFiles, registry: Registry
) -> None:
    provider = FakeProvider()
    state = launched(provider, files, registry)
    waits = []
    for minute in range(1, 6):
        state.job = poll(state, provider, registry, NOW + timedelta(minutes=minute))
        waits.append(state.job.next_wait_seconds)
    assert waits == [90, 135, 202, 300, 300]
    assert state.job.polls == 5 and state.job.latest_events == ["Step 5/10: training loss=0.90"]
    assert not state.job.timed_out


def test_poll_flags_a_job_past_the_maximum_duration(files: FakeFiles, registry: Registry) -> None:
    provider = FakeProvider()
    state = launched(provider, files, registry)
    state.job = poll(state, provider, registry, NOW + timedelta(seconds=3599))
    assert not state.job.timed_out
    state.job = poll(state, provider, registry, NOW + timedelta(seconds=3600))
    assert state.job.timed_out


def test_poll_records_status_changes(files: FakeFiles, registry: Registry) -> None:
    provider = FakeProvider()
    state = launched(provider, files, registry)
    assert state.job is not None
    provider.set(state.job.job_id, status="running")
    state.job = poll(state, provider, registry, NOW)
    record = registry.get_job(UPLOAD.dataset_id)
    assert record is not None and record.status == "running"


def test_cancel_marks_the_job_timed_out(files: FakeFiles, registry: Registry) -> None:
    provider = FakeProvider()
    state = launched(provider, files, registry)
    state.job = cancel(state, provider)
    assert (state.job.state, state.job.timed_out) == (JobState.CANCELLED, True)


def test_finish_registers_the_model_once_with_its_lineage(
    files: FakeFiles, registry: Registry
) -> None:
    provider = FakeProvider()
    registry.put_dataset(
        DatasetRecord(
            dataset_id=UPLOAD.dataset_id,
            upload=UPLOAD,
            sha256="ab" * 32,
            bytes=100,
            examples=62,
            valid=True,
            status="launched",
            summary="valid",
            report_uri=None,
            billed_tokens=30_000,
            estimated_cost_usd=0.09,
            settings=None,
            created_at=NOW,
        )
    )
    state = launched(provider, files, registry)
    assert state.job is not None
    provider.set(
        state.job.job_id,
        status="succeeded",
        state=JobState.SUCCEEDED,
        fine_tuned_model="ft:gpt-4o-mini-2024-07-18:acme:support:abc123",
        trained_tokens=90_000,
        finished_at=int((NOW + timedelta(minutes=30)).timestamp()),
        hyperparameters={"n_epochs": 3, "batch_size": 1, "learning_rate_multiplier": 1.8},
    )
    state.outcome = "succeeded"
    notifier = FakeNotifier()
    result = finish(state, provider, registry, notifier, NOW + timedelta(minutes=31))
    assert (result.outcome, result.model_id, result.newly_registered) == (
        "succeeded",
        "ft:gpt-4o-mini-2024-07-18:acme:support:abc123",
        True,
    )
    model = registry.get_model("ft:gpt-4o-mini-2024-07-18:acme:support:abc123")
    assert model is not None
    assert (model.upload, model.dataset_sha256, model.trained_tokens) == (UPLOAD, "ab" * 32, 90_000)
    assert model.actual_cost_usd == pytest.approx(0.27)
    assert (model.train_loss, model.valid_loss) == (0.25, 0.31)
    [sent] = notifier.sent
    assert sent.outcome is Outcome.SUCCEEDED and sent.duration_seconds == 30 * 60
    # A retried finish step does not register the model twice.
    again = finish(state, provider, registry, notifier, NOW + timedelta(minutes=32))
    assert again.newly_registered is False
    assert len(registry.list_models()) == 1


def test_finish_reports_a_provider_failure(files: FakeFiles, registry: Registry) -> None:
    provider = FakeProvider()
    state = launched(provider, files, registry)
    assert state.job is not None
    provider.set(
        state.job.job_id,
        status="failed",
        state=JobState.FAILED,
        error_code="invalid_training_file",
        error_message="Line 3: bad token",
    )
    state.outcome = "failed"
    notifier = FakeNotifier()
    result = finish(state, provider, registry, notifier, NOW)
    assert result.model_id is None
    [sent] = notifier.sent
    assert (sent.outcome, sent.error_code, sent.error_message) == (
        Outcome.FAILED,
        "invalid_training_file",
        "Line 3: bad token",
    )
    assert registry.list_models() == []


def test_finish_after_a_caught_step_error_uses_the_cause(
    files: FakeFiles, registry: Registry
) -> None:
    provider = FakeProvider()
    cause = {
        "errorMessage": "fine_tuning_unavailable: not available for this organization",
        "errorType": "ProviderPermanentError",
    }
    state = WorkflowState(
        request=request(),
        outcome="failed",
        failure={"Error": "ProviderPermanentError", "Cause": json.dumps(cause)},
    )
    notifier = FakeNotifier()
    finish(state, provider, registry, notifier, NOW)
    [sent] = notifier.sent
    assert (sent.error_code, sent.error_message, sent.job_id) == (
        "fine_tuning_unavailable",
        "not available for this organization",
        None,
    )


def test_finish_after_a_failure_survives_an_unreachable_provider(
    files: FakeFiles, registry: Registry
) -> None:
    provider = FakeProvider()
    state = launched(provider, files, registry)
    state.outcome = "failed"
    state.failure = {
        "Error": "ProviderTransientError",
        "Cause": json.dumps({"errorMessage": "http_503: unavailable"}),
    }
    provider.fail_with = ProviderTransientError("http_503", "unavailable")
    notifier = FakeNotifier()
    finish(state, provider, registry, notifier, NOW)
    assert notifier.sent[0].error_code == "http_503"
    # A success cannot be recorded without the provider: the step fails and is retried.
    state.outcome = "succeeded"
    with pytest.raises(ProviderTransientError):
        finish(state, provider, registry, notifier, NOW)


def test_provider_errors_propagate_by_class_name(files: FakeFiles, registry: Registry) -> None:
    provider = FakeProvider(fail_with=ProviderPermanentError("authentication_failed", "bad key"))
    with pytest.raises(ProviderPermanentError, match="authentication_failed"):
        launch(WorkflowState(request=request()), provider, files, registry, NOW)
