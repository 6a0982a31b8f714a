"""The evaluation gate through the real state machine: the model is registered, evaluated on
the held-out set against its base model, a few-shot prompt and the alias's champion, and
promoted only when it is better; whatever the evaluation does, the model is kept."""

from __future__ import annotations

import json
import time
from typing import Any

import boto3
import pytest

from sft_local.bedrock_standin import BedrockTimeline
from sft_local.stack import LocalStack
from sft_pipeline.adapters.registry import Registry
from sft_pipeline.aliases import AliasNotFound
from sft_pipeline.records import ModelRecord
from tests.e2e.conftest import REPO, SUPPORT_SET

KEY = "training/customer support.jsonl"
GATED = {"holdout-percent": "20", "alias": "support-bot", "seed": "7"}


def _model(stack: LocalStack, upload: Any) -> ModelRecord:
    registry = Registry(stack.table())
    [model] = [m for m in registry.list_models() if m.dataset_id == upload.dataset_id]
    return model


def _keys(stack: LocalStack, prefix: str) -> list[str]:
    listed = boto3.client("s3").list_objects_v2(Bucket=stack.bucket, Prefix=prefix)
    return sorted(item["Key"] for item in listed.get("Contents", []))


def _states_entered(stack: LocalStack, upload: Any) -> list[str]:
    return [
        event["stateEnteredEventDetails"]["name"]
        for event in stack.history(upload)
        if event["type"].endswith("StateEntered")
    ]


def _task_errors(stack: LocalStack, upload: Any) -> list[str]:
    try:
        history = stack.history(upload)
    except boto3.client("stepfunctions").exceptions.ExecutionDoesNotExist:
        return []  # not started yet
    return [
        event["taskFailedEventDetails"]["error"]
        for event in history
        if event["type"] == "TaskFailed"
    ]


def test_a_better_fine_tune_is_promoted_and_everything_is_shown(stack: LocalStack) -> None:
    upload = stack.upload(SUPPORT_SET, KEY, GATED)
    assert stack.wait_for_execution(upload)["status"] == "SUCCEEDED"
    stack.settle()
    entered = _states_entered(stack, upload)
    # Registered before the evaluation starts.
    assert entered.index("RegisterModel") < entered.index("PrepareEvaluation")
    assert "EvaluateShards" in entered and "AggregateEvaluation" in entered

    model = _model(stack, upload)
    evaluation = model.evaluation
    assert evaluation is not None and evaluation.examples == 12
    names = [c.name for c in evaluation.contenders]
    assert names == ["candidate", "base", "few_shot"]
    candidate = evaluation.result("candidate")
    base = evaluation.result("base")
    assert candidate is not None and base is not None
    assert candidate.score.mean > base.score.mean
    assert evaluation.decision is not None and evaluation.decision.promote

    alias = Registry(stack.table()).get_alias_version("support-bot")
    assert (alias.version, [v.model for v in alias.variants]) == (1, [model.model_id])

    # Every answer with its scores, for inspection.
    prefix = f"evaluations/{upload.dataset_id}/"
    results = [k for k in _keys(stack, prefix) if "/results/" in k]
    replies = [
        json.loads(line)
        for key in results
        for line in stack.read_object(f"s3://{stack.bucket}/{key}").splitlines()
    ]
    assert len(replies) == 12 * 3
    assert {r["contender"] for r in replies} == {"candidate", "base", "few_shot"}

    [email] = stack.emails()
    assert "Promoted support-bot to v1: +" in email
    assert "candidate" in email and "few_shot" in email and "95%" in email
    [slack] = stack.slack.messages
    assert "Promoted support-bot to v1" in json.dumps(slack["blocks"])

    cards = _keys(stack, "reports/models/")
    assert any(key.endswith("card.html") for key in cards)
    assert any(key.endswith("card.md") for key in cards)
    html = stack.read_object(f"s3://{stack.bucket}/{next(k for k in cards if k.endswith('.html'))}")
    assert b"<svg" in html and model.model_id.encode() in html
    assert "card.html" in email


def test_the_held_out_file_is_read_at_the_version_that_was_validated(stack: LocalStack) -> None:
    """The eval file is overwritten while the job trains: the evaluation answers the version
    the upload was validated with, and the model card names that version."""
    held_out_key = "evaluation/support-heldout.jsonl"
    held_out = (REPO / "samples" / "customer_support_validation.jsonl").read_bytes()
    validated = stack.upload(held_out, held_out_key)
    upload = stack.upload(SUPPORT_SET, KEY, {"eval-key": held_out_key, "seed": "7"})
    registry = Registry(stack.table())
    deadline = time.monotonic() + 30
    while (job := registry.get_job(upload.dataset_id)) is None or job.job_id is None:
        assert time.monotonic() < deadline, "the job was never launched"
        time.sleep(0.02)
    stack.upload(b"\n".join(held_out.splitlines()[:3]) + b"\n", held_out_key)
    assert stack.wait_for_execution(upload)["status"] == "SUCCEEDED"

    evaluation = _model(stack, upload).evaluation
    assert evaluation is not None and evaluation.examples == len(held_out.splitlines()) == 10
    [card] = [key for key in _keys(stack, "reports/models/") if key.endswith("card.md")]
    markdown = stack.read_object(f"s3://{stack.bucket}/{card}").decode()
    [lineage] = [line for line in markdown.splitlines() if held_out_key in line]
    assert validated.version_id is not None and validated.version_id in lineage


