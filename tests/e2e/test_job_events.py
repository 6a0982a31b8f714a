"""Job events through the real state machine: the provider's event about a job's end wakes
the wait at once, and polling still ends every run an event did not wake.

A wait's timeout is the poll interval; tests that must see an event (not the timeout) end the
wait use an interval far longer than the test may run (3,600 s, scaled to 72 s), tests of the
poll fallback the local stack's short one.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any
from unittest import mock

import pytest

from sft_local.lambda_seam import LambdaSeam
from sft_local.openai_emulator.webhooks import JobEnd, SentWebhook, post, signed_webhook
from sft_local.stack import LocalStack
from sft_pipeline.adapters.registry import Registry
from sft_pipeline.jobs import UploadRef
from tests.e2e.conftest import SUPPORT_SET

KEY = "training/support.jsonl"
NOVA = {"provider": "bedrock", "base-model": "amazon.nova-micro-v1:0:128k", "suffix": "support"}
# A poll interval the tests never wait out: only an event ends such a wait in time.
NEVER = {"PollIntervalSeconds": "3600", "MaxPollIntervalSeconds": "3600"}
# Well below the scaled interval (72 s): a run that ends within it was woken by its event.
WOKEN_WITHIN = 45.0
FORGED_SECRET = "whsec_" + "Zm9yZ2VkLWJ5LXNvbWVvbmUtZWxzZS0xMjM0NTY3OA=="


@pytest.fixture
def patient_stack() -> Iterator[LocalStack]:
    with LocalStack(parameters=NEVER) as local:
        yield local


def wait_outcomes(stack: LocalStack, upload: UploadRef) -> list[str]:
    """How each WaitForJob ended: woken (an event) or timed_out (the interval)."""
    outcomes, waiting = [], False
    for event in stack.history(upload):
        entered = event.get("stateEnteredEventDetails", {}).get("name")
        if entered is not None:
            waiting = entered == "WaitForJob"
        elif waiting and event["type"] in ("TaskSucceeded", "TaskTimedOut", "TaskFailed"):
            outcomes.append(
                {"TaskSucceeded": "woken", "TaskTimedOut": "timed_out"}.get(event["type"], "failed")
            )
    return outcomes


def polls(stack: LocalStack, upload: UploadRef) -> int:
    return sum(
        event.get("stateEnteredEventDetails", {}).get("name") == "PollJob"
        for event in stack.history(upload)
    )


def webhooks_sent(stack: LocalStack) -> list[SentWebhook]:
    return [d.answer for d in stack.openai.job_events.sent if isinstance(d.answer, SentWebhook)]


def answered(sent: SentWebhook) -> tuple[int, str]:
    return sent.status, json.loads(sent.answer)["status"] if sent.answer else ""


def send(stack: LocalStack, job_id: str, *, secret: str | None = None) -> SentWebhook:
    """A webhook about the job's end, as OpenAI would send it (the stack's secret unless told)."""
    headers, body = signed_webhook(
        JobEnd(job_id, "succeeded", int(time.time())), secret or stack.webhook_secret
    )
    return post(stack.api.url(stack.webhook_path), headers, body)


def until(condition: Any, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"{what} did not happen"
        time.sleep(0.02)


def parked_job(stack: LocalStack, upload: UploadRef) -> str:
    """The provider's id of the upload's job, once its run waits for the job's end."""
    registry = Registry(stack.table())
    until(lambda: (job := registry.get_job(upload.dataset_id)) and job.job_id, "the launch")
    record = registry.get_job(upload.dataset_id)
    assert record is not None and record.job_id is not None
    job_id = record.job_id
    until(
        lambda: "Item" in stack.table().get_item(Key={"PK": f"JOBID#{job_id}", "SK": "WAIT"}),
        "the wait",
    )
    return job_id


def test_the_job_end_webhook_wakes_the_wait(patient_stack: LocalStack) -> None:
    stack = patient_stack
    upload = stack.upload(SUPPORT_SET, KEY)
    assert stack.wait_for_execution(upload, timeout=WOKEN_WITHIN)["status"] == "SUCCEEDED"
    assert wait_outcomes(stack, upload) == ["woken"] and polls(stack, upload) == 1
    [sent] = webhooks_sent(stack)
    assert answered(sent) == (200, "resumed")
    assert json.loads(sent.body)["type"] == "fine_tuning.job.succeeded"
    stack.settle()
    [email] = stack.emails()
    assert "Fine-tune succeeded" in email


def test_a_failed_job_wakes_the_wait_and_the_poll_reads_the_failure(
    patient_stack: LocalStack,
) -> None:
    stack = patient_stack
    stack.openai.faults.fail_next_job(code="invalid_training_file", message="Line 3 is bad.")
    upload = stack.upload(SUPPORT_SET, KEY)
    assert stack.wait_for_execution(upload, timeout=WOKEN_WITHIN)["status"] == "FAILED"
    assert wait_outcomes(stack, upload) == ["woken"]
    job = Registry(stack.table()).get_job(upload.dataset_id)
    assert job is not None and (job.outcome, job.error_code) == ("failed", "invalid_training_file")


