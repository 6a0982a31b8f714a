"""The held-out set at validation: which file the evaluation answers, its checks and
leakage, and what an alias without one means."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from sft_pipeline.cli import EXIT_VALID, main
from sft_pipeline.jobs import UploadRef, WorkflowRequest
from sft_pipeline.pipeline.validate_upload import (
    ValidateUploadPorts,
    ValidateUploadResult,
    validate_upload,
)
from sft_pipeline.settings import JobDefaultsSettings
from tests.conftest import as_lines, chat, good_examples
from tests.fakes import FakeBucket, FakeNotifier, FakeWorkflow, InMemoryRegistry

BUCKET = "training-bucket"
TRAINING_KEY = "training/support.jsonl"
EVAL_KEY = "eval/heldout.jsonl"
VALIDATION_KEY = "validation/valid.jsonl"
SETTINGS = JobDefaultsSettings()


class Run:
    def __init__(self, metadata: dict[str, str], **files: bytes) -> None:
        self.bucket = FakeBucket(metadata=metadata)
        self.bucket.objects[(BUCKET, TRAINING_KEY)] = as_lines(good_examples(30))
        for key, body in files.items():
            self.bucket.objects[(BUCKET, key)] = body
        self.registry, self.workflow, self.notifier = (
            InMemoryRegistry(),
            FakeWorkflow(),
            FakeNotifier(),
        )
        self.upload = UploadRef(bucket=BUCKET, key=TRAINING_KEY, version_id="v1")
        self.result: ValidateUploadResult = validate_upload(
            self.upload,
            ValidateUploadPorts(self.bucket, self.registry, self.workflow, self.notifier),
            SETTINGS,
        )

    @property
    def report(self) -> dict[str, Any]:
        key = self.result.report_uri.split("/", 3)[3]
        loaded: dict[str, Any] = json.loads(self.bucket.objects[(BUCKET, key)])
        return loaded

    @property
    def request(self) -> WorkflowRequest:
        [request] = self.workflow.started.values()
        return request

    def codes(self, kind: str) -> dict[str, int]:
        counts: dict[str, int] = self.report[f"{kind}_counts"]
        return counts


def held_out(n: int, start: int = 100) -> bytes:
    return as_lines(
        chat(f"Held-out question {i}?", f"Held-out answer {i}.") for i in range(start, start + n)
    )


def test_the_eval_file_is_checked_and_named_in_the_request() -> None:
    run = Run({"eval-key": EVAL_KEY, "alias": "support-bot"}, **{EVAL_KEY: held_out(8)})
    assert run.result.status == "launched"
    assert run.request.eval_key == EVAL_KEY
    assert run.report["evaluation_file"]["name"].endswith(EVAL_KEY)
    assert run.report["stats"]["evaluation_examples"] == 8
    assert "no_evaluation_set" not in run.codes("warning")


def test_the_eval_file_comes_before_the_validation_file() -> None:
    run = Run(
        {"eval-key": EVAL_KEY, "validation-key": VALIDATION_KEY},
        **{EVAL_KEY: held_out(8), VALIDATION_KEY: held_out(5, start=200)},
    )
    assert (run.request.validation_key, run.request.eval_key) == (VALIDATION_KEY, EVAL_KEY)


def test_without_an_eval_file_the_validation_file_is_the_held_out_set() -> None:
    run = Run({"validation-key": VALIDATION_KEY}, **{VALIDATION_KEY: held_out(5)})
    assert run.request.eval_key == VALIDATION_KEY


def test_without_an_eval_file_the_split_off_validation_file_is_the_held_out_set() -> None:
    run = Run({"holdout-percent": "40", "alias": "support-bot"})
    assert run.request.validation_key is not None
    assert run.request.eval_key == run.request.validation_key
    assert "no_evaluation_set" not in run.codes("warning")


def test_no_held_out_set_and_an_alias_warns_that_nothing_is_promoted() -> None:
    run = Run({"alias": "support-bot"})
    assert run.result.status == "launched" and run.request.eval_key is None
    [finding] = [w for w in run.report["warnings"] if w["code"] == "no_evaluation_set"]
    assert "registered but not promoted to support-bot" in finding["message"]


def test_no_held_out_set_and_no_alias_is_no_news() -> None:
    run = Run({})
    assert run.request.eval_key is None
    assert "no_evaluation_set" not in run.codes("warning")


def test_a_bad_eval_file_rejects_the_upload_with_its_line_numbers() -> None:
    body = held_out(3) + b"not json\n" + as_lines([chat("A question with no answer?", None)])
    run = Run({"eval-key": EVAL_KEY}, **{EVAL_KEY: body})
    assert run.result.status == "rejected" and run.workflow.started == {}
    errors = {(e["code"], e["line"], e["file"]) for e in run.report["errors"]}
    assert ("invalid_json", 4, "evaluation") in errors
    [sent] = run.notifier.sent
    assert sent.error_code == "invalid_training_file"
    text_key = run.result.report_uri.split("/", 3)[3].removesuffix(".json") + ".txt"
    assert "evaluation line 4" in run.bucket.objects[(BUCKET, text_key)].decode()


def test_an_eval_example_without_a_final_assistant_reply_has_no_reference() -> None:
    tail = chat("Where is my order?", "Let me check.")
    tail["messages"].append({"role": "user", "content": "Thanks!"})
    run = Run({"eval-key": EVAL_KEY}, **{EVAL_KEY: held_out(3) + as_lines([tail])})
    assert run.result.status == "rejected"
    [finding] = [e for e in run.report["errors"] if e["code"] == "no_reference_answer"]
    assert (finding["line"], finding["file"]) == (4, "evaluation")


def test_eval_prompts_seen_in_training_are_reported_as_leakage() -> None:
    leaked = as_lines(good_examples(30)[5:7])  # training lines 6 and 7
    run = Run({"eval-key": EVAL_KEY}, **{EVAL_KEY: held_out(3) + leaked})
    assert run.result.status == "launched"
    leaks = [w for w in run.report["warnings"] if w["code"] == "evaluation_leakage"]
    assert [(w["line"], w["file"]) for w in leaks] == [(4, "evaluation"), (5, "evaluation")]
    assert "(line 6)" in leaks[0]["message"] and "evaluation's scores" in leaks[0]["message"]
    assert "validation_leakage" not in run.codes("warning")


@pytest.mark.parametrize(
    ("value", "problem"),
    [("eval/missing.jsonl", "eval-key: there is no object s3://"), ("../x", "eval-key: must be")],
)
def test_a_missing_or_odd_eval_key_is_refused(value: str, problem: str) -> None:
    run = Run({"eval-key": value})
    assert run.result.status == "rejected"
    [sent] = run.notifier.sent
    assert sent.error_code == "invalid_job_setting" and problem in (sent.error_message or "")


def long_held_out(n: int) -> bytes:
    question = "Which of our tents suits a family of four on a windy coast in spring? " * 20
    return as_lines(chat(f"{i}: {question}", f"Held-out answer {i}.") for i in range(n))


def test_the_evaluation_is_priced_in_the_report() -> None:
    run = Run({"eval-key": EVAL_KEY}, **{EVAL_KEY: held_out(8)})
    estimate = run.report["estimate"]
    assert (estimate["evaluation_examples"], estimate["evaluation_contenders"]) == (8, 3)
    assert estimate["evaluation_cost_usd"] > 0
    assert any("a champion" in note for note in estimate["notes"])
    text_key = run.result.report_uri.split("/", 3)[3].removesuffix(".json") + ".txt"
    text = run.bucket.objects[(BUCKET, text_key)].decode()
    assert "evaluation (estimated) $0.00 for 8 held-out examples x 3 contenders" in text
    assert "evaluation examples    8" in text


def test_a_split_held_out_set_is_priced_for_its_share_of_the_examples() -> None:
    run = Run({"holdout-percent": "40"})
    validation_key = run.request.validation_key
    assert validation_key is not None
    held_out_lines = run.bucket.objects[(BUCKET, validation_key)].count(b"\n")
    assert run.report["estimate"]["evaluation_examples"] == held_out_lines


def test_no_held_out_set_is_not_priced() -> None:
    run = Run({})
    assert run.report["estimate"]["evaluation_cost_usd"] is None
    assert run.report["estimate"]["evaluation_examples"] is None


def test_the_cost_cap_counts_the_evaluation() -> None:
    metadata = {"eval-key": EVAL_KEY, "base-model": "gpt-4.1-2025-04-14"}
    files = {EVAL_KEY: long_held_out(300)}
    priced = Run(metadata, **files).report["estimate"]
    training, evaluation = priced["estimated_cost_usd"], priced["evaluation_cost_usd"]
    assert evaluation > 0

    between = f"{training + evaluation / 2:.6f}"  # the training fits, training + evaluation not
    run = Run({**metadata, "cost-cap-usd": between}, **files)
    assert run.result.status == "rejected"
    [sent] = run.notifier.sent
    assert sent.error_code == "cost_cap_exceeded"
    assert f"(training ${training:,.2f} + evaluation ${evaluation:,.2f})" in (
        sent.error_message or ""
    )
    above = f"{training + evaluation * 2:.6f}"
    assert Run({**metadata, "cost-cap-usd": above}, **files).result.status == "launched"


@pytest.mark.parametrize(
    "eval_body",
    [held_out(8), held_out(3) + b"not json\n", held_out(2) + as_lines(good_examples(30)[:2])],
    ids=["clean", "a bad line", "leaked prompts"],
)
def test_sft_validate_checks_an_eval_file_as_the_upload_does(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], eval_body: bytes
) -> None:
    training, evaluation = tmp_path / "train.jsonl", tmp_path / "heldout.jsonl"
    training.write_bytes(as_lines(good_examples(30)))
    evaluation.write_bytes(eval_body)
    exit_status = main(
        ["validate", str(training), "--eval-file", str(evaluation), "--json", "--no-progress"]
    )
    cli_report = json.loads(capsys.readouterr().out)

    run = Run({"eval-key": EVAL_KEY}, **{EVAL_KEY: eval_body})
    assert (exit_status == EXIT_VALID) == (run.result.status == "launched")
    assert cli_report["stats"]["evaluation_examples"] == run.report["stats"]["evaluation_examples"]
    for kind in ("error", "warning"):
        assert cli_report[f"{kind}_counts"] == run.codes(kind)
    assert [(f["code"], f["line"], f["file"]) for f in cli_report["errors"]] == [
        (f["code"], f["line"], f["file"]) for f in run.report["errors"]
    ]
