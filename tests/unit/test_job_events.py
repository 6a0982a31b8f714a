"""The event-driven fast path: verifying a fine-tuning webhook (with the SDK's own helper),
Bedrock's EventBridge event, parking and taking a wait's token (on the DynamoDB registry and
on the in-memory one), and the one step both event handlers share."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from unittest import mock

import boto3
import pytest
from botocore.stub import Stubber
from moto import mock_aws

from sft_local.openai_emulator.webhooks import JobEnd, signature, signed_webhook
from sft_pipeline.adapters.registry import Registry
from sft_pipeline.adapters.workflow import Workflow
from sft_pipeline.job_events import (
    JOB_END_NOTE_LIFETIME,
    WAIT_TOKEN_GRACE,
    WAKE_UP_OUTPUT,
    JobEvent,
    Resumed,
    WaitToken,
    WebhookRejectedError,
)
from sft_pipeline.pipeline.job_events import (
    ParkRequest,
    handle_job_event,
    park,
    resume_waiting_run,
)
from sft_pipeline.providers.bedrock_provider import job_event_from_eventbridge
from sft_pipeline.providers.openai_provider import unwrap_job_webhook
from tests.fakes import FakeWaitingRuns, InMemoryRegistry, registry_table

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
SECRET = "whsec_" + "c2VjcmV0LWZvci10aGUtam9iLWV2ZW50cy10ZXN0cw=="
OTHER_SECRET = "whsec_" + "YW5vdGhlci1zZWNyZXQtYWx0b2dldGhlcg=="
JOB = "ftjob-abc123"
BEDROCK_JOB = "arn:aws:bedrock:us-east-1:123456789012:model-customization-job/amazon.nova-micro-v1:0:128k/x1y2z3"
TOKEN = "AAAAKgAAAAIAAAAAAAAAAQ-task-token"
EXECUTION = "arn:aws:states:us-east-1:123456789012:execution:sft-fine-tune:ft-0123"


def webhook(
    status: str = "succeeded", *, secret: str = SECRET, at: float | None = None
) -> tuple[dict[str, str], bytes]:
    return signed_webhook(JobEnd(JOB, status, 1_796_000_000), secret, now=at)


def parked(job_id: str = JOB, wait_seconds: int = 60) -> ParkRequest:
    return ParkRequest(
        task_token=TOKEN,
        dataset_id="0123",
        execution_arn=EXECUTION,
        job_id=job_id,
        wait_seconds=wait_seconds,
    )


# ---------------------------------------------------------------- the webhook's signature


@pytest.mark.parametrize("status", ["succeeded", "failed", "cancelled"])
def test_a_signed_job_end_names_the_job(status: str) -> None:
    headers, body = webhook(status)
    event = unwrap_job_webhook(body, headers, SECRET)
    assert (event.ended_job_id, event.kind) == (JOB, f"fine_tuning.job.{status}")
    assert event.delivery_id == headers["webhook-id"]


def test_header_names_are_matched_whatever_their_case() -> None:
    headers, body = webhook()
    shouting = {name.title(): value for name, value in headers.items()}
    assert unwrap_job_webhook(body, shouting, SECRET).ended_job_id == JOB


def test_a_signed_event_of_another_kind_wakes_nothing() -> None:
    headers, body = webhook()
    other = body.replace(b"fine_tuning.job.succeeded", b"batch.completed")
    headers, body = signed_webhook_body(other, headers)
    event = unwrap_job_webhook(body, headers, SECRET)
    assert (event.kind, event.ended_job_id) == ("batch.completed", None)


def signed_webhook_body(body: bytes, headers: dict[str, str]) -> tuple[dict[str, str], bytes]:
    """The same delivery with another body, signed again with the right secret."""
    resigned = dict(headers)
    resigned["webhook-signature"] = "v1," + signature(
        SECRET, headers["webhook-id"], headers["webhook-timestamp"], body
    )
    return resigned, body


Forgery = Callable[[dict[str, str], bytes], tuple[dict[str, str], bytes]]


@pytest.mark.parametrize(
    "forge",
    [
        pytest.param(lambda h, b: (h, b.replace(JOB.encode(), b"ftjob-someone-else")), id="body"),
        pytest.param(lambda h, b: ({**h, "webhook-id": "wh_replayed"}, b), id="webhook-id"),
        pytest.param(lambda h, b: ({**h, "webhook-signature": "v1,AAAA"}, b), id="signature"),
        pytest.param(
            lambda h, b: ({k: v for k, v in h.items() if k != "webhook-signature"}, b),
            id="no-signature",
        ),
        pytest.param(
            lambda h, b: ({k: v for k, v in h.items() if k != "webhook-timestamp"}, b),
            id="no-timestamp",
        ),
    ],
)
def test_a_forged_or_altered_webhook_is_rejected(forge: Forgery) -> None:
    headers, body = webhook()
    forged_headers, forged_body = forge(headers, body)
    with pytest.raises(WebhookRejectedError):
        unwrap_job_webhook(forged_body, forged_headers, SECRET)


def test_a_webhook_signed_with_another_secret_is_rejected() -> None:
    headers, body = webhook(secret=OTHER_SECRET)
    with pytest.raises(WebhookRejectedError, match="signature"):
        unwrap_job_webhook(body, headers, SECRET)


@pytest.mark.parametrize("offset", [-301, 301], ids=["stale", "from-the-future"])
def test_a_timestamp_outside_five_minutes_is_rejected(offset: int) -> None:
    headers, body = webhook(at=time.time() + offset)
    with pytest.raises(WebhookRejectedError, match=r"too (old|new)"):
        unwrap_job_webhook(body, headers, SECRET)


def test_the_rejection_never_quotes_the_secret() -> None:
    headers, body = webhook()
    with pytest.raises(WebhookRejectedError) as rejected:
        unwrap_job_webhook(body, {**headers, "webhook-signature": "v1,AAAA"}, SECRET)
    assert SECRET.removeprefix("whsec_") not in str(rejected.value)


# ---------------------------------------------------------------- Bedrock's EventBridge event


def bedrock_event(status: str, event_id: str = "e-1") -> dict[str, object]:
    return {
        "version": "0",
        "id": event_id,
        "detail-type": "Model Customization Job State Change",
        "source": "aws.bedrock",
        "account": "123456789012",
        "time": "2026-11-30T12:00:00Z",
        "region": "us-east-1",
        "resources": [BEDROCK_JOB],
        "detail": {"jobArn": BEDROCK_JOB, "jobName": "sft-x", "jobStatus": status},
    }


@pytest.mark.parametrize("status", ["Completed", "Failed", "Stopped"])
def test_a_bedrock_job_end_names_the_job_by_its_arn(status: str) -> None:
    event = job_event_from_eventbridge(bedrock_event(status))
    assert (event.ended_job_id, event.delivery_id) == (BEDROCK_JOB, "e-1")


@pytest.mark.parametrize("status", ["InProgress", "Stopping"])
def test_a_bedrock_job_still_going_wakes_nothing(status: str) -> None:
    assert job_event_from_eventbridge(bedrock_event(status)).ended_job_id is None


# ---------------------------------------------------------------- parked waits, both registries


def test_a_parked_wait_is_taken_once(registry: Registry | InMemoryRegistry) -> None:
    parked_wait = park(parked(), registry, FakeWaitingRuns(), NOW)
    assert parked_wait.ended_at_once is None
    token = parked_wait.token
    assert token.expires_at == int((NOW + timedelta(seconds=60) + WAIT_TOKEN_GRACE).timestamp())
    assert registry.take_wait_token(JOB, NOW) == token
    assert registry.take_wait_token(JOB, NOW) is None


def test_the_next_wait_replaces_the_last(registry: Registry | InMemoryRegistry) -> None:
    park(parked(wait_seconds=60), registry, FakeWaitingRuns(), NOW)
    later = park(parked(wait_seconds=90), registry, FakeWaitingRuns(), NOW + timedelta(minutes=2))
    later_token = later.token
    assert registry.take_wait_token(JOB, NOW + timedelta(minutes=2)) == later_token


def test_an_expired_wait_is_not_taken(registry: Registry | InMemoryRegistry) -> None:
    token = park(parked(wait_seconds=60), registry, FakeWaitingRuns(), NOW).token
    after = datetime.fromtimestamp(token.expires_at, UTC)
    assert registry.take_wait_token(JOB, after) is None


def test_a_delivery_is_claimed_once_until_released(registry: Registry | InMemoryRegistry) -> None:
    assert registry.claim_event_delivery("wh_1", NOW) is True
    assert registry.claim_event_delivery("wh_1", NOW) is False
    assert registry.claim_event_delivery("wh_2", NOW) is True
    registry.release_event_delivery("wh_1")
    assert registry.claim_event_delivery("wh_1", NOW) is True


def test_a_job_end_note_is_taken_once_and_only_while_fresh(
    registry: Registry | InMemoryRegistry,
) -> None:
    assert registry.take_job_end_note(JOB, NOW) is False
    registry.note_job_end(JOB, NOW)
    assert registry.take_job_end_note(JOB, NOW) is True
    assert registry.take_job_end_note(JOB, NOW) is False
    registry.note_job_end(JOB, NOW)
    assert registry.take_job_end_note(JOB, NOW + JOB_END_NOTE_LIFETIME) is False


def test_stored_waits_notes_and_deliveries_expire_through_the_ttl_attribute() -> None:
    with mock_aws():
        table = registry_table()
        registry = Registry(table)
        token = park(parked(), registry, FakeWaitingRuns(), NOW).token
        registry.claim_event_delivery("wh_1", NOW)
        registry.note_job_end(JOB, NOW)
        items = {item["SK"]: item for item in table.scan()["Items"]}
    assert int(items["WAIT"]["expires_at"]) == token.expires_at
    assert int(items["EVENT"]["expires_at"]) > NOW.timestamp()
    assert int(items["ENDED"]["expires_at"]) == int((NOW + JOB_END_NOTE_LIFETIME).timestamp())


# ---------------------------------------------------------------- the shared step


def job_end(delivery_id: str = "wh_1", job_id: str | None = JOB) -> JobEvent:
    return JobEvent(delivery_id=delivery_id, kind="fine_tuning.job.succeeded", ended_job_id=job_id)


def test_an_event_resumes_the_run_waiting_for_its_job() -> None:
    registry, runs = InMemoryRegistry(), FakeWaitingRuns(waiting={TOKEN})
    park(parked(), registry, runs, NOW)
    assert handle_job_event(job_end(), registry, runs, NOW) is Resumed.RESUMED
    assert runs.resumed == [TOKEN] and registry.wait_tokens == {}


def test_a_repeated_delivery_does_nothing_twice() -> None:
    registry, runs = InMemoryRegistry(), FakeWaitingRuns(waiting={TOKEN})
    park(parked(), registry, runs, NOW)
    handle_job_event(job_end(), registry, runs, NOW)
    park(parked(), registry, runs, NOW)  # the run waits again (say, the job was not over after all)
    assert handle_job_event(job_end(), registry, runs, NOW) is Resumed.DUPLICATE
    assert runs.resumed == [TOKEN] and JOB in registry.wait_tokens


def test_a_second_event_about_the_same_end_finds_no_wait_and_notes_it() -> None:
    registry, runs = InMemoryRegistry(), FakeWaitingRuns(waiting={TOKEN})
    park(parked(), registry, runs, NOW)
    handle_job_event(job_end("wh_1"), registry, runs, NOW)
    assert handle_job_event(job_end("wh_2"), registry, runs, NOW) is Resumed.NOTED
    assert runs.resumed == [TOKEN] and JOB in registry.job_end_notes


def test_an_event_for_an_unknown_job_wakes_no_other_run() -> None:
    registry, runs = InMemoryRegistry(), FakeWaitingRuns(waiting={TOKEN})
    park(parked(), registry, runs, NOW)
    event = job_end(job_id="ftjob-not-ours")
    assert handle_job_event(event, registry, runs, NOW) is Resumed.NOTED
    assert runs.resumed == [] and JOB in registry.wait_tokens


def test_an_end_that_came_between_two_waits_ends_the_next_wait_at_once() -> None:
    registry, runs = InMemoryRegistry(), FakeWaitingRuns(waiting={TOKEN})
    # The run is polling: no wait is parked when the job's end event comes.
    assert handle_job_event(job_end(), registry, runs, NOW) is Resumed.NOTED
    assert runs.resumed == []
    parked_wait = park(parked(), registry, runs, NOW + timedelta(seconds=5))
    assert parked_wait.ended_at_once is Resumed.RESUMED
    assert runs.resumed == [TOKEN] and registry.wait_tokens == {}
    # The note is used up: a later wait (the provider still says running) waits again.
    assert park(parked(), registry, runs, NOW + timedelta(seconds=70)).ended_at_once is None


def test_a_wait_parked_while_the_event_looked_is_woken_by_the_event() -> None:
    """The event finds no wait; the run parks one and looks for a note before the event
    writes it; the event's second look finds the wait and wakes it, and takes its note."""
    runs = FakeWaitingRuns(waiting={TOKEN})

    class ParkedInBetween(InMemoryRegistry):
        def note_job_end(self, job_id: str, now: datetime) -> None:
            assert park(parked(), self, runs, now).ended_at_once is None  # no note yet
            super().note_job_end(job_id, now)

    registry = ParkedInBetween()
    assert handle_job_event(job_end(), registry, runs, NOW) is Resumed.RESUMED
    assert runs.resumed == [TOKEN]
    assert registry.wait_tokens == {} and registry.job_end_notes == {}


