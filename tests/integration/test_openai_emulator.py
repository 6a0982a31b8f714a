"""The OpenAI emulator, driven by the official SDK over real HTTP.

Every answer is checked against the SDK's own response types in pydantic strict
mode, with no field the type does not declare, and against OpenAI's OpenAPI
document, so the emulator cannot drift from what the real API sends without a
test noticing.
"""

from __future__ import annotations

import functools
import json
import math
import re
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import openai
import pytest
import yaml
from jsonschema import Draft202012Validator
from openai import OpenAI
from openai.types import FileDeleted, FileObject, Model, Upload
from openai.types.chat import ChatCompletion
from openai.types.fine_tuning import FineTuningJob, FineTuningJobEvent
from openai.types.fine_tuning.jobs import FineTuningJobCheckpoint
from openai.types.uploads import UploadPart
from pydantic import BaseModel

from sft_local.emulated_answers import generic_reply
from sft_local.openai_emulator import (
    WIND_DOWN_SHUTDOWN_DATE,
    JobTimeline,
    OpenAIEmulator,
)
from sft_local.openai_emulator.app import ApiResponse, EmulatorApp
from sft_pipeline.providers.base import ProviderPermanentError
from sft_pipeline.providers.openai_provider import OpenAIProvider

START = 1_750_000_000.0
TIMELINE = JobTimeline(validating=10, queued=20, running=60)
UNTIL_DONE = TIMELINE.validating + TIMELINE.queued + TIMELINE.running
JOB_CREATION = "POST /fine_tuning/jobs"
RESULTS_HEADER = "step,train_loss,train_accuracy,valid_loss,valid_mean_token_accuracy"

Parsed = TypeVar("Parsed", bound=BaseModel)


def strict(model: type[Parsed], raw: object) -> Parsed:
    """Parse ``raw`` as the SDK type in strict mode and refuse undeclared fields at any depth."""
    parsed = model.model_validate(raw, strict=True)
    _assert_no_extra_fields(parsed)
    return parsed


def _assert_no_extra_fields(value: object) -> None:
    if isinstance(value, BaseModel):
        assert not value.model_extra, f"{type(value).__name__} got {value.model_extra}"
        for name in type(value).model_fields:
            _assert_no_extra_fields(getattr(value, name))
    elif isinstance(value, list):
        for item in value:
            _assert_no_extra_fields(item)


def examples_jsonl(count: int) -> bytes:
    rows = (
        {
            "messages": [
                {"role": "user", "content": f"Which tent suits trip {i}?"},
                {"role": "assistant", "content": f"The two-person tent suits trip {i}."},
            ]
        }
        for i in range(count)
    )
    return b"".join(json.dumps(row).encode() + b"\n" for row in rows)


TRAINING_DATA = examples_jsonl(12)


def tool_examples_jsonl(count: int) -> bytes:
    rows = (
        {
            "messages": [
                {"role": "user", "content": f"Is order {i} shipped?"},
                {
                    "role": "assistant",
                    "tool_calls": [
                        {
                            "id": f"call_{i}",
                            "type": "function",
                            "function": {"name": "order_status", "arguments": f'{{"order": {i}}}'},
                        }
                    ],
                },
            ],
            "tools": [{"type": "function", "function": {"name": "order_status"}}],
        }
        for i in range(count)
    )
    return b"".join(json.dumps(row).encode() + b"\n" for row in rows)


@pytest.fixture
def emulator() -> Iterator[OpenAIEmulator]:
    with OpenAIEmulator(timeline=TIMELINE, clock=lambda: START, chat_latency=0) as running:
        yield running


@pytest.fixture
def client(emulator: OpenAIEmulator) -> OpenAI:
    return OpenAI(base_url=emulator.base_url, api_key="test", max_retries=0)


@pytest.fixture
def training_file(client: OpenAI) -> FileObject:
    return client.files.create(file=("train.jsonl", TRAINING_DATA), purpose="fine-tune")


def create_job(client: OpenAI, training_file_id: str, **options: Any) -> FineTuningJob:
    return client.fine_tuning.jobs.create(
        model="gpt-4o-mini", training_file=training_file_id, **options
    )


def error_of(exc: openai.APIStatusError) -> dict[str, Any]:
    body = exc.response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"message", "type", "param", "code"}
    error: dict[str, Any] = body["error"]
    return error


# Files and uploads


def test_file_upload_retrieve_download_and_delete(client: OpenAI) -> None:
    # Raw CR/LF runs and non-UTF-8 bytes must survive the multipart round trip untouched.
    content = TRAINING_DATA + b"caf\xc3\xa9\r\n\r\n--\xff\r\n"
    raw = client.files.with_raw_response.create(file=("train.jsonl", content), purpose="fine-tune")
    created = strict(FileObject, json.loads(raw.text))
    assert raw.headers["x-request-id"].startswith("req_")
    assert created.id.startswith("file-")
    assert (created.bytes, created.filename, created.purpose) == (
        len(content),
        "train.jsonl",
        "fine-tune",
    )
    assert created.created_at == int(START)

    retrieved = client.files.with_raw_response.retrieve(created.id)
    assert strict(FileObject, json.loads(retrieved.text)) == created
    assert client.files.content(created.id).content == content

    deleted = client.files.with_raw_response.delete(created.id)
    assert strict(FileDeleted, json.loads(deleted.text)) == FileDeleted(
        id=created.id, deleted=True, object="file"
    )
    with pytest.raises(openai.NotFoundError) as missing:
        client.files.retrieve(created.id)
    assert error_of(missing.value)["param"] == "id"


