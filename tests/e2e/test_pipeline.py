"""Scenarios through the real state machine, from an S3 upload to the notification."""

from __future__ import annotations

import json
from typing import Any

import boto3

from sft_local.openai_emulator import JobTimeline
from sft_local.stack import LocalStack
from tests.e2e.conftest import BROKEN_SET, SUPPORT_SET

KEY = "training/customer support.jsonl"


def task_failures(stack: LocalStack, upload: Any) -> list[str]:
    return [
        event["taskFailedEventDetails"]["error"]
        for event in stack.history(upload)
        if event["type"] == "TaskFailed"
    ]


def job_creations(stack: LocalStack) -> int:
    return len([r for r in stack.openai.requests_to("POST /fine_tuning/jobs") if r.status == 200])


def test_happy_path_registers_the_model_and_notifies(stack: LocalStack) -> None:
    upload = stack.upload(SUPPORT_SET, KEY, {"suffix": "support", "n-epochs": "2"})
    assert stack.wait_for_execution(upload)["status"] == "SUCCEEDED"
    stack.settle()

    table = stack.table()
    models = [i for i in table.scan()["Items"] if i["PK"].startswith("MODEL#")]
    assert len(models) == 1
    model = models[0]
    assert model["model_id"].startswith("ft:gpt-4o-mini-2024-07-18:emulator:support:")
    assert model["upload"] == {"bucket": stack.bucket, "key": KEY, "version_id": upload.version_id}
    dataset = table.get_item(Key={"PK": f"DATASET#{upload.dataset_id}", "SK": "DATASET"})["Item"]
    assert dataset["status"] == "launched"
    assert model["dataset_sha256"] == dataset["sha256"]
    assert model["hyperparameters"]["n_epochs"] == 2
    assert model["trained_tokens"] > 0 and model["actual_cost_usd"] > 0
    assert model["train_loss"] is not None

    job = table.get_item(Key={"PK": f"DATASET#{upload.dataset_id}", "SK": "JOB"})["Item"]
    assert (job["status"], job["outcome"], job["model_id"]) == (
        "succeeded",
        "succeeded",
        model["model_id"],
    )

    [email] = stack.emails()
    assert "Fine-tune succeeded" in email and model["model_id"] in email
    [slack] = stack.slack.messages
    assert model["model_id"] in json.dumps(slack["blocks"])

    report = json.loads(stack.read_object(dataset["report_uri"]))
    assert report["valid"] is True and report["stats"]["examples"] == 62
    assert job_creations(stack) == 1


def test_invalid_file_is_reported_and_never_launched(stack: LocalStack) -> None:
    upload = stack.upload(BROKEN_SET, "training/broken.jsonl")
    stack.settle()
    assert stack.executions() == []
    dataset = stack.table().get_item(Key={"PK": f"DATASET#{upload.dataset_id}", "SK": "DATASET"})[
        "Item"
    ]
    assert (dataset["status"], dataset["rejection_code"]) == ("rejected", "invalid_training_file")
    text_report = stack.read_object(dataset["report_uri"].removesuffix(".json") + ".txt").decode()
    assert "line 8" in text_report and "special_token" in text_report
    [email] = stack.emails()
    assert "INVALID" in email and "line" in email
    assert len(stack.slack.messages) == 1
    # The file itself is untouched: nothing is lost.
    assert stack.read_object(f"s3://{stack.bucket}/training/broken.jsonl") == BROKEN_SET


def test_uploads_outside_training_prefix_are_ignored(stack: LocalStack) -> None:
    stack.upload(SUPPORT_SET, "notes/customer_support.jsonl")
    stack.upload(SUPPORT_SET, "training/customer_support.json")
    stack.settle()
    assert stack.seam.invocations == []


def test_duplicate_s3_event_starts_one_job(stack: LocalStack) -> None:
    upload = stack.upload(SUPPORT_SET, KEY)
    stack.settle()
    [first] = [i for i in stack.seam.invocations if i.function.endswith("ValidateUploadFunction")]
    # S3 delivers at least once: the very same event arrives again.
    boto3.client("lambda").invoke(
        FunctionName=stack.ref("ValidateUploadFunction"), Payload=json.dumps(first.event)
    )
    assert stack.wait_for_execution(upload)["status"] == "SUCCEEDED"
    assert len(stack.executions()) == 1
    assert job_creations(stack) == 1


def test_rate_limits_are_waited_out(stack: LocalStack) -> None:
    # More 429s than the launch step absorbs itself: the workflow's Retry takes over.
    stack.openai.faults.rate_limit(times=4, retry_after=0.05, route="POST /fine_tuning/jobs")
    upload = stack.upload(SUPPORT_SET, KEY)
    assert stack.wait_for_execution(upload)["status"] == "SUCCEEDED"
    assert "ProviderRateLimitError" in task_failures(stack, upload)
    assert job_creations(stack) == 1


def test_job_failed_at_the_provider(stack: LocalStack) -> None:
    stack.openai.faults.fail_next_job(
        code="invalid_training_file", message="Example 3 has an invalid token."
    )
    upload = stack.upload(SUPPORT_SET, KEY)
    result = stack.wait_for_execution(upload)
    assert result["status"] == "FAILED"
    stack.settle()
    [email] = stack.emails()
    assert "invalid_training_file" in email and "Example 3 has an invalid token." in email
    job = stack.table().get_item(Key={"PK": f"DATASET#{upload.dataset_id}", "SK": "JOB"})["Item"]
    assert (job["status"], job["outcome"], job["error_code"]) == (
        "failed",
        "failed",
        "invalid_training_file",
    )
    assert not [i for i in stack.table().scan()["Items"] if i["PK"].startswith("MODEL#")]