def test_a_stale_note_does_not_end_a_wait() -> None:
    registry, runs = InMemoryRegistry(), FakeWaitingRuns(waiting={TOKEN})
    handle_job_event(job_end(), registry, runs, NOW)
    later = NOW + JOB_END_NOTE_LIFETIME
    assert park(parked(), registry, runs, later).ended_at_once is None
    assert runs.resumed == [] and JOB in registry.wait_tokens


def test_an_event_about_anything_else_is_ignored() -> None:
    registry, runs = InMemoryRegistry(), FakeWaitingRuns(waiting={TOKEN})
    park(parked(), registry, runs, NOW)
    assert handle_job_event(job_end(job_id=None), registry, runs, NOW) is Resumed.IGNORED
    assert registry.event_deliveries == set() and JOB in registry.wait_tokens


def test_a_wait_that_is_already_over_is_reported_so() -> None:
    registry, runs = InMemoryRegistry(), FakeWaitingRuns(waiting=set())  # it timed out
    park(parked(), registry, runs, NOW)
    assert resume_waiting_run(JOB, registry, runs, NOW) is Resumed.WAIT_OVER


def test_a_delivery_that_failed_is_acted_on_when_it_comes_again() -> None:
    registry = InMemoryRegistry()
    park(parked(), registry, FakeWaitingRuns(), NOW)
    with pytest.raises(ConnectionError):
        handle_job_event(job_end(), registry, FakeWaitingRuns(error=ConnectionError()), NOW)
    assert registry.event_deliveries == set()