def test_fine_tune_upload_must_be_jsonl(client: OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as rejected:
        client.files.create(file=("train.csv", b"a,b\n"), purpose="fine-tune")
    error = error_of(rejected.value)
    assert error["param"] == "file"
    assert error["type"] == "invalid_request_error"
    assert ".jsonl" in error["message"]


def test_upload_parts_complete_into_a_file(client: OpenAI) -> None:
    first, second = TRAINING_DATA[:500], TRAINING_DATA[500:]
    raw = client.uploads.with_raw_response.create(
        filename="train.jsonl",
        purpose="fine-tune",
        bytes=len(TRAINING_DATA),
        mime_type="text/jsonl",
    )
    upload = strict(Upload, json.loads(raw.text))
    assert (upload.status, upload.file) == ("pending", None)
    assert upload.expires_at == upload.created_at + 3600

    part_ids = []
    for chunk in (first, second):
        part = client.uploads.parts.with_raw_response.create(upload_id=upload.id, data=chunk)
        parsed_part = strict(UploadPart, json.loads(part.text))
        assert parsed_part.upload_id == upload.id
        part_ids.append(parsed_part.id)

    with pytest.raises(openai.BadRequestError) as short:
        client.uploads.complete(upload_id=upload.id, part_ids=part_ids[:1])
    assert error_of(short.value)["param"] == "part_ids"

    completed = client.uploads.with_raw_response.complete(upload_id=upload.id, part_ids=part_ids)
    done = strict(Upload, json.loads(completed.text))
    assert done.status == "completed"
    assert done.file is not None
    assert (done.file.bytes, done.file.filename) == (len(TRAINING_DATA), "train.jsonl")
    assert client.files.content(done.file.id).content == TRAINING_DATA


def test_upload_file_chunked_helper_and_cancel(emulator: OpenAIEmulator, client: OpenAI) -> None:
    uploaded = client.uploads.upload_file_chunked(
        file=TRAINING_DATA,
        filename="train.jsonl",
        bytes=len(TRAINING_DATA),
        mime_type="text/jsonl",
        purpose="fine-tune",
        part_size=256,
    )
    assert uploaded.file is not None
    assert client.files.content(uploaded.file.id).content == TRAINING_DATA
    part_requests = emulator.requests_to("POST /uploads/{upload_id}/parts")
    assert len(part_requests) == math.ceil(len(TRAINING_DATA) / 256)

    pending = client.uploads.create(
        filename="more.jsonl", purpose="fine-tune", bytes=10, mime_type="text/jsonl"
    )
    cancelled = client.uploads.with_raw_response.cancel(pending.id)
    assert strict(Upload, json.loads(cancelled.text)).status == "cancelled"
    with pytest.raises(openai.BadRequestError):
        client.uploads.parts.create(upload_id=pending.id, data=b"0123456789")


# Fine-tuning jobs


def test_job_lifecycle_on_a_manual_clock(
    emulator: OpenAIEmulator, client: OpenAI, training_file: FileObject
) -> None:
    validation_file = client.files.create(
        file=("valid.jsonl", examples_jsonl(3)), purpose="fine-tune"
    )
    raw = client.fine_tuning.jobs.with_raw_response.create(
        model="gpt-4o-mini",
        training_file=training_file.id,
        validation_file=validation_file.id,
        suffix="tents",
        seed=7,
        metadata={"pipeline_run": "run-1"},
        method={"type": "supervised", "supervised": {"hyperparameters": {"batch_size": 2}}},
        integrations=[{"type": "wandb", "wandb": {"project": "tents"}}],
    )
    job = strict(FineTuningJob, json.loads(raw.text))
    assert job.id.startswith("ftjob-")
    assert (job.status, job.model, job.seed) == ("validating_files", "gpt-4o-mini-2024-07-18", 7)
    assert (job.fine_tuned_model, job.finished_at, job.trained_tokens) == (None, None, None)
    assert job.hyperparameters.n_epochs == "auto"
    assert job.hyperparameters.batch_size == 2
    assert job.result_files == []
    assert job.integrations is not None and job.integrations[0].wandb.project == "tents"

    def retrieve() -> FineTuningJob:
        return strict(
            FineTuningJob,
            json.loads(client.fine_tuning.jobs.with_raw_response.retrieve(job.id).text),
        )

    emulator.advance(TIMELINE.validating - 0.1)
    assert retrieve().status == "validating_files"
    emulator.advance(0.1)
    queued = retrieve()
    assert queued.status == "queued"
    # "auto" resolves once the files are validated: 12 examples -> ceil(100 / 12) epochs.
    assert queued.hyperparameters.model_dump() == {
        "n_epochs": 9,
        "batch_size": 2,
        "learning_rate_multiplier": 2.0,
    }
    assert queued.method is not None
    assert queued.method.model_dump(exclude_none=True) == {
        "type": "supervised",
        "supervised": {"hyperparameters": queued.hyperparameters.model_dump()},
    }

    emulator.advance(TIMELINE.queued + TIMELINE.running / 2)
    running = retrieve()
    assert running.status == "running"
    assert running.estimated_finish == int(START + UNTIL_DONE)
    assert running.fine_tuned_model is None
    events = client.fine_tuning.jobs.list_events(job.id, limit=100)
    newest_metrics = next(event.data for event in events if event.type == "metrics")
    total_steps = 9 * math.ceil(12 / 2)
    assert isinstance(newest_metrics, dict)
    assert newest_metrics["step"] == total_steps // 2, "half the running time, half the steps"
    assert newest_metrics["total_steps"] == total_steps
    assert {"train_loss", "valid_loss", "valid_mean_token_accuracy"} <= newest_metrics.keys()

    emulator.advance(TIMELINE.running / 2)
    done = retrieve()
    assert done.status == "succeeded"
    assert done.fine_tuned_model is not None
    assert re.fullmatch(
        r"ft:gpt-4o-mini-2024-07-18:emulator:tents:[A-Za-z0-9]{8}", done.fine_tuned_model
    )
    assert done.finished_at == int(START + UNTIL_DONE)
    assert done.estimated_finish is None
    assert done.trained_tokens == math.ceil(len(TRAINING_DATA) / 4) * 9
    assert done.metadata == {"pipeline_run": "run-1"}

    results = client.files.retrieve(done.result_files[0])
    assert results.purpose == "fine-tune-results"
    csv_lines = client.files.content(results.id).text.splitlines()
    assert csv_lines[0] == RESULTS_HEADER
    assert len(csv_lines) == 1 + total_steps
    last_row = csv_lines[-1].split(",")
    assert last_row[0] == str(total_steps)
    assert all(last_row), "validation columns are filled when there is a validation file"
    assert float(last_row[1]) < float(csv_lines[1].split(",")[1]), "the loss goes down"


def test_job_events_are_newest_first_and_typed(
    emulator: OpenAIEmulator, client: OpenAI, training_file: FileObject
) -> None:
    job = create_job(
        client,
        training_file.id,
        method={
            "type": "supervised",
            "supervised": {"hyperparameters": {"n_epochs": 2}},
        },
    )
    emulator.advance(UNTIL_DONE)

    raw = client.fine_tuning.jobs.with_raw_response.list_events(job.id, limit=100)
    page = json.loads(raw.text)
    assert (page["object"], page["has_more"]) == ("list", False)
    events = [strict(FineTuningJobEvent, event) for event in page["data"]]
    times = [event.created_at for event in events]
    assert times == sorted(times, reverse=True)
    assert events[-1].message == f"Created fine-tuning job: {job.id}"
    assert events[0].message == "The job has successfully completed"
    assert {event.level for event in events} == {"info"}
    metric = next(event for event in events if event.type == "metrics")
    assert isinstance(metric.data, dict)
    assert {"step", "train_loss", "total_steps"} <= metric.data.keys()
    assert "valid_loss" not in metric.data, "no validation file, no validation loss"
    assert metric.message.startswith(f"Step {metric.data['step']}/{metric.data['total_steps']}:")

    first_page = client.fine_tuning.jobs.list_events(job.id, limit=3)
    assert [event.id for event in first_page.data] == [event.id for event in events[:3]]
    assert first_page.has_more
    after = client.fine_tuning.jobs.list_events(job.id, limit=3, after=events[2].id)
    assert [event.id for event in after.data] == [event.id for event in events[3:6]]


def test_checkpoints_cover_the_last_three_epochs(
    emulator: OpenAIEmulator, client: OpenAI, training_file: FileObject
) -> None:
    job = create_job(
        client,
        training_file.id,
        method={
            "type": "supervised",
            "supervised": {"hyperparameters": {"n_epochs": 4, "batch_size": 3}},
        },
    )
    emulator.advance(UNTIL_DONE)
    done = client.fine_tuning.jobs.retrieve(job.id)

    raw = json.loads(client.fine_tuning.jobs.checkpoints.with_raw_response.list(job.id).text)
    checkpoints = [strict(FineTuningJobCheckpoint, item) for item in raw["data"]]
    assert [checkpoint.step_number for checkpoint in checkpoints] == [16, 12, 8]
    assert (raw["first_id"], raw["last_id"]) == (checkpoints[0].id, checkpoints[-1].id)
    assert checkpoints[0].fine_tuned_model_checkpoint == f"{done.fine_tuned_model}:ckpt-step-16"
    assert all(checkpoint.fine_tuning_job_id == job.id for checkpoint in checkpoints)
    assert checkpoints[0].metrics.step == 16
    assert checkpoints[0].metrics.train_loss is not None


def test_job_without_suffix_leaves_the_slot_empty(
    emulator: OpenAIEmulator, client: OpenAI, training_file: FileObject
) -> None:
    job = client.fine_tuning.jobs.create(model="gpt-4.1-mini", training_file=training_file.id)
    emulator.advance(UNTIL_DONE)
    done = client.fine_tuning.jobs.retrieve(job.id)
    assert done.fine_tuned_model is not None
    assert re.fullmatch(
        r"ft:gpt-4\.1-mini-2025-04-14:emulator::[A-Za-z0-9]{8}", done.fine_tuned_model
    )
    csv_row = client.files.content(done.result_files[0]).text.splitlines()[1]
    assert csv_row.endswith(",,"), "validation columns stay empty without a validation file"


def test_dpo_job_resolves_beta(
    emulator: OpenAIEmulator, client: OpenAI, training_file: FileObject
) -> None:
    job = create_job(client, training_file.id, method={"type": "dpo"})
    assert job.method is not None
    assert job.method.model_dump(exclude_none=True) == {
        "type": "dpo",
        "dpo": {
            "hyperparameters": {
                "n_epochs": "auto",
                "batch_size": "auto",
                "learning_rate_multiplier": "auto",
                "beta": "auto",
            }
        },
    }
    emulator.advance(TIMELINE.validating)
    raw = client.fine_tuning.jobs.with_raw_response.retrieve(job.id)
    queued = strict(FineTuningJob, json.loads(raw.text))
    assert queued.method is not None
    assert queued.method.model_dump(exclude_none=True)["dpo"]["hyperparameters"] == {
        "n_epochs": 9,
        "batch_size": 1,
        "learning_rate_multiplier": 2.0,
        "beta": 0.1,
    }


def test_list_jobs_filters_on_metadata_and_pages_newest_first(
    client: OpenAI, training_file: FileObject
) -> None:
    first = create_job(client, training_file.id, metadata={"pipeline_run": "a", "team": "x"})
    second = create_job(client, training_file.id, metadata={"pipeline_run": "b"})
    third = create_job(client, training_file.id)

    raw = json.loads(client.fine_tuning.jobs.with_raw_response.list(limit=2).text)
    assert set(raw) == {"object", "data", "has_more"}
    assert [strict(FineTuningJob, job).id for job in raw["data"]] == [third.id, second.id]
    assert raw["has_more"] is True
    rest = client.fine_tuning.jobs.list(limit=2, after=second.id)
    assert ([job.id for job in rest.data], rest.has_more) == ([first.id], False)

    by_run = client.fine_tuning.jobs.list(metadata={"pipeline_run": "a"})
    assert [job.id for job in by_run.data] == [first.id]
    both_keys = client.fine_tuning.jobs.list(metadata={"pipeline_run": "a", "team": "y"})
    assert both_keys.data == []
    without = client.fine_tuning.jobs.list(extra_query={"metadata": "null"})
    assert [job.id for job in without.data] == [third.id]


@pytest.mark.parametrize("suffix", ["", "x" * 65])
def test_suffix_outside_1_to_64_chars_is_a_400(
    client: OpenAI, training_file: FileObject, suffix: str
) -> None:
    with pytest.raises(openai.BadRequestError) as rejected:
        create_job(client, training_file.id, suffix=suffix)
    assert rejected.value.status_code == 400
    assert error_of(rejected.value)["param"] == "suffix"
    assert rejected.value.param == "suffix"


def test_suffix_of_64_chars_is_accepted(client: OpenAI, training_file: FileObject) -> None:
    assert create_job(client, training_file.id, suffix="x" * 64).status == "validating_files"


@pytest.mark.parametrize(
    ("options", "param"),
    [
        ({"training_file": "file-unknown"}, "training_file"),
        ({"validation_file": "file-unknown"}, "validation_file"),
        ({"model": "gpt-2"}, "model"),
        ({"metadata": {str(i): "v" for i in range(17)}}, "metadata"),
        (
            {"method": {"type": "supervised", "supervised": {"hyperparameters": {"n_epochs": 0}}}},
            "method.supervised.hyperparameters.n_epochs",
        ),
        ({"extra_body": {"colour": "blue"}}, "colour"),
    ],
)
def test_invalid_job_requests_name_the_param(
    emulator: OpenAIEmulator,
    client: OpenAI,
    training_file: FileObject,
    options: dict[str, Any],
    param: str,
) -> None:
    with pytest.raises(openai.BadRequestError) as rejected:
        client.fine_tuning.jobs.create(
            **{"model": "gpt-4o-mini", "training_file": training_file.id, **options}
        )
    assert error_of(rejected.value)["param"] == param
    assert client.fine_tuning.jobs.list().data == []


def test_cancel_stops_a_running_job(
    emulator: OpenAIEmulator, client: OpenAI, training_file: FileObject
) -> None:
    job = create_job(client, training_file.id)
    emulator.advance(TIMELINE.validating + TIMELINE.queued + 1)
    raw = client.fine_tuning.jobs.with_raw_response.cancel(job.id)
    cancelled = strict(FineTuningJob, json.loads(raw.text))
    assert (cancelled.status, cancelled.estimated_finish) == ("cancelled", None)

    emulator.advance(TIMELINE.running)
    later = client.fine_tuning.jobs.retrieve(job.id)
    assert (later.status, later.fine_tuned_model) == ("cancelled", None)
    with pytest.raises(openai.BadRequestError):
        client.fine_tuning.jobs.cancel(job.id)
    with pytest.raises(openai.NotFoundError):
        client.fine_tuning.jobs.cancel("ftjob-unknown")


def test_injected_failure_fails_the_job_after_validation(
    emulator: OpenAIEmulator, client: OpenAI, training_file: FileObject
) -> None:
    emulator.faults.fail_next_job(
        code="invalid_training_file",
        message="Example 3 has no assistant message.",
        param="training_file",
    )
    failing = create_job(client, training_file.id)
    healthy = create_job(client, training_file.id)
    emulator.advance(TIMELINE.validating)

    failed = strict(
        FineTuningJob,
        json.loads(client.fine_tuning.jobs.with_raw_response.retrieve(failing.id).text),
    )
    assert failed.status == "failed"
    assert failed.error is not None
    assert (failed.error.code, failed.error.message, failed.error.param) == (
        "invalid_training_file",
        "Example 3 has no assistant message.",
        "training_file",
    )
    assert failed.finished_at == int(START + TIMELINE.validating)
    newest_event = client.fine_tuning.jobs.list_events(failing.id, limit=1).data[0]
    assert (newest_event.level, newest_event.message) == ("error", failed.error.message)
    assert client.fine_tuning.jobs.retrieve(healthy.id).status == "queued"


def test_too_few_examples_fail_validation(emulator: OpenAIEmulator, client: OpenAI) -> None:
    small = client.files.create(file=("small.jsonl", examples_jsonl(3)), purpose="fine-tune")
    job = create_job(client, small.id)
    emulator.advance(TIMELINE.validating)
    failed = client.fine_tuning.jobs.retrieve(job.id)
    assert failed.status == "failed"
    assert failed.error is not None
    assert (failed.error.code, failed.error.param) == ("invalid_training_file", "training_file")
    assert "at least 10" in failed.error.message


# Models and chat


def test_models_carry_shutdown_dates(
    emulator: OpenAIEmulator, client: OpenAI, training_file: FileObject
) -> None:
    raw = json.loads(client.models.with_raw_response.list().text)
    assert set(raw) == {"object", "data"}
    listed = {model.id: model for model in (strict(Model, item) for item in raw["data"])}
    for snapshot in (
        "gpt-4o-2024-08-06",
        "gpt-4o-mini-2024-07-18",
        "gpt-4.1-2025-04-14",
        "gpt-4.1-mini-2025-04-14",
    ):
        assert listed[snapshot].shutdown_date == WIND_DOWN_SHUTDOWN_DATE == "2027-01-14"
    assert not any(name.startswith("ft:") for name in listed)

    job = create_job(client, training_file.id, suffix="tents")
    emulator.advance(UNTIL_DONE)
    fine_tuned = client.fine_tuning.jobs.retrieve(job.id).fine_tuned_model
    assert fine_tuned is not None
    model = strict(Model, json.loads(client.models.with_raw_response.retrieve(fine_tuned).text))
    assert (model.id, model.shutdown_date, model.owned_by) == (
        fine_tuned,
        "2027-01-14",
        "org-emulator",
    )
    assert fine_tuned in {model.id for model in client.models.list()}

    with pytest.raises(openai.NotFoundError) as missing:
        client.models.retrieve("gpt-2")
    assert error_of(missing.value)["code"] == "model_not_found"


def test_chat_with_the_fine_tuned_model_only_after_success(
    emulator: OpenAIEmulator, client: OpenAI, training_file: FileObject
) -> None:
    job = create_job(client, training_file.id, suffix="tents")
    emulator.advance(UNTIL_DONE - 1)
    name = "ft:gpt-4o-mini-2024-07-18:emulator:tents:"
    with pytest.raises(openai.NotFoundError) as not_yet:
        client.chat.completions.create(model=name, messages=[{"role": "user", "content": "Hi"}])
    assert error_of(not_yet.value)["code"] == "model_not_found"

    emulator.advance(1)
    fine_tuned = client.fine_tuning.jobs.retrieve(job.id).fine_tuned_model
    assert fine_tuned is not None
    raw = client.chat.completions.with_raw_response.create(
        model=fine_tuned,
        messages=[
            {"role": "system", "content": "You sell tents."},
            {"role": "user", "content": "Which tent for two?"},
        ],
    )
    completion = strict(ChatCompletion, json.loads(raw.text))
    choice = completion.choices[0]
    # Every example matches as well as the first one, which wins the tie.
    assert choice.message.content == "The two-person tent suits trip 0."
    assert (choice.finish_reason, choice.message.role, completion.model) == (
        "stop",
        "assistant",
        fine_tuned,
    )
    assert completion.usage is not None
    assert completion.usage.total_tokens == (
        completion.usage.prompt_tokens + completion.usage.completion_tokens
    )
    assert completion.usage.prompt_tokens > 0


def test_chat_with_a_base_model_alias_reports_the_snapshot(client: OpenAI) -> None:
    completion = client.chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": [{"type": "text", "text": "Hello"}]}],
    )
    assert completion.model == "gpt-4o-mini-2024-07-18"
    assert completion.choices[0].message.content == generic_reply("Hello")
    with pytest.raises(openai.BadRequestError) as streaming:
        client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "Hi"}], stream=True
        )
    assert error_of(streaming.value)["param"] == "stream"


