"""Model lifecycle: when a model stops serving, the retirement watcher's warnings (each
sent once, across reruns, days and skipped days) and what they say."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from moto import mock_aws

from sft_pipeline.adapters.notification_text import subject_for
from sft_pipeline.adapters.notifier import email_text, sns_message
from sft_pipeline.adapters.slack import slack_blocks
from sft_pipeline.aliases import single
from sft_pipeline.jobs import UploadRef
from sft_pipeline.lifecycle import due_warning, serving_ends, used_recently
from sft_pipeline.notifications import Notification, RetirementWarning
from sft_pipeline.pipeline.retirement import WarningsNotSentError, watch_retirements
from sft_pipeline.records import ModelRecord
from tests.fakes import FakeNotifier, InMemoryRegistry, make_registry

SHUTDOWN = dt.date(2027, 1, 14)  # gpt-4o-mini and its fine-tunes, at OpenAI
NOW = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)
SERVED = "ft:gpt-4o-mini-2024-07-18:acme:support:AAAA1111"
CALLED = "ft:gpt-4o-mini-2024-07-18:acme:faq:BBBB2222"
IDLE = "ft:gpt-4o-mini-2024-07-18:acme:old:CCCC3333"
NOVA = "arn:aws:bedrock:us-east-1:123456789012:custom-model/amazon.nova-lite-v1:0:300k/abc"


def model(model_id: str, *, last_used: dt.date | None = None, base: str = "") -> ModelRecord:
    upload = UploadRef(bucket="data", key="training/support.jsonl", version_id="v1")
    return ModelRecord(
        model_id=model_id,
        provider="bedrock" if model_id.startswith("arn:") else "openai",
        job_id=f"job-{model_id[-4:]}",
        base_model=base or "gpt-4o-mini-2024-07-18",
        dataset_id=upload.dataset_id,
        upload=upload,
        dataset_sha256="a" * 64,
        hyperparameters={},
        started_at=NOW,
        finished_at=NOW,
        created_at=NOW,
        last_used_on=last_used,
    )


@pytest.fixture
def registry() -> InMemoryRegistry:
    """One model an alias serves, one called 10 days before the first warning, one idle, and
    a Nova model (no published end)."""
    registry = InMemoryRegistry()
    registry.register_model(model(SERVED))
    registry.register_model(model(CALLED, last_used=dt.date(2026, 12, 5)))
    registry.register_model(model(IDLE, last_used=dt.date(2026, 9, 1)))
    registry.register_model(model(NOVA, base="amazon.nova-lite-v1:0:300k"))
    registry.create_alias_version("support-bot", single(SERVED), None, NOW)
    registry.create_alias_version("nova-bot", single(NOVA), None, NOW)
    return registry


def run(registry: InMemoryRegistry, notifier: FakeNotifier, day: dt.date) -> list[str]:
    return watch_retirements(registry, notifier, day, stack_name="sft-dev").sent


# ---------------------------------------------------------------- dates


def test_a_fine_tune_stops_serving_with_its_base_model() -> None:
    assert serving_ends("gpt-4o-mini-2024-07-18") == SHUTDOWN
    assert serving_ends("gpt-4.1-2025-04-14") == SHUTDOWN
    # No Bedrock base model has a published end; an unknown model has none either.
    assert serving_ends("amazon.nova-lite-v1:0:300k") is None
    assert serving_ends("no-such-model") is None


@pytest.mark.parametrize(
    ("days_left", "due"),
    [(31, None), (30, 30), (29, 30), (8, 30), (7, 7), (2, 7), (1, 1), (0, 1), (-1, None)],
)
def test_the_most_urgent_threshold_reached_is_due(days_left: int, due: int | None) -> None:
    assert due_warning(SHUTDOWN, SHUTDOWN - dt.timedelta(days=days_left)) == due


def test_called_in_the_last_30_days_counts_as_in_use() -> None:
    today = dt.date(2027, 1, 1)
    assert used_recently(dt.date(2026, 12, 2), today)
    assert not used_recently(dt.date(2026, 12, 1), today)
    assert not used_recently(None, today)


# ---------------------------------------------------------------- the watcher


def test_only_models_in_use_are_warned_and_each_warning_once_a_day(
    registry: InMemoryRegistry,
) -> None:
    notifier = FakeNotifier()
    day = SHUTDOWN - dt.timedelta(days=30)
    assert sorted(run(registry, notifier, day)) == [f"{CALLED}:30", f"{SERVED}:30"]
    # The same day again, and the next day: the 30-day warnings were sent.
    assert run(registry, notifier, day) == []
    assert run(registry, notifier, day + dt.timedelta(days=1)) == []
    assert len(notifier.sent) == 2
    served = next(n for n in notifier.sent if n.model_id == SERVED)
    assert served.retirement is not None
    assert served.retirement.aliases == ["support-bot"]
    assert served.retirement.days_left == 30
    assert served.retirement.retrain_command == (
        "sft retrain support-bot --provider bedrock --stack sft-dev"
    )
    called = next(n for n in notifier.sent if n.model_id == CALLED)
    assert called.retirement is not None
    assert called.retirement.aliases == []
    assert called.retirement.retrain_command.startswith(f"sft retrain {CALLED} ")


def test_each_threshold_is_sent_once_as_the_days_pass(registry: InMemoryRegistry) -> None:
    notifier = FakeNotifier()
    sent = []
    day = SHUTDOWN - dt.timedelta(days=40)
    while day <= SHUTDOWN + dt.timedelta(days=3):
        sent += [label for label in run(registry, notifier, day) if label.startswith(SERVED)]
        day += dt.timedelta(days=1)
    assert sent == [f"{SERVED}:30", f"{SERVED}:7", f"{SERVED}:1"]


def test_a_skipped_day_sends_the_most_urgent_warning_due_once(registry: InMemoryRegistry) -> None:
    notifier = FakeNotifier()
    assert run(registry, notifier, SHUTDOWN - dt.timedelta(days=31)) == []
    # No run from 30 to 7 days before: the 7-day warning goes out, the 30-day one never.
    # (The model last called on 2026-12-05 is no longer in use by then.)
    assert run(registry, notifier, SHUTDOWN - dt.timedelta(days=6)) == [f"{SERVED}:7"]
    assert run(registry, notifier, SHUTDOWN - dt.timedelta(days=5)) == []
    assert [n.retirement.threshold_days for n in notifier.sent if n.retirement] == [7]


def test_a_warning_that_could_not_be_sent_is_sent_by_the_next_run(
    registry: InMemoryRegistry,
) -> None:
    class DownNotifier(FakeNotifier):
        def publish(self, notification: Notification) -> str:
            raise ConnectionError("SNS is down")

    day = SHUTDOWN - dt.timedelta(days=30)
    with pytest.raises(WarningsNotSentError, match="the next run retries"):
        run(registry, DownNotifier(), day)
    assert registry.retirement_warnings == {}
    notifier = FakeNotifier()
    assert sorted(run(registry, notifier, day)) == [f"{CALLED}:30", f"{SERVED}:30"]


def test_the_dynamodb_registry_claims_each_warning_once_and_records_use_once_a_day(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    with mock_aws():
        registry = make_registry()
        registry.register_model(model(SERVED))
        registry.create_alias_version("support-bot", single(SERVED), None, NOW)
        day = dt.date(2026, 12, 20)
        assert registry.record_model_use(SERVED, day)
        assert not registry.record_model_use(SERVED, day)
        assert not registry.record_model_use("ft:unknown:model", day)
        assert registry.every_model()[0].last_used_on == day
        assert registry.record_model_use(SERVED, day + dt.timedelta(days=1))

        notifier = FakeNotifier()
        warning_day = SHUTDOWN - dt.timedelta(days=7)
        sent = watch_retirements(registry, notifier, warning_day, stack_name="sft-dev").sent
        assert sent == [f"{SERVED}:7"]
        again = watch_retirements(registry, notifier, warning_day, stack_name="sft-dev")
        assert again.sent == []
        # The model itself is untouched by its warnings.
        assert registry.get_model(SERVED) == registry.every_model()[0]


# ---------------------------------------------------------------- what people read


def warning_notification() -> Notification:
    notifier = FakeNotifier()
    registry = InMemoryRegistry()
    registry.register_model(model(SERVED))
    registry.create_alias_version("support-bot", single(SERVED), None, NOW)
    registry.create_alias_version("help-bot", single(SERVED), None, NOW)
    run(registry, notifier, SHUTDOWN - dt.timedelta(days=7))
    [notification] = notifier.sent
    return notification


def test_the_email_says_when_which_aliases_and_the_command_to_run() -> None:
    n = warning_notification()
    text = email_text(n)
    assert text.startswith(f"Model retiring: {SERVED}\n")
    assert "2027-01-14 (in 7 days)" in text
    assert "help-bot, support-bot" in text
    assert "sft retrain help-bot --provider bedrock --stack sft-dev" in text
    assert 'POST /models/help-bot/retrain {"provider": "bedrock"}' in text
    assert "PUT /aliases/{name}" in text
    subject = subject_for(n)
    assert subject.startswith("Model retiring in 7 days: ")
    assert len(subject) <= 100
    message = sns_message(n)
    assert message["MessageAttributes"]["status"]["StringValue"] == "retirement_warning"
    assert Notification.model_validate_json(json.loads(message["Message"])["lambda"]) == n


def test_slack_shows_the_same_warning() -> None:
    blocks = json.dumps(slack_blocks(warning_notification()))
    assert "Model retiring" in blocks
    assert "sft retrain help-bot --provider bedrock --stack sft-dev" in blocks
    assert "2027-01-14 (in 7 days)" in blocks


def test_a_warning_names_its_threshold_and_days_left() -> None:
    warning = RetirementWarning(
        model_id=SERVED,
        shutdown_date=SHUTDOWN,
        threshold_days=1,
        days_left=0,
        retrain_command="sft retrain x --provider bedrock --stack s",
        retrain_api="POST /models/x/retrain",
    )
    assert warning.threshold_days == 1
    with pytest.raises(ValueError, match="greater than 0"):
        RetirementWarning.model_validate({**warning.model_dump(), "threshold_days": 0})
