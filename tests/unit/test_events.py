"""The sample events in events/ (for `sam local invoke -e` and for reading): each one has
the shape its function really receives, so each parses with the models the handlers use.
"""

from __future__ import annotations

import json
import runpy
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from urllib.parse import unquote_plus

import pytest
from aws_lambda_powertools.utilities.data_classes import S3Event

from sft_pipeline.jobs import JobState, WorkflowState
from sft_pipeline.pipeline.evaluation_steps import Prepared
from sft_pipeline.providers.base import ProviderPermanentError

ROOT = Path(__file__).resolve().parents[2]
EVENTS = ROOT / "events"
UPLOAD_KEY = "training/support set.jsonl"
UPLOAD_BUCKET = "sft-dev-data-123456789012-us-east-1"

# Workflow task events, and what the state machine has put in them by then.
WORKFLOW_EVENTS = {
    "launch_job.json": {"job": False, "outcome": None},
    "poll_job.json": {"job": True, "outcome": None},
    "cancel_job.json": {"job": True, "outcome": None},
    "finish_job_succeeded.json": {"job": True, "outcome": "succeeded"},
    "finish_job_failed.json": {"job": False, "outcome": "failed"},
    "register_model.json": {"job": True, "outcome": "succeeded"},
    "prepare_evaluation.json": {"job": True, "outcome": "succeeded"},
    "finish_job_evaluated.json": {"job": True, "outcome": "succeeded"},
}


def load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((EVENTS / name).read_text())
    return data


def test_every_function_has_a_sample_event() -> None:
    """events/<function>_<what>.json, e.g. validate_upload_s3_put.json for validate_upload."""
    functions = sorted(p.name for p in (ROOT / "functions").iterdir() if p.is_dir())
    covered = set()
    for sample in EVENTS.glob("*.json"):
        owners = [f for f in functions if sample.stem == f or sample.stem.startswith(f"{f}_")]
        if owners:
            covered.add(max(owners, key=len))  # api_authorizer_x is not an event of api
    missing = sorted(set(functions) - covered)
    assert not missing, f"functions without a sample event in events/: {missing}"


@pytest.mark.parametrize("name", sorted(WORKFLOW_EVENTS))
def test_workflow_event_parses_as_the_task_input(name: str) -> None:
    state = WorkflowState.model_validate(load(name))
    expected = WORKFLOW_EVENTS[name]

    assert (state.job is not None) is expected["job"]
    assert state.outcome == expected["outcome"]
    # The dataset id is derived from the exact object version, as the validation step does.
    assert state.request.dataset_id == state.request.upload.dataset_id
    assert state.request.upload.bucket == UPLOAD_BUCKET
    assert state.request.upload.key == UPLOAD_KEY
    assert state.request.training_key == UPLOAD_KEY


def test_workflow_events_describe_one_run() -> None:
    states = {name: WorkflowState.model_validate(load(name)) for name in WORKFLOW_EVENTS}
    assert len({s.request.model_dump_json() for s in states.values()}) == 1
    jobs = {name: s.job for name, s in states.items() if s.job is not None}
    assert len({job.job_id for job in jobs.values()}) == 1
    assert jobs["poll_job.json"].state is JobState.RUNNING
    assert jobs["cancel_job.json"].state is JobState.RUNNING
    assert jobs["cancel_job.json"].timed_out
    succeeded = jobs["finish_job_succeeded.json"]
    assert succeeded.state is JobState.SUCCEEDED
    assert succeeded.fine_tuned_model


def test_evaluation_events_follow_the_registration() -> None:
    """The registration's result feeds the evaluation; its outcome feeds the finish step."""
    assert WorkflowState.model_validate(load("register_model.json")).registered is None
    prepared = WorkflowState.model_validate(load("prepare_evaluation.json"))
    finished = WorkflowState.model_validate(load("finish_job_evaluated.json"))
    assert prepared.registered is not None and prepared.job is not None
    assert prepared.registered.model_id == prepared.job.fine_tuned_model
    assert finished.evaluation is not None and finished.evaluation.summary_key
    plan = Prepared.model_validate(load("aggregate_evaluation.json"))
    shard = load("evaluate_shard.json")
    assert shard["bucket"] == plan.bucket == UPLOAD_BUCKET
    assert shard["shard_key"] in plan.shards
    assert finished.evaluation.summary_key.startswith(plan.plan_key.rsplit("/", 1)[0])


def test_launch_event_is_the_execution_input() -> None:
    """The validation step starts the execution with {"request": ...} and nothing else."""
    assert set(load("launch_job.json")) == {"request"}


def test_failed_finish_event_has_the_step_functions_catch_shape() -> None:
    state = WorkflowState.model_validate(load("finish_job_failed.json"))
    assert state.failure is not None
    assert set(state.failure) == {"Error", "Cause"}
    assert state.failure["Error"] == ProviderPermanentError.__name__
    cause = json.loads(state.failure["Cause"])
    assert cause["errorType"] == ProviderPermanentError.__name__
    assert cause["errorMessage"].startswith("fine_tuning_unavailable: ")


def test_s3_put_event_gives_the_uploaded_key() -> None:
    event = S3Event(load("validate_upload_s3_put.json"))
    records = list(event.records)
    assert len(records) == 1
    record = records[0]
    assert record.event_name == "ObjectCreated:Put"
    assert record.s3.bucket.name == UPLOAD_BUCKET
    raw_key = record.s3.get_object.key
    assert raw_key != UPLOAD_KEY, "S3 URL-encodes keys in events"
    assert unquote_plus(raw_key) == UPLOAD_KEY
    assert record.s3.get_object.version_id == "3HL4kqtJlcpXroDTDmJ.rmSpXd3dIbrHY"


def test_s3_put_event_matches_the_workflow_events() -> None:
    record = next(iter(S3Event(load("validate_upload_s3_put.json")).records))
    request = WorkflowState.model_validate(load("launch_job.json")).request
    assert request.upload.version_id == record.s3.get_object.version_id
    assert request.upload.key == unquote_plus(record.s3.get_object.key)


def test_s3_test_event_is_recognisable() -> None:
    """S3 sends this once when the notification is configured; the handler skips it."""
    event = S3Event(load("validate_upload_s3_test_event.json"))
    assert event.raw_event["Event"] == "s3:TestEvent"
    assert event.raw_event["Bucket"] == UPLOAD_BUCKET
    assert "Records" not in event.raw_event


@pytest.mark.filterwarnings("ignore:No application metrics to publish")
@pytest.mark.usefixtures("template_environment")
def test_validation_handler_skips_the_s3_test_event() -> None:
    handler = runpy.run_path(str(ROOT / "functions" / "validate_upload" / "app.py"))
    context = SimpleNamespace(
        function_name="ValidateUploadFunction",
        memory_limit_in_mb=2048,
        invoked_function_arn="arn:aws:lambda:us-east-1:123456789012:function:validate",
        aws_request_id="5582815e-1aea-5adf-0000-000000000000",
    )
    result = handler["lambda_handler"](load("validate_upload_s3_test_event.json"), context)
    assert result == {"results": []}