def test_a_worse_fine_tune_leaves_the_champion_in_place(stack: LocalStack) -> None:
    first = stack.upload(SUPPORT_SET, KEY, GATED)
    assert stack.wait_for_execution(first)["status"] == "SUCCEEDED"
    champion = _model(stack, first)
    # The next job's model answers every prompt from the wrong training example.
    stack.openai.faults.degrade_next_job(1.0)
    second = stack.upload(SUPPORT_SET + b"\n", KEY, GATED)
    assert stack.wait_for_execution(second)["status"] == "SUCCEEDED"
    stack.settle()

    candidate = _model(stack, second)
    assert candidate.model_id != champion.model_id
    evaluation = candidate.evaluation
    assert evaluation is not None
    assert [c.name for c in evaluation.contenders] == ["candidate", "base", "few_shot", "champion"]
    versus = evaluation.result("champion")
    assert versus is not None and versus.model == champion.model_id
    assert versus.versus_candidate is not None and versus.versus_candidate.difference.mean < 0
    assert evaluation.decision is not None and not evaluation.decision.promote

    alias = Registry(stack.table()).get_alias_version("support-bot")
    assert (alias.version, alias.variants[0].model) == (1, champion.model_id)
    last_email = stack.emails()[-1]
    assert "Kept support-bot at v1: -" in last_email and "over v1" in last_email


def test_without_a_held_out_set_the_model_is_registered_and_never_promoted(
    stack: LocalStack,
) -> None:
    upload = stack.upload(SUPPORT_SET, KEY, {"alias": "support-bot"})
    assert stack.wait_for_execution(upload)["status"] == "SUCCEEDED"
    stack.settle()
    model = _model(stack, upload)
    assert model.evaluation is None
    with pytest.raises(AliasNotFound):  # no alias was made
        Registry(stack.table()).get_alias_version("support-bot")
    [email] = stack.emails()
    assert "No held-out set" in email and "never promoted automatically" in email
    assert _keys(stack, "evaluations/") == []


def test_a_failing_evaluation_keeps_the_model_and_says_why(stack: LocalStack) -> None:
    # Every chat call is refused: the evaluation cannot answer anything.
    stack.openai.faults.invalid_api_key(times=None, route="POST /chat/completions")
    upload = stack.upload(SUPPORT_SET, KEY, GATED)
    assert stack.wait_for_execution(upload)["status"] == "SUCCEEDED"
    stack.settle()
    model = _model(stack, upload)
    assert model.evaluation is None
    entered = _states_entered(stack, upload)
    assert "AggregateEvaluation" not in entered
    assert entered[-3:] == ["FinishJob", "Finished", "ModelRegistered"]
    [email] = stack.emails()
    assert "Evaluation failed" in email and "authentication" in email.lower()
    assert model.model_id in email
    with pytest.raises(AliasNotFound):  # no alias was made
        Registry(stack.table()).get_alias_version("support-bot")


def test_rate_limits_during_the_evaluation_are_waited_out(stack: LocalStack) -> None:
    stack.openai.faults.rate_limit(times=6, retry_after=0.05, route="POST /chat/completions")
    upload = stack.upload(SUPPORT_SET, KEY, GATED)
    assert stack.wait_for_execution(upload)["status"] == "SUCCEEDED"
    stack.settle()
    evaluation = _model(stack, upload).evaluation
    assert evaluation is not None and evaluation.decision is not None
    assert evaluation.decision.promote
    replies = [
        json.loads(line)
        for key in _keys(stack, f"evaluations/{upload.dataset_id}/results/")
        for line in stack.read_object(f"s3://{stack.bucket}/{key}").splitlines()
    ]
    # The provider's client and the runner back off; no answer is lost to the 429s.
    assert len(replies) == 12 * 3 and all(r["error"] is None for r in replies)
    rejected = [r for r in stack.openai.requests_to("POST /chat/completions") if r.status == 429]
    assert len(rejected) == 6


def test_a_bedrock_model_is_evaluated_once_its_deployment_answers() -> None:
    """The evaluation waits for the on-demand deployment (retried, not failed), then asks the
    deployment while the alias names the custom model, as the API's aliases do."""
    timeline = BedrockTimeline(training=1.0, validating=0.2, stopping=0.2, deploying=600.0)
    nova = {"provider": "bedrock", "base-model": "amazon.nova-micro-v1:0:128k"}
    with LocalStack(bedrock_timeline=timeline) as stack:
        upload = stack.upload(SUPPORT_SET, "training/support.jsonl", {**nova, **GATED})
        deadline = time.monotonic() + 60
        while "CandidateNotServingError" not in _task_errors(stack, upload):
            assert time.monotonic() < deadline, "the evaluation never waited for the deployment"
            time.sleep(0.1)
        stack.bedrock.advance(600)
        assert stack.wait_for_execution(upload)["status"] == "SUCCEEDED"
        stack.settle()
        model = _model(stack, upload)
        assert model.valid_loss is not None and model.serving_model is not None
        evaluation = model.evaluation
        assert evaluation is not None and evaluation.examples == 12
        candidate = evaluation.result("candidate")
        assert candidate is not None and candidate.model == model.serving_model
        assert evaluation.decision is not None and evaluation.decision.promote
        alias = Registry(stack.table()).get_alias_version("support-bot")
        assert [v.model for v in alias.variants] == [model.model_id]
        [email] = stack.emails()
        assert "Promoted support-bot to v1" in email
