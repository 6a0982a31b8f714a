"""Provider faults through the real state machine: nothing lost, exactly one paid job,
and a run record for every run, even one that never got a job."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from unittest import mock

import openai
import pytest

from sft_local.api_server import LocalApiServer
from sft_local.openai_emulator import JobTimeline
from sft_local.stack import LOCAL_OPENAI_KEY, LocalStack
from sft_pipeline.adapters.registry import Registry
from sft_pipeline.jobs import OUTAGE_NOTICE_AFTER_POLLS, UploadRef
from sft_pipeline.providers import openai_provider
from sft_pipeline.records import NO_JOB_STATUS
from tests.e2e.api_client import Api, new_key
from tests.e2e.conftest import SUPPORT_SET

KEY = "training/customer support.jsonl"
JOB_ROUTE = "GET /fine_tuning/jobs/{job_id}"
# The workflow's OpenAI client gives up after this long, so a slow answer trips it in a test.
CLIENT_TIMEOUT = 0.5


def provider_jobs(stack: LocalStack) -> list[str]:
    """Every job at the emulator, as OpenAI's own client lists them."""
    client = openai.OpenAI(base_url=stack.openai.base_url, api_key=LOCAL_OPENAI_KEY)
    return [job.id for job in client.fine_tuning.jobs.list(limit=100)]


def states_entered(stack: LocalStack, upload: UploadRef) -> list[str]:
    return [
        event["stateEnteredEventDetails"]["name"]
        for event in stack.history(upload)
        if "stateEnteredEventDetails" in event
    ]


def launched_job(stack: LocalStack, upload: UploadRef) -> str:
    """The provider's id of the upload's job, once the workflow has created it."""
    registry = Registry(stack.table())
    deadline = time.monotonic() + 30
    while (job := registry.get_job(upload.dataset_id)) is None or job.job_id is None:
        assert time.monotonic() < deadline, "the workflow created no job"
        time.sleep(0.02)
    return job.job_id


@pytest.fixture
def impatient_stack() -> Iterator[LocalStack]:
    """The workflow's client gives up on a slow answer at once, without the SDK's own retries."""
    _, _, rate_limit_wait = openai_provider.TIMEOUTS["workflow"]
    workflow = (CLIENT_TIMEOUT, 0, rate_limit_wait)
    with mock.patch.dict(openai_provider.TIMEOUTS, {"workflow": workflow}), LocalStack() as local:
        yield local


# Exactly one job


def test_a_create_that_times_out_after_the_provider_accepted_it_makes_one_job(
    impatient_stack: LocalStack,
) -> None:
    stack = impatient_stack
    # OpenAI takes the request and creates the job only after the client stopped waiting.
    stack.openai.faults.slow(4 * CLIENT_TIMEOUT, route="POST /fine_tuning/jobs")
    upload = stack.upload(SUPPORT_SET, KEY)
    assert stack.wait_for_execution(upload)["status"] == "SUCCEEDED"
    assert len(provider_jobs(stack)) == 1
    assert len(stack.openai.requests_to("POST /fine_tuning/jobs")) == 1
    [job] = Registry(stack.table()).list_jobs()
    assert (job.job_id, job.outcome) == (provider_jobs(stack)[0], "succeeded")


# Nothing lost: an outage while polling never ends the run


def test_server_errors_while_polling_delay_the_run_but_never_end_it(stack: LocalStack) -> None:
    upload = stack.upload(SUPPORT_SET, KEY)
    launched_job(stack, upload)
    failures = OUTAGE_NOTICE_AFTER_POLLS + 3
    stack.openai.faults.server_error(
        times=failures, status=503, route=JOB_ROUTE, should_retry=False
    )
    assert stack.wait_for_execution(upload)["status"] == "SUCCEEDED"
    states = states_entered(stack, upload)
    assert "JobFailed" not in states and states.count("PollJob") > failures
    registry = Registry(stack.table())
    [model] = registry.list_models()
    job = registry.get_job(upload.dataset_id)
    assert job is not None and (job.outcome, job.model_id) == ("succeeded", model.model_id)
    stack.settle()
    # Told once that the provider is unreachable, never that the job failed; then the success.
    notice, success = stack.emails()
    assert "Provider unreachable" in notice and "the job continues" in notice
    assert "fail" not in notice.lower() and "http_503" in notice
    assert "Fine-tune succeeded" in success and model.model_id in success
    assert [m["text"].split(":")[0] for m in stack.slack.messages] == [
        "Provider unreachable",
        "Fine-tune succeeded",
    ]
    assert len(provider_jobs(stack)) == 1


