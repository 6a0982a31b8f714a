"""The workflow's steps with in-memory fakes: launch, poll, cancel, finish."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from sft_pipeline.adapters.notifier import email_text
from sft_pipeline.jobs import (
    Estimate,
    JobSettings,
    JobState,
    PollPolicy,
    UploadRef,
    WorkflowRequest,
    WorkflowState,
)
from sft_pipeline.notifications import Notification, Outcome
from sft_pipeline.pipeline.steps import (
    ADOPTION_WAITS,
    cancel,
    finish,
    launch,
    poll,
)
from sft_pipeline.providers.base import (
    JobRequest,
    ProviderError,
    ProviderPermanentError,
    ProviderRateLimitError,
    ProviderTransientError,
)
from sft_pipeline.records import NO_JOB_STATUS, DatasetRecord, ProviderJob
from tests.fakes import FakeBucket, FakeNotifier, FakeProvider, InMemoryRegistry

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
def registry() -> InMemoryRegistry:
    return InMemoryRegistry()


@pytest.fixture
def files() -> FakeBucket:
    return FakeBucket(
        {("data", UPLOAD.key): b'{"messages": []}\n' * 3, ("data", "valid.jsonl"): b"{}\n"}
    )


def launched(
    provider: FakeProvider, files: FakeBucket, registry: InMemoryRegistry, **changes: object
) -> WorkflowState:
    state = WorkflowState(request=request(**changes))
    state.job = launch(state, provider, files, registry, NOW)
    return state


def test_the_run_reads_each_named_file_at_the_version_it_validated() -> None:
    pinned = request(
        validation_key="valid.jsonl",
        eval_key="heldout.jsonl",
        validation_version_id="vv1",
        eval_version_id="ev1",
    )
    assert pinned.version_of(UPLOAD.key) == "v1"
    assert pinned.version_of("valid.jsonl") == "vv1"
    assert pinned.version_of("heldout.jsonl") == "ev1"
    assert pinned.version_of("prepared/split/train.jsonl") is None
    # The validation file doubles as the held-out set: one version for both roles.
    shared = request(
        validation_key="valid.jsonl", eval_key="valid.jsonl", validation_version_id="vv1"
    )
    assert shared.version_of("valid.jsonl") == "vv1"


def test_launch_uploads_and_creates_the_job(files: FakeBucket, registry: InMemoryRegistry) -> None:
    provider = FakeProvider()
    state = launched(
        provider, files, registry, validation_key="valid.jsonl", validation_version_id="vv1"
    )
    assert files.reads == [(UPLOAD.key, "v1"), ("valid.jsonl", "vv1")]
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
    files: FakeBucket, registry: InMemoryRegistry
) -> None:
    provider = FakeProvider()
    first = launched(provider, files, registry)
    second = launched(provider, files, registry)
    assert first.job is not None and second.job is not None
    assert second.job.job_id == first.job.job_id
    assert len(provider.created) == 1 and len(provider.uploads) == 1


def test_poll_backs_off_to_the_cap_and_reports_progress(
    files: FakeBucket, registry: InMemoryRegistry
) -> None:
    provider = FakeProvider()
    state = launched(provider, files, registry)
    waits = []
    for minute in range(1, 6):
        state.job = poll(state, provider, registry, FakeNotifier(), NOW + timedelta(minutes=minute))
        waits.append(state.job.next_wait_seconds)
    assert waits == [90, 135, 202, 300, 300]
    assert state.job.polls == 5 and state.job.latest_events == ["Step 5/10: training loss=0.90"]
    assert not state.job.timed_out


def test_poll_flags_a_job_past_the_maximum_duration(
    files: FakeBucket, registry: InMemoryRegistry
) -> None:
    provider = FakeProvider()
    state = launched(provider, files, registry)
    state.job = poll(state, provider, registry, FakeNotifier(), NOW + timedelta(seconds=3599))
    assert not state.job.timed_out
    state.job = poll(state, provider, registry, FakeNotifier(), NOW + timedelta(seconds=3600))
    assert state.job.timed_out


def test_poll_records_status_changes(files: FakeBucket, registry: InMemoryRegistry) -> None:
    provider = FakeProvider()
    state = launched(provider, files, registry)
    assert state.job is not None
    provider.set(state.job.job_id, status="running")
    state.job = poll(state, provider, registry, FakeNotifier(), NOW)
    record = registry.get_job(UPLOAD.dataset_id)
    assert record is not None and record.status == "running"


def test_cancel_marks_the_job_timed_out(files: FakeBucket, registry: InMemoryRegistry) -> None:
    provider = FakeProvider()
    state = launched(provider, files, registry)
    state.job = cancel(state, provider)
    assert (state.job.state, state.job.timed_out) == (JobState.CANCELLED, True)


def test_finish_registers_the_model_once_with_its_lineage(
    files: FakeBucket, registry: InMemoryRegistry
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
    bucket = FakeBucket()
    result = finish(state, provider, registry, notifier, NOW + timedelta(minutes=31), bucket=bucket)
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
    # The trained version is kept from the bucket's expiry before the model is registered.
    assert bucket.lineage == {UPLOAD: "registered"}
    [sent] = notifier.sent
    assert sent.outcome is Outcome.SUCCEEDED and sent.duration_seconds == 30 * 60
    # A retried finish step does not register the model twice.
    again = finish(
        state, provider, registry, notifier, NOW + timedelta(minutes=32), bucket=FakeBucket()
    )
    assert again.newly_registered is False
    assert len(registry.list_models()) == 1


def test_finish_reports_a_provider_failure(files: FakeBucket, registry: InMemoryRegistry) -> None:
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
    result = finish(state, provider, registry, notifier, NOW, bucket=FakeBucket())
    assert result.model_id is None
    [sent] = notifier.sent
    assert (sent.outcome, sent.error_code, sent.error_message) == (
        Outcome.FAILED,
        "invalid_training_file",
        "Line 3: bad token",
    )
    assert registry.list_models() == []


def test_finish_after_a_caught_step_error_uses_the_cause(
    files: FakeBucket, registry: InMemoryRegistry
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
    finish(state, provider, registry, notifier, NOW, bucket=FakeBucket())
    [sent] = notifier.sent
    assert (sent.error_code, sent.error_message, sent.job_id) == (
        "fine_tuning_unavailable",
        "not available for this organization",
        None,
    )


def test_finish_after_a_failure_survives_an_unreachable_provider(
    files: FakeBucket, registry: InMemoryRegistry
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
    finish(state, provider, registry, notifier, NOW, bucket=FakeBucket())
    assert notifier.sent[0].error_code == "http_503"
    # A success cannot be recorded without the provider: the step fails and is retried.
    state.outcome = "succeeded"
    with pytest.raises(ProviderTransientError):
        finish(state, provider, registry, notifier, NOW, bucket=FakeBucket())


def test_provider_errors_propagate_by_class_name(
    files: FakeBucket, registry: InMemoryRegistry
) -> None:
    provider = FakeProvider(fail_with=ProviderPermanentError("authentication_failed", "bad key"))
    with pytest.raises(ProviderPermanentError, match="authentication_failed"):
        launch(WorkflowState(request=request()), provider, files, registry, NOW)


# Provider outages while polling: the job trains on, so the run must too.


def test_poll_waits_out_a_provider_outage_and_tells_it_once(
    files: FakeBucket, registry: InMemoryRegistry
) -> None:
    provider = FakeProvider()
    notifier = FakeNotifier()
    state = launched(provider, files, registry)
    provider.fail_with = ProviderTransientError("http_503", "The server is overloaded.")
    waits = []
    for minute in range(1, 9):
        state.job = poll(state, provider, registry, notifier, NOW + timedelta(minutes=minute))
        waits.append(state.job.next_wait_seconds)
    # The job as last seen, looked at again later and later; nothing ends the run.
    assert (state.job.state, state.job.timed_out, state.job.failed_polls) == (
        JobState.RUNNING,
        False,
        8,
    )
    assert waits == [90, 135, 202, 300, 300, 300, 300, 300]
    assert state.job.unreachable_since == int((NOW + timedelta(minutes=1)).timestamp())
    assert state.job.poll_error == "http_503: The server is overloaded."
    [notice] = notifier.sent
    assert notice.outcome is Outcome.PROVIDER_UNREACHABLE and notice.job_id == state.job.job_id
    assert "5 checks" in (notice.error_message or "")
    assert "failed" not in email_text(notice).lower()
    assert "the job continues" in email_text(notice)
    # Back again: the outage is over, the notice is not repeated.
    provider.fail_with = None
    provider.set(state.job.job_id, status="running")
    state.job = poll(state, provider, registry, notifier, NOW + timedelta(minutes=10))
    assert (state.job.status, state.job.failed_polls, state.job.unreachable_since) == (
        "running",
        0,
        None,
    )
    assert state.job.outage_notified and len(notifier.sent) == 1
    provider.fail_with = ProviderTransientError("timeout", "api.openai.com did not answer in time")
    for minute in range(11, 18):
        state.job = poll(state, provider, registry, notifier, NOW + timedelta(minutes=minute))
    assert state.job.failed_polls == 7 and len(notifier.sent) == 1


def test_poll_honours_a_rate_limits_retry_after(
    files: FakeBucket, registry: InMemoryRegistry
) -> None:
    provider = FakeProvider()
    state = launched(provider, files, registry)
    provider.fail_with = ProviderRateLimitError("rate_limit_exceeded", "Slow down.", 999.5)
    state.job = poll(state, provider, registry, FakeNotifier(), NOW + timedelta(minutes=1))
    assert (state.job.next_wait_seconds, state.job.failed_polls) == (1000, 1)


def test_an_outage_ends_the_run_only_at_the_jobs_maximum_duration(
    files: FakeBucket, registry: InMemoryRegistry
) -> None:
    provider = FakeProvider()
    notifier = FakeNotifier()
    state = launched(provider, files, registry)
    provider.fail_with = ProviderTransientError(
        "connection_error", "could not reach api.openai.com"
    )
    state.job = poll(state, provider, registry, notifier, NOW + timedelta(seconds=3599))
    assert not state.job.timed_out
    state.job = poll(state, provider, registry, notifier, NOW + timedelta(seconds=3600))
    assert state.job.timed_out and state.job.state is JobState.RUNNING


def test_events_that_cannot_be_read_do_not_hide_the_status(
    files: FakeBucket, registry: InMemoryRegistry
) -> None:
    class EventsDown(FakeProvider):
        def recent_events(self, job_id: str, limit: int) -> list[str]:
            raise ProviderTransientError("http_502", "Bad gateway.")

    provider = EventsDown()
    state = launched(provider, files, registry)
    assert state.job is not None
    provider.set(state.job.job_id, status="succeeded", state=JobState.SUCCEEDED)
    state.job = poll(state, provider, registry, FakeNotifier(), NOW + timedelta(minutes=1))
    assert (state.job.state, state.job.failed_polls) == (JobState.SUCCEEDED, 0)


def test_an_outage_notice_that_cannot_be_sent_is_sent_by_the_next_poll(
    files: FakeBucket, registry: InMemoryRegistry
) -> None:
    class TopicDown(FakeNotifier):
        def publish(self, notification: Notification) -> str:
            raise RuntimeError("SNS is unavailable")

    provider = FakeProvider()
    state = launched(provider, files, registry)
    provider.fail_with = ProviderTransientError("http_503", "overloaded")
    for minute in range(1, 6):
        state.job = poll(state, provider, registry, TopicDown(), NOW + timedelta(minutes=minute))
    assert state.job.outage_notice_due and not state.job.outage_notified
    notifier = FakeNotifier()
    state.job = poll(state, provider, registry, notifier, NOW + timedelta(minutes=6))
    assert state.job.outage_notified and len(notifier.sent) == 1


# Creating the job exactly once, whatever the create call's answer.


class AcceptsThenTimesOut(FakeProvider):
    """Creates the job but the answer is lost; the job is listed after ``listed_after`` looks."""

    def __init__(self, listed_after: int) -> None:
        super().__init__()
        self.listed_after = listed_after
        self.looks = 0

    def find_job(self, upload_tag: str) -> ProviderJob | None:
        self.looks += 1
        return super().find_job(upload_tag) if self.looks > self.listed_after else None

    def create_job(self, request: JobRequest) -> ProviderJob:
        super().create_job(request)
        raise ProviderTransientError("timeout", "api.openai.com did not answer in time")


def test_launch_adopts_the_job_a_timed_out_create_made(
    files: FakeBucket, registry: InMemoryRegistry
) -> None:
    provider = AcceptsThenTimesOut(listed_after=3)  # the look before creating, then two more
    slept: list[float] = []
    state = WorkflowState(request=request())
    state.job = launch(state, provider, files, registry, NOW, sleep=slept.append)
    assert [job.upload_tag for job in provider.created] == [UPLOAD.dataset_id]
    assert state.job.job_id == "ftjob-1" and slept == list(ADOPTION_WAITS[:3])
    record = registry.get_job(UPLOAD.dataset_id)
    assert record is not None and record.job_id == "ftjob-1"


def test_launch_raises_when_no_job_turns_up_and_never_creates_twice(
    files: FakeBucket, registry: InMemoryRegistry
) -> None:
    provider = AcceptsThenTimesOut(listed_after=len(ADOPTION_WAITS) + 1)
    slept: list[float] = []
    state = WorkflowState(request=request())
    with pytest.raises(ProviderTransientError, match="timeout"):
        launch(state, provider, files, registry, NOW, sleep=slept.append)
    assert len(provider.created) == 1 and slept == list(ADOPTION_WAITS)
    # The workflow's retry looks first, and finds it.
    state.job = launch(state, provider, files, registry, NOW, sleep=slept.append)
    assert state.job.job_id == "ftjob-1" and len(provider.created) == 1


def test_a_refused_or_rate_limited_create_is_not_looked_for(
    files: FakeBucket, registry: InMemoryRegistry
) -> None:
    for error in (
        ProviderRateLimitError("rate_limit_exceeded", "Slow down.", 1.0),
        ProviderPermanentError("fine_tuning_unavailable", "Not for this organisation."),
    ):

        class Refusing(FakeProvider):
            def create_job(self, request: JobRequest, error: ProviderError = error) -> ProviderJob:
                raise error

        slept: list[float] = []
        with pytest.raises(type(error)):
            launch(
                WorkflowState(request=request()),
                Refusing(),
                files,
                registry,
                NOW,
                sleep=slept.append,
            )
        assert slept == []


# Runs that end without a job, or without the provider's last word.


def dataset_record(status: str = "launched") -> DatasetRecord:
    return DatasetRecord(
        dataset_id=UPLOAD.dataset_id,
        upload=UPLOAD,
        examples=62,
        valid=True,
        status=status,
        summary="valid",
        created_at=NOW,
    )


@pytest.mark.parametrize(
    "error",
    [
        ProviderPermanentError("fine_tuning_unavailable", "Not available for this organization."),
        ProviderPermanentError("authentication_failed", "Incorrect API key provided."),
        ProviderRateLimitError("rate_limit_exceeded", "Rate limit reached.", 1.0),
        ProviderTransientError("http_503", "The server is overloaded."),
    ],
    ids=lambda error: error.code,
)
def test_a_failure_before_any_job_leaves_a_failed_run_record(
    registry: InMemoryRegistry, error: ProviderError
) -> None:
    registry.put_dataset(dataset_record())
    # What the workflow's Catch hands on after the launch step's last retry.
    cause = {"errorMessage": str(error), "errorType": type(error).__name__}
    state = WorkflowState(
        request=request(),
        outcome="failed",
        failure={"Error": type(error).__name__, "Cause": json.dumps(cause)},
    )
    notifier = FakeNotifier()
    finish(state, FakeProvider(), registry, notifier, NOW, bucket=FakeBucket())
    record = registry.get_job(UPLOAD.dataset_id)
    assert record is not None
    assert (record.job_id, record.status, record.outcome, record.error_code) == (
        None,
        NO_JOB_STATUS,
        "failed",
        error.code,
    )
    assert (record.error_message, record.finished_at) == (error.message, NOW)
    assert notifier.sent[0].error_code == error.code
    assert [job.dataset_id for job in registry.list_jobs()] == [UPLOAD.dataset_id]
    dataset = registry.get_dataset(UPLOAD.dataset_id)
    assert dataset is not None and dataset.status == "failed"


def test_a_failed_run_is_recorded_from_the_last_poll_when_the_provider_is_down(
    files: FakeBucket, registry: InMemoryRegistry
) -> None:
    provider = FakeProvider()
    state = launched(provider, files, registry)
    provider.fail_with = ProviderPermanentError("job_not_found", "No such job.")
    state.outcome = "failed"
    state.failure = {"Error": "ProviderPermanentError", "Cause": "job_not_found: No such job."}
    finish(
        state, provider, registry, FakeNotifier(), NOW + timedelta(minutes=5), bucket=FakeBucket()
    )
    record = registry.get_job(UPLOAD.dataset_id)
    assert record is not None
    assert (record.job_id, record.status, record.outcome, record.error_code) == (
        "ftjob-1",
        "validating_files",
        "failed",
        "job_not_found",
    )
    assert registry.get_job_by_id("ftjob-1") == record


def test_a_timeout_whose_cancel_failed_says_the_job_may_still_run(
    files: FakeBucket, registry: InMemoryRegistry
) -> None:
    provider = FakeProvider()
    state = launched(provider, files, registry)
    provider.fail_with = ProviderTransientError("http_503", "overloaded")
    state.outcome = "timed_out"
    state.failure = {
        "Error": "ProviderTransientError",
        "Cause": json.dumps({"errorMessage": "http_503: overloaded"}),
    }
    notifier = FakeNotifier()
    finish(state, provider, registry, notifier, NOW, bucket=FakeBucket())
    [sent] = notifier.sent
    assert sent.outcome is Outcome.TIMED_OUT and sent.error_code == "cancel_failed"
    assert "may still be running" in (sent.error_message or "")
    record = registry.get_job(UPLOAD.dataset_id)
    assert record is not None and (record.outcome, record.error_code) == (
        "timed_out",
        "cancel_failed",
    )