# Faults


def test_rate_limit_carries_retry_after_then_recovers(
    emulator: OpenAIEmulator, client: OpenAI
) -> None:
    emulator.faults.rate_limit(retry_after=2, route="GET /models")
    with pytest.raises(openai.RateLimitError) as limited:
        client.models.list()
    assert limited.value.response.headers["retry-after"] == "2"
    assert limited.value.code == "rate_limit_exceeded"
    assert limited.value.request_id is not None
    assert client.models.list().data


def test_sdk_retries_a_rate_limit_after_the_delay_it_is_told(emulator: OpenAIEmulator) -> None:
    emulator.faults.rate_limit(times=2, retry_after=0.01)
    retrying = OpenAI(base_url=emulator.base_url, api_key="test", max_retries=2)
    assert retrying.models.list().data
    assert [request.status for request in emulator.requests] == [429, 429, 200]


def test_daily_cap_is_not_retried_by_the_sdk(
    emulator: OpenAIEmulator, training_file: FileObject
) -> None:
    emulator.faults.daily_rate_limit()
    retrying = OpenAI(base_url=emulator.base_url, api_key="test", max_retries=2)
    with pytest.raises(openai.RateLimitError) as capped:
        create_job(retrying, training_file.id)
    assert capped.value.code == "daily_rate_limit_exceeded"
    assert float(capped.value.response.headers["retry-after"]) > 120
    assert [request.status for request in emulator.requests_to(JOB_CREATION)] == [429]
    assert create_job(retrying, training_file.id).status == "validating_files"
    with pytest.raises(ValueError, match="120"):
        emulator.faults.daily_rate_limit(retry_after=60)


