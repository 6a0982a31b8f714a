"""The Bedrock adapter against the Bedrock stand-in (and moto S3), through real boto3 clients."""

from __future__ import annotations

import io
from collections.abc import Iterator

import boto3
import pytest
from botocore.config import Config
from moto import mock_aws

from sft_local.bedrock_standin import BedrockStandIn, BedrockTimeline
from sft_pipeline.evaluation.report_html import LossPoint
from sft_pipeline.jobs import Hyperparameters, JobState
from sft_pipeline.providers.base import JobRequest, ProviderPermanentError, ProviderRateLimitError
from sft_pipeline.providers.bedrock_provider import BedrockConfig, BedrockProvider, _loss_curve
from sft_pipeline.validation.targets.bedrock import job_setting_problems
from tests.conftest import as_lines, good_examples

BUCKET = "sft-test-data"
NOVA_MICRO = "amazon.nova-micro-v1:0:128k"
T0 = 1_795_000_000.0


@pytest.fixture
def standin() -> Iterator[BedrockStandIn]:
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket=BUCKET)

        def read(uri: str) -> bytes:
            bucket, _, key = uri.removeprefix("s3://").partition("/")
            body: bytes = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
            return body

        def write(uri: str, body: bytes) -> None:
            bucket, _, key = uri.removeprefix("s3://").partition("/")
            s3.put_object(Bucket=bucket, Key=key, Body=body)

        timeline = BedrockTimeline(training=60, validating=5, stopping=2, deploying=10)
        with BedrockStandIn(
            read_object=read, write_object=write, timeline=timeline, clock=lambda: T0
        ) as running:
            yield running


def provider_for(standin: BedrockStandIn, *, deploy: bool = True) -> BedrockProvider:
    options = {"endpoint_url": standin.endpoint_url, "region_name": "us-east-1"}
    return BedrockProvider(
        control=boto3.client("bedrock", **options),
        runtime=boto3.client("bedrock-runtime", **options),
        s3=boto3.client("s3", region_name="us-east-1"),
        config=BedrockConfig(
            role_arn="arn:aws:iam::123456789012:role/bedrock",
            bucket=BUCKET,
            prepared_prefix="prepared/",
            output_prefix="bedrock-output/",
            deploy_on_demand=deploy,
        ),
    )


def launch(
    provider: BedrockProvider, tag: str = "a" * 32, suffix: str | None = "support", **hyper: object
) -> str:
    data = as_lines(good_examples(12))
    file_id = provider.upload_file(
        "train.jsonl", io.BytesIO(data), len(data), base_model=NOVA_MICRO, upload_tag=tag
    )
    assert file_id == f"s3://{BUCKET}/prepared/{tag}/bedrock/train.jsonl"
    job = provider.create_job(
        JobRequest(
            base_model=NOVA_MICRO,
            training_file=file_id,
            suffix=suffix,
            hyperparameters=Hyperparameters(**hyper),
            upload_tag=tag,
        )  # type: ignore[arg-type]
    )
    assert job.state is JobState.RUNNING
    return job.job_id


def test_lifecycle_metrics_and_on_demand_serving(standin: BedrockStandIn) -> None:
    provider = provider_for(standin)
    job_id = launch(provider, n_epochs=3)
    assert provider.find_job("a" * 32) is not None and provider.find_job("b" * 32) is None
    standin.advance(120)
    job = provider.get_job(job_id)
    assert (job.state, job.hyperparameters["epochCount"]) == (JobState.SUCCEEDED, 3)
    metrics = provider.final_metrics(job)
    assert metrics is not None and metrics.train_loss is not None and metrics.steps > 0
    # The loss curve: one point per step from 0, ending on the final loss.
    assert [point.step for point in metrics.curve] == list(range(metrics.steps + 1))
    assert metrics.curve[-1].train_loss == metrics.train_loss
    serving = provider.serve(job)
    assert (serving.status, ":custom-model-deployment/" in serving.model) == ("deploying", True)
    standin.advance(20)
    assert provider.serving_status(serving.model) == "ready"
    answer = provider.chat(
        {"model": serving.model, "messages": [{"role": "user", "content": "Question number 7?"}]}
    )
    # The stand-in's custom model answers from the data it was trained on.
    assert answer["choices"][0]["message"]["content"] == "Answer number 7 about tents."
    # Serving again (a retried step) reuses the deployment.
    assert provider.serve(job).model == serving.model


