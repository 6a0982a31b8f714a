"""The Slack notifier Lambda, its webhook adapter and secret reads.

Slack is a real HTTP server on 127.0.0.1 and Secrets Manager is moto, so the
handler runs exactly as deployed: read the cached secret, parse each SNS
record, post Block Kit, and fail loudly when Slack does not take the message.
"""

from __future__ import annotations

import copy
import importlib.util
import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import ModuleType
from typing import Any

import boto3
import pytest
from aws_lambda_powertools.utilities import parameters
from aws_lambda_powertools.utilities.parameters.exceptions import GetParameterError
from moto import mock_aws
from pydantic import ValidationError

from sft_pipeline.adapters.notifier import notification_from_sns
from sft_pipeline.adapters.secrets import read_secret
from sft_pipeline.adapters.slack import SlackDeliveryError, SlackWebhook, slack_blocks
from sft_pipeline.settings import ConfigurationError, SlackNotifierSettings, forget_settings
from tests.evaluation_samples import evaluation_summary

ROOT = Path(__file__).resolve().parents[2]
HANDLER_PATH = ROOT / "functions" / "slack_notifier" / "app.py"
SAMPLE_EVENT = ROOT / "events" / "slack_notifier_sns.json"


@dataclass
class FakeSlack:
    """An incoming-webhook endpoint that records what it is sent and answers as told."""

    url: str
    posts: list[dict[str, Any]] = field(default_factory=list)
    content_types: list[str] = field(default_factory=list)
    status: int = 200
    body: bytes = b"ok"
    delay_seconds: float = 0.0


@pytest.fixture
def slack() -> Iterator[FakeSlack]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers["Content-Length"])
            fake.posts.append(json.loads(self.rfile.read(length)))
            fake.content_types.append(self.headers["Content-Type"])
            time.sleep(fake.delay_seconds)
            try:
                self.send_response(fake.status)
                self.send_header("Content-Length", str(len(fake.body)))
                self.end_headers()
                self.wfile.write(fake.body)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client stopped waiting (the timeout test): nothing to answer

        def log_message(self, format: str, *args: Any) -> None:
            """Keep the test output quiet."""

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    fake = FakeSlack(url=f"http://127.0.0.1:{server.server_port}/services/T000/B000/secret-token")
    thread = threading.Thread(target=server.serve_forever, args=(0.01,), daemon=True)
    thread.start()
    yield fake
    server.shutdown()
    server.server_close()
    thread.join()


