"""Model lifecycle through the local stack: the watcher's warning (once, across reruns and
days) about an OpenAI model an alias serves, then its retrain on Bedrock through the real
state machine, ending with a Bedrock model whose lineage is the original's."""

from __future__ import annotations

import json
import time
from typing import Any

import boto3

from sft_local.stack import LocalStack
from sft_pipeline.adapters.registry import Registry
from sft_pipeline.adapters.training_bucket import TrainingBucket
from sft_pipeline.aliases import single
from sft_pipeline.jobs import EXECUTION_NAME_PREFIX
from sft_pipeline.pipeline.retrain import RetrainOrders, plan_retrain
from sft_pipeline.retraining import RetrainRequest
from tests.e2e.conftest import SUPPORT_SET

KEY = "training/support.jsonl"
NOVA_MICRO = "amazon.nova-micro-v1:0:128k"


def run_watcher(stack: LocalStack, today: str) -> dict[str, Any]:
    answer = boto3.client("lambda").invoke(
        FunctionName=stack.ref("RetirementWatcherFunction"),
        Payload=json.dumps({"today": today}).encode(),
    )
    assert "FunctionError" not in answer, answer["Payload"].read()
    stack.settle()
    result: dict[str, Any] = json.loads(answer["Payload"].read())
    return result


def wait_for_run(stack: LocalStack, dataset_id: str, timeout: float = 90.0) -> str:
    stack.settle()
    arn = stack.state_machine_arn.replace(":stateMachine:", ":execution:")
    client = boto3.client("stepfunctions")
    deadline = time.monotonic() + timeout
    while True:
        try:
            status: str = client.describe_execution(
                executionArn=f"{arn}:{EXECUTION_NAME_PREFIX}{dataset_id}"
            )["status"]
        except client.exceptions.ExecutionDoesNotExist:
            status = "NOT_STARTED"
        if status not in ("RUNNING", "NOT_STARTED"):
            return status
        assert time.monotonic() < deadline, f"run {dataset_id} still {status}"
        time.sleep(0.05)
        stack.settle()


def test_a_served_openai_model_is_warned_once_then_retrained_on_bedrock(
    stack: LocalStack,
) -> None:
    upload = stack.upload(SUPPORT_SET, KEY, {"n-epochs": "3", "suffix": "support"})
    assert stack.wait_for_execution(upload)["status"] == "SUCCEEDED"
    stack.settle()
    registry = Registry(stack.table())
    [original] = registry.every_model()
    assert original.provider == "openai"
    registry.create_alias_version(
        "support-bot", single(original.model_id), None, original.created_at
    )
    stack.emails()

    # Seven days before gpt-4o-mini's fine-tunes stop serving: one warning, once.
    assert run_watcher(stack, "2027-01-07")["sent"] == [f"{original.model_id}:7"]
    [email] = stack.emails()
    assert f"Model retiring: {original.model_id}" in email
    assert "2027-01-14 (in 7 days)" in email
    assert "sft retrain support-bot --provider bedrock --stack sft-local" in email
    assert stack.slack.messages[-1]["text"].startswith("Model retiring in 7 days")
    assert run_watcher(stack, "2027-01-07")["sent"] == []
    assert run_watcher(stack, "2027-01-08")["sent"] == []
    assert stack.emails() == []

    # The retrain, as sft retrain and the API order it: the validation step runs the order.
    request = RetrainRequest(model="support-bot", provider="bedrock", base_model=NOVA_MICRO)
    plan = plan_retrain(request, registry, "test")
    orders = RetrainOrders(TrainingBucket(boto3.client("s3")), stack.bucket, "retrain/")
    orders.submit(plan)
    orders.submit(plan)  # asked twice: one run
    assert wait_for_run(stack, plan.dataset_id) == "SUCCEEDED"
    stack.settle()
    retrained = next(m for m in registry.every_model() if m.model_id != original.model_id)
    assert (retrained.provider, retrained.base_model) == ("bedrock", NOVA_MICRO)
    assert retrained.retrained_from == original.model_id
    assert (retrained.upload, retrained.dataset_sha256) == (
        original.upload,
        original.dataset_sha256,
    )
    assert retrained.hyperparameters["epochCount"] == 3
    dataset = registry.get_dataset(plan.dataset_id)
    assert dataset is not None and dataset.settings is not None
    assert (dataset.settings.alias, dataset.settings.promote) == ("support-bot", "if-not-worse")
    runs = [e for e in stack.executions() if e["name"].endswith(plan.dataset_id)]
    assert len(runs) == 1
