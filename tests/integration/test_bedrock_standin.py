"""The Bedrock stand-in, driven by unmodified boto3 clients over real HTTP.

Every answer the clients receive is checked against botocore's service model:
a success body may hold only the members the operation's output shape
declares, with every required member present and every string matching its
pattern and enum; an error carries ``x-amzn-ErrorType`` and a ``{"message"}``
body. So the stand-in cannot drift from the wire format without a test noticing.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.model import ListShape, MapShape, OperationModel, Shape, StructureShape
from moto import mock_aws

from sft_local.bedrock_standin import BedrockStandIn, BedrockTimeline

START = 1_750_000_000.0
TIMELINE = BedrockTimeline(training=600, validating=30, stopping=5, deploying=120)
ROLE_ARN = "arn:aws:iam::123456789012:role/bedrock-customization"
BASE_MODEL = "amazon.nova-micro-v1:0:128k"
TRAINING_URI = "s3://sft-data/datasets/train.jsonl"
VALIDATION_URI = "s3://sft-data/datasets/valid.jsonl"
OUTPUT_URI = "s3://sft-data/outputs/"
TOOL_CONFIG = {
    "tools": [
        {"toolSpec": {"name": "find_tent", "inputSchema": {"json": {"type": "object"}}}},
        {"toolSpec": {"name": "book_trip", "inputSchema": {"json": {"type": "object"}}}},
    ]
}


def record(i: int, schema_version: str = "bedrock-conversation-2024") -> dict[str, Any]:
    return {
        "schemaVersion": schema_version,
        "system": [{"text": "You help hikers choose gear."}],
        "messages": [
            {"role": "user", "content": [{"text": f"Which tent suits trip {i}?"}]},
            {"role": "assistant", "content": [{"text": f"The two-person tent suits trip {i}."}]},
        ],
    }


def jsonl(rows: list[dict[str, Any]]) -> bytes:
    return b"".join(json.dumps(row).encode() + b"\n" for row in rows)


TRAINING_DATA = jsonl([record(i) for i in range(20)])
VALIDATION_DATA = jsonl([record(i) for i in range(4)])


# The wire contract


def assert_conforms(shape: Shape, value: object, path: str = "") -> None:
    """``value`` is what the output shape allows: declared members only, patterns and enums met."""
    if shape.metadata.get("document"):
        return
    if isinstance(shape, StructureShape):
        assert isinstance(value, dict), path
        assert not set(value) - set(shape.members), (
            f"{path}: undeclared {set(value) - set(shape.members)}"
        )
        assert not set(shape.required_members) - set(value), f"{path}: missing required members"
        for name, item in value.items():
            assert_conforms(shape.members[name], item, f"{path}.{name}")
    elif isinstance(shape, ListShape):
        assert isinstance(value, list), path
        for index, item in enumerate(value):
            assert_conforms(shape.member, item, f"{path}[{index}]")
    elif isinstance(shape, MapShape):
        assert isinstance(value, dict), path
        for key, item in value.items():
            assert_conforms(shape.value, item, f"{path}.{key}")
    elif shape.type_name == "string":
        assert isinstance(value, str), path
        pattern = shape.metadata.get("pattern")
        assert pattern is None or re.fullmatch(pattern, value), f"{path}: {value}"
        assert not shape.metadata.get("enum") or value in shape.metadata["enum"], path
    elif shape.type_name == "timestamp":
        assert isinstance(value, str) and datetime.fromisoformat(value).tzinfo is not None, path
    elif shape.type_name in ("integer", "long"):
        assert isinstance(value, int) and not isinstance(value, bool), path
    elif shape.type_name in ("float", "double"):
        assert isinstance(value, int | float) and not isinstance(value, bool), path


def check_wire_format(
    operation_model: OperationModel, response_dict: dict[str, Any], **_: Any
) -> None:
    body = json.loads(response_dict["body"] or b"{}")
    if response_dict["status_code"] >= 300:
        assert response_dict["headers"]["x-amzn-errortype"]
        assert set(body) == {"message"} and body["message"]
    else:
        assert response_dict["status_code"] == operation_model.http.get("responseCode", 200)
        assert operation_model.output_shape is not None
        assert_conforms(operation_model.output_shape, body)


def client(service: str, standin: BedrockStandIn, max_attempts: int = 1) -> Any:
    made = boto3.client(
        service,  # type: ignore[call-overload]
        endpoint_url=standin.endpoint_url,
        region_name="us-east-1",
        aws_access_key_id="x",
        aws_secret_access_key="x",
        config=Config(retries={"total_max_attempts": max_attempts, "mode": "standard"}),
    )
    made.meta.events.register("before-parse", check_wire_format)
    return made


# Fixtures


@pytest.fixture
def storage() -> dict[str, bytes]:
    return {TRAINING_URI: TRAINING_DATA, VALIDATION_URI: VALIDATION_DATA}


@pytest.fixture
def standin(storage: dict[str, bytes]) -> Iterator[BedrockStandIn]:
    with BedrockStandIn(
        read_object=storage.__getitem__,
        write_object=storage.__setitem__,
        timeline=TIMELINE,
        clock=lambda: START,
        chat_latency=0,
    ) as running:
        yield running


@pytest.fixture
def bedrock(standin: BedrockStandIn) -> Any:
    return client("bedrock", standin)


@pytest.fixture
def runtime(standin: BedrockStandIn) -> Any:
    return client("bedrock-runtime", standin)


def create_job(bedrock: Any, name: str = "tents-1", **overrides: Any) -> str:
    request: dict[str, Any] = {
        "jobName": name,
        "customModelName": f"{name}-model",
        "roleArn": ROLE_ARN,
        "baseModelIdentifier": BASE_MODEL,
        "customizationType": "FINE_TUNING",
        "trainingDataConfig": {"s3Uri": TRAINING_URI},
        "outputDataConfig": {"s3Uri": OUTPUT_URI},
        "hyperParameters": {"epochCount": "2", "learningRate": "0.00001"},
    } | overrides
    arn: str = bedrock.create_model_customization_job(**request)["jobArn"]
    return arn


def completed_model(bedrock: Any, standin: BedrockStandIn, name: str = "tents-1") -> str:
    create_job(bedrock, name)
    standin.advance(TIMELINE.training)
    arn: str = bedrock.get_model_customization_job(jobIdentifier=name)["outputModelArn"]
    return arn


def active_deployment(bedrock: Any, standin: BedrockStandIn) -> str:
    model_arn = completed_model(bedrock, standin)
    arn: str = bedrock.create_custom_model_deployment(
        modelDeploymentName="tents-live", modelArn=model_arn
    )["customModelDeploymentArn"]
    standin.advance(TIMELINE.deploying)
    return arn


def csv_rows(content: bytes) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(content.decode())))


def at(seconds_after_start: float) -> datetime:
    return datetime.fromtimestamp(START + seconds_after_start, UTC)


# Model customization jobs


def test_create_answers_201_with_a_job_arn_and_keeps_the_tags(
    bedrock: Any, standin: BedrockStandIn
) -> None:
    response = bedrock.create_model_customization_job(
        jobName="tents-1",
        customModelName="tents-model",
        roleArn=ROLE_ARN,
        baseModelIdentifier=f"arn:aws:bedrock:us-east-1::foundation-model/{BASE_MODEL}",
        trainingDataConfig={"s3Uri": TRAINING_URI},
        outputDataConfig={"s3Uri": OUTPUT_URI},
        jobTags=[{"key": "run", "value": "run-42"}],
        customModelTags=[{"key": "team", "value": "gear"}],
    )

    assert response["ResponseMetadata"]["HTTPStatusCode"] == 201
    prefix, _, job_id = response["jobArn"].rpartition("/")
    assert prefix == f"arn:aws:bedrock:us-east-1:123456789012:model-customization-job/{BASE_MODEL}"
    assert len(job_id) == 12
    job = standin.jobs[response["jobArn"]]
    assert (job.name, job.status, job.training_records) == ("tents-1", "InProgress", 20)
    assert dict(job.job_tags) == {"run": "run-42"}
    assert dict(job.custom_model_tags) == {"team": "gear"}


def test_job_runs_in_progress_then_completes_on_the_clock(
    bedrock: Any, standin: BedrockStandIn
) -> None:
    job_arn = create_job(bedrock, validationDataConfig={"validators": [{"s3Uri": VALIDATION_URI}]})

    running = bedrock.get_model_customization_job(jobIdentifier=job_arn)
    assert running["status"] == "InProgress"
    assert running["creationTime"] == at(0)
    for absent in ("outputModelArn", "endTime", "trainingMetrics", "validationMetrics"):
        assert absent not in running
    assert running["outputModelName"] == "tents-1-model"
    assert running["baseModelArn"] == f"arn:aws:bedrock:us-east-1::foundation-model/{BASE_MODEL}"
    assert running["hyperParameters"] == {"epochCount": "2", "learningRate": "0.00001"}

    standin.advance(TIMELINE.training - 1)
    assert bedrock.get_model_customization_job(jobIdentifier=job_arn)["status"] == "InProgress"
    standin.advance(100)

    done = bedrock.get_model_customization_job(jobIdentifier="tents-1")
    assert done["status"] == "Completed"
    assert done["endTime"] == done["lastModifiedTime"] == at(TIMELINE.training)
    assert done["outputModelArn"].startswith(
        f"arn:aws:bedrock:us-east-1:123456789012:custom-model/{BASE_MODEL}/"
    )
    assert 0 < done["trainingMetrics"]["trainingLoss"] < 1
    assert len(done["validationMetrics"]) == 1
    assert done["validationMetrics"][0]["validationLoss"] > done["trainingMetrics"]["trainingLoss"]
    assert "failureMessage" not in done
    assert standin.jobs[job_arn].output_model_arn == done["outputModelArn"]


def test_completed_job_writes_the_metrics_files(
    bedrock: Any, standin: BedrockStandIn, storage: dict[str, bytes]
) -> None:
    job_arn = create_job(
        bedrock,
        validationDataConfig={"validators": [{"s3Uri": VALIDATION_URI}]},
        hyperParameters={"epochCount": "3"},
    )
    folder = f"{OUTPUT_URI}model-customization-job-{job_arn[-12:]}"
    training_uri = f"{folder}/training_artifacts/step_wise_training_metrics.csv"
    validation_uri = (
        f"{folder}/validation_artifacts/post_fine_tuning_validation/validation_metrics.csv"
    )
    assert training_uri not in storage

    standin.advance(TIMELINE.training)

    job = bedrock.get_model_customization_job(jobIdentifier=job_arn)
    training = csv_rows(storage[training_uri])
    steps_per_epoch = math.ceil(20 / 8)
    assert list(training[0]) == ["step_number", "epoch_number", "training_loss", "perplexity"]
    assert [row["step_number"] for row in training] == [str(i) for i in range(3 * steps_per_epoch)]
    assert [row["epoch_number"] for row in training] == ["0"] * 3 + ["1"] * 3 + ["2"] * 3
    assert float(training[-1]["training_loss"]) == job["trainingMetrics"]["trainingLoss"]
    assert float(training[0]["training_loss"]) > float(training[-1]["training_loss"])
    assert float(training[0]["perplexity"]) == pytest.approx(
        math.exp(float(training[0]["training_loss"])), rel=1e-5
    )
    validation = csv_rows(storage[validation_uri])
    assert list(validation[0]) == ["step_number", "epoch_number", "validation_loss", "perplexity"]
    assert [(row["step_number"], row["epoch_number"]) for row in validation] == [
        ("2", "0"),
        ("5", "1"),
        ("8", "2"),
    ]
    assert float(validation[-1]["validation_loss"]) == job["validationMetrics"][0]["validationLoss"]


def test_job_without_validation_data_has_no_validation_metrics(
    bedrock: Any, standin: BedrockStandIn, storage: dict[str, bytes]
) -> None:
    job_arn = create_job(bedrock, outputDataConfig={"s3Uri": "s3://sft-data/outputs"})
    standin.advance(TIMELINE.training)

    job = bedrock.get_model_customization_job(jobIdentifier=job_arn)
    assert job["validationDataConfig"] == {"validators": []}
    assert "validationMetrics" not in job
    written = sorted(uri for uri in storage if "/outputs/" in uri)
    assert written == [
        f"s3://sft-data/outputs/model-customization-job-{job_arn[-12:]}"
        "/training_artifacts/step_wise_training_metrics.csv"
    ]


def test_same_client_request_token_returns_the_same_job(
    bedrock: Any, standin: BedrockStandIn
) -> None:
    first = create_job(bedrock, clientRequestToken="run-42-attempt")
    again = create_job(bedrock, clientRequestToken="run-42-attempt")

    assert again == first
    assert list(standin.jobs) == [first]
    assert standin.jobs[first].client_request_token == "run-42-attempt"
    assert len(standin.requests_to("CreateModelCustomizationJob")) == 2


def test_a_job_name_taken_under_another_token_is_a_conflict(bedrock: Any) -> None:
    create_job(bedrock, clientRequestToken="first-token")

    with pytest.raises(bedrock.exceptions.ConflictException, match="tents-1 already exists"):
        create_job(bedrock, clientRequestToken="second-token")


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"jobName": "tents_1"}, "Value 'tents_1' at 'jobName' failed to satisfy constraint"),
        ({"customModelName": "tents-v1.2"}, "at 'customModelName' failed to satisfy constraint"),
        ({"roleArn": "arn:aws:iam::123456789012:user/me"}, "at 'roleArn'"),
        (
            {"trainingDataConfig": {"s3Uri": "s3://sft-data/my file.jsonl"}},
            "at 'trainingDataConfig.s3Uri' failed to satisfy constraint",
        ),
        (
            {
                "trainingDataConfig": {
                    "invocationLogsConfig": {"invocationLogSource": {"s3Uri": TRAINING_URI}}
                }
            },
            "Value null at 'trainingDataConfig.s3Uri' failed to satisfy constraint: Member must not be null",
        ),
        ({"jobTags": [{"key": "run#1", "value": "x"}]}, "at 'jobTags.1.member.key'"),
        ({"baseModelIdentifier": "amazon.nova-micro-v1:0"}, "cannot be fine-tuned"),
        ({"customizationType": "DISTILLATION"}, "use FINE_TUNING"),
        ({"hyperParameters": {"n_epochs": "3"}}, "Unknown hyperparameter n_epochs"),
        ({"hyperParameters": {"epochCount": "9"}}, "epochCount must be an integer from 1 to 5"),
        ({"hyperParameters": {"learningRate": "fast"}}, "learningRate must be a number"),
    ],
)
def test_invalid_job_requests_are_validation_exceptions(
    bedrock: Any, standin: BedrockStandIn, overrides: dict[str, Any], expected: str
) -> None:
    with pytest.raises(bedrock.exceptions.ValidationException) as raised:
        create_job(bedrock, **overrides)

    assert expected in raised.value.response["Error"]["Message"]
    assert raised.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert not standin.jobs


def test_every_violation_is_listed_in_one_validation_exception(standin: BedrockStandIn) -> None:
    status, headers, body = raw_request(standin, "POST", "/model-customization-jobs", b"{}")

    assert (status, headers["x-amzn-ErrorType"]) == (400, "ValidationException")
    message = json.loads(body)["message"]
    assert message.startswith("6 validation errors detected: ")
    for member in ("jobName", "customModelName", "roleArn", "baseModelIdentifier"):
        assert (
            f"Value null at '{member}' failed to satisfy constraint: Member must not be null"
            in message
        )


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (TRAINING_DATA[:-1] + b"\n{not json\n", "line 21 is not valid JSON"),
        (
            jsonl([record(0), record(1, schema_version="bedrock-conversation-2023")]),
            'line 2 has schemaVersion "bedrock-conversation-2023", expected "bedrock-conversation-2024"',
        ),
        (
            jsonl([record(0), {k: v for k, v in record(1).items() if k != "schemaVersion"}]),
            'line 2 has schemaVersion null, expected "bedrock-conversation-2024"',
        ),
        (b'["a list"]\n', "line 1 is not a JSON object"),
        (jsonl([record(i) for i in range(5)]), "it has 5 records, fewer than the minimum of 8"),
        (jsonl([record(0)]) * 20_001, "it has 20001 records, more than the maximum of 20000"),
    ],
)
def test_unusable_training_data_fails_the_job_after_the_data_check(
    bedrock: Any,
    standin: BedrockStandIn,
    storage: dict[str, bytes],
    content: bytes,
    expected: str,
) -> None:
    storage[TRAINING_URI] = content
    job_arn = create_job(bedrock)
    assert bedrock.get_model_customization_job(jobIdentifier=job_arn)["status"] == "InProgress"

    standin.advance(TIMELINE.validating)

    job = bedrock.get_model_customization_job(jobIdentifier=job_arn)
    assert job["status"] == "Failed"
    assert job["failureMessage"] == f"Invalid training data {TRAINING_URI}: {expected}."
    assert job["endTime"] == at(TIMELINE.validating)
    assert "outputModelArn" not in job and "trainingMetrics" not in job
    standin.advance(TIMELINE.training)
    assert not [uri for uri in storage if uri.endswith(".csv")]


def test_unusable_validation_data_fails_the_job(
    bedrock: Any, standin: BedrockStandIn, storage: dict[str, bytes]
) -> None:
    storage[VALIDATION_URI] = b"{}\n"
    job_arn = create_job(bedrock, validationDataConfig={"validators": [{"s3Uri": VALIDATION_URI}]})
    standin.advance(TIMELINE.validating)

    job = bedrock.get_model_customization_job(jobIdentifier=job_arn)
    assert job["failureMessage"] == (
        f"Invalid validation data {VALIDATION_URI}: line 1 has schemaVersion null, "
        'expected "bedrock-conversation-2024".'
    )


def test_unreadable_training_data_fails_the_job(bedrock: Any, standin: BedrockStandIn) -> None:
    job_arn = create_job(bedrock, trainingDataConfig={"s3Uri": "s3://sft-data/missing.jsonl"})
    standin.advance(TIMELINE.validating)

    job = bedrock.get_model_customization_job(jobIdentifier=job_arn)
    assert job["status"] == "Failed"
    assert job["failureMessage"].startswith("Could not read s3://sft-data/missing.jsonl")


def test_unwritable_output_fails_the_job_at_the_end_of_training(
    storage: dict[str, bytes],
) -> None:
    def refuse(uri: str, body: bytes) -> None:
        raise PermissionError(f"Access Denied for {uri}")

    with BedrockStandIn(
        read_object=storage.__getitem__, write_object=refuse, timeline=TIMELINE, clock=lambda: START
    ) as standin:
        bedrock = client("bedrock", standin)
        job_arn = create_job(bedrock)
        standin.advance(TIMELINE.training)

        job = bedrock.get_model_customization_job(jobIdentifier=job_arn)
    assert job["status"] == "Failed"
    assert job["failureMessage"].startswith("Could not write the training metrics to s3://")
    assert job["endTime"] == at(TIMELINE.training)


def test_fail_next_job_fails_only_the_next_job(bedrock: Any, standin: BedrockStandIn) -> None:
    standin.faults.fail_next_job("Training stopped: the service role lost access to the data.")
    failing = create_job(bedrock, "tents-1")
    healthy = create_job(bedrock, "tents-2")
    standin.advance(TIMELINE.training)

    failed = bedrock.get_model_customization_job(jobIdentifier=failing)
    assert (failed["status"], failed["failureMessage"]) == (
        "Failed",
        "Training stopped: the service role lost access to the data.",
    )
    assert failed["endTime"] == at(TIMELINE.validating)
    assert bedrock.get_model_customization_job(jobIdentifier=healthy)["status"] == "Completed"
    assert standin.jobs[failing].failure_message == failed["failureMessage"]


def test_stop_moves_a_job_through_stopping_to_stopped(
    bedrock: Any, standin: BedrockStandIn
) -> None:
    job_arn = create_job(bedrock)
    standin.advance(10)

    response = bedrock.stop_model_customization_job(jobIdentifier=job_arn)
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 200
    stopping = bedrock.get_model_customization_job(jobIdentifier=job_arn)
    assert (stopping["status"], stopping["lastModifiedTime"]) == ("Stopping", at(10))
    bedrock.stop_model_customization_job(jobIdentifier="tents-1")

    standin.advance(TIMELINE.stopping)
    stopped = bedrock.get_model_customization_job(jobIdentifier=job_arn)
    assert (stopped["status"], stopped["endTime"]) == ("Stopped", at(10 + TIMELINE.stopping))
    standin.advance(TIMELINE.training)
    assert bedrock.get_model_customization_job(jobIdentifier=job_arn)["status"] == "Stopped"
    with pytest.raises(bedrock.exceptions.ConflictException, match="already Stopped"):
        bedrock.stop_model_customization_job(jobIdentifier=job_arn)


def test_a_completed_job_cannot_be_stopped(bedrock: Any, standin: BedrockStandIn) -> None:
    job_arn = create_job(bedrock)
    standin.advance(TIMELINE.training)

    with pytest.raises(bedrock.exceptions.ConflictException, match="already Completed"):
        bedrock.stop_model_customization_job(jobIdentifier=job_arn)


def test_unknown_jobs_are_not_found(bedrock: Any) -> None:
    with pytest.raises(bedrock.exceptions.ResourceNotFoundException):
        bedrock.get_model_customization_job(jobIdentifier="no-such-job")
    with pytest.raises(bedrock.exceptions.ResourceNotFoundException):
        bedrock.stop_model_customization_job(
            jobIdentifier=f"arn:aws:bedrock:us-east-1:123456789012:model-customization-job/{BASE_MODEL}/abcdefabcdef"
        )


def test_list_filters_sorts_and_pages(bedrock: Any, standin: BedrockStandIn) -> None:
    for name in ("tents-1", "tents-2", "boots-1"):
        create_job(bedrock, name)
        standin.advance(60)
    bedrock.stop_model_customization_job(jobIdentifier="tents-2")

    def names(**query: Any) -> list[str]:
        page = bedrock.list_model_customization_jobs(**query)
        return [summary["jobName"] for summary in page["modelCustomizationJobSummaries"]]

    assert names() == ["boots-1", "tents-2", "tents-1"]
    assert names(sortBy="CreationTime", sortOrder="Ascending") == ["tents-1", "tents-2", "boots-1"]
    assert names(nameContains="tents") == ["tents-2", "tents-1"]
    assert names(statusEquals="Stopping") == ["tents-2"]
    assert names(creationTimeAfter=at(30)) == ["boots-1", "tents-2"]
    assert names(creationTimeBefore=at(30)) == ["tents-1"]

    first = bedrock.list_model_customization_jobs(maxResults=2)
    assert len(first["modelCustomizationJobSummaries"]) == 2
    rest = bedrock.list_model_customization_jobs(maxResults=2, nextToken=first["nextToken"])
    assert [s["jobName"] for s in rest["modelCustomizationJobSummaries"]] == ["tents-1"]
    assert "nextToken" not in rest
    pages = bedrock.get_paginator("list_model_customization_jobs").paginate(
        PaginationConfig={"PageSize": 1}
    )
    assert [s["jobName"] for page in pages for s in page["modelCustomizationJobSummaries"]] == [
        "boots-1",
        "tents-2",
        "tents-1",
    ]
    with pytest.raises(bedrock.exceptions.ValidationException, match="pagination token"):
        bedrock.list_model_customization_jobs(nextToken="not-a-token")


def test_list_summaries_carry_the_custom_model_once_completed(
    bedrock: Any, standin: BedrockStandIn
) -> None:
    job_arn = create_job(bedrock)
    (summary,) = bedrock.list_model_customization_jobs()["modelCustomizationJobSummaries"]
    assert "customModelArn" not in summary
    standin.advance(TIMELINE.training)

    (summary,) = bedrock.list_model_customization_jobs()["modelCustomizationJobSummaries"]
    job = bedrock.get_model_customization_job(jobIdentifier=job_arn)
    assert summary["customModelArn"] == job["outputModelArn"]
    assert (summary["customModelName"], summary["status"]) == ("tents-1-model", "Completed")
    assert summary["endTime"] == at(TIMELINE.training)


# Custom model deployments


def test_deployment_is_created_then_active_on_the_clock(
    bedrock: Any, standin: BedrockStandIn
) -> None:
    model_arn = completed_model(bedrock, standin)

    response = bedrock.create_custom_model_deployment(
        modelDeploymentName="tents-live",
        modelArn=model_arn,
        description="Gear advice",
        tags=[{"key": "team", "value": "gear"}],
    )
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 202
    arn = response["customModelDeploymentArn"]
    assert arn.startswith("arn:aws:bedrock:us-east-1:123456789012:custom-model-deployment/")
    creating = bedrock.get_custom_model_deployment(customModelDeploymentIdentifier=arn)
    assert (creating["status"], creating["modelArn"], creating["description"]) == (
        "Creating",
        model_arn,
        "Gear advice",
    )

    standin.advance(TIMELINE.deploying)
    active = bedrock.get_custom_model_deployment(customModelDeploymentIdentifier="tents-live")
    assert active["status"] == "Active"
    assert active["createdAt"] == at(TIMELINE.training)
    assert active["lastUpdatedAt"] == at(TIMELINE.training + TIMELINE.deploying)
    deployment = standin.deployments[arn]
    assert (deployment.name, deployment.status, deployment.model_arn) == (
        "tents-live",
        "Active",
        model_arn,
    )
    assert dict(deployment.tags) == {"team": "gear"}


def test_deployment_needs_a_completed_custom_model(bedrock: Any, standin: BedrockStandIn) -> None:
    create_job(bedrock)
    unknown = f"arn:aws:bedrock:us-east-1:123456789012:custom-model/{BASE_MODEL}/abcdefabcdef"

    with pytest.raises(
        bedrock.exceptions.ValidationException, match="is not an Active custom model"
    ):
        bedrock.create_custom_model_deployment(modelDeploymentName="tents-live", modelArn=unknown)
    with pytest.raises(bedrock.exceptions.ValidationException, match="modelDeploymentName"):
        bedrock.create_custom_model_deployment(
            modelDeploymentName="tents.live", modelArn=completed_model(bedrock, standin, "t-2")
        )
    assert not standin.deployments


def test_deployment_tokens_are_idempotent_and_names_unique(
    bedrock: Any, standin: BedrockStandIn
) -> None:
    model_arn = completed_model(bedrock, standin)
    first = bedrock.create_custom_model_deployment(
        modelDeploymentName="tents-live", modelArn=model_arn, clientRequestToken="deploy-42"
    )["customModelDeploymentArn"]
    again = bedrock.create_custom_model_deployment(
        modelDeploymentName="tents-live", modelArn=model_arn, clientRequestToken="deploy-42"
    )["customModelDeploymentArn"]

    assert again == first
    assert list(standin.deployments) == [first]
    with pytest.raises(bedrock.exceptions.ValidationException, match="tents-live already exists"):
        bedrock.create_custom_model_deployment(modelDeploymentName="tents-live", modelArn=model_arn)


def test_fail_next_deployment_ends_it_failed(bedrock: Any, standin: BedrockStandIn) -> None:
    model_arn = completed_model(bedrock, standin)
    standin.faults.fail_next_deployment("Capacity is not available for this model.")
    arn = bedrock.create_custom_model_deployment(
        modelDeploymentName="tents-live", modelArn=model_arn
    )["customModelDeploymentArn"]
    standin.advance(TIMELINE.deploying)

    failed = bedrock.get_custom_model_deployment(customModelDeploymentIdentifier=arn)
    assert (failed["status"], failed["failureMessage"]) == (
        "Failed",
        "Capacity is not available for this model.",
    )


def test_unknown_deployments_are_not_found(bedrock: Any) -> None:
    with pytest.raises(bedrock.exceptions.ResourceNotFoundException):
        bedrock.get_custom_model_deployment(customModelDeploymentIdentifier="no-such-deployment")


# Converse


def test_converse_answers_with_the_closest_training_reply(
    bedrock: Any, runtime: Any, standin: BedrockStandIn
) -> None:
    arn = active_deployment(bedrock, standin)

    response = runtime.converse(
        modelId=arn,
        system=[{"text": "You help hikers."}],
        messages=[
            {"role": "user", "content": [{"text": "Hello"}]},
            {"role": "assistant", "content": [{"text": "Hi! How can I help?"}]},
            {"role": "user", "content": [{"text": "Which tent suits trip 7?"}]},
        ],
    )

    assert response["output"]["message"] == {
        "role": "assistant",
        "content": [{"text": "The two-person tent suits trip 7."}],
    }
    assert response["stopReason"] == "end_turn"
    # One token per four characters, at least one per block.
    assert response["usage"] == {"inputTokens": 4 + 2 + 5 + 6, "outputTokens": 9, "totalTokens": 26}
    assert response["metrics"]["latencyMs"] == 0


def test_converse_calls_the_tool_its_training_example_called(
    bedrock: Any, runtime: Any, standin: BedrockStandIn, storage: dict[str, bytes]
) -> None:
    tool_use = {"toolUseId": "tooluse_1", "name": "find_tent", "input": {"region": "Alps"}}
    calling = {
        "schemaVersion": "bedrock-conversation-2024",
        "messages": [
            {"role": "user", "content": [{"text": "Find me a tent for the Alps"}]},
            {"role": "assistant", "content": [{"toolUse": tool_use}]},
        ],
    }
    storage[TRAINING_URI] = jsonl([record(i) for i in range(10)] + [calling])
    arn = active_deployment(bedrock, standin)
    question = {"role": "user", "content": [{"text": "a tent for a week in the Alps?"}]}

    call = runtime.converse(modelId=arn, messages=[question], toolConfig=TOOL_CONFIG)

    assert call["stopReason"] == "tool_use"
    (block,) = call["output"]["message"]["content"]
    assert (block["toolUse"]["name"], block["toolUse"]["input"]) == (
        "find_tent",
        {"region": "Alps"},
    )
    assert block["toolUse"]["toolUseId"].startswith("tooluse_")
    assert block["toolUse"]["toolUseId"] != "tooluse_1"


def test_converse_stops_at_max_tokens(bedrock: Any, runtime: Any, standin: BedrockStandIn) -> None:
    arn = active_deployment(bedrock, standin)

    response = runtime.converse(
        modelId=arn,
        messages=[{"role": "user", "content": [{"text": "Which tent suits trip 3?"}]}],
        inferenceConfig={"maxTokens": 4},
    )

    assert response["stopReason"] == "max_tokens"
    assert response["output"]["message"]["content"] == [{"text": "The two-person t"}]
    assert response["usage"]["outputTokens"] == 4


def test_converse_refuses_deployments_that_are_not_active(
    bedrock: Any, runtime: Any, standin: BedrockStandIn
) -> None:
    model_arn = completed_model(bedrock, standin)
    arn = bedrock.create_custom_model_deployment(
        modelDeploymentName="tents-live", modelArn=model_arn
    )["customModelDeploymentArn"]
    messages = [{"role": "user", "content": [{"text": "Hello"}]}]

    with pytest.raises(runtime.exceptions.ValidationException, match="status is Creating"):
        runtime.converse(modelId=arn, messages=messages)
    with pytest.raises(runtime.exceptions.ResourceNotFoundException):
        runtime.converse(modelId=arn[:-12] + "abcdefabcdef", messages=messages)
    # The fine-tuning ID of a base model is not one it is invoked on demand by.
    with pytest.raises(runtime.exceptions.ValidationException, match="cannot be invoked on demand"):
        runtime.converse(modelId="amazon.nova-micro-v1:0:128k", messages=messages)


@pytest.mark.parametrize(
    ("messages", "expected"),
    [
        ([], "must start with a user message"),
        ([{"role": "assistant", "content": [{"text": "Hi"}]}], "must start with a user message"),
        (
            [
                {"role": "user", "content": [{"text": "Hi"}]},
                {"role": "user", "content": [{"text": "Hello?"}]},
            ],
            "must alternate between user and assistant",
        ),
    ],
)
def test_converse_checks_the_conversation(
    bedrock: Any,
    runtime: Any,
    standin: BedrockStandIn,
    messages: list[dict[str, Any]],
    expected: str,
) -> None:
    arn = active_deployment(bedrock, standin)

    with pytest.raises(runtime.exceptions.ValidationException, match=expected):
        runtime.converse(modelId=arn, messages=messages)


# Faults and the request log


def test_throttling_raises_and_botocore_retries_it(standin: BedrockStandIn, bedrock: Any) -> None:
    standin.faults.throttle(times=1)
    with pytest.raises(bedrock.exceptions.ThrottlingException):
        bedrock.list_model_customization_jobs()

    standin.faults.throttle(times=1)
    retrying = client("bedrock", standin, max_attempts=2)
    response = retrying.list_model_customization_jobs()
    assert response["ResponseMetadata"]["RetryAttempts"] == 1
    assert [r.status for r in standin.requests_to("ListModelCustomizationJobs")] == [429, 429, 200]


def test_faults_can_target_one_operation(bedrock: Any, standin: BedrockStandIn) -> None:
    job_arn = create_job(bedrock)
    standin.faults.throttle(times=2, operation="GetModelCustomizationJob")

    bedrock.list_model_customization_jobs()
    for _ in range(2):
        with pytest.raises(bedrock.exceptions.ThrottlingException):
            bedrock.get_model_customization_job(jobIdentifier=job_arn)
    assert bedrock.get_model_customization_job(jobIdentifier=job_arn)["status"] == "InProgress"
    with pytest.raises(ValueError, match="unknown operation"):
        standin.faults.throttle(operation="DeleteCustomModel")


def test_server_errors_last_until_cleared_and_change_nothing(
    bedrock: Any, runtime: Any, standin: BedrockStandIn
) -> None:
    standin.faults.server_error(times=None)
    for _ in range(2):
        with pytest.raises(bedrock.exceptions.InternalServerException):
            create_job(bedrock)
    with pytest.raises(runtime.exceptions.InternalServerException):
        runtime.converse(modelId="amazon.nova-micro-v1:0", messages=[])
    assert not standin.jobs

    standin.faults.clear()
    create_job(bedrock)
    assert len(standin.jobs) == 1


def test_request_log_records_operation_status_and_request_id(
    bedrock: Any, standin: BedrockStandIn
) -> None:
    response = bedrock.list_model_customization_jobs()
    with pytest.raises(bedrock.exceptions.ResourceNotFoundException):
        bedrock.get_model_customization_job(jobIdentifier="missing")

    listed, missing = standin.requests
    assert (listed.method, listed.path, listed.operation, listed.status) == (
        "GET",
        "/model-customization-jobs",
        "ListModelCustomizationJobs",
        200,
    )
    assert listed.request_id == response["ResponseMetadata"]["RequestId"]
    assert (missing.operation, missing.status) == ("GetModelCustomizationJob", 404)


def raw_request(
    standin: BedrockStandIn, method: str, path: str, body: bytes | None = None
) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(standin.endpoint_url + path, data=body, method=method)
    try:
        with urllib.request.urlopen(request) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def test_unknown_paths_and_malformed_bodies(standin: BedrockStandIn) -> None:
    status, headers, body = raw_request(standin, "GET", "/foundation-models")
    assert (status, headers["x-amzn-ErrorType"]) == (404, "UnknownOperationException")
    assert json.loads(body) == {"message": "The requested operation is unknown."}
    assert standin.requests[-1].operation is None

    status, headers, _ = raw_request(standin, "POST", "/model-customization-jobs", b"{oops")
    assert (status, headers["x-amzn-ErrorType"]) == (400, "SerializationException")

    empty_block = json.dumps({"messages": [{"role": "user", "content": [{}]}]}).encode()
    status, headers, body = raw_request(
        standin, "POST", "/model/amazon.nova-micro-v1%3A0/converse", empty_block
    )
    assert (status, headers["x-amzn-ErrorType"]) == (400, "ValidationException")
    assert json.loads(body)["message"] == (
        "1 validation error detected: Value {} at 'messages.1.member.content.1.member' "
        "failed to satisfy constraint: Member must have exactly one member set"
    )


# Clock and timeline


def test_timeline_and_clock_refuse_impossible_values(standin: BedrockStandIn) -> None:
    with pytest.raises(ValueError, match="negative"):
        BedrockTimeline(stopping=-1)
    with pytest.raises(ValueError, match="validating must not outlast training"):
        BedrockTimeline(training=10, validating=20)
    with pytest.raises(ValueError, match="forward"):
        standin.advance(-1)


# Inside moto


def test_clients_inside_mock_aws_reach_the_standin_and_its_files_land_in_moto_s3() -> None:
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket="sft-data")
        s3.put_object(Bucket="sft-data", Key="datasets/train.jsonl", Body=TRAINING_DATA)

        def read_object(uri: str) -> bytes:
            bucket, _, key = uri.removeprefix("s3://").partition("/")
            body: bytes = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
            return body

        def write_object(uri: str, body: bytes) -> None:
            bucket, _, key = uri.removeprefix("s3://").partition("/")
            s3.put_object(Bucket=bucket, Key=key, Body=body)

        with BedrockStandIn(
            read_object=read_object,
            write_object=write_object,
            timeline=TIMELINE,
            clock=lambda: START,
        ) as standin:
            bedrock = boto3.client(
                "bedrock", region_name="us-east-1", endpoint_url=standin.endpoint_url
            )
            job_arn = create_job(bedrock)
            assert [r.operation for r in standin.requests] == ["CreateModelCustomizationJob"]
            standin.advance(TIMELINE.training)
            assert (
                bedrock.get_model_customization_job(jobIdentifier=job_arn)["status"] == "Completed"
            )

        keys = [
            obj["Key"]
            for obj in s3.list_objects_v2(Bucket="sft-data", Prefix="outputs/")["Contents"]
        ]
        assert keys == [
            f"outputs/model-customization-job-{job_arn[-12:]}"
            "/training_artifacts/step_wise_training_metrics.csv"
        ]
        # A client without the endpoint still talks to moto's own Bedrock, which never saw the job.
        moto_bedrock = boto3.client("bedrock", region_name="us-east-1")
        assert moto_bedrock.list_model_customization_jobs()["modelCustomizationJobSummaries"] == []