# ---------------------------------------------------------------- the workflow's side


def stubbed_workflow() -> tuple[Workflow, Stubber]:
    client = boto3.client("stepfunctions", region_name="us-east-1")
    return Workflow(client, "arn:aws:states:us-east-1:123456789012:stateMachine:x"), Stubber(client)


def test_resuming_sends_only_the_wake_up_call() -> None:
    workflow, stub = stubbed_workflow()
    stub.add_response("send_task_success", {}, {"taskToken": TOKEN, "output": WAKE_UP_OUTPUT})
    with stub:
        assert workflow.resume(TOKEN) is True
    assert set(json.loads(WAKE_UP_OUTPUT)) == {"woken_by"}  # no outcome a forger could set


@pytest.mark.parametrize("code", ["TaskTimedOut", "InvalidToken", "TaskDoesNotExist"])
def test_a_wait_that_ended_is_not_an_error(code: str) -> None:
    workflow, stub = stubbed_workflow()
    stub.add_client_error("send_task_success", service_error_code=code)
    with stub:
        assert workflow.resume(TOKEN) is False


def test_other_workflow_errors_propagate_so_the_event_is_retried() -> None:
    workflow, stub = stubbed_workflow()
    stub.add_client_error("send_task_success", service_error_code="ThrottlingException")
    with stub, pytest.raises(workflow._client.exceptions.ClientError):
        workflow.resume(TOKEN)


