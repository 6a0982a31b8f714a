"""The cloud generation's sample events, its state as the state machine carries it, and what
its notifications say by email and in Slack."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import unquote_plus

import pytest
from aws_lambda_powertools.utilities.data_classes import S3Event

from sft_pipeline.adapters.notifier import email_text, sns_message
from sft_pipeline.adapters.slack import slack_blocks
from sft_pipeline.generation.run import (
    BATCH_SIZE,
    BatchInput,
    GenerationState,
    attempts_key,
    execution_name,
    manifest_key,
    output_keys,
)
from sft_pipeline.jobs import UploadRef
from sft_pipeline.notifications import DatasetRef, Notification, Outcome, hint_for
from sft_pipeline.pipeline.failures import caught_error

pytestmark = pytest.mark.unit

EVENTS = Path(__file__).resolve().parents[2] / "events"
SPEC = UploadRef(
    bucket="sft-dev-data-123456789012-us-east-1",
    key="generation/northwind support.yaml",
    version_id="Qm9vdHN0cmFwLnNwZWMudmVyc2lvbi4x",
)


def load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((EVENTS / name).read_text())
    return data


def test_the_spec_upload_event_names_the_spec_version() -> None:
    record = next(S3Event(load("start_generation_s3_put.json")).records)
    assert unquote_plus(record.s3.get_object.key) == SPEC.key
    assert record.s3.get_object.version_id == SPEC.version_id


def test_the_batch_event_is_one_map_item_of_the_spec_run() -> None:
    item = BatchInput.model_validate(load("generate_batch.json"))
    assert item.run.spec == SPEC and item.run.run_id == SPEC.dataset_id
    assert item.batch_key == manifest_key(SPEC.dataset_id, 0, 0)
    assert attempts_key(item.batch_key).endswith("batch-0000.attempts.jsonl")


def test_the_merge_events_carry_keys_and_a_caught_error() -> None:
    state = GenerationState.model_validate(load("finish_generation.json"))
    assert state.status == "generating" and state.failure is None
    assert all(key.startswith(f"generation-runs/{SPEC.dataset_id}/") for key in state.batches)
    failed = GenerationState.model_validate(load("finish_generation_failed.json"))
    assert caught_error(failed.failure or {}) == (
        "authentication_failed",
        "Incorrect API key provided: sk-proj-****ab12.",
    )
    # The state machine carries keys, never examples: a 50,000-example run's round is small.
    big = state.model_copy(
        update={
            "batches": [manifest_key(SPEC.dataset_id, 0, n) for n in range(50_000 // BATCH_SIZE)]
        }
    )
    assert len(big.model_dump_json()) < 100 * 1024


def test_the_run_is_named_after_the_spec_version_and_writes_outside_the_triggers() -> None:
    assert execution_name(SPEC.dataset_id) == f"gen-{SPEC.dataset_id}"
    assert len(execution_name(SPEC.dataset_id)) <= 80
    reviewed = output_keys("northwind", SPEC.dataset_id, "training/", auto_train=False)
    trained = output_keys("northwind", SPEC.dataset_id, "training/", auto_train=True)
    assert trained["train"] == f"training/northwind-{SPEC.dataset_id[:8]}.jsonl"
    assert reviewed["train"].startswith("generated/")
    assert trained["eval"] == reviewed["eval"] and trained["eval"].startswith("generated/")


def generated(**changes: Any) -> Notification:
    facts: dict[str, Any] = {
        "outcome": Outcome.GENERATED,
        "dataset": DatasetRef.of(SPEC, 200),
        "provider": "openai",
        "teacher": "gpt-4.1-mini",
        "started_at": datetime(2026, 12, 1, 10, 2, tzinfo=UTC),
        "finished_at": datetime(2026, 12, 1, 10, 9, tzinfo=UTC),
        "estimated_cost_usd": 0.12,
        "actual_cost_usd": 0.06,
        "output_uri": f"s3://{SPEC.bucket}/training/northwind-c5d89794.jsonl",
        "validation_summary": "200 examples: 180 training, 20 held out; fine-tuning starts on it",
    }
    return Notification(**{**facts, **changes})


def test_a_generated_notice_names_the_spec_the_teacher_and_the_result() -> None:
    notice = generated()
    text = email_text(notice)
    assert text.startswith("Training data generated: northwind support.yaml")
    assert "Spec:" in text and "Teacher:" in text and "gpt-4.1-mini (openai)" in text
    assert "training/northwind-c5d89794.jsonl" in text
    assert "estimated $0.12, actual $0.06" in text
    assert "Base model" not in text and hint_for(notice) is None
    assert sns_message(notice)["MessageAttributes"]["status"]["StringValue"] == "generated"
    blocks = json.dumps(slack_blocks(notice))
    assert "Training data generated" in blocks and "training/northwind-c5d89794.jsonl" in blocks


@pytest.mark.parametrize(
    ("code", "hint"),
    [
        ("invalid_generation_spec", "sft generate SPEC checks a spec"),
        ("generation_cost_cap", "Raise cost-cap-usd in the spec"),
        ("generation_cost_unknown", "cost-cap-usd: 0"),
        ("generation_incomplete", "Vary the topics"),
        ("generation_invalid", "did not pass the validator"),
    ],
)
def test_a_failed_generation_says_what_to_do(code: str, hint: str) -> None:
    notice = generated(
        outcome=Outcome.GENERATION_FAILED, error_code=code, error_message="why", output_uri=None
    )
    text = email_text(notice)
    assert text.startswith("Data generation failed: northwind support.yaml")
    assert f"Error ({code}):" in text and hint in text
