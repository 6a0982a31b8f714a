"""The API's behaviour without HTTP: routing, aliases, A/B draws, limits, error mapping."""

from __future__ import annotations

import datetime as dt
import random

import pytest

from sft_pipeline.aliases import Variant
from sft_pipeline.api.models import AliasUpdate, ChatCompletionRequest, ChatMessage
from sft_pipeline.api.service import ApiError, ApiService, LookupCache
from sft_pipeline.jobs import JobState, UploadRef
from sft_pipeline.providers.base import (
    ProviderPermanentError,
    ProviderRateLimitError,
    ProviderTransientError,
)
from sft_pipeline.records import JobRecord, ModelRecord, ProviderJob
from tests.evaluation_samples import evaluation_summary
from tests.fakes import FakeProvider, InMemoryRegistry

NOW = dt.datetime(2026, 11, 25, 12, tzinfo=dt.UTC)
FINE_TUNE = "ft:gpt-4o-mini-2024-07-18:acme:support:abc123"
BASE = "gpt-4o-mini-2024-07-18"


def ask(model: str, **fields: object) -> ChatCompletionRequest:
    return ChatCompletionRequest(
        model=model, messages=[ChatMessage(role="user", content="Hi")], **fields
    )  # type: ignore[arg-type]


@pytest.fixture
def registry() -> InMemoryRegistry:
    registry = InMemoryRegistry()
    registry.register_model(
        ModelRecord(
            model_id=FINE_TUNE,
            provider="openai",
            job_id="ftjob-1",
            base_model=BASE,
            dataset_id="d1",
            upload=UploadRef(bucket="b", key="training/x.jsonl", version_id="v1"),
            hyperparameters={"n_epochs": 3},
            started_at=NOW,
            finished_at=NOW,
            created_at=NOW,
        )
    )
    return registry


@pytest.fixture
def provider() -> FakeProvider:
    return FakeProvider()


@pytest.fixture
def api(registry: InMemoryRegistry, provider: FakeProvider) -> ApiService:
    return ApiService(
        registry=registry,
        chat_models=lambda _name: provider,
        trainers=lambda _name: provider,
        max_output_tokens=1000,
    )


def test_fine_tune_and_base_models_are_served(api: ApiService, provider: FakeProvider) -> None:
    assert api.chat(ask(FINE_TUNE), 0.5).served_model == FINE_TUNE
    assert api.chat(ask("gpt-4o-mini"), 0.5).served_model == "gpt-4o-mini"
    assert [c["model"] for c in provider.chats] == [FINE_TUNE, "gpt-4o-mini"]
    assert provider.chats[0]["messages"] == [{"role": "user", "content": "Hi"}]


@pytest.mark.parametrize(
    "model", ["ft:gpt-4o-mini:someone-else:x:1", "gpt-9-ultra", "no-such-alias", "support-bot@2"]
)
def test_unknown_models_are_404(api: ApiService, model: str) -> None:
    with pytest.raises(ApiError) as error:
        api.chat(ask(model), 0.5)
    assert (error.value.status, error.value.code, error.value.param) == (
        404,
        "model_not_found",
        "model",
    )


def test_alias_versions_promote_and_roll_back(api: ApiService) -> None:
    first = api.put_alias("support-bot", AliasUpdate(model=BASE), NOW)
    second = api.put_alias("support-bot", AliasUpdate(model=FINE_TUNE, note="first fine-tune"), NOW)
    assert (first.current_version, second.current_version) == (1, 2)
    assert api.chat(ask("support-bot"), 0.5).served_model == FINE_TUNE
    assert api.chat(ask("support-bot@1"), 0.5).served_model == BASE
    result = api.chat(ask("support-bot"), 0.5)
    assert (result.alias, result.variant) == ("support-bot@2", 0)
    rolled = api.put_alias("support-bot", AliasUpdate(version=1), NOW)
    assert rolled.current_version == 1
    assert api.chat(ask("support-bot"), 0.5).served_model == BASE


def test_ab_split_follows_the_weights(api: ApiService) -> None:
    api.put_alias(
        "ab",
        AliasUpdate(variants=[Variant(model=FINE_TUNE, weight=90), Variant(model=BASE, weight=10)]),
        NOW,
    )
    draws = random.Random(20261125)
    served = [api.chat(ask("ab"), draws.random()).served_model for _ in range(2000)]
    share = served.count(FINE_TUNE) / len(served)
    assert 0.88 <= share <= 0.92


