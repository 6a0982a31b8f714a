"""The OpenAI adapter against the emulator, through the real openai SDK."""

from __future__ import annotations

import base64
import io
from collections.abc import Iterator

import openai
import pytest

from sft_local.openai_emulator import JobTimeline, OpenAIEmulator
from sft_pipeline.evaluation.report_html import LossPoint
from sft_pipeline.jobs import Hyperparameters, JobState
from sft_pipeline.providers import openai_provider
from sft_pipeline.providers.base import (
    JobRequest,
    ProviderPermanentError,
    ProviderRateLimitError,
    ProviderTransientError,
)
from sft_pipeline.providers.openai_provider import OpenAIProvider, parse_result_metrics
from tests.conftest import as_lines, good_examples

T0 = 1_795_000_000.0
TRAINING = as_lines(good_examples(12))


@pytest.fixture
def emulator() -> Iterator[OpenAIEmulator]:
    with OpenAIEmulator(
        timeline=JobTimeline(validating=10, queued=10, running=60), clock=lambda: T0
    ) as running:
        yield running


@pytest.fixture
def sleeps() -> list[float]:
    return []


@pytest.fixture
def provider(emulator: OpenAIEmulator, sleeps: list[float]) -> OpenAIProvider:
    client = openai.OpenAI(
        base_url=emulator.base_url, api_key="sk-test", timeout=5.0, max_retries=0
    )
    return OpenAIProvider(client, sleep=sleeps.append, max_rate_limit_wait=5.0)


def create(provider: OpenAIProvider, tag: str = "dataset-1") -> str:
    file_id = provider.upload_file("train.jsonl", io.BytesIO(TRAINING), len(TRAINING))
    job = provider.create_job(
        JobRequest(
            base_model="gpt-4o-mini",
            training_file=file_id,
            suffix="support",
            hyperparameters=Hyperparameters(n_epochs=2),
            upload_tag=tag,
        )
    )
    assert (job.status, job.state, job.base_model) == (
        "validating_files",
        JobState.RUNNING,
        "gpt-4o-mini-2024-07-18",
    )
    return job.job_id


def test_lifecycle_find_events_and_metrics(
    provider: OpenAIProvider, emulator: OpenAIEmulator
) -> None:
    job_id = create(provider)
    found = provider.find_job("dataset-1")
    assert found is not None and found.job_id == job_id
    assert provider.find_job("dataset-2") is None
    emulator.advance(200)
    job = provider.get_job(job_id)
    assert job.state is JobState.SUCCEEDED
    assert job.fine_tuned_model is not None and ":support:" in job.fine_tuned_model
    assert job.hyperparameters["n_epochs"] == 2 and job.trained_tokens
    assert provider.recent_events(job_id, 3)[0]
    metrics = provider.final_metrics(job)
    assert metrics is not None and metrics.train_loss is not None and metrics.steps > 0


def test_cancel_is_safe_to_repeat(provider: OpenAIProvider, emulator: OpenAIEmulator) -> None:
    job_id = create(provider)
    assert provider.cancel_job(job_id).state is JobState.CANCELLED
    assert provider.cancel_job(job_id).state is JobState.CANCELLED
    assert len(emulator.requests_to("POST /fine_tuning/jobs/{job_id}/cancel")) == 1


def test_failed_job_carries_its_error(provider: OpenAIProvider, emulator: OpenAIEmulator) -> None:
    emulator.faults.fail_next_job(code="invalid_training_file", message="bad line 3")
    job_id = create(provider)
    emulator.advance(15)
    job = provider.get_job(job_id)
    assert (job.state, job.error_code, job.error_message) == (
        JobState.FAILED,
        "invalid_training_file",
        "bad line 3",
    )


def test_short_rate_limit_is_waited_out_once(
    provider: OpenAIProvider, emulator: OpenAIEmulator, sleeps: list[float]
) -> None:
    emulator.faults.rate_limit(times=1, retry_after=1.5, route="POST /fine_tuning/jobs")
    create(provider)
    assert sleeps == [1.5]
    assert [r.status for r in emulator.requests_to("POST /fine_tuning/jobs")] == [429, 200]


def test_persistent_rate_limit_goes_to_the_workflow(
    provider: OpenAIProvider, emulator: OpenAIEmulator
) -> None:
    emulator.faults.rate_limit(times=2, retry_after=1.0, route="POST /fine_tuning/jobs")
    with pytest.raises(ProviderRateLimitError) as raised:
        create(provider)
    assert raised.value.retry_after == pytest.approx(1.0)


def test_daily_cap_is_permanent(provider: OpenAIProvider, emulator: OpenAIEmulator) -> None:
    emulator.faults.daily_rate_limit(retry_after=3600)
    with pytest.raises(ProviderPermanentError) as raised:
        create(provider)
    assert raised.value.code == "daily_rate_limit_exceeded"


