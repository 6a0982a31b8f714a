"""The pipeline with Amazon Bedrock as the provider: real state machine, Bedrock stand-in."""

from __future__ import annotations

import json
from collections.abc import Iterator

import boto3
import openai
import pytest

from sft_local.api_server import LocalApiServer
from sft_local.bedrock_standin import BedrockTimeline
from sft_local.serve import issue_key, point_alias
from sft_local.stack import LocalStack
from sft_pipeline.adapters.registry import Registry
from tests.e2e.conftest import SUPPORT_REPLIES, SUPPORT_SET

NOVA = {"provider": "bedrock", "base-model": "amazon.nova-micro-v1:0:128k", "suffix": "support"}
KEY = "training/support.jsonl"


@pytest.fixture
def slow_deploying_stack() -> Iterator[LocalStack]:
    """A stack whose deployments stay Creating until the test moves the stand-in's clock,
    so the API is seen refusing a model that cannot answer yet, whatever the machine's load."""
    timeline = BedrockTimeline(training=1.0, validating=0.2, stopping=0.2, deploying=600.0)
    with LocalStack(bedrock_timeline=timeline) as local:
        yield local


def test_bedrock_happy_path_trains_deploys_and_serves(slow_deploying_stack: LocalStack) -> None:
    stack = slow_deploying_stack
    # No held-out set: nothing waits for the deployment, so the API is seen refusing it.
    upload = stack.upload(SUPPORT_SET, KEY, {**NOVA, "n-epochs": "3"})
    assert stack.wait_for_execution(upload)["status"] == "SUCCEEDED"
    stack.settle()
    registry = Registry(stack.table())
    [model] = registry.list_models()
    assert (model.provider, model.base_model) == ("bedrock", "amazon.nova-micro-v1:0:128k")
    assert model.model_id.startswith("arn:aws:bedrock:us-east-1:123456789012:custom-model/")
    assert (
        model.hyperparameters["epochCount"] == 3 and model.hyperparameters["learningRate"] == 1e-5
    )
    assert model.train_loss is not None
    assert model.serving_model is not None and ":custom-model-deployment/" in model.serving_model
    [job] = stack.bedrock.jobs.values()
    assert dict(job.job_tags) == {"sft_upload": upload.dataset_id}
    # The training data Bedrock read is the converted file, written beside the upload.
    converted = stack.read_object(
        f"s3://{stack.bucket}/prepared/{upload.dataset_id}/bedrock/support.jsonl"
    )
    first = json.loads(converted.splitlines()[0])
    head = boto3.client("s3").head_object(
        Bucket=stack.bucket, Key=f"prepared/{upload.dataset_id}/bedrock/support.jsonl"
    )
    assert head["Metadata"]["sft-dataset-id"] == upload.dataset_id
    assert (
        first["schemaVersion"] == "bedrock-conversation-2024"
        and first["messages"][0]["role"] == "user"
    )
    [email] = stack.emails()
    assert "On-demand deployment" in email and model.model_id in email

    with LocalApiServer(stack) as server:
        # Until the deployment is active, the API answers 503 model_deploying (seen below).
        key = issue_key(registry, "tests", "admin")
        point_alias(server, key, "nova-bot", model.model_id)
        client = openai.OpenAI(base_url=server.base_url, api_key=key, max_retries=0)
        assert stack.bedrock.deployments[model.serving_model].status == "Creating"
        with pytest.raises(openai.InternalServerError) as deploying:
            client.chat.completions.create(
                model="nova-bot", messages=[{"role": "user", "content": "hi"}]
            )
        assert deploying.value.code == "model_deploying"
        stack.bedrock.advance(600)
        answer = client.chat.completions.with_raw_response.create(
            model="nova-bot",
            messages=[
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": "Where is my tent?"},
            ],
        )
        completion = answer.parse()
        assert completion.choices[0].message.content in SUPPORT_REPLIES
        assert (answer.headers["x-sft-model"], answer.headers["x-sft-alias"]) == (
            model.model_id,
            "nova-bot@1",
        )
    assert Registry(stack.table()).get_model(model.model_id).serving_status == "ready"  # type: ignore[union-attr]


def test_what_nova_cannot_express_is_refused_before_any_job(stack: LocalStack) -> None:
    rows = [json.loads(line) for line in SUPPORT_SET.splitlines()]
    rows[4]["messages"][-1]["weight"] = 0
    rows[4]["messages"].append({"role": "assistant", "content": "Anything else?"})
    rows[9]["messages"][-1]["content"] = "Assistant: here is your refund."
    upload = stack.upload("\n".join(json.dumps(r) for r in rows).encode(), KEY, NOVA)
    stack.settle()
    assert stack.executions() == [] and stack.bedrock.jobs == {}
    dataset = Registry(stack.table()).get_dataset(upload.dataset_id)
    assert dataset is not None and dataset.status == "rejected"
    report = json.loads(stack.read_object(dataset.report_uri or ""))
    lines = {(e["code"], e["line"]) for e in report["errors"]}
    assert ("nova_weight_zero", 5) in lines and ("nova_reserved_string", 10) in lines
    assert "nova" in stack.emails()[0]


def test_a_failed_bedrock_job_is_reported(stack: LocalStack) -> None:
    stack.bedrock.faults.fail_next_job(message="Training data line 3 is malformed.")
    upload = stack.upload(SUPPORT_SET, KEY, NOVA)
    assert stack.wait_for_execution(upload)["status"] == "FAILED"
    stack.settle()
    [email] = stack.emails()
    assert "bedrock_job_failed" in email and "line 3 is malformed" in email
    assert Registry(stack.table()).list_models() == []


def test_a_bedrock_job_past_the_maximum_duration_is_stopped() -> None:
    slow = BedrockTimeline(training=600.0, validating=0.1, stopping=0.2, deploying=0.2)
    with LocalStack(bedrock_timeline=slow, parameters={"MaxJobDurationHours": "0.0005"}) as stack:
        upload = stack.upload(SUPPORT_SET, KEY, NOVA)
        assert stack.wait_for_execution(upload)["status"] == "FAILED"
        [job] = stack.bedrock.jobs.values()
        assert job.status in ("Stopping", "Stopped")
        assert stack.bedrock.requests_to("StopModelCustomizationJob")
        stack.settle()
        assert "timed out" in stack.emails()[0].lower()


def test_a_repeated_launch_creates_one_bedrock_job(stack: LocalStack) -> None:
    upload = stack.upload(SUPPORT_SET, KEY, NOVA)
    assert stack.wait_for_execution(upload)["status"] == "SUCCEEDED"
    launched = [
        json.loads(e["taskScheduledEventDetails"]["parameters"])["Payload"]
        for e in stack.history(upload)
        if e["type"] == "TaskScheduled"
        and "LaunchJob" in e["taskScheduledEventDetails"]["parameters"]
    ]
    # Step Functions retries a launch whose answer was lost: the same input arrives again.
    result = boto3.client("lambda").invoke(
        FunctionName=stack.ref("LaunchJobFunction"), Payload=json.dumps(launched[0])
    )
    again = json.loads(result["Payload"].read())
    assert len(stack.bedrock.jobs) == 1
    assert again["job_id"] == next(iter(stack.bedrock.jobs))
