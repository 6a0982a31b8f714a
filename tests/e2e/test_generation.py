"""A spec dropped under generation/ on the local stack: the real generate.asl.json through
moto's interpreter (a Map over batch keys, merges, top-up rounds), the result written under
training/ where it starts the usual validation and fine-tuning, notified by email and Slack."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import boto3
import pytest

from sft_local.stack import LocalStack
from sft_pipeline.generation.run import execution_name
from sft_pipeline.jobs import UploadRef

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
SPEC = """
name: trailhead
teacher: {model: gpt-4.1-mini}
system-prompt: You are the support assistant of Trailhead Outfitters.
seed: 5
topics:
  - {name: returns, count: 40}
  - {name: shipping, count: 32}
eval-share: 0.1
train: {suffix: trailhead, n-epochs: 2}
"""


def s3() -> Any:
    return boto3.client("s3")


def generation_arn(stack: LocalStack, spec: UploadRef) -> str:
    machine = stack.ref("GenerateStateMachine")
    return machine.replace(":stateMachine:", ":execution:") + ":" + execution_name(spec.dataset_id)


def wait_for_generation(
    stack: LocalStack, spec: UploadRef, timeout: float = 120.0
) -> dict[str, Any]:
    stack.settle()
    client = boto3.client("stepfunctions")
    deadline = time.monotonic() + timeout
    while True:
        description: dict[str, Any] = client.describe_execution(
            executionArn=generation_arn(stack, spec)
        )
        if description["status"] != "RUNNING":
            stack.settle()
            return description
        assert time.monotonic() < deadline, "the generation run is still running"
        time.sleep(0.05)


def keys(stack: LocalStack, prefix: str) -> list[str]:
    listed = s3().list_objects_v2(Bucket=stack.bucket, Prefix=prefix).get("Contents", [])
    return sorted(item["Key"] for item in listed)


def map_items(stack: LocalStack, spec: UploadRef) -> list[dict[str, Any]]:
    """The input of every Map iteration: what the state machine carried to each batch."""
    events = boto3.client("stepfunctions").get_execution_history(
        executionArn=generation_arn(stack, spec), maxResults=1000
    )["events"]
    return [
        json.loads(event["stateEnteredEventDetails"]["input"])
        for event in events
        if event.get("stateEnteredEventDetails", {}).get("name") == "GenerateBatch"
    ]


def test_a_spec_becomes_validated_training_data_and_a_fine_tune(stack: LocalStack) -> None:
    stack.openai.faults.malform_generations(3)
    stack.openai.faults.repeat_generations(4)
    spec = stack.upload(SPEC.encode(), "generation/trailhead.yaml")
    assert wait_for_generation(stack, spec)["status"] == "SUCCEEDED"

    # The Map carried keys only, never examples.
    items = map_items(stack, spec)
    assert len(items) == 2  # 72 slots in batches of 50
    assert all(set(item) == {"run", "batch_key"} for item in items)
    [train_key] = keys(stack, "training/")
    [held_out_key] = keys(stack, "generated/")
    assert train_key == f"training/trailhead-{spec.dataset_id[:8]}.jsonl"
    head = s3().head_object(Bucket=stack.bucket, Key=train_key)
    assert head["Metadata"] == {"suffix": "trailhead", "n-epochs": "2", "eval-key": held_out_key}
    train = stack.read_object(f"s3://{stack.bucket}/{train_key}").decode().splitlines()
    held_out = stack.read_object(f"s3://{stack.bucket}/{held_out_key}").decode().splitlines()
    assert (len(train), len(held_out)) == (65, 7)
    assert len(set(train + held_out)) == 72

    # The training file started the usual run: validated, fine-tuned, registered.
    upload = UploadRef(bucket=stack.bucket, key=train_key, version_id=head["VersionId"])
    assert stack.wait_for_execution(upload)["status"] == "SUCCEEDED"
    stack.settle()
    emails = stack.emails()
    generated = next(e for e in emails if e.startswith("Training data generated"))
    assert "72" in generated and train_key in generated and "gpt-4.1-mini" in generated
    assert "refused" in generated and "malformed_answer 3" in generated
    assert any(e.startswith("Fine-tune succeeded") for e in emails)
    assert any("Training data generated" in json.dumps(m) for m in stack.slack.messages)


def test_duplicates_that_leave_a_batch_short_are_topped_up_in_another_round(
    stack: LocalStack,
) -> None:
    # Each batch asks at most six times per slot: 40 repeats leave slots open after round one.
    stack.openai.faults.repeat_generations(40)
    spec = stack.upload(SPEC.replace("count: 32", "count: 8").encode(), "generation/short.yaml")
    assert wait_for_generation(stack, spec)["status"] == "SUCCEEDED"
    rounds = {item["run"]["round"] for item in map_items(stack, spec)}
    assert rounds == {0, 1}
    [train_key] = keys(stack, "training/")
    lines = stack.read_object(f"s3://{stack.bucket}/{train_key}").decode().splitlines()
    assert len(lines) == len(set(lines)) == 43


def test_auto_train_false_leaves_the_data_for_review(stack: LocalStack) -> None:
    spec = stack.upload((SPEC + "auto-train: false\n").encode(), "generation/review.yaml")
    assert wait_for_generation(stack, spec)["status"] == "SUCCEEDED"
    assert keys(stack, "training/") == []
    assert len(keys(stack, "generated/")) == 2
    assert stack.executions() == []
    [email] = stack.emails()
    assert "left for review" in email


def test_a_broken_spec_is_refused_once_naming_the_field(stack: LocalStack) -> None:
    broken = SPEC.replace("count: 40", "count: -1").encode()
    spec = stack.upload(broken, "generation/broken.yaml")
    stack.settle()
    with pytest.raises(boto3.client("stepfunctions").exceptions.ExecutionDoesNotExist):
        boto3.client("stepfunctions").describe_execution(executionArn=generation_arn(stack, spec))
    # The same event delivered again notifies nobody twice.
    event = json.loads((REPO / "events" / "start_generation_s3_put.json").read_text())
    event["Records"][0]["s3"]["bucket"]["name"] = stack.bucket
    event["Records"][0]["s3"]["object"].update({"key": spec.key, "versionId": spec.version_id})
    boto3.client("lambda").invoke(
        FunctionName=stack.ref("StartGenerationFunction"),
        InvocationType="Event",
        Payload=json.dumps(event),
    )
    stack.settle()
    [email] = stack.emails()
    assert email.startswith("Data generation failed")
    assert "topics[0].count" in email


def test_a_spec_over_the_cost_cap_asks_nothing(stack: LocalStack) -> None:
    spec = stack.upload((SPEC + "cost-cap-usd: 0.0001\n").encode(), "generation/dear.yaml")
    stack.settle()
    with pytest.raises(boto3.client("stepfunctions").exceptions.ExecutionDoesNotExist):
        boto3.client("stepfunctions").describe_execution(executionArn=generation_arn(stack, spec))
    [email] = stack.emails()
    assert "generation_cost_cap" in email and "over the cap" in email
    assert stack.openai.requests_to("POST /chat/completions") == []


def test_a_teacher_that_refuses_every_request_fails_the_run_with_its_reason(
    stack: LocalStack,
) -> None:
    stack.openai.faults.invalid_api_key(route="POST /chat/completions")
    spec = stack.upload(SPEC.encode(), "generation/nokey.yaml")
    assert wait_for_generation(stack, spec)["status"] == "FAILED"
    assert keys(stack, "training/") == [] and keys(stack, "generated/") == []
    [email] = stack.emails()
    assert email.startswith("Data generation failed")
    assert "generation_incomplete" in email and "authentication_failed" in email