def test_timeout_cancels_the_job() -> None:
    slow = JobTimeline(validating=0.2, queued=0.2, running=600.0)
    with LocalStack(timeline=slow, parameters={"MaxJobDurationHours": "0.0005"}) as stack:
        upload = stack.upload(SUPPORT_SET, KEY)
        assert stack.wait_for_execution(upload)["status"] == "FAILED"
        states = [
            e["stateEnteredEventDetails"]["name"]
            for e in stack.history(upload)
            if "stateEnteredEventDetails" in e
        ]
        assert "CancelJob" in states and "JobTimedOut" in states
        cancels = stack.openai.requests_to("POST /fine_tuning/jobs/{job_id}/cancel")
        assert [r.status for r in cancels] == [200]
        stack.settle()
        [email] = stack.emails()
        assert "timed out" in email.lower() and "MaxJobDurationHours" in email


def test_cost_cap_stops_the_launch(stack: LocalStack) -> None:
    upload = stack.upload(SUPPORT_SET, KEY, {"cost-cap-usd": "0.01"})
    stack.settle()
    assert stack.executions() == []
    dataset = stack.table().get_item(Key={"PK": f"DATASET#{upload.dataset_id}", "SK": "DATASET"})[
        "Item"
    ]
    assert dataset["rejection_code"] == "cost_cap_exceeded"
    [email] = stack.emails()
    assert "cost" in email.lower() and "0.01" in email
    assert job_creations(stack) == 0


def test_bad_upload_settings_are_reported(stack: LocalStack) -> None:
    upload = stack.upload(SUPPORT_SET, KEY, {"n-epochs": "many", "colour": "blue"})
    stack.settle()
    assert stack.executions() == []
    dataset = stack.table().get_item(Key={"PK": f"DATASET#{upload.dataset_id}", "SK": "DATASET"})[
        "Item"
    ]
    assert dataset["rejection_code"] == "invalid_job_setting"
    assert "colour" in stack.emails()[0]


def test_slack_outage_loses_nothing(stack: LocalStack) -> None:
    stack.slack.outage(503)
    upload = stack.upload(SUPPORT_SET, KEY)
    assert stack.wait_for_execution(upload)["status"] == "SUCCEEDED"
    stack.settle()
    assert stack.slack.messages == [] and stack.slack.refused == 3  # the first try and two retries
    assert len(stack.emails()) == 1
    [dead] = stack.dead_letters("SlackDeadLetterQueue")
    assert dead["requestContext"]["condition"] == "RetriesExhausted"
    # Once Slack is back, the dead letter is redriven and the message arrives.
    stack.slack.recover()
    boto3.client("lambda").invoke(
        FunctionName=stack.ref("SlackNotifierFunction"), Payload=json.dumps(dead["requestPayload"])
    )
    stack.settle()
    [message] = stack.slack.messages
    assert "succeeded" in message["text"].lower()


def test_organisation_refused_by_openai(stack: LocalStack) -> None:
    stack.openai.faults.block_job_creation()
    upload = stack.upload(SUPPORT_SET, KEY)
    assert stack.wait_for_execution(upload)["status"] == "FAILED"
    assert task_failures(stack, upload) == ["ProviderPermanentError"]
    stack.settle()
    [email] = stack.emails()
    assert "fine_tuning_unavailable" in email and "2027-01-06" in email


def test_automatic_holdout_split(stack: LocalStack) -> None:
    upload = stack.upload(SUPPORT_SET, KEY, {"holdout-percent": "20"})
    assert stack.wait_for_execution(upload)["status"] == "SUCCEEDED"
    prefix = f"prepared/{upload.dataset_id}/"
    listed = boto3.client("s3").list_objects_v2(Bucket=stack.bucket, Prefix=prefix)["Contents"]
    assert sorted(o["Key"] for o in listed) == [prefix + "train.jsonl", prefix + "validation.jsonl"]
    train = stack.read_object(f"s3://{stack.bucket}/{prefix}train.jsonl").splitlines()
    held_out = stack.read_object(f"s3://{stack.bucket}/{prefix}validation.jsonl").splitlines()
    assert len(train) + len(held_out) == 62 and 0 < len(held_out) < len(train)
    uploads = stack.openai.requests_to("POST /files")
    assert len(uploads) == 2
    model = next(i for i in stack.table().scan()["Items"] if i["PK"].startswith("MODEL#"))
    assert model["valid_loss"] is not None


def test_alarms_reach_email_but_not_slack(stack: LocalStack) -> None:
    alarm = json.dumps({"AlarmName": "sft-local-SlackDeadLetterAlarm", "NewStateValue": "ALARM"})
    boto3.client("sns").publish(
        TopicArn=stack.ref("NotificationTopic"), Message=alarm, Subject="ALARM"
    )
    stack.settle()
    assert stack.emails() == [alarm]
    assert stack.slack.messages == [] and stack.seam.invocations == []