@pytest.fixture
def secrets(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """A moto Secrets Manager client; Powertools' cached values and client start fresh."""
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    parameters.clear_caches()
    with mock_aws():
        yield boto3.client("secretsmanager")
    parameters.clear_caches()


@dataclass(frozen=True)
class LambdaContext:
    function_name: str = "slack-notifier"
    memory_limit_in_mb: int = 256
    invoked_function_arn: str = "arn:aws:lambda:eu-west-1:123456789012:function:slack-notifier"
    aws_request_id: str = "c6af9ac6-7b61-11e6-9a41-93e8deadbeef"


Handler = Callable[[dict[str, Any], LambdaContext], dict[str, int]]


@pytest.fixture
def deploy(secrets: Any, monkeypatch: pytest.MonkeyPatch) -> Callable[..., Handler]:
    """Store the webhook secret, set the function's environment and load its handler."""

    def _deploy(webhook_secret: str, **environment: str) -> Handler:
        arn = secrets.create_secret(Name="sft/slack-webhook", SecretString=webhook_secret)["ARN"]
        monkeypatch.setenv("SLACK_WEBHOOK_SECRET_ARN", arn)
        for name, value in environment.items():
            monkeypatch.setenv(name, value)
        return load_handler()

    return _deploy


def load_handler() -> Handler:
    """Import functions/slack_notifier/app.py afresh, as a cold start would."""
    forget_settings()
    spec = importlib.util.spec_from_file_location("slack_notifier_app", HANDLER_PATH)
    assert spec is not None
    assert spec.loader is not None
    module: ModuleType = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    handler: Handler = module.lambda_handler
    return handler


def sample_event() -> dict[str, Any]:
    event: dict[str, Any] = json.loads(SAMPLE_EVENT.read_text())
    return event


def event_with_messages(*messages: str) -> dict[str, Any]:
    template = sample_event()["Records"][0]
    records = []
    for message in messages:
        record = copy.deepcopy(template)
        record["Sns"]["Message"] = message
        records.append(record)
    return {"Records": records}


def sample_message() -> str:
    message: str = sample_event()["Records"][0]["Sns"]["Message"]
    return message


# --- the handler ---------------------------------------------------------------------------------


def test_posts_the_sample_event_as_block_kit(
    slack: FakeSlack, deploy: Callable[..., Handler]
) -> None:
    handler = deploy(slack.url)
    assert handler(sample_event(), LambdaContext()) == {"posted": 1}
    assert slack.posts == [slack_blocks(notification_from_sns(sample_message()))]
    assert slack.content_types == ["application/json; charset=utf-8"]


def test_posts_every_record(slack: FakeSlack, deploy: Callable[..., Handler]) -> None:
    failed = json.loads(sample_message()) | {"outcome": "failed", "error_code": "invalid_api_key"}
    handler = deploy(slack.url)
    result = handler(event_with_messages(sample_message(), json.dumps(failed)), LambdaContext())
    assert result == {"posted": 2}
    headers = [post["blocks"][0]["text"]["text"] for post in slack.posts]
    assert headers == [
        ":white_check_mark: Fine-tune succeeded: support-set.jsonl",
        ":x: Fine-tune failed: support-set.jsonl",
    ]


def test_posts_the_evaluation_of_the_new_model(
    slack: FakeSlack, deploy: Callable[..., Handler]
) -> None:
    evaluated = json.loads(sample_message()) | {
        "evaluation": evaluation_summary().model_dump(mode="json"),
        "evaluation_decision": "promoted support-bot to v3: +0.70 over v2",
    }
    handler = deploy(slack.url)
    assert handler(event_with_messages(json.dumps(evaluated)), LambdaContext()) == {"posted": 1}
    sections = [b["text"]["text"] for b in slack.posts[0]["blocks"] if "text" in b]
    evaluation = next(s for s in sections if s.startswith("*Evaluation (10 held-out examples"))
    assert "\nPromoted support-bot to v3: +0.70 over v2\n```contender" in evaluation
    assert "\nbase       gpt-4o-mini-2024-07-18" in evaluation


@pytest.mark.parametrize("switched_off", ["disabled", "DISABLED\n", " "])
def test_posts_nothing_when_slack_is_switched_off(
    switched_off: str, slack: FakeSlack, deploy: Callable[..., Handler]
) -> None:
    handler = deploy(switched_off)
    assert handler(sample_event(), LambdaContext()) == {"posted": 0}
    assert slack.posts == []


def test_slack_outage_fails_the_invocation_so_lambda_retries(
    slack: FakeSlack, deploy: Callable[..., Handler]
) -> None:
    slack.status, slack.body = 503, b"service_unavailable"
    handler = deploy(slack.url)
    with pytest.raises(SlackDeliveryError, match="HTTP 503: service_unavailable") as failure:
        handler(sample_event(), LambdaContext())
    # The webhook URL is a credential: it must not reach the logs through the error.
    assert "secret-token" not in str(failure.value)
    assert len(slack.posts) == 1


def test_a_slow_slack_times_out_and_fails_the_invocation(
    slack: FakeSlack, deploy: Callable[..., Handler]
) -> None:
    slack.delay_seconds = 0.5
    handler = deploy(slack.url, SLACK_TIMEOUT_SECONDS="0.05")
    with pytest.raises(SlackDeliveryError, match="could not be reached"):
        handler(sample_event(), LambdaContext())


def test_a_message_that_is_not_a_notification_fails_before_posting(
    slack: FakeSlack, deploy: Callable[..., Handler]
) -> None:
    handler = deploy(slack.url)
    with pytest.raises(ValidationError):
        handler(event_with_messages("Fine-tune succeeded: support-set.jsonl"), LambdaContext())
    assert slack.posts == []


def test_a_missing_secret_fails_the_invocation(
    secrets: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(
        "SLACK_WEBHOOK_SECRET_ARN",
        "arn:aws:secretsmanager:eu-west-1:123456789012:secret:sft/absent-AbCdEf",
    )
    with pytest.raises(GetParameterError, match="ResourceNotFoundException"):
        load_handler()(sample_event(), LambdaContext())


def test_settings_need_the_secret_arn_and_a_positive_timeout(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("SLACK_WEBHOOK_SECRET_ARN", raising=False)
    with pytest.raises(ConfigurationError, match="SLACK_WEBHOOK_SECRET_ARN is not set"):
        SlackNotifierSettings.from_environment()
    monkeypatch.setenv("SLACK_WEBHOOK_SECRET_ARN", "arn:aws:secretsmanager:eu-west-1:1:secret:s")
    monkeypatch.setenv("SLACK_TIMEOUT_SECONDS", "0")
    with pytest.raises(ConfigurationError, match="SLACK_TIMEOUT_SECONDS: Input should be greater"):
        SlackNotifierSettings.from_environment()


# --- the webhook adapter -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (400, b"invalid_blocks", "HTTP 400: invalid_blocks"),
        (404, b"no_service", "HTTP 404: no_service"),
        (500, b"", "HTTP 500: Internal Server Error"),
    ],
)
def test_webhook_raises_with_what_slack_said(
    slack: FakeSlack, status: int, body: bytes, expected: str
) -> None:
    slack.status, slack.body = status, body
    with pytest.raises(SlackDeliveryError, match=expected):
        SlackWebhook(slack.url).post({"text": "hello"})
    assert slack.posts == [{"text": "hello"}]


def test_webhook_raises_when_nothing_listens() -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    closed_port = server.server_port
    server.server_close()
    with pytest.raises(SlackDeliveryError, match="could not be reached"):
        SlackWebhook(f"http://127.0.0.1:{closed_port}/hook").post({"text": "hello"})


def test_webhook_url_stays_out_of_its_repr(slack: FakeSlack) -> None:
    assert "secret-token" not in repr(SlackWebhook(slack.url))


@pytest.mark.parametrize("not_a_webhook", ["file:///etc/passwd", "hooks.slack.com/services/T/B/x"])
def test_webhook_refuses_anything_but_http(not_a_webhook: str) -> None:
    with pytest.raises(ValueError, match=r"http\(s\) URL") as refusal:
        SlackWebhook.from_secret(not_a_webhook)
    assert not_a_webhook not in str(refusal.value)


def test_webhook_from_secret_trims_the_url_and_keeps_the_timeout() -> None:
    webhook = SlackWebhook.from_secret(" https://hooks.slack.com/services/T/B/x\n", 2.5)
    assert webhook == SlackWebhook("https://hooks.slack.com/services/T/B/x", 2.5)


# --- secrets -------------------------------------------------------------------------------------


@pytest.mark.parametrize(("max_age_seconds", "second_read"), [(300, "sk-first"), (0, "sk-rotated")])
def test_read_secret_serves_from_cache_for_max_age(
    secrets: Any, max_age_seconds: int, second_read: str
) -> None:
    arn = secrets.create_secret(Name="sft/openai-key", SecretString="sk-first")["ARN"]
    assert read_secret(arn, max_age_seconds=max_age_seconds) == "sk-first"
    secrets.put_secret_value(SecretId=arn, SecretString="sk-rotated")
    # Within max_age a warm Lambda does not call Secrets Manager again.
    assert read_secret(arn, max_age_seconds=max_age_seconds) == second_read


def test_read_secret_refuses_a_binary_secret(secrets: Any) -> None:
    arn = secrets.create_secret(Name="sft/binary", SecretBinary=b"\x00\x01")["ARN"]
    with pytest.raises(TypeError, match="store the value as a string"):
        read_secret(arn)