def test_server_errors_for_the_next_requests(emulator: OpenAIEmulator, client: OpenAI) -> None:
    emulator.faults.server_error(times=2, status=503)
    for _ in range(2):
        with pytest.raises(openai.InternalServerError) as failed:
            client.models.list()
        assert failed.value.status_code == 503
        assert error_of(failed.value)["type"] == "server_error"
    assert client.models.list().data


def test_server_error_can_forbid_sdk_retries(emulator: OpenAIEmulator) -> None:
    emulator.faults.server_error(should_retry=False)
    retrying = OpenAI(base_url=emulator.base_url, api_key="test", max_retries=2)
    with pytest.raises(openai.InternalServerError):
        retrying.models.list()
    assert [request.status for request in emulator.requests] == [500]


def test_slow_response_trips_the_client_timeout(emulator: OpenAIEmulator, client: OpenAI) -> None:
    emulator.faults.slow(5.0, route="GET /models")
    with pytest.raises(openai.APITimeoutError):
        client.with_options(timeout=0.2).models.list()
    assert client.with_options(timeout=2).models.list().data


def test_blocked_organisation_gets_403_on_job_creation(
    emulator: OpenAIEmulator, client: OpenAI, training_file: FileObject
) -> None:
    emulator.faults.block_job_creation()
    for _ in range(2):
        with pytest.raises(openai.PermissionDeniedError) as denied:
            create_job(client, training_file.id)
        assert "not available for this organization" in error_of(denied.value)["message"]
    assert client.fine_tuning.jobs.list().data == []
    emulator.faults.clear()
    assert create_job(client, training_file.id).status == "validating_files"