@pytest.mark.parametrize(
    ("name", "update", "status", "code"),
    [
        ("Bad_Name", AliasUpdate(model=BASE), 400, "invalid_alias"),
        ("bot", AliasUpdate(), 400, "invalid_alias_update"),
        ("bot", AliasUpdate(model=BASE, version=1), 400, "invalid_alias_update"),
        ("bot", AliasUpdate(model="ft:unknown:x:y:z"), 400, "model_not_found"),
        (
            "bot",
            AliasUpdate(variants=[Variant(model=BASE, weight=60)]),
            400,
            "invalid_alias_update",
        ),
        ("bot", AliasUpdate(version=7), 404, "alias_not_found"),
    ],
)
def test_bad_alias_updates(
    api: ApiService, name: str, update: AliasUpdate, status: int, code: str
) -> None:
    with pytest.raises(ApiError) as error:
        api.put_alias(name, update, NOW)
    assert (error.value.status, error.value.code) == (status, code)


def test_request_limits(api: ApiService, provider: FakeProvider) -> None:
    with pytest.raises(ApiError) as streaming:
        api.chat(ask(BASE, stream=True), 0.5)
    assert (streaming.value.status, streaming.value.code) == (400, "stream_unsupported")
    with pytest.raises(ApiError) as too_long:
        api.chat(ask(BASE, max_tokens=1001), 0.5)
    assert (too_long.value.status, too_long.value.param) == (400, "max_tokens")
    assert provider.chats == []


@pytest.mark.parametrize(
    ("failure", "status", "code", "headers"),
    [
        (
            ProviderRateLimitError("rate_limit_exceeded", "slow down", 2.2),
            429,
            "rate_limit_exceeded",
            {"Retry-After": "3"},
        ),
        (
            ProviderPermanentError("daily_rate_limit_exceeded", "cap"),
            429,
            "daily_rate_limit_exceeded",
            {},
        ),
        (
            ProviderPermanentError("authentication_failed", "bad key sk-..."),
            502,
            "upstream_auth",
            {},
        ),
        (ProviderPermanentError("model_not_found", "gone"), 404, "model_not_found", {}),
        (
            ProviderPermanentError("invalid_request_error", "bad temperature"),
            400,
            "invalid_request_error",
            {},
        ),
        (ProviderTransientError("timeout", "slow"), 504, "upstream_timeout", {}),
        (ProviderTransientError("http_503", "down"), 502, "upstream_error", {}),
    ],
)
def test_provider_failures_map_to_statuses(
    api: ApiService,
    provider: FakeProvider,
    failure: Exception,
    status: int,
    code: str,
    headers: dict[str, str],
) -> None:
    provider.fail_with = failure  # type: ignore[assignment]
    with pytest.raises(ApiError) as error:
        api.chat(ask(BASE), 0.5)
    assert (error.value.status, error.value.code, error.value.headers) == (status, code, headers)
    assert "sk-" not in error.value.message


def test_models_list_shows_shutdown_dates(api: ApiService) -> None:
    api.put_alias("support-bot", AliasUpdate(model=FINE_TUNE), NOW)
    cards = {card.id: card for card in api.list_models(dt.date(2026, 11, 25)).data}
    fine_tune = cards[FINE_TUNE]
    assert (fine_tune.kind, fine_tune.shutdown_date, fine_tune.days_until_shutdown) == (
        "fine-tuned",
        "2027-01-14",
        50,
    )
    alias = cards["support-bot"]
    assert (alias.kind, alias.alias_version, alias.variants) == (
        "alias",
        1,
        [Variant(model=FINE_TUNE, weight=100)],
    )
    assert (alias.shutdown_date, alias.days_until_shutdown) == ("2027-01-14", 50)


def test_a_split_alias_shows_the_earliest_shutdown_of_the_models_it_serves(
    api: ApiService,
) -> None:
    split = [
        Variant(model=FINE_TUNE, weight=80),
        Variant(model="gpt-3.5-turbo-0125", weight=10),
        Variant(model="amazon.nova-micro-v1:0:128k", weight=10),
    ]
    api.put_alias("canary", AliasUpdate(variants=split), NOW)
    api.put_alias("nova", AliasUpdate(model="amazon.nova-micro-v1:0:128k"), NOW)
    cards = {card.id: card for card in api.list_models(dt.date(2026, 10, 1)).data}
    assert (cards["canary"].shutdown_date, cards["canary"].days_until_shutdown) == (
        "2026-10-23",
        22,
    )
    assert (cards["nova"].shutdown_date, cards["nova"].days_until_shutdown) == (None, None)


