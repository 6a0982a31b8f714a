"""The API through the real openai SDK: local gateway (authorizer, throttle), API function,
registry, and the OpenAI emulator behind it."""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Iterator

import openai
import pytest

from sft_local.api_server import LocalApiServer
from sft_local.stack import LocalStack
from sft_pipeline.adapters.registry import Registry
from sft_pipeline.api import routes
from sft_pipeline.api_keys import key_hash, key_id_of
from tests.e2e.api_client import Api, new_key
from tests.e2e.conftest import SUPPORT_REPLIES, SUPPORT_SET

NOW = dt.datetime(2026, 11, 25, 12, tzinfo=dt.UTC)


@pytest.fixture(scope="module")
def api() -> Iterator[Api]:
    roomy = {"ApiRateLimit": "1000", "ApiBurstLimit": "1000"}
    with LocalStack(parameters=roomy) as stack, LocalApiServer(stack) as server:
        upload = stack.upload(SUPPORT_SET, "training/support.jsonl", {"suffix": "support"})
        assert stack.wait_for_execution(upload)["status"] == "SUCCEEDED"
        stack.settle()
        registry = Registry(stack.table())
        [model] = registry.list_models()
        yield Api(stack, server, new_key(registry, "tests", "admin"), model.model_id)


def test_chat_with_the_fine_tuned_model(api: Api) -> None:
    raw = api.client().chat.completions.with_raw_response.create(
        model=api.model_id, messages=[{"role": "user", "content": "Where is my order?"}]
    )
    completion = raw.parse()
    assert completion.choices[0].message.content in SUPPORT_REPLIES
    assert raw.headers["x-sft-model"] == api.model_id


def test_alias_promotion_resolution_and_rollback(api: Api) -> None:
    status, _, body = api.call("PUT", "/aliases/support-bot", {"model": "gpt-4o-mini-2024-07-18"})
    assert (status, body["current_version"]) == (200, 1)
    status, _, body = api.call(
        "PUT", "/aliases/support-bot", {"model": api.model_id, "note": "fine-tune v1"}
    )
    assert (status, body["current_version"]) == (200, 2)
    client = api.client()
    current = client.chat.completions.with_raw_response.create(
        model="support-bot", messages=[{"role": "user", "content": "hi"}]
    )
    assert (current.headers["x-sft-model"], current.headers["x-sft-alias"]) == (
        api.model_id,
        "support-bot@2",
    )
    pinned = client.chat.completions.with_raw_response.create(
        model="support-bot@1", messages=[{"role": "user", "content": "hi"}]
    )
    assert pinned.headers["x-sft-model"] == "gpt-4o-mini-2024-07-18"
    status, _, body = api.call("PUT", "/aliases/support-bot", {"version": 1})
    assert (status, body["current_version"]) == (200, 1)
    models = {m.id: m for m in client.models.list().data}
    assert models["support-bot"].model_dump()["alias_version"] == 1