def test_timeouts_while_polling_delay_the_run_but_never_end_it(
    impatient_stack: LocalStack,
) -> None:
    stack = impatient_stack
    upload = stack.upload(SUPPORT_SET, KEY)
    launched_job(stack, upload)
    # More looks time out in a row than the workflow's retries of a task would absorb.
    timeouts = OUTAGE_NOTICE_AFTER_POLLS + 2
    stack.openai.faults.slow(2 * CLIENT_TIMEOUT, times=timeouts, route=JOB_ROUTE)
    assert stack.wait_for_execution(upload)["status"] == "SUCCEEDED"
    assert "JobFailed" not in states_entered(stack, upload)
    assert len(Registry(stack.table()).list_models()) == 1
    stack.settle()
    notice, success = stack.emails()
    assert "Provider unreachable" in notice and "timeout" in notice
    assert "Fine-tune succeeded" in success


def test_an_outage_past_the_maximum_duration_ends_timed_out_not_failed() -> None:
    slow = JobTimeline(validating=0.2, queued=0.2, running=600.0)
    with LocalStack(timeline=slow, parameters={"MaxJobDurationHours": "0.0005"}) as stack:
        upload = stack.upload(SUPPORT_SET, KEY)
        launched_job(stack, upload)
        stack.openai.faults.server_error(times=None, status=503, should_retry=False)
        assert stack.wait_for_execution(upload)["status"] == "FAILED"
        states = states_entered(stack, upload)
        assert "CancelJob" in states and "JobTimedOut" in states and "JobFailed" not in states
        stack.openai.faults.clear()
        stack.settle()
        email = stack.emails()[-1]
        assert "Fine-tune timed out" in email and "cancel_failed" in email
        assert "may still be running" in email
        job = Registry(stack.table()).get_job(upload.dataset_id)
        assert job is not None and (job.outcome, job.error_code) == ("timed_out", "cancel_failed")


# Every failure before a job exists leaves a run record


@pytest.mark.parametrize(
    ("fault", "code"),
    [
        (lambda s: s.openai.faults.block_job_creation(), "fine_tuning_unavailable"),
        (lambda s: s.openai.faults.invalid_api_key(), "authentication_failed"),
        (
            lambda s: s.openai.faults.server_error(
                times=None, status=502, route="POST /files", should_retry=False
            ),
            "http_502",
        ),
    ],
    # A 429 storm ends the same way, after minutes of the workflow's retries: a unit test.
    ids=["organisation-blocked", "bad-key", "5xx-on-upload"],
)
def test_a_failure_before_any_job_leaves_a_failed_run_record(
    fault: Callable[[LocalStack], None], code: str
) -> None:
    with LocalStack() as stack, LocalApiServer(stack) as server:
        registry = Registry(stack.table())
        api = Api(stack, server, new_key(registry, "ops", "admin"), "")
        fault(stack)
        upload = stack.upload(SUPPORT_SET, KEY)
        assert stack.wait_for_execution(upload)["status"] == "FAILED"
        stack.openai.faults.clear()
        assert provider_jobs(stack) == []
        record = registry.get_job(upload.dataset_id)
        assert record is not None
        assert (record.job_id, record.status, record.outcome, record.error_code) == (
            None,
            NO_JOB_STATUS,
            "failed",
            code,
        )
        dataset = registry.get_dataset(upload.dataset_id)
        assert dataset is not None and dataset.status == "failed"
        status, _, body = api.call("GET", f"/jobs/{upload.dataset_id}")
        assert status == 200
        assert (body["job_id"], body["outcome"], body["error_code"]) == (None, "failed", code)
        assert body["error_message"] and body["upload"]["key"] == KEY
        status, _, listed = api.call("GET", "/jobs")
        assert [job["dataset_id"] for job in listed["data"]] == [upload.dataset_id]
        status, _, refused = api.call("POST", f"/jobs/{upload.dataset_id}/cancel")
        assert (status, refused["error"]["code"]) == (409, "no_job")
        stack.settle()
        [email] = stack.emails()
        assert "Fine-tune failed" in email and code in email