def test_route_faults_leave_other_routes_alone(emulator: OpenAIEmulator, client: OpenAI) -> None:
    emulator.faults.server_error(route="POST /chat/completions")
    assert client.models.list().data
    with pytest.raises(openai.InternalServerError):
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "x"}])
    with pytest.raises(ValueError, match="unknown route"):
        emulator.faults.rate_limit(route="POST /fine-tuning/jobs")


# Authentication and the request log


def test_missing_and_wrong_keys_get_401() -> None:
    with OpenAIEmulator(api_key="sk-right-key") as keyed:
        request = urllib.request.Request(keyed.base_url + "/models")
        with pytest.raises(urllib.error.HTTPError) as anonymous:
            urllib.request.urlopen(request, timeout=5)
        assert anonymous.value.code == 401
        assert anonymous.value.headers["x-request-id"].startswith("req_")
        assert json.loads(anonymous.value.read())["error"]["type"] == "invalid_request_error"

        with pytest.raises(openai.AuthenticationError) as wrong:
            OpenAI(base_url=keyed.base_url, api_key="sk-wrong-key", max_retries=0).models.list()
        assert wrong.value.code == "invalid_api_key"
        assert "sk-wrong-key" not in str(wrong.value), "the key is redacted"
        assert OpenAI(base_url=keyed.base_url, api_key="sk-right-key").models.list().data