def test_ab_split_is_reported_per_response(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(routes, "_variant_draws", random.Random(7))
    split = {
        "variants": [
            {"model": api.model_id, "weight": 90},
            {"model": "gpt-4o-mini-2024-07-18", "weight": 10},
        ]
    }
    assert api.call("PUT", "/aliases/ab-test", split)[0] == 200
    client = api.client()
    served = [
        client.chat.completions.with_raw_response.create(
            model="ab-test", messages=[{"role": "user", "content": "x"}]
        )
        for _ in range(100)
    ]
    # The same seed drawn the same way: exactly the requests with a draw under 0.9 got the fine-tune.
    replay = random.Random(7)
    expected = [
        api.model_id if replay.random() < 0.9 else "gpt-4o-mini-2024-07-18" for _ in range(100)
    ]
    assert [r.headers["x-sft-model"] for r in served] == expected
    assert {r.headers["x-sft-variant"] for r in served} == {"0", "1"}
    assert 80 <= expected.count(api.model_id) <= 97


def test_models_list_shows_the_shutdown_date(api: Api) -> None:
    models = {m.id: m for m in api.client().models.list().data}
    card = models[api.model_id].model_dump()
    assert (card["shutdown_date"], card["kind"], card["days_until_shutdown"] > 0) == (
        "2027-01-14",
        "fine-tuned",
        True,
    )


@pytest.mark.parametrize(
    "key", ["", "sk-sft-not-a-real-key-000000000000000000000000000", "Basic abc"]
)
def test_missing_or_bad_keys_get_401_and_no_detail(api: Api, key: str) -> None:
    status, _, body = api.call("GET", "/v1/models", key=key if key else "")
    assert status == 401
    assert body == {
        "error": {
            "message": "Missing or invalid API key.",
            "type": "invalid_request_error",
            "param": None,
            "code": "invalid_api_key",
        }
    }


def test_the_sdk_sees_authentication_errors(api: Api) -> None:
    with pytest.raises(openai.AuthenticationError):
        api.client("sk-sft-" + "x" * 43).models.list()


def test_a_revoked_key_is_refused(api: Api) -> None:
    registry = Registry(api.stack.table())
    secret = new_key(registry, "short-lived")
    registry.revoke_api_key(key_id_of(key_hash(secret)), NOW)
    assert api.call("GET", "/v1/models", key=secret)[0] == 401


def test_validation_errors_are_openai_shaped(api: Api) -> None:
    client = api.client()
    with pytest.raises(openai.BadRequestError) as empty:
        client.chat.completions.create(model=api.model_id, messages=[])
    assert "messages" in str(empty.value)
    with pytest.raises(openai.BadRequestError) as streaming:
        client.chat.completions.create(
            model=api.model_id, messages=[{"role": "user", "content": "x"}], stream=True
        )
    assert streaming.value.code == "stream_unsupported"
    with pytest.raises(openai.BadRequestError) as too_many:
        client.chat.completions.create(
            model=api.model_id, messages=[{"role": "user", "content": "x"}], max_tokens=100_000
        )
    assert too_many.value.code == "max_tokens_too_large"
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(
            model="ft:gpt-4o-mini:other-org::zzz", messages=[{"role": "user", "content": "x"}]
        )
    status, _, body = api.call("POST", "/v1/chat/completions", b"{" + b" " * (1024 * 1024) + b"}")
    assert (status, body["error"]["code"]) == (413, "request_too_large")


def test_provider_rate_limits_keep_their_retry_after(api: Api) -> None:
    api.stack.openai.faults.rate_limit(times=2, retry_after=7, route="POST /chat/completions")
    with pytest.raises(openai.RateLimitError) as limited:
        api.client().chat.completions.create(
            model=api.model_id, messages=[{"role": "user", "content": "x"}]
        )
    assert limited.value.response.headers["retry-after"] == "7"
    api.stack.openai.faults.clear()


def test_jobs_show_lineage_and_events(api: Api) -> None:
    status, _, jobs = api.call("GET", "/jobs")
    assert status == 200
    [job] = [j for j in jobs["data"] if j["model_id"] == api.model_id]
    status, _, detail = api.call("GET", f"/jobs/{job['job_id']}")
    assert status == 200
    assert detail["upload"]["key"] == "training/support.jsonl"
    assert detail["report_uri"].startswith("s3://") and detail["events"]
    assert detail["train_loss"] is not None and detail["hyperparameters"]["n_epochs"] == 3
    assert api.call("GET", "/jobs/ftjob-missing")[0] == 404


def test_an_inference_key_calls_models_but_no_control_route(api: Api) -> None:
    inference = new_key(Registry(api.stack.table()), "web app")
    client = api.client(inference)
    answer = client.chat.completions.create(
        model=api.model_id, messages=[{"role": "user", "content": "Hi"}]
    )
    assert answer.choices[0].message.content in SUPPORT_REPLIES
    assert api.model_id in {model.id for model in client.models.list().data}
    [job] = [j for j in api.call("GET", "/jobs")[2]["data"] if j["model_id"] == api.model_id]
    for method, path, body in (
        ("GET", "/jobs", None),
        ("GET", f"/jobs/{job['job_id']}", None),
        ("POST", f"/jobs/{job['job_id']}/cancel", None),
        ("PUT", "/aliases/scoped", {"model": api.model_id}),
    ):
        status, _, refused = api.call(method, path, body, key=inference)
        assert status == 403, (method, path)
        assert set(refused["error"]) == {"message", "type", "param", "code"}
        assert refused["error"]["code"] == "insufficient_scope"
    assert "scoped" not in {model.id for model in client.models.list().data}


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/v1/nothing"),
        ("GET", "/v1/chat/completions"),
        ("DELETE", "/aliases/support-bot"),
        ("POST", "/v1/models"),
        ("GET", "/"),
    ],
)
@pytest.mark.parametrize("key", [None, ""])
def test_unknown_routes_and_methods_get_openais_404(
    api: Api, method: str, path: str, key: str | None
) -> None:
    status, headers, body = api.call(method, path, key=key)
    assert status == 404
    assert headers["Content-Type"] == "application/json"
    assert body == {
        "error": {
            "message": "No such route: check the method and the path.",
            "type": "invalid_request_error",
            "param": None,
            "code": "not_found",
        }
    }


def test_the_sdk_sees_an_unknown_route_as_not_found(api: Api) -> None:
    with pytest.raises(openai.NotFoundError) as missing:
        api.client().get("/embeddings", cast_to=object)
    assert missing.value.code == "not_found"
