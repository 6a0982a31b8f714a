"""Amazon Bedrock model customization adapter: the only module that calls Bedrock.

Training data is converted from OpenAI chat JSONL to Nova's bedrock-conversation-2024
format and written under the prepared-data prefix; the job is created with a
deterministic clientRequestToken and tags carrying the upload's id, so a retried
launch finds or re-creates the very same job. On success a Nova model gets an
on-demand deployment (billed per token); models that would need Provisioned
Throughput (billed by the hour) are never provisioned automatically.
"""

from __future__ import annotations

import csv
import hashlib
import io
import tempfile
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import TYPE_CHECKING, Any, BinaryIO

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError
from pydantic import BaseModel, Field

from sft_pipeline.adapters.training_bucket import parse_s3_uri
from sft_pipeline.evaluation.report_html import LossPoint
from sft_pipeline.job_events import JobEvent
from sft_pipeline.jobs import JobState, ProviderName
from sft_pipeline.providers import Purpose
from sft_pipeline.providers.base import (
    JobRequest,
    ProviderError,
    ProviderPermanentError,
    ProviderRateLimitError,
    ProviderTransientError,
    Serving,
    ServingStatus,
    TrainingMetrics,
    metric_value,
)
from sft_pipeline.providers.converse_format import (
    UnsupportedRequestError,
    from_converse,
    structured_output_tool,
    to_converse,
)
from sft_pipeline.providers.nova_format import convert_jsonl
from sft_pipeline.records import ProviderJob
from sft_pipeline.redaction import redact_secrets
from sft_pipeline.validation.targets.bedrock import (
    CONVERSE_FORMAT,
    BedrockModelSpec,
    bedrock_spec,
    custom_model_name,
)

if TYPE_CHECKING:
    from sft_pipeline.settings import ProviderSettings

UPLOAD_TAG_KEY = "sft_upload"
STATE_BY_STATUS = {
    "Completed": JobState.SUCCEEDED,
    "Failed": JobState.FAILED,
    "Stopped": JobState.CANCELLED,
}
TRANSIENT_CODES = frozenset(
    {
        "InternalServerException",
        "ServiceUnavailableException",
        "ModelNotReadyException",
        "RequestTimeout",
    }
)
THROTTLING_CODES = frozenset({"ThrottlingException", "TooManyRequestsException"})
TRAINING_METRICS_FILE = "step_wise_training_metrics.csv"
VALIDATION_METRICS_FILE = "validation_metrics.csv"
DEPLOYMENT_STATES: dict[str, ServingStatus] = {"Active": "ready", "Creating": "deploying"}


@dataclass(frozen=True)
class BedrockConfig:
    # The role jobs run as: only the function that creates jobs has it.
    role_arn: str | None
    bucket: str
    prepared_prefix: str
    output_prefix: str
    deploy_on_demand: bool


def _translate(error: Exception) -> ProviderError:
    """Bedrock's error as the port's; its text redacted, as every provider's is."""
    if isinstance(error, ClientError):
        code = error.response.get("Error", {}).get("Code", "ClientError")
        message = redact_secrets(error.response.get("Error", {}).get("Message", str(error)))
        if code in THROTTLING_CODES:
            return ProviderRateLimitError("throttled", message, None)
        if code in TRANSIENT_CODES:
            return ProviderTransientError(f"bedrock_{code}", message)
        return ProviderPermanentError(f"bedrock_{code}", message)
    return ProviderTransientError(
        "connection_error", f"could not reach Bedrock ({type(error).__name__})"
    )


def job_name(upload_tag: str) -> str:
    return f"sft-{upload_tag[:32]}"


def _base_model_id(identifier: str) -> str:
    """``arn:aws:bedrock:...:foundation-model/amazon.nova-micro-v1:0:128k`` -> the model id."""
    return identifier.rsplit("foundation-model/", 1)[-1]


def _loss_curve(steps: list[dict[str, str]], epochs: list[dict[str, str]]) -> list[LossPoint]:
    """Each step's training loss, with each epoch's validation loss at the step it was
    measured (Bedrock writes one validation row per epoch, at its last step)."""
    points: dict[int, LossPoint] = {}
    for row in steps:
        if (step := metric_value(row.get("step_number"))) is not None:
            points[int(step)] = LossPoint(
                step=int(step), train_loss=metric_value(row.get("training_loss"))
            )
    for row in epochs:
        if (step := metric_value(row.get("step_number"))) is not None:
            point = points.get(int(step), LossPoint(step=int(step)))
            valid = metric_value(row.get("validation_loss"))
            points[int(step)] = point.model_copy(update={"valid_loss": valid})
    return [points[step] for step in sorted(points)]