def test_the_adapter_redacts_the_key_openai_quotes_in_its_401() -> None:
    key = "sk-proj-" + "Ab3d" * 10 + "Qx9Z"
    with OpenAIEmulator(api_key="sk-right-key") as keyed:
        with pytest.raises(openai.AuthenticationError) as quoted:
            OpenAI(base_url=keyed.base_url, api_key=key, max_retries=0).models.list()
        assert "Qx9Z" in quoted.value.message, "the emulator quotes the key as OpenAI does"
        adapter = OpenAIProvider(OpenAI(base_url=keyed.base_url, api_key=key, max_retries=0))
        with pytest.raises(ProviderPermanentError) as refused:
            adapter.find_job("dataset-1")
    assert refused.value.code == "authentication_failed"
    assert "Incorrect API key provided: sk-[redacted]." in refused.value.message
    assert "Qx9Z" not in str(refused.value)
    assert "sk-proj-Ab3d" not in str(refused.value)


def test_request_log_records_every_answer(
    emulator: OpenAIEmulator, client: OpenAI, training_file: FileObject
) -> None:
    emulator.faults.rate_limit(route=JOB_CREATION)
    with pytest.raises(openai.RateLimitError):
        create_job(client, training_file.id)
    create_job(client, training_file.id)
    with pytest.raises(openai.NotFoundError) as unknown:
        client.get("/fine_tuning/unknown", cast_to=object)
    assert "Invalid URL" in error_of(unknown.value)["message"]

    assert [request.status for request in emulator.requests_to(JOB_CREATION)] == [429, 200]
    assert [(r.method, r.path, r.route, r.status) for r in emulator.requests] == [
        ("POST", "/v1/files", "POST /files", 200),
        ("POST", "/v1/fine_tuning/jobs", JOB_CREATION, 429),
        ("POST", "/v1/fine_tuning/jobs", JOB_CREATION, 200),
        ("GET", "/v1/fine_tuning/unknown", None, 404),
    ]
    assert len({request.request_id for request in emulator.requests}) == 4