def test_models_and_jobs_show_the_evaluation_once_it_has_run(
    api: ApiService, registry: InMemoryRegistry
) -> None:
    registry.put_job(
        JobRecord(
            dataset_id="d1",
            provider="openai",
            job_id="ftjob-1",
            status="succeeded",
            base_model=BASE,
            model_id=FINE_TUNE,
            started_at=NOW,
        )
    )
    assert api.get_job("ftjob-1").evaluation is None
    summary = evaluation_summary()
    registry.set_model_evaluation(FINE_TUNE, summary)
    cards = {card.id: card for card in api.list_models(dt.date(2026, 11, 25)).data}
    assert cards[FINE_TUNE].evaluation == summary
    assert api.get_job("ftjob-1").evaluation == summary
    shown = api.get_job("ftjob-1").model_dump(mode="json")["evaluation"]
    assert [c["name"] for c in shown["contenders"]] == ["candidate", "base", "few_shot"]
    assert shown["decision"]["promote"] is True


def test_unknown_job_is_404(api: ApiService) -> None:
    with pytest.raises(ApiError) as error:
        api.get_job("ftjob-nope")
    assert (error.value.status, error.value.code) == (404, "job_not_found")


def test_lookups_are_cached_for_their_ttl() -> None:
    now = [0.0]
    cache = LookupCache(ttl_seconds=30, clock=lambda: now[0])
    loads: list[int] = []

    def load() -> int:
        loads.append(1)
        return len(loads)

    assert [cache.get("k", load), cache.get("k", load)] == [1, 1]
    now[0] = 31
    assert cache.get("k", load) == 2
    cache.forget(lambda key: key == "k")
    assert cache.get("k", load) == 3


def test_a_promotion_is_seen_at_once_by_the_container_that_made_it(api: ApiService) -> None:
    api.put_alias("bot", AliasUpdate(model=BASE), NOW)
    assert api.chat(ask("bot"), 0.5).served_model == BASE
    api.put_alias("bot", AliasUpdate(model=FINE_TUNE), NOW)
    assert api.chat(ask("bot"), 0.5).served_model == FINE_TUNE


def test_cancel_answers_with_the_same_view_as_get_job(
    api: ApiService, registry: InMemoryRegistry, provider: FakeProvider
) -> None:
    trained = registry.get_model(FINE_TUNE)
    assert trained is not None
    registry.register_model(
        trained.model_copy(
            update={
                "model_id": FINE_TUNE + "-2",
                "actual_cost_usd": 0.42,
                "train_loss": 0.25,
                "valid_loss": 0.31,
            }
        )
    )
    registry.put_job(
        JobRecord(
            dataset_id="d1",
            provider="openai",
            job_id="ftjob-1",
            status="running",
            base_model=BASE,
            model_id=FINE_TUNE + "-2",
            started_at=NOW,
        )
    )
    provider.jobs["ftjob-1"] = ProviderJob(
        job_id="ftjob-1",
        status="running",
        state=JobState.RUNNING,
        base_model=BASE,
        created_at=int(NOW.timestamp()),
    )
    before = api.get_job("ftjob-1")
    assert (before.actual_cost_usd, before.train_loss, before.hyperparameters) == (
        0.42,
        0.25,
        {"n_epochs": 3},
    )
    cancelled = api.cancel_job("ftjob-1")
    assert cancelled.status == "cancelled"
    assert cancelled == before.model_copy(update={"status": "cancelled"})


@pytest.mark.parametrize(
    ("variants", "message"),
    [
        ([], "Invalid 'variants': empty array. Expected an array with minimum length 1"),
        (
            [Variant(model=BASE, weight=60)],
            "Invalid 'variants': variant weights must add up to 100, not 60.",
        ),
        (
            [Variant(model=BASE, weight=50), Variant(model=BASE, weight=50)],
            "Invalid 'variants': each model may appear in only one variant.",
        ),
    ],
)
def test_a_bad_split_is_refused_in_a_plain_sentence(
    api: ApiService, variants: list[Variant], message: str
) -> None:
    with pytest.raises(ApiError) as refused:
        api.put_alias("bot", AliasUpdate(variants=variants), NOW)
    error = refused.value
    assert (error.status, error.code, error.param) == (400, "invalid_alias_update", "variants")
    assert error.message.startswith(message)
    assert "pydantic" not in error.message and "validation error" not in error.message