def _number(value: str) -> int | float | str:
    for kind in (int, float):
        try:
            return kind(value)
        except ValueError:
            continue
    return value


def _timestamp(moment: datetime | None) -> int | None:
    return int(moment.timestamp()) if moment else None


class BedrockProvider:
    name: ProviderName = "bedrock"

    def __init__(self, control: Any, runtime: Any, s3: Any, config: BedrockConfig) -> None:
        self._control = control
        self._runtime = runtime
        self._s3 = s3
        self._config = config

    def _call(self, operation: Any, **arguments: Any) -> Any:
        try:
            return operation(**arguments)
        except (ClientError, BotoCoreError) as error:
            raise _translate(error) from error

    # ------------------------------------------------------------------ training

    def upload_file(
        self, filename: str, stream: BinaryIO, size: int, *, base_model: str, upload_tag: str
    ) -> str:
        """Convert to Nova's format and store it beside the upload; the S3 URI is the file id."""
        key = f"{self._config.prepared_prefix}{upload_tag}/bedrock/{filename}"
        with tempfile.TemporaryFile() as converted:
            try:
                convert_jsonl(stream, converted, base_model)
            except ValueError as refused:
                raise ProviderPermanentError("nova_conversion_failed", str(refused)) from None
            converted.seek(0)
            # Lineage: the dataset (and through the registry, the exact upload) it came from.
            lineage = {
                "sft-dataset-id": upload_tag,
                "sft-source-file": filename,
                "sft-format": CONVERSE_FORMAT,
            }
            self._call(
                self._s3.upload_fileobj,
                Fileobj=converted,
                Bucket=self._config.bucket,
                Key=key,
                ExtraArgs={"Metadata": lineage},
            )
        return f"s3://{self._config.bucket}/{key}"

    def find_job(self, upload_tag: str) -> ProviderJob | None:
        name = job_name(upload_tag)
        page = self._call(
            self._control.list_model_customization_jobs, nameContains=name, maxResults=10
        )
        for summary in page.get("modelCustomizationJobSummaries", []):
            if summary["jobName"] == name:
                return self.get_job(summary["jobArn"])
        return None

    def create_job(self, request: JobRequest) -> ProviderJob:
        spec = self._spec(request.base_model)
        tags = [{"key": UPLOAD_TAG_KEY, "value": request.upload_tag}]
        try:
            # The validator refused a suffix that breaks this rule before any data was converted.
            model_name = custom_model_name(request.suffix, request.upload_tag)
        except ValueError as invalid:
            raise ProviderPermanentError("invalid_suffix", str(invalid)) from None
        arguments: dict[str, Any] = {
            "jobName": job_name(request.upload_tag),
            "customModelName": model_name,
            "roleArn": self._config.role_arn,
            "baseModelIdentifier": request.base_model,
            "customizationType": "FINE_TUNING",
            # The same upload always sends the same token: Bedrock creates one job.
            "clientRequestToken": request.upload_tag,
            "jobTags": tags,
            "customModelTags": tags,
            "trainingDataConfig": {"s3Uri": request.training_file},
            "outputDataConfig": {
                "s3Uri": f"s3://{self._config.bucket}/{self._config.output_prefix}{request.upload_tag}/"
            },
            "hyperParameters": self._hyperparameters(spec, request),
        }
        if request.validation_file and spec.validation_set_used:
            arguments["validationDataConfig"] = {"validators": [{"s3Uri": request.validation_file}]}
        created = self._call(self._control.create_model_customization_job, **arguments)
        return self.get_job(created["jobArn"])

    def get_job(self, job_id: str) -> ProviderJob:
        job = self._call(self._control.get_model_customization_job, jobIdentifier=job_id)
        status = job["status"]
        failed = status == "Failed"
        base_model = _base_model_id(job["baseModelArn"])
        spec = bedrock_spec(base_model)
        # What Bedrock trained with: the values sent, and the model's defaults for the rest.
        defaults = {name: r.default for name, r in spec.hyperparameters.items()} if spec else {}
        sent = {k: _number(v) for k, v in job.get("hyperParameters", {}).items()}
        failure = job.get("failureMessage") if failed else None
        return ProviderJob(
            job_id=job["jobArn"],
            status=status,
            state=STATE_BY_STATUS.get(status, JobState.RUNNING),
            base_model=base_model,
            fine_tuned_model=job.get("outputModelArn") if status == "Completed" else None,
            created_at=_timestamp(job["creationTime"]) or 0,
            finished_at=_timestamp(job.get("endTime")),
            hyperparameters={**defaults, **sent},
            error_code="bedrock_job_failed" if failed else None,
            error_message=redact_secrets(failure) if failure else None,
        )

    def cancel_job(self, job_id: str) -> ProviderJob:
        job = self.get_job(job_id)
        if job.state is JobState.RUNNING and job.status != "Stopping":
            self._call(self._control.stop_model_customization_job, jobIdentifier=job_id)
        return self.get_job(job_id)

    def recent_events(self, job_id: str, limit: int) -> list[str]:
        """Bedrock keeps no event log: the job's stages stand in for one."""
        job = self._call(self._control.get_model_customization_job, jobIdentifier=job_id)
        stages = [
            f"{stage}: {details['status']}"
            for stage, details in (job.get("statusDetails") or {}).items()
            if isinstance(details, dict) and "status" in details
        ]
        return (stages or [f"Bedrock job {job['status']}"])[:limit]

    def final_metrics(self, job: ProviderJob) -> TrainingMetrics | None:
        described = self._call(self._control.get_model_customization_job, jobIdentifier=job.job_id)
        bucket, prefix = parse_s3_uri(described["outputDataConfig"]["s3Uri"])
        listing = self._call(self._s3.list_objects_v2, Bucket=bucket, Prefix=prefix)
        files = {obj["Key"].rsplit("/", 1)[-1]: obj["Key"] for obj in listing.get("Contents", [])}
        steps = self._rows(bucket, files.get(TRAINING_METRICS_FILE))
        if not steps:
            return None
        epochs = self._rows(bucket, files.get(VALIDATION_METRICS_FILE))
        training, validation = steps[-1], epochs[-1] if epochs else None
        return TrainingMetrics(
            steps=int(float(training.get("step_number") or 0)),
            train_loss=float(training["training_loss"]) if training.get("training_loss") else None,
            valid_loss=float(validation["validation_loss"])
            if validation and validation.get("validation_loss")
            else None,
            curve=_loss_curve(steps, epochs),
        )

    def _rows(self, bucket: str, key: str | None) -> list[dict[str, str]]:
        if key is None:
            return []
        body = self._call(self._s3.get_object, Bucket=bucket, Key=key)["Body"].read()
        return list(csv.DictReader(io.StringIO(body.decode("utf-8", "replace"))))

    @staticmethod
    def _hyperparameters(spec: BedrockModelSpec, request: JobRequest) -> dict[str, str]:
        try:
            return spec.hyperparameters_for(request.hyperparameters)
        except ValueError as invalid:
            raise ProviderPermanentError("invalid_hyperparameters", str(invalid)) from None

    def _spec(self, base_model: str) -> BedrockModelSpec:
        spec = bedrock_spec(base_model)
        if spec is None:
            raise ProviderPermanentError(
                "unsupported_base_model",
                f"{base_model} is not a Bedrock model this stack can fine-tune",
            )
        return spec

    # ------------------------------------------------------------------ serving

    def serve(self, job: ProviderJob) -> Serving:
        if job.fine_tuned_model is None:
            raise ProviderPermanentError("no_model", f"job {job.job_id} produced no model")
        spec = self._spec(job.base_model)
        if spec.on_demand_deployment is None:
            return Serving(
                model=job.fine_tuned_model,
                status="disabled",
                note=(
                    f"Whether {job.base_model} fine-tunes can be served on demand is not confirmed, so "
                    "none was deployed. Try: aws bedrock create-custom-model-deployment "
                    f"--model-arn {job.fine_tuned_model} --model-deployment-name sft-{job.job_id[-12:]}"
                ),
            )
        if not spec.on_demand_deployment:
            return Serving(
                model=job.fine_tuned_model,
                status="needs_provisioned_throughput",
                note=(
                    f"{job.base_model} custom models need Provisioned Throughput, billed by the hour per "
                    "model unit whether used or not; it is never bought automatically. To serve this model: "
                    f"aws bedrock create-provisioned-model-throughput --model-units 1 "
                    f"--provisioned-model-name sft-{job.job_id[-12:]} --model-id {job.fine_tuned_model}"
                ),
            )
        if not self._config.deploy_on_demand:
            return Serving(
                model=job.fine_tuned_model,
                status="disabled",
                note=(
                    "On-demand deployment is switched off (BedrockDeployOnDemand=false). To serve this "
                    f"model: aws bedrock create-custom-model-deployment --model-arn {job.fine_tuned_model} "
                    f"--model-deployment-name sft-{job.job_id[-12:]}"
                ),
            )
        deployment = self._call(
            self._control.create_custom_model_deployment,
            modelDeploymentName=f"sft-{job.job_id[-12:]}",
            modelArn=job.fine_tuned_model,
            description="Deployed by SFT Pipeline after training",
            # Derived from the job, so a retried finish step deploys once.
            clientRequestToken=hashlib.sha256(job.job_id.encode()).hexdigest()[:32],
        )
        arn = deployment["customModelDeploymentArn"]
        return Serving(
            model=arn,
            status=self.serving_status(arn),
            note=f"On-demand deployment {arn}: billed per input and output token at {job.base_model}'s on-demand rate.",
        )

    def serving_status(self, serving_model: str) -> ServingStatus:
        deployment = self._call(
            self._control.get_custom_model_deployment, customModelDeploymentIdentifier=serving_model
        )
        if deployment["status"] == "Failed":
            raise ProviderPermanentError(
                "deployment_failed", deployment.get("failureMessage", "the deployment failed")
            )
        return DEPLOYMENT_STATES.get(deployment["status"], "deploying")

    def chat(self, body: dict[str, Any]) -> dict[str, Any]:
        try:
            request = to_converse(body)
        except (UnsupportedRequestError, ValueError) as unsupported:
            raise ProviderPermanentError("invalid_request_error", str(unsupported)) from None
        answer = self._call(self._runtime.converse, **request)
        return from_converse(answer, body["model"], structured_output_tool(body))