def test_a_lost_event_costs_one_interval_and_nothing_else(stack: LocalStack) -> None:
    stack.openai.job_events.drop(None)
    upload = stack.upload(SUPPORT_SET, KEY)
    assert stack.wait_for_execution(upload)["status"] == "SUCCEEDED"
    outcomes = wait_outcomes(stack, upload)
    assert outcomes and set(outcomes) == {"timed_out"}
    assert webhooks_sent(stack) == [] and stack.openai.job_events.deliveries
    assert len(Registry(stack.table()).list_models()) == 1


def test_a_repeated_or_second_event_changes_nothing(patient_stack: LocalStack) -> None:
    stack = patient_stack
    upload = stack.upload(SUPPORT_SET, KEY)
    assert stack.wait_for_execution(upload, timeout=WOKEN_WITHIN)["status"] == "SUCCEEDED"
    [first] = webhooks_sent(stack)
    history = stack.history(upload)
    # OpenAI delivers the very same webhook again, then another one about the same end.
    again = post(first.url, first.headers, first.body)
    other = send(stack, json.loads(first.body)["data"]["id"])
    assert (answered(again), answered(other)) == ((200, "duplicate"), (200, "noted"))
    assert stack.history(upload) == history
    assert len(Registry(stack.table()).list_models()) == 1


def test_a_forged_webhook_is_refused_and_changes_nothing(patient_stack: LocalStack) -> None:
    stack = patient_stack
    stack.openai.job_events.drop(None)  # the test plays OpenAI
    upload = stack.upload(SUPPORT_SET, KEY)
    job_id = parked_job(stack, upload)
    forged = send(stack, job_id, secret=FORGED_SECRET)
    assert answered(forged) == (400, "invalid_webhook")
    assert stack.execution_status(upload) == "RUNNING"
    assert "Item" in stack.table().get_item(Key={"PK": f"JOBID#{job_id}", "SK": "WAIT"})
    # The genuine one still works: the forgery took nothing.
    until(lambda: stack.openai.job_events.deliveries, "the job's end")
    assert answered(send(stack, job_id)) == (200, "resumed")
    assert stack.wait_for_execution(upload, timeout=WOKEN_WITHIN)["status"] == "SUCCEEDED"


def test_an_event_about_an_unknown_job_changes_nothing(patient_stack: LocalStack) -> None:
    stack = patient_stack
    stack.openai.job_events.drop(None)
    upload = stack.upload(SUPPORT_SET, KEY)
    job_id = parked_job(stack, upload)
    assert answered(send(stack, "ftjob-not-one-of-ours")) == (200, "noted")
    assert stack.execution_status(upload) == "RUNNING"
    assert "Item" in stack.table().get_item(Key={"PK": f"JOBID#{job_id}", "SK": "WAIT"})


def test_an_event_before_the_wait_is_parked_ends_that_wait_at_once() -> None:
    """The job ends, and its webhook is handled, before the run has parked a wait: the event
    finds nobody waiting and notes the job's end; the wait, once parked, finds the note and
    ends at once instead of after its interval (600 s, scaled to 12 s, longer than it is held
    back)."""
    release = threading.Event()
    invoke = LambdaSeam.invoke

    def wait_held_back(seam: LambdaSeam, function: Any, event: dict[str, Any]) -> Any:
        if function.function_name.endswith("WaitForJobFunction"):
            release.wait(timeout=30)  # before the seam runs it, so the webhook can run
        return invoke(seam, function, event)

    interval = {"PollIntervalSeconds": "600", "MaxPollIntervalSeconds": "600"}
    with LocalStack(parameters=interval) as stack:
        with mock.patch.object(LambdaSeam, "invoke", wait_held_back):
            upload = stack.upload(SUPPORT_SET, KEY)
            until(lambda: webhooks_sent(stack), "the job's end webhook")
            release.set()
            assert stack.wait_for_execution(upload)["status"] == "SUCCEEDED"
        [sent] = webhooks_sent(stack)
        assert answered(sent) == (200, "noted")
        assert wait_outcomes(stack, upload) == ["woken"]


def test_a_webhook_too_large_to_be_one_is_refused(stack: LocalStack) -> None:
    request = urllib.request.Request(
        stack.api.url(stack.webhook_path), data=b"{" + b" " * 70_000 + b"}", method="POST"
    )
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=30)
    assert refused.value.code == 413


def test_the_bedrock_job_event_wakes_the_wait(patient_stack: LocalStack) -> None:
    stack = patient_stack
    upload = stack.upload(SUPPORT_SET, KEY, NOVA)
    assert stack.wait_for_execution(upload, timeout=WOKEN_WITHIN)["status"] == "SUCCEEDED"
    assert wait_outcomes(stack, upload) == ["woken"] and polls(stack, upload) == 1
    [published] = stack.bedrock.job_events.sent
    detail = json.loads(published.event["Detail"])
    assert (published.event["DetailType"], detail["jobStatus"]) == (
        "Model Customization Job State Change",
        "Completed",
    )
    handled = [i for i in stack.seam.invocations if i.function.endswith("BedrockJobEventFunction")]
    assert [i.error for i in handled] == [None]


def test_a_lost_bedrock_event_leaves_it_to_polling(stack: LocalStack) -> None:
    stack.bedrock.job_events.drop(None)
    upload = stack.upload(SUPPORT_SET, KEY, NOVA)
    assert stack.wait_for_execution(upload)["status"] == "SUCCEEDED"
    assert set(wait_outcomes(stack, upload)) == {"timed_out"}
    assert stack.bedrock.job_events.sent == []
