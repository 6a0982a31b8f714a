"""Notification content: email text, SNS subject and publish arguments, Slack blocks, hints."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import boto3
import pytest
from moto import mock_aws
from pydantic import ValidationError

from sft_pipeline.adapters.notification_text import subject_for
from sft_pipeline.adapters.notifier import email_text, notification_from_sns, sns_message
from sft_pipeline.adapters.slack import slack_blocks
from sft_pipeline.notifications import MAX_ERROR_CHARS, DatasetRef, Notification, Outcome, hint_for
from tests.evaluation_samples import evaluation_summary

MODEL_ID = "ft:gpt-4o-mini-2024-07-18:acme:support:AbC123xy"
REPORT_URI = "s3://acme-training/reports/support-set.jsonl/v3.json"
STARTED = datetime(2026, 11, 30, 9, 12, 5, tzinfo=UTC)

DATASET = DatasetRef(
    dataset_id="ds-5f0c2a91d3",
    bucket="acme-training",
    key="training/support-set.jsonl",
    version_id="3HL4kqtJlcpX",
    examples=1204,
)


def succeeded(**changes: Any) -> Notification:
    fields: dict[str, Any] = {
        "outcome": Outcome.SUCCEEDED,
        "dataset": DATASET,
        "base_model": "gpt-4o-mini-2024-07-18",
        "job_id": "ftjob-AbC123",
        "model_id": MODEL_ID,
        "started_at": STARTED,
        "finished_at": STARTED + timedelta(hours=1, minutes=2, seconds=42),
        "trained_tokens": 1_843_210,
        "estimated_cost_usd": 5.61,
        "actual_cost_usd": 5.53,
        "train_loss": 0.2143,
        "valid_loss": 0.2871,
        "report_uri": REPORT_URI,
        "validation_summary": "VALID: 1,204 examples, 0 errors, 2 warnings",
    }
    return Notification(**(fields | changes))


def failed(error_code: str | None = "invalid_training_file", **changes: Any) -> Notification:
    fields: dict[str, Any] = {
        "outcome": Outcome.FAILED,
        "dataset": DATASET,
        "job_id": "ftjob-AbC123",
        "error_code": error_code,
        "error_message": "Example 8 message contains an invalid token: <|fim_suffix|>.",
        "report_uri": REPORT_URI,
    }
    return Notification(**(fields | changes))


def one_of_each() -> list[Notification]:
    return [
        succeeded(),
        failed(),
        failed(None, outcome=Outcome.CANCELLED, error_message=None),
        failed("timed_out", outcome=Outcome.TIMED_OUT, error_message="Ran past 24 h."),
        failed("validation_failed", outcome=Outcome.REJECTED, job_id=None),
        unreachable(),
    ]


def unreachable() -> Notification:
    return failed(
        "http_503",
        outcome=Outcome.PROVIDER_UNREACHABLE,
        started_at=STARTED,
        error_message="The last 5 checks got no answer: The server is overloaded.",
    )


def block_kit_problems(message: dict[str, Any]) -> list[str]:
    """The Block Kit limits a message breaks (Slack answers 400 invalid_blocks for any)."""
    problems: list[str] = []
    if not message["text"]:
        problems.append("no fallback text")
    if len(message["blocks"]) > 50:
        problems.append("more than 50 blocks")
    for block in message["blocks"]:
        kind = block["type"]
        if kind == "header":
            text = block["text"]
            if text["type"] != "plain_text" or not 0 < len(text["text"]) <= 150:
                problems.append(f"header text {len(text['text'])} chars")
        elif kind == "section":
            if "text" not in block and "fields" not in block:
                problems.append("section without text or fields")
            if "text" in block and not 0 < len(block["text"]["text"]) <= 3000:
                problems.append(f"section text {len(block['text']['text'])} chars")
            fields = block.get("fields", [])
            if len(fields) > 10:
                problems.append(f"{len(fields)} fields")
            problems += [
                f"field {len(f['text'])} chars" for f in fields if not 0 < len(f["text"]) <= 2000
            ]
        elif kind == "context":
            elements = block["elements"]
            if not 0 < len(elements) <= 10:
                problems.append(f"{len(elements)} context elements")
            problems += [
                f"context element {len(e['text'])} chars"
                for e in elements
                if not 0 < len(e["text"]) <= 3000
            ]
        else:
            problems.append(f"unexpected block {kind}")
    return problems


def all_text(message: dict[str, Any]) -> str:
    return json.dumps(message, ensure_ascii=False)


# --- the model ---------------------------------------------------------------------------------


def test_duration_is_whole_seconds_between_start_and_finish() -> None:
    assert succeeded().duration_seconds == 3762
    assert succeeded(finished_at=None).duration_seconds is None
    assert succeeded(started_at=None).duration_seconds is None


def test_duration_is_never_negative_when_clocks_disagree() -> None:
    skewed = succeeded(finished_at=STARTED - timedelta(seconds=3))
    assert skewed.duration_seconds == 0


def test_duration_across_time_zones() -> None:
    paris = timezone(timedelta(hours=1))
    n = succeeded(finished_at=datetime(2026, 11, 30, 10, 13, 5, tzinfo=paris))
    assert n.duration_seconds == 60


def test_timestamps_must_carry_a_time_zone() -> None:
    with pytest.raises(ValidationError, match="timezone"):
        succeeded(started_at=datetime(2026, 11, 30, 9, 12, 5))


def test_long_provider_errors_are_clipped_to_keep_the_message_small() -> None:
    n = failed(error_message="x" * 100_000)
    assert n.error_message is not None
    assert len(n.error_message) == MAX_ERROR_CHARS
    assert n.error_message.endswith("…")


# --- hints ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("notification", "expected"),
    [
        (failed("invalid_training_file"), [REPORT_URI, "upload the file again"]),
        (failed("validation_failed", outcome=Outcome.REJECTED), [REPORT_URI, "Fix the lines"]),
        (failed("rate_limit_exceeded", retries=4), ["retried 4 times", "later"]),
        (failed("daily_rate_limit_exceeded"), ["daily cap", "tomorrow"]),
        (failed("connection_error", retries=5), ["retried 5 times", "later"]),
        (failed("http_503"), ["server errors", "retried several times"]),
        (failed("organization_blocked"), ["Amazon Bedrock", "2026-05-07", "2027-01-06"]),
        (failed("fine_tuning_unavailable"), ["Amazon Bedrock", "retrying will not help"]),
        (failed("permission_denied"), ["403", "Amazon Bedrock"]),
        (failed("invalid_api_key"), ["401", "OpenAI secret"]),
        (failed("authentication_failed"), ["401", "OpenAI secret"]),
        (
            failed("invalid_job_setting", outcome=Outcome.REJECTED),
            [f"report ({REPORT_URI})", "Fix the metadata"],
        ),
        (failed("cost_unknown", outcome=Outcome.REJECTED), ["'cost-cap-usd' to 0"]),
        (failed("insufficient_quota"), ["billing"]),
        (
            failed("cost_cap_exceeded", outcome=Outcome.REJECTED, estimated_cost_usd=12.5),
            ["($12.50)", "'cost-cap-usd' metadata", "CostCapUsd"],
        ),
        (failed("timed_out", outcome=Outcome.TIMED_OUT), ["MaxJobDurationHours"]),
        # A timeout is the stack's doing, whatever code the provider's cancel left behind.
        (failed("cancelled", outcome=Outcome.TIMED_OUT), ["MaxJobDurationHours"]),
        (failed(None, outcome=Outcome.CANCELLED), ["cancelled the job", "Upload the file again"]),
        # The job goes on: an outage notice never asks for a new upload.
        (unreachable(), ["Nothing to do", "do not upload the file again", "final notification"]),
        (failed("server_meltdown"), ["Read the error above", "upload the file again"]),
        (failed(None), ["Read the error above"]),
    ],
)
def test_hint_says_what_to_do(notification: Notification, expected: list[str]) -> None:
    hint = hint_for(notification)
    assert hint is not None
    for phrase in expected:
        assert phrase in hint


def test_no_hint_after_a_success() -> None:
    assert hint_for(succeeded()) is None


def test_file_hint_without_a_report_still_reads_well() -> None:
    hint = hint_for(failed(report_uri=None))
    assert hint is not None
    assert "validation report (written next to the file)" in hint


# --- subject -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("notification", "subject"),
    [
        (succeeded(), f"Fine-tune succeeded: support-set.jsonl -> {MODEL_ID}"),
        (failed(), "Fine-tune failed: support-set.jsonl (invalid_training_file)"),
        (failed(None, outcome=Outcome.CANCELLED), "Fine-tune cancelled: support-set.jsonl"),
        (
            failed("timed_out", outcome=Outcome.TIMED_OUT),
            "Fine-tune timed out: support-set.jsonl (timed_out)",
        ),
        (
            failed("cost_cap_exceeded", outcome=Outcome.REJECTED),
            "Training file rejected: support-set.jsonl (cost_cap_exceeded)",
        ),
    ],
)
def test_subject_names_the_outcome_file_and_model_or_error(
    notification: Notification, subject: str
) -> None:
    assert subject_for(notification) == subject


def test_subject_fits_sns_rules_for_any_file_name() -> None:
    key = "uploads/Données d'entraînement\n" + "très-long-" * 30 + "support.jsonl"
    n = succeeded(dataset=DATASET.model_copy(update={"key": key}), model_id=MODEL_ID + "x" * 80)
    subject = subject_for(n)
    assert len(subject) <= 100
    assert subject.isascii()
    assert subject.isprintable()
    # Both ends of each part survive shortening: the file's extension, the model id's suffix.
    assert subject.startswith("Fine-tune succeeded: Donnees d'entr")
    assert "...-support.jsonl -> ft:gpt-4o-mini-2024-0..." in subject
    assert subject.endswith("xxx")


# --- email ---------------------------------------------------------------------------------------


def test_success_email_has_everything_needed_to_use_the_model() -> None:
    text = email_text(succeeded())
    lines = text.splitlines()
    assert lines[:2] == [
        "Fine-tune succeeded: support-set.jsonl",
        "The fine-tuned model is ready to use.",
    ]
    for line in [
        "Dataset:        s3://acme-training/training/support-set.jsonl (version 3HL4kqtJlcpX)",
        "Examples:       1,204",
        "Base model:     gpt-4o-mini-2024-07-18 (openai)",
        f"Model:          {MODEL_ID}",
        "Duration:       1h 02m 42s",
        "Trained tokens: 1,843,210",
        "Cost:           estimated $5.61, actual $5.53",
        "Loss:           train 0.2143, validation 0.2871",
        f"Report:         {REPORT_URI}",
        "Started:        2026-11-30 09:12:05 UTC",
        "Finished:       2026-11-30 10:14:47 UTC",
        "Job:            ftjob-AbC123",
    ]:
        assert line in lines
    assert "What to do" not in text
    assert "Error" not in text


def test_success_email_shows_a_curl_call_with_the_model_id() -> None:
    lines = email_text(succeeded()).splitlines()
    start = lines.index("Call the model:")
    curl = lines[start + 1 : start + 3]
    assert curl[0].lstrip().startswith("curl https://api.openai.com/v1/chat/completions")
    body = curl[1].split("-d ", 1)[1].strip("'")
    assert json.loads(body)["model"] == MODEL_ID


def test_no_curl_call_for_another_provider_or_without_a_model() -> None:
    assert "curl" not in email_text(succeeded(provider="bedrock"))
    assert "curl" not in email_text(failed())


def test_failure_email_gives_the_error_and_what_to_do() -> None:
    text = email_text(failed(retries=3, error_code="rate_limit_exceeded"))
    assert text.startswith("Fine-tune failed: support-set.jsonl\nThe fine-tuning job failed.\n")
    assert "Error (rate_limit_exceeded):\n  Example 8 message contains an invalid token" in text
    assert (
        "What to do:\n  OpenAI kept rate-limiting the request; the workflow retried 3 times" in text
    )
    assert "Model:" not in text


def test_outage_notice_says_the_job_continues_never_that_it_failed() -> None:
    n = unreachable()
    text = email_text(n)
    assert text.startswith(
        "Provider unreachable: support-set.jsonl\n"
        "We cannot reach the provider; the job continues; we keep checking.\n"
    )
    assert "Status:         Provider unreachable" in text and "ftjob-AbC123" in text
    assert "fail" not in text.lower()
    assert subject_for(n) == "Provider unreachable: support-set.jsonl (http_503)"


def test_rejected_email_says_nothing_was_launched() -> None:
    n = failed(
        "validation_failed",
        outcome=Outcome.REJECTED,
        error_message="14 examples, 9 errors",
        validation_summary="INVALID: 14 examples, 9 errors, 5 warnings",
    )
    text = email_text(n)
    assert "Training file rejected: support-set.jsonl\nThe file was not sent for training." in text
    assert "Validation:     INVALID: 14 examples, 9 errors, 5 warnings" in text
    assert "Fix the lines" in text


def test_fractions_of_a_cent_stay_visible() -> None:
    text = email_text(succeeded(estimated_cost_usd=0.0034, actual_cost_usd=None))
    assert "Cost:           estimated $0.0034\n" in text


def test_short_durations_read_naturally() -> None:
    def duration_line(seconds: int) -> str:
        n = succeeded(finished_at=STARTED + timedelta(seconds=seconds))
        return next(line for line in email_text(n).splitlines() if line.startswith("Duration"))

    assert duration_line(12).endswith(" 12s")
    assert duration_line(245).endswith(" 4m 05s")
    assert duration_line(27 * 3600).endswith(" 27h 00m 00s")


def test_missing_facts_are_left_out() -> None:
    bare = Notification(
        outcome=Outcome.FAILED,
        dataset=DatasetRef(dataset_id="ds-1", bucket="b", key="k.jsonl", version_id=None),
    )
    text = email_text(bare)
    assert "Dataset:        s3://b/k.jsonl\n" in text
    for label in ["Examples", "Model", "Duration", "Cost", "Loss", "Report", "Job:", "Started"]:
        assert label not in text
    assert "Read the error above" in text


# --- Slack ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("notification", "emoji"),
    list(
        zip(
            one_of_each(),
            [
                ":white_check_mark:",
                ":x:",
                ":no_entry_sign:",
                ":hourglass:",
                ":warning:",
                ":satellite_antenna:",
            ],
            strict=True,
        )
    ),
)
def test_slack_message_is_valid_block_kit_for_every_outcome(
    notification: Notification, emoji: str
) -> None:
    message = slack_blocks(notification)
    assert block_kit_problems(message) == []
    assert message["text"] == subject_for(notification)
    header = message["blocks"][0]
    assert header["type"] == "header"
    assert header["text"]["text"].startswith(f"{emoji} ")
    assert header["text"]["text"].endswith(": support-set.jsonl")


def test_slack_fields_give_the_facts_at_a_glance() -> None:
    fields = [f["text"] for f in slack_blocks(succeeded())["blocks"][1]["fields"]]
    assert fields == [
        "*Status*\nSucceeded",
        "*Dataset*\n`s3://acme-training/training/support-set.jsonl (version 3HL4kqtJlcpX)`",
        "*Examples*\n1,204",
        "*Base model*\ngpt-4o-mini-2024-07-18 (openai)",
        f"*Model*\n`{MODEL_ID}`",
        "*Duration*\n1h 02m 42s",
        "*Trained tokens*\n1,843,210",
        "*Cost*\nestimated $5.61, actual $5.53",
        "*Loss*\ntrain 0.2143, validation 0.2871",
    ]


def test_slack_success_shows_how_to_call_the_model_and_no_error() -> None:
    message = slack_blocks(succeeded(console_url="https://console.example/run/1"))
    text = all_text(message)
    assert "*Call the model*" in text
    assert "*Error*" not in text
    assert "*What to do*" not in text
    context = message["blocks"][-1]
    assert context["type"] == "context"
    assert {"type": "mrkdwn", "text": "Console: <https://console.example/run/1|open>"} in context[
        "elements"
    ]


def test_slack_failure_shows_the_error_escaped_and_the_hint() -> None:
    sections = [b["text"]["text"] for b in slack_blocks(failed())["blocks"] if "text" in b]
    assert (
        "*Error* `invalid_training_file`\n"
        "Example 8 message contains an invalid token: &lt;|fim_suffix|&gt;."
    ) in sections
    assert any(s.startswith("*What to do*\nFix the lines named in the error") for s in sections)
    assert not any("Call the model" in s for s in sections)


def test_slack_message_stays_within_limits_whatever_the_input() -> None:
    huge = failed(
        error_message="<&>" * 5000,
        dataset=DATASET.model_copy(update={"key": "k/" + "ü" * 3000 + ".jsonl"}),
        validation_summary="s" * 5000,
        report_uri="s3://b/" + "r" * 5000,
    )
    message = slack_blocks(huge)
    assert block_kit_problems(message) == []
    error = next(
        b for b in message["blocks"] if b.get("text", {}).get("text", "").startswith("*Error*")
    )
    # Clipped at a whole escape sequence, never through the middle of one.
    assert error["text"]["text"].endswith(("&lt;…", "&amp;…", "&gt;…"))


# --- SNS ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("notification", one_of_each(), ids=lambda n: n.outcome.value)
def test_sns_message_gives_email_text_to_people_and_json_to_lambdas(
    notification: Notification,
) -> None:
    args = sns_message(notification)
    assert set(args) == {"Subject", "Message", "MessageStructure", "MessageAttributes"}
    assert args["Subject"] == subject_for(notification)
    assert args["MessageStructure"] == "json"
    assert args["MessageAttributes"] == {
        "status": {"DataType": "String", "StringValue": notification.outcome.value}
    }
    variants = json.loads(args["Message"])
    assert variants["default"] == variants["email"] == email_text(notification)
    assert notification_from_sns(variants["lambda"]) == notification


def test_sns_accepts_the_publish_arguments_and_delivers_the_text(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    with mock_aws():
        sns = boto3.client("sns")
        sqs = boto3.client("sqs")
        topic = sns.create_topic(Name="sft-notifications")["TopicArn"]
        queue = sqs.create_queue(QueueName="inbox")["QueueUrl"]
        queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])
        sns.subscribe(
            TopicArn=topic,
            Protocol="sqs",
            Endpoint=queue_arn["Attributes"]["QueueArn"],
            Attributes={"FilterPolicy": json.dumps({"status": ["failed"]})},
        )
        sns.publish(TopicArn=topic, **sns_message(succeeded()))
        sns.publish(TopicArn=topic, **sns_message(failed()))
        received = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10)["Messages"]
    # The status attribute lets a subscription keep only failures.
    assert [json.loads(m["Body"])["Message"] for m in received] == [email_text(failed())]


def test_notification_from_sns_ignores_fields_it_does_not_know() -> None:
    payload = json.loads(succeeded().model_dump_json()) | {"added_in_a_later_version": 1}
    assert notification_from_sns(json.dumps(payload)) == succeeded()


@pytest.mark.parametrize(
    "message",
    [
        "Fine-tune succeeded: support-set.jsonl",
        json.dumps({"outcome": "exploded", "dataset": DATASET.model_dump()}),
        json.dumps({"outcome": "failed"}),
    ],
)
def test_notification_from_sns_refuses_anything_else(message: str) -> None:
    with pytest.raises(ValidationError):
        notification_from_sns(message)


# --- the evaluation of a new model ------------------------------------------------------------

DECISION = "promoted support-bot to v3: +0.70 over v2"
CARD_URI = "s3://acme-training/reports/models/ft-gpt-4o-mini/card.html"


def evaluated(**changes: Any) -> Notification:
    fields: dict[str, Any] = {
        "evaluation": evaluation_summary(),
        "evaluation_decision": DECISION,
        "model_card_uri": CARD_URI,
    }
    return succeeded(**(fields | changes))


def test_email_shows_the_score_table_the_gates_decision_and_the_model_card() -> None:
    text = email_text(evaluated())
    assert (
        "Evaluation (10 held-out examples, scored by exact_match):\n"
        "  Promoted support-bot to v3: +0.70 over v2\n"
        "  contender  model                                            score  95% interval"
        "    candidate W/T/L\n"
        "  candidate  ft:gpt-4o-mini-2024-07-18:acme:support-a:AAA111  0.900  0.700 to 1.000  -\n"
        "  base       gpt-4o-mini-2024-07-18                           0.200  0.000 to 0.500  8/1/1\n"
        "  few_shot   gpt-4o-mini-2024-07-18                           0.500  0.200 to 0.800  4/6/0\n"
    ) in text
    assert f"Model card:     {CARD_URI}\n" in text


def test_without_a_sentence_from_the_workflow_the_gates_reason_is_shown() -> None:
    text = email_text(evaluated(evaluation_decision=None))
    assert "  Promoted: +0.70 over the base model (95% interval +0.30 to +1.00)\n" in text


def test_a_failed_evaluation_says_why_and_that_the_model_is_kept() -> None:
    n = succeeded(evaluation_error="The chat endpoint kept answering 503.")
    expected = "The chat endpoint kept answering 503. The model is registered but was not promoted."
    assert f"Evaluation failed:\n  {expected}\n" in email_text(n)
    sections = [b["text"]["text"] for b in slack_blocks(n)["blocks"] if "text" in b]
    assert f"*Evaluation failed*\n{expected}" in sections


def test_no_held_out_set_says_the_model_is_registered_but_not_promoted() -> None:
    n = succeeded(evaluation_skipped="no held-out set: name an eval-key or keep a validation file")
    assert (
        "Not evaluated:\n  No held-out set: name an eval-key or keep a validation file. "
        "The model is registered but is never promoted automatically without an evaluation.\n"
    ) in email_text(n)


def test_nothing_is_said_of_an_evaluation_the_run_did_not_mention() -> None:
    assert "valuat" not in email_text(succeeded())
    assert "valuat" not in all_text(slack_blocks(succeeded()))


def test_slack_shows_the_decision_then_the_table_in_a_code_block() -> None:
    message = slack_blocks(evaluated())
    assert block_kit_problems(message) == []
    section = next(
        b["text"]["text"]
        for b in message["blocks"]
        if b.get("text", {}).get("text", "").startswith("*Evaluation")
    )
    lines = section.split("\n")
    assert lines[:2] == [
        "*Evaluation (10 held-out examples, scored by exact_match)*",
        "Promoted support-bot to v3: +0.70 over v2",
    ]
    assert lines[2].startswith("```contender  model")
    assert lines[-1].startswith("few_shot   gpt-4o-mini-2024-07-18") and lines[-1].endswith(
        "4/6/0```"
    )
    context = message["blocks"][-1]["elements"]
    assert {"type": "mrkdwn", "text": f"Model card: `{CARD_URI}`"} in context


def test_slack_evaluation_stays_within_limits_and_escaped_whatever_the_input() -> None:
    summary = evaluation_summary()
    hostile = summary.model_copy(
        update={
            "contenders": [c.model_copy(update={"model": "<&>" * 900}) for c in summary.contenders]
        }
    )
    message = slack_blocks(evaluated(evaluation=hostile, evaluation_decision="<b>" * 2000))
    assert block_kit_problems(message) == []
    section = next(
        b["text"]["text"]
        for b in message["blocks"]
        if b.get("text", {}).get("text", "").startswith("*Evaluation")
    )
    assert "<" not in section and ">" not in section.replace("&gt;", "")
    # The table is clipped inside its code block, which stays closed.
    assert section.endswith("…```") and section.count("```") == 2


def test_the_evaluation_reaches_the_slack_notifier_through_sns_intact() -> None:
    n = evaluated(evaluation_error=None)
    lambda_variant = json.loads(sns_message(n)["Message"])["lambda"]
    assert notification_from_sns(lambda_variant) == n