def test_a_token_is_never_longer_than_step_functions_makes_them() -> None:
    with pytest.raises(ValueError):
        WaitToken.park(JOB, "x" * 2049, EXECUTION, 60, NOW)


# ---------------------------------------------------------------- the sample events

EVENTS = Path(__file__).resolve().parents[2] / "events"
# The secret events/job_webhook_succeeded.json is signed with (an example, never a real one).
SAMPLE_SECRET = "whsec_" + base64.b64encode(b"example-signing-secret-do-not-use").decode()


def sample(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((EVENTS / name).read_text())
    return loaded


def test_the_sample_wait_is_what_the_wait_task_hands_over() -> None:
    request = ParkRequest.model_validate(sample("wait_for_job.json"))
    assert request.job_id.startswith("ftjob-") and request.wait_seconds == 90


def test_the_sample_webhook_is_signed_as_openai_signs() -> None:
    event = sample("job_webhook_succeeded.json")
    signed_at = int(event["headers"]["webhook-timestamp"])
    with mock.patch("openai.lib._webhooks.time.time", return_value=signed_at):
        job_event = unwrap_job_webhook(event["body"].encode(), event["headers"], SAMPLE_SECRET)
    assert job_event.ended_job_id == json.loads(event["body"])["data"]["id"]


def test_the_sample_bedrock_event_names_its_job() -> None:
    event = sample("bedrock_job_event_completed.json")
    assert job_event_from_eventbridge(event).ended_job_id == event["detail"]["jobArn"]