def test_create_is_never_retried_by_the_sdk(emulator: OpenAIEmulator) -> None:
    # Even with SDK retries on for reads, a create that fails is not silently repeated.
    client = openai.OpenAI(
        base_url=emulator.base_url, api_key="sk-test", timeout=5.0, max_retries=2
    )
    provider = OpenAIProvider(client, sleep=lambda _: None)
    file_id = provider.upload_file("train.jsonl", io.BytesIO(TRAINING), len(TRAINING))
    emulator.faults.server_error(times=1, status=500, route="POST /fine_tuning/jobs")
    with pytest.raises(ProviderTransientError) as raised:
        provider.create_job(
            JobRequest(
                base_model="gpt-4o-mini",
                training_file=file_id,
                hyperparameters=Hyperparameters(),
                upload_tag="t",
            )
        )
    assert raised.value.code == "http_500"
    assert len(emulator.requests_to("POST /fine_tuning/jobs")) == 1


@pytest.mark.parametrize(
    ("inject", "error", "code"),
    [
        (
            lambda e: e.faults.server_error(times=1, status=503, should_retry=False),
            ProviderTransientError,
            "http_503",
        ),
        (
            lambda e: e.faults.block_job_creation(),
            ProviderPermanentError,
            "fine_tuning_unavailable",
        ),
    ],
    ids=["5xx", "organisation-blocked"],
)
def test_errors_are_classified(
    provider: OpenAIProvider, emulator: OpenAIEmulator, inject, error, code
) -> None:  # type: ignore[no-untyped-def]
    file_id = provider.upload_file("train.jsonl", io.BytesIO(TRAINING), len(TRAINING))
    inject(emulator)
    with pytest.raises(error) as raised:
        provider.create_job(
            JobRequest(
                base_model="gpt-4o-mini",
                training_file=file_id,
                hyperparameters=Hyperparameters(),
                upload_tag="t",
            )
        )
    assert raised.value.code == code


def test_bad_key_and_timeout(emulator: OpenAIEmulator) -> None:
    with OpenAIEmulator(api_key="sk-right") as strict:
        wrong = OpenAIProvider(
            openai.OpenAI(base_url=strict.base_url, api_key="sk-wrong", max_retries=0)
        )
        with pytest.raises(ProviderPermanentError) as raised:
            wrong.find_job("t")
        assert raised.value.code == "authentication_failed"
    emulator.faults.slow(2.0, times=1)
    impatient = OpenAIProvider(
        openai.OpenAI(base_url=emulator.base_url, api_key="k", timeout=0.3, max_retries=0)
    )
    with pytest.raises(ProviderTransientError) as timed_out:
        impatient.find_job("t")
    assert timed_out.value.code == "timeout"
    host = emulator.base_url.split("//")[1].split("/")[0]
    assert timed_out.value.message == f"{host} did not answer in time"


def test_an_unreachable_endpoint_is_named_without_its_credentials() -> None:
    nowhere = OpenAIProvider(
        openai.OpenAI(base_url="http://user:secret@127.0.0.1:9/v1", api_key="k", max_retries=0)
    )
    with pytest.raises(ProviderTransientError) as unreachable:
        nowhere.find_job("t")
    assert unreachable.value.code == "connection_error"
    assert unreachable.value.message == "could not reach 127.0.0.1:9"


def test_large_files_go_through_the_uploads_api(
    provider: OpenAIProvider, emulator: OpenAIEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(openai_provider, "FILES_API_LIMIT", 1000)
    monkeypatch.setattr(openai_provider, "UPLOAD_PART_SIZE", 700)
    file_id = provider.upload_file("train.jsonl", io.BytesIO(TRAINING), len(TRAINING))
    assert file_id.startswith("file-")
    parts = emulator.requests_to("POST /uploads/{upload_id}/parts")
    assert len(parts) == -(-len(TRAINING) // 700)
    assert emulator.requests_to("POST /files") == []


def test_result_metrics_parse_plain_and_base64() -> None:
    csv = b"step,train_loss,train_accuracy,valid_loss,valid_mean_token_accuracy\n1,1.5,0.5,,\n2,0.9,0.7,1.1,0.6\n3,0.4,0.9,,\n"
    for content in (csv, base64.b64encode(csv)):
        metrics = parse_result_metrics(content)
        assert metrics is not None
        assert (metrics.steps, metrics.train_loss, metrics.valid_loss) == (3, 0.4, 1.1)
        assert metrics.curve == [
            LossPoint(step=1, train_loss=1.5),
            LossPoint(step=2, train_loss=0.9, valid_loss=1.1),
            LossPoint(step=3, train_loss=0.4),
        ]
    assert parse_result_metrics(b"") is None


def test_the_loss_curve_keeps_only_numbers() -> None:
    csv = b"step,train_loss,valid_loss\n1,nan,\nsummary,0.5,0.6\n2,0.8,oops\n"
    metrics = parse_result_metrics(csv)
    assert metrics is not None
    assert metrics.curve == [LossPoint(step=1), LossPoint(step=2, train_loss=0.8)]