def test_same_upload_same_job(standin: BedrockStandIn) -> None:
    provider = provider_for(standin)
    assert launch(provider) == launch(provider)
    assert len(standin.jobs) == 1


def test_out_of_range_hyperparameters_are_refused(standin: BedrockStandIn) -> None:
    with pytest.raises(ProviderPermanentError) as refused:
        launch(provider_for(standin), n_epochs=9)
    assert refused.value.code == "invalid_hyperparameters"
    with pytest.raises(ProviderPermanentError, match="batch size"):
        launch(provider_for(standin), batch_size=8)


@pytest.mark.parametrize(
    ("suffix", "name"),
    [
        ("support", "sft-support-aaaaaaaaaaaa"),
        ("tents_v2", "sft-tents_v2-aaaaaaaaaaaa"),
        (None, "sft-model-aaaaaaaaaaaa"),
        ("a" * 46, f"sft-{'a' * 46}-aaaaaaaaaaaa"),
    ],
)
def test_a_suffix_validation_accepts_names_a_model_bedrock_accepts(
    standin: BedrockStandIn, suffix: str | None, name: str
) -> None:
    assert job_setting_problems(NOVA_MICRO, Hyperparameters(), suffix) == []
    launch(provider_for(standin), suffix=suffix)
    control = boto3.client("bedrock", endpoint_url=standin.endpoint_url, region_name="us-east-1")
    [job] = control.list_model_customization_jobs()["modelCustomizationJobSummaries"]
    assert job["customModelName"] == name


@pytest.mark.parametrize("suffix", ["tents__v2", "tents_-v2", "tents-", "a" * 47, "a" * 50])
def test_a_suffix_validation_refuses_never_reaches_bedrock(
    standin: BedrockStandIn, suffix: str
) -> None:
    [problem] = job_setting_problems(NOVA_MICRO, Hyperparameters(), suffix)
    with pytest.raises(ProviderPermanentError) as refused:
        launch(provider_for(standin), suffix=suffix)
    assert (refused.value.code, f"{refused.value.message}.") == ("invalid_suffix", problem)
    assert standin.jobs == {}


def test_stop_and_throttling(standin: BedrockStandIn) -> None:
    provider = provider_for(standin)
    job_id = launch(provider)
    assert provider.cancel_job(job_id).status in ("Stopping", "Stopped")
    standin.advance(5)
    assert provider.get_job(job_id).state is JobState.CANCELLED
    # Without the SDK's own retries, the error the workflow retries is seen.
    no_retries = Config(retries={"total_max_attempts": 1})
    throttled = BedrockProvider(
        control=boto3.client(
            "bedrock", endpoint_url=standin.endpoint_url, region_name="us-east-1", config=no_retries
        ),
        runtime=None,
        s3=None,
        config=BedrockConfig(
            role_arn="r",
            bucket=BUCKET,
            prepared_prefix="p/",
            output_prefix="o/",
            deploy_on_demand=True,
        ),
    )
    standin.faults.throttle(times=1)
    with pytest.raises(ProviderRateLimitError):
        throttled.get_job(job_id)


def test_serving_without_on_demand_deployment_says_what_to_do(standin: BedrockStandIn) -> None:
    provider = provider_for(standin, deploy=False)
    job_id = launch(provider)
    standin.advance(120)
    serving = provider.serve(provider.get_job(job_id))
    assert serving.status == "disabled" and "create-custom-model-deployment" in (serving.note or "")
    assert standin.deployments == {}


def test_the_loss_curve_puts_each_epochs_validation_loss_at_its_step() -> None:
    steps = [
        {"step_number": "0", "training_loss": "2.0"},
        {"step_number": "1", "training_loss": "1.2"},
        {"step_number": "2", "training_loss": "0.8"},
        {"step_number": "", "training_loss": "9"},
    ]
    epochs = [
        {"step_number": "1", "validation_loss": "1.4"},
        {"step_number": "3", "validation_loss": "1.0"},
    ]
    assert _loss_curve(steps, epochs) == [
        LossPoint(step=0, train_loss=2.0),
        LossPoint(step=1, train_loss=1.2, valid_loss=1.4),
        LossPoint(step=2, train_loss=0.8),
        LossPoint(step=3, valid_loss=1.0),
    ]