def test_runs_standalone_from_the_command_line() -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "sft_local.openai_emulator", "--port", "0", "--api-key", "k"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        base_url = process.stdout.readline().split()[-1]
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+/v1", base_url)
        models = OpenAI(base_url=base_url, api_key="k", max_retries=0).models.list()
        assert "gpt-4o-mini-2024-07-18" in {model.id for model in models}
    finally:
        process.terminate()
        process.wait(timeout=5)


# Every answer against OpenAI's own OpenAPI document (tests/data, MIT, vendored whole)

OPENAPI_DOCUMENT = Path(__file__).resolve().parents[1] / "data" / "openai-openapi.yaml"


@dataclass(frozen=True)
class Answer:
    method: str
    path: str
    status: int
    content_type: str
    body: bytes


@functools.cache
def openai_openapi() -> dict[str, Any]:
    with OPENAPI_DOCUMENT.open("rb") as document:
        loaded: dict[str, Any] = yaml.load(document, Loader=yaml.CSafeLoader)
    return _numeric_exclusive_bounds(loaded)


def _numeric_exclusive_bounds(node: Any) -> Any:
    """The document still writes some bounds the OpenAPI 3.0 way (``minimum: 0`` with
    ``exclusiveMinimum: true``); JSON Schema 2020-12, which 3.1 uses, wants the bound itself
    (``exclusiveMinimum: 0``), and would read ``true`` as 1."""
    if isinstance(node, list):
        return [_numeric_exclusive_bounds(item) for item in node]
    if not isinstance(node, dict):
        return node
    fixed = {key: _numeric_exclusive_bounds(value) for key, value in node.items()}
    for exclusive, inclusive in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
        if fixed.get(exclusive) is True and inclusive in fixed:
            fixed[exclusive] = fixed.pop(inclusive)
        elif fixed.get(exclusive) is False:
            del fixed[exclusive]
    return fixed