def build(settings: ProviderSettings, purpose: Purpose) -> BedrockProvider:
    return _build(settings, purpose)


@lru_cache(maxsize=8)
def _build(settings: ProviderSettings, purpose: Purpose) -> BedrockProvider:
    """Built once per warm function: boto3 clients take tens of milliseconds to create."""
    retries = {"max_attempts": 2 if purpose == "inference" else 4, "mode": "standard"}
    timeouts = {"read_timeout": 25 if purpose == "inference" else 60, "connect_timeout": 5}
    config = Config(retries=retries, **timeouts)  # type: ignore[arg-type]
    endpoint = settings.bedrock_endpoint_url or None
    runtime_endpoint = settings.bedrock_runtime_endpoint_url or None
    return BedrockProvider(
        control=boto3.client("bedrock", endpoint_url=endpoint, config=config),
        runtime=boto3.client("bedrock-runtime", endpoint_url=runtime_endpoint, config=config),
        s3=boto3.client("s3"),
        config=BedrockConfig(
            role_arn=settings.bedrock_role_arn,
            bucket=settings.training_bucket,
            prepared_prefix=settings.prepared_prefix,
            output_prefix=settings.bedrock_output_prefix,
            deploy_on_demand=settings.bedrock_deploy_on_demand,
        ),
    )


class _JobStateChange(BaseModel):
    """The part of Bedrock's "Model Customization Job State Change" event the pipeline reads."""

    job_arn: str = Field(alias="jobArn", min_length=1)
    job_status: str = Field(alias="jobStatus")


class _EventBridgeEvent(BaseModel):
    id: str
    detail_type: str = Field(alias="detail-type")
    detail: _JobStateChange


def job_event_from_eventbridge(event: dict[str, Any]) -> JobEvent:
    """An EventBridge event about a customization job, as a job event: the job's id is its ARN
    (what get_job takes), and an ended status (Completed, Failed, Stopped) reports its end."""
    parsed = _EventBridgeEvent.model_validate(event)
    job = parsed.detail
    return JobEvent(
        delivery_id=parsed.id,
        kind=f"{parsed.detail_type}: {job.job_status}"[:200],
        ended_job_id=job.job_arn if job.job_status in STATE_BY_STATUS else None,
    )