def documented_schema(method: str, path: str, status: int) -> dict[str, Any]:
    """The schema OpenAI documents for this answer: the operation's JSON response, or the
    error body every operation shares."""
    spec = openai_openapi()
    if status >= 400:
        schema: dict[str, Any] = {"$ref": "#/components/schemas/ErrorResponse"}
    else:
        [operation] = [
            operations[method.lower()]
            for template, operations in spec["paths"].items()
            if re.fullmatch(re.sub(r"\{[^}]+\}", "[^/]+", template), path)
        ]
        schema = operation["responses"][str(status)]["content"]["application/json"]["schema"]
    return {**schema, "components": spec["components"]}


@pytest.fixture
def answers(monkeypatch: pytest.MonkeyPatch) -> list[Answer]:
    """Every answer any emulator gives while the test runs."""
    seen: list[Answer] = []
    handle = EmulatorApp.handle

    def recording(
        app: EmulatorApp, method: str, target: str, headers: Mapping[str, str], body: bytes
    ) -> ApiResponse:
        response = handle(app, method, target, headers, body)
        path = urllib.parse.urlsplit(target).path.removeprefix("/v1")
        seen.append(Answer(method, path, response.status, response.content_type, response.body))
        return response

    monkeypatch.setattr(EmulatorApp, "handle", recording)
    return seen


def test_every_answer_matches_openais_openapi_document(
    answers: list[Answer], emulator: OpenAIEmulator, client: OpenAI
) -> None:
    # One pass over every route, with every optional part of a job filled in, and each
    # kind of error the emulator sends.
    training = client.files.create(file=("train.jsonl", TRAINING_DATA), purpose="fine-tune")
    client.files.retrieve(training.id)
    client.files.content(training.id)
    upload = client.uploads.create(
        filename="big.jsonl", purpose="fine-tune", bytes=len(TRAINING_DATA), mime_type="text/jsonl"
    )
    part = client.uploads.parts.create(upload.id, data=TRAINING_DATA)
    client.uploads.complete(upload.id, part_ids=[part.id])
    abandoned = client.uploads.create(
        filename="x.jsonl", purpose="fine-tune", bytes=1, mime_type="text/jsonl"
    )
    client.uploads.cancel(abandoned.id)
    job = create_job(
        client,
        training.id,
        validation_file=training.id,
        suffix="support",
        seed=7,
        metadata={"dataset": "support"},
        integrations=[{"type": "wandb", "wandb": {"project": "support"}}],
        method={"type": "dpo", "dpo": {"hyperparameters": {"beta": 0.2}}},
    )
    supervised = create_job(
        client,
        training.id,
        integrations=[{"type": "wandb", "wandb": {"project": "p", "tags": ["a"], "name": "n"}}],
    )
    tools = client.files.create(file=("tools.jsonl", tool_examples_jsonl(10)), purpose="fine-tune")
    tool_job = create_job(client, tools.id)
    emulator.faults.fail_next_job()
    failing = create_job(client, training.id)
    client.fine_tuning.jobs.cancel(supervised.id)
    emulator.advance(UNTIL_DONE)
    finished = client.fine_tuning.jobs.retrieve(job.id)
    client.fine_tuning.jobs.retrieve(failing.id)
    client.fine_tuning.jobs.list(metadata={"dataset": "support"})
    client.fine_tuning.jobs.list_events(job.id)
    client.fine_tuning.jobs.checkpoints.list(job.id)
    client.models.list()
    assert finished.fine_tuned_model is not None
    client.models.retrieve(finished.fine_tuned_model)
    client.chat.completions.create(
        model=finished.fine_tuned_model, messages=[{"role": "user", "content": "Hi"}]
    )
    tool_model = client.fine_tuning.jobs.retrieve(tool_job.id).fine_tuned_model
    assert tool_model is not None
    called = client.chat.completions.create(
        model=tool_model, messages=[{"role": "user", "content": "Is order 3 shipped?"}]
    )
    assert called.choices[0].finish_reason == "tool_calls"
    client.files.delete(training.id)
    emulator.faults.rate_limit(route="GET /models")
    emulator.faults.server_error(route="GET /models")
    emulator.faults.block_job_creation(times=1)
    for refused in (
        client.models.list,
        client.models.list,
        lambda: create_job(client, "file-missing"),
        lambda: client.models.retrieve("no-such-model"),
        lambda: create_job(client, "file-missing"),
        lambda: client.get("/no/such/route", cast_to=object),
    ):
        with pytest.raises(openai.APIStatusError):
            refused()
    with OpenAIEmulator(api_key="sk-right-key") as keyed, pytest.raises(openai.AuthenticationError):
        OpenAI(base_url=keyed.base_url, api_key="sk-wrong-key", max_retries=0).models.list()

    statuses = {answer.status for answer in answers}
    assert {200, 400, 401, 403, 404, 429, 500} <= statuses
    for answer in answers:
        if answer.content_type != "application/json":
            continue
        errors = [
            f"{error.json_path}: {error.message}"
            for error in Draft202012Validator(
                documented_schema(answer.method, answer.path, answer.status)
            ).iter_errors(json.loads(answer.body))
        ]
        assert not errors, f"{answer.method} {answer.path} {answer.status}: {errors}"
