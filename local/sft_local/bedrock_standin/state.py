"""In-memory model customization jobs and custom model deployments, and their life on the clock.

A job is ``InProgress`` for ``training`` seconds, then ``Completed``: its
metrics files are written and its custom model exists. A job whose data fails
the check at creation, or that takes an injected failure, is ``Failed`` after
``validating`` seconds instead. A stopped job is ``Stopping`` for ``stopping``
seconds, then ``Stopped``. A deployment is ``Creating`` for ``deploying``
seconds, then ``Active`` (or ``Failed``, when injected).

``catch_up`` applies every transition whose time has come, stamped with its
scheduled time rather than the time it was noticed. The state is not
thread-safe: the caller serialises access and calls ``catch_up`` first.
"""

from __future__ import annotations

import base64
import secrets
import string
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import MappingProxyType

from sft_local.bedrock_standin.catalog import (
    base_model_id,
    check_hyperparameters,
    epoch_count,
    on_demand_model_id,
)
from sft_local.bedrock_standin.conversation import ConverseMemory, training_memory
from sft_local.bedrock_standin.errors import conflict, not_found, validation_error
from sft_local.bedrock_standin.schemas import (
    CreateCustomModelDeploymentRequest,
    CreateModelCustomizationJobRequest,
    CustomModelDeployment,
    DeploymentStatus,
    JobStatus,
    ListModelCustomizationJobsRequest,
    ListModelCustomizationJobsResponse,
    ModelCustomizationJob,
    ModelCustomizationJobSummary,
    Tag,
    TrainingMetrics,
    ValidationDataConfig,
    ValidatorMetric,
)
from sft_local.bedrock_standin.training import (
    TrainingRun,
    check_dataset,
    metrics_files,
    record_count_problem,
    simulate_training,
)

ReadObject = Callable[[str], bytes]
WriteObject = Callable[[str, bytes], None]
TakeFailure = Callable[[], str | None]

ID_ALPHABET = string.ascii_lowercase + string.digits
ENDED_JOB_STATUSES = frozenset({"Completed", "Failed", "Stopped"})


def new_resource_id() -> str:
    """The 12 lower-case letters and digits that end a job, model or deployment ARN."""
    return "".join(secrets.choice(ID_ALPHABET) for _ in range(12))


@dataclass(frozen=True)
class BedrockTimeline:
    """Seconds a job trains, a failing job runs before it fails, a stop takes, a deployment takes."""

    training: float = 60.0
    validating: float = 5.0
    stopping: float = 2.0
    deploying: float = 10.0

    def __post_init__(self) -> None:
        if min(self.training, self.validating, self.stopping, self.deploying) < 0:
            raise ValueError(f"durations must not be negative: {self}")
        if self.validating > self.training:
            raise ValueError(f"validating must not outlast training: {self}")


@dataclass(frozen=True)
class JobView:
    """A model customization job as the stand-in holds it, for tests to inspect."""

    arn: str
    name: str
    status: JobStatus
    client_request_token: str | None
    job_tags: Mapping[str, str]
    custom_model_tags: Mapping[str, str]
    hyperparameters: Mapping[str, str]
    training_records: int
    failure_message: str | None
    output_model_arn: str | None


@dataclass(frozen=True)
class DeploymentView:
    """A custom model deployment as the stand-in holds it, for tests to inspect."""

    arn: str
    name: str
    status: DeploymentStatus
    model_arn: str
    tags: Mapping[str, str]


@dataclass
class JobRecord:
    request: CreateModelCustomizationJobRequest
    arn: str
    job_id: str
    base_model_arn: str
    # Named at creation; published when the job completes.
    model_arn: str
    created_at: float
    training_records: int
    # What the custom model answers from, read at creation as Bedrock reads the data.
    memory: ConverseMemory
    # Why the job will fail once its data check is over, if it will.
    planned_failure: str | None
    status: JobStatus = "InProgress"
    last_modified_at: float = 0.0
    ended_at: float | None = None
    failure_message: str | None = None
    stop_requested_at: float | None = None
    run: TrainingRun | None = None

    @property
    def output_model_arn(self) -> str | None:
        return self.model_arn if self.status == "Completed" else None

    def end(self, status: JobStatus, at: float, failure_message: str | None = None) -> None:
        self.status = status
        self.last_modified_at = self.ended_at = at
        self.failure_message = failure_message

    def describe(self) -> ModelCustomizationJob:
        request = self.request
        run = self.run
        return ModelCustomizationJob(
            job_arn=self.arn,
            job_name=request.job_name,
            output_model_name=request.custom_model_name,
            output_model_arn=self.output_model_arn,
            client_request_token=request.client_request_token,
            role_arn=request.role_arn,
            status=self.status,
            failure_message=self.failure_message,
            creation_time=_timestamp(self.created_at),
            last_modified_time=_timestamp(self.last_modified_at),
            end_time=None if self.ended_at is None else _timestamp(self.ended_at),
            base_model_arn=self.base_model_arn,
            hyper_parameters=request.hyper_parameters or None,
            training_data_config=request.training_data_config,
            validation_data_config=request.validation_data_config
            or ValidationDataConfig(validators=[]),
            output_data_config=request.output_data_config,
            customization_type=request.customization_type,
            training_metrics=None
            if run is None
            else TrainingMetrics(training_loss=run.training_loss),
            validation_metrics=None if run is None else _validator_metrics(request, run),
        )

    def summary(self) -> ModelCustomizationJobSummary:
        return ModelCustomizationJobSummary(
            job_arn=self.arn,
            base_model_arn=self.base_model_arn,
            job_name=self.request.job_name,
            status=self.status,
            last_modified_time=_timestamp(self.last_modified_at),
            creation_time=_timestamp(self.created_at),
            end_time=None if self.ended_at is None else _timestamp(self.ended_at),
            custom_model_arn=self.output_model_arn,
            custom_model_name=self.request.custom_model_name,
            customization_type=self.request.customization_type,
        )

    def view(self) -> JobView:
        return JobView(
            arn=self.arn,
            name=self.request.job_name,
            status=self.status,
            client_request_token=self.request.client_request_token,
            job_tags=_tag_map(self.request.job_tags),
            custom_model_tags=_tag_map(self.request.custom_model_tags),
            hyperparameters=MappingProxyType(dict(self.request.hyper_parameters)),
            training_records=self.training_records,
            failure_message=self.failure_message,
            output_model_arn=self.output_model_arn,
        )


@dataclass
class DeploymentRecord:
    request: CreateCustomModelDeploymentRequest
    arn: str
    created_at: float
    planned_failure: str | None
    status: DeploymentStatus = "Creating"
    last_updated_at: float = 0.0
    failure_message: str | None = None

    @property
    def resource_id(self) -> str:
        return self.arn.rpartition("/")[2]

    def describe(self) -> CustomModelDeployment:
        return CustomModelDeployment(
            custom_model_deployment_arn=self.arn,
            model_deployment_name=self.request.model_deployment_name,
            model_arn=self.request.model_arn,
            created_at=_timestamp(self.created_at),
            status=self.status,
            description=self.request.description,
            failure_message=self.failure_message,
            last_updated_at=_timestamp(self.last_updated_at),
        )

    def view(self) -> DeploymentView:
        return DeploymentView(
            arn=self.arn,
            name=self.request.model_deployment_name,
            status=self.status,
            model_arn=self.request.model_arn,
            tags=_tag_map(self.request.tags),
        )


@dataclass
class StandInState:
    """Everything the stand-in's account owns. See the module docstring for the clock."""

    timeline: BedrockTimeline
    read_object: ReadObject
    write_object: WriteObject
    now: Callable[[], float]
    account: str
    region: str
    jobs: dict[str, JobRecord] = field(default_factory=dict)
    deployments: dict[str, DeploymentRecord] = field(default_factory=dict)
    # clientRequestToken -> the ARN its first request created.
    job_tokens: dict[str, str] = field(default_factory=dict)
    deployment_tokens: dict[str, str] = field(default_factory=dict)
    # Told each job that ends, as it ends: the source of its EventBridge event.
    on_job_end: Callable[[JobRecord], None] | None = None

    def catch_up(self) -> None:
        now = self.now()
        for job in self.jobs.values():
            was = job.status
            self._advance_job(job, now)
            if self.on_job_end and job.status != was and job.status in ENDED_JOB_STATUSES:
                self.on_job_end(job)
        for deployment in self.deployments.values():
            ready_at = deployment.created_at + self.timeline.deploying
            if deployment.status == "Creating" and now >= ready_at:
                deployment.last_updated_at = ready_at
                deployment.failure_message = deployment.planned_failure
                deployment.status = "Active" if deployment.planned_failure is None else "Failed"

    # Model customization jobs

    def create_job(
        self, request: CreateModelCustomizationJobRequest, take_failure: TakeFailure
    ) -> str:
        token = request.client_request_token
        if token is not None and token in self.job_tokens:
            return self.job_tokens[token]
        if any(job.request.job_name == request.job_name for job in self.jobs.values()):
            raise conflict(f"A model customization job named {request.job_name} already exists.")
        if request.customization_type != "FINE_TUNING":
            raise validation_error(
                f"Customization type {request.customization_type} is not supported; "
                "use FINE_TUNING."
            )
        model_id = base_model_id(request.base_model_identifier, self.region)
        check_hyperparameters(request.hyper_parameters)
        job_id = new_resource_id()
        records, memory, data_problem = self._check_data(request)
        now = self.now()
        job = JobRecord(
            request=request,
            arn=self._arn(f"model-customization-job/{model_id}/{job_id}"),
            job_id=job_id,
            base_model_arn=f"arn:aws:bedrock:{self.region}::foundation-model/{model_id}",
            model_arn=self._arn(f"custom-model/{model_id}/{new_resource_id()}"),
            created_at=now,
            training_records=records,
            memory=memory,
            planned_failure=take_failure() or data_problem,
            last_modified_at=now,
        )
        self.jobs[job.arn] = job
        if token is not None:
            self.job_tokens[token] = job.arn
        return job.arn

    def get_job(self, identifier: str) -> JobRecord:
        for job in self.jobs.values():
            if identifier in (job.arn, job.request.job_name):
                return job
        raise not_found(f"Could not find model customization job {identifier}.")

    def stop_job(self, identifier: str) -> None:
        job = self.get_job(identifier)
        if job.status in ENDED_JOB_STATUSES:
            raise conflict(
                f"The model customization job {job.request.job_name} is already {job.status} "
                "and cannot be stopped."
            )
        if job.status == "InProgress":
            job.status = "Stopping"
            job.stop_requested_at = job.last_modified_at = self.now()

    def list_jobs(
        self, request: ListModelCustomizationJobsRequest
    ) -> ListModelCustomizationJobsResponse:
        # Jobs are held in creation order.
        jobs = [job for job in self.jobs.values() if _listed(job, request)]
        if request.sort_order == "Descending":
            jobs.reverse()
        start = _page_start(request.next_token, len(jobs))
        end = start + request.max_results
        return ListModelCustomizationJobsResponse(
            next_token=_page_token(end) if end < len(jobs) else None,
            model_customization_job_summaries=[job.summary() for job in jobs[start:end]],
        )

    def _check_data(
        self, request: CreateModelCustomizationJobRequest
    ) -> tuple[int, ConverseMemory, str | None]:
        """The training record count, what the model will learn, and why the data makes the
        job fail, if it does."""
        training_uri = request.training_data_config.s3_uri
        content, problem = self._read(training_uri)
        if content is None:
            return 0, training_memory(b""), problem
        training = check_dataset(content)
        memory = training_memory(content)
        problem = training.problem or record_count_problem(training.records)
        if problem is not None:
            return training.records, memory, f"Invalid training data {training_uri}: {problem}."
        validators = request.validation_data_config
        for validator in [] if validators is None else validators.validators:
            content, problem = self._read(validator.s3_uri)
            if content is None:
                return training.records, memory, problem
            problem = check_dataset(content).problem
            if problem is not None:
                invalid = f"Invalid validation data {validator.s3_uri}: {problem}."
                return training.records, memory, invalid
        return training.records, memory, None

    def _read(self, uri: str) -> tuple[bytes | None, str | None]:
        try:
            return self.read_object(uri), None
        except Exception as exc:
            # Whatever the storage callback raises, the job fails as Bedrock's would.
            return None, f"Could not read {uri}: {exc}"

    def _advance_job(self, job: JobRecord, now: float) -> None:
        if job.status == "Stopping" and job.stop_requested_at is not None:
            stopped_at = job.stop_requested_at + self.timeline.stopping
            if now >= stopped_at:
                job.end("Stopped", stopped_at)
        elif job.status == "InProgress" and job.planned_failure is not None:
            failed_at = job.created_at + self.timeline.validating
            if now >= failed_at:
                job.end("Failed", failed_at, job.planned_failure)
        elif job.status == "InProgress":
            completed_at = job.created_at + self.timeline.training
            if now >= completed_at:
                self._complete(job, completed_at)

    def _complete(self, job: JobRecord, at: float) -> None:
        request = job.request
        run = simulate_training(
            job.job_id,
            records=job.training_records,
            epochs=epoch_count(request.hyper_parameters),
            with_validation=request.validation_data_config is not None
            and bool(request.validation_data_config.validators),
        )
        for uri, body in metrics_files(request.output_data_config.s3_uri, job.job_id, run).items():
            try:
                self.write_object(uri, body)
            except Exception as exc:
                # Whatever the storage callback raises, the job fails as Bedrock's would.
                job.end("Failed", at, f"Could not write the training metrics to {uri}: {exc}")
                return
        job.run = run
        job.end("Completed", at)

    # Custom model deployments

    def create_deployment(
        self, request: CreateCustomModelDeploymentRequest, take_failure: TakeFailure
    ) -> str:
        token = request.client_request_token
        if token is not None and token in self.deployment_tokens:
            return self.deployment_tokens[token]
        name = request.model_deployment_name
        if any(d.request.model_deployment_name == name for d in self.deployments.values()):
            raise validation_error(f"A custom model deployment named {name} already exists.")
        if not any(job.output_model_arn == request.model_arn for job in self.jobs.values()):
            raise validation_error(
                f"The model {request.model_arn} is not an Active custom model. Deploy a model "
                "once the customization job that creates it has Completed."
            )
        now = self.now()
        deployment = DeploymentRecord(
            request=request,
            arn=self._arn(f"custom-model-deployment/{new_resource_id()}"),
            created_at=now,
            planned_failure=take_failure(),
            last_updated_at=now,
        )
        self.deployments[deployment.arn] = deployment
        if token is not None:
            self.deployment_tokens[token] = deployment.arn
        return deployment.arn

    def get_deployment(self, identifier: str) -> DeploymentRecord:
        for deployment in self.deployments.values():
            if identifier in (deployment.arn, deployment.request.model_deployment_name):
                return deployment
        raise not_found(f"Could not find custom model deployment {identifier}.")

    def model_for_inference(self, model_id: str) -> tuple[tuple[str, ...], ConverseMemory | None]:
        """The names of the model a Converse ``modelId`` invokes (for faults set on any of
        them), and what it learnt: None for a base model invoked on demand."""
        if ":custom-model-deployment/" not in model_id:
            if on_demand_model_id(model_id, self.region) is None:
                raise validation_error(
                    f"The model {model_id} cannot be invoked on demand. Use a base model's "
                    "inference ID or the ARN of an Active custom model deployment as the model ID."
                )
            return (model_id,), None
        model_arn = self._active_deployment(model_id).request.model_arn
        [job] = [job for job in self.jobs.values() if job.model_arn == model_arn]
        return (model_id, model_arn), job.memory

    def _active_deployment(self, model_id: str) -> DeploymentRecord:
        deployment = self.deployments.get(model_id)
        if deployment is None:
            raise not_found(f"Could not find custom model deployment {model_id}.")
        if deployment.status != "Active":
            raise validation_error(
                f"The custom model deployment {model_id} is not ready for inference: its status "
                f"is {deployment.status}. Wait until it is Active."
            )
        return deployment

    def _arn(self, resource: str) -> str:
        return f"arn:aws:bedrock:{self.region}:{self.account}:{resource}"


def _listed(job: JobRecord, request: ListModelCustomizationJobsRequest) -> bool:
    created = _timestamp(job.created_at)
    return (
        (request.name_contains is None or request.name_contains in job.request.job_name)
        and (request.status_equals is None or job.status == request.status_equals)
        and (request.creation_time_after is None or created > request.creation_time_after)
        and (request.creation_time_before is None or created < request.creation_time_before)
    )


def _page_token(offset: int) -> str:
    return base64.urlsafe_b64encode(f"offset:{offset}".encode()).decode()


def _page_start(token: str | None, total: int) -> int:
    if token is None:
        return 0
    try:
        label, _, offset = base64.urlsafe_b64decode(token.encode()).decode().partition(":")
    except ValueError:
        label, offset = "", ""
    if label != "offset" or not offset.isdigit() or int(offset) > total:
        raise validation_error(f"The pagination token {token} is invalid.")
    return int(offset)


def _validator_metrics(
    request: CreateModelCustomizationJobRequest, run: TrainingRun
) -> list[ValidatorMetric] | None:
    loss = run.validation_loss
    validators = request.validation_data_config
    if loss is None or validators is None:
        return None
    return [ValidatorMetric(validation_loss=loss) for _ in validators.validators]


def _tag_map(tags: list[Tag]) -> Mapping[str, str]:
    return MappingProxyType({tag.key: tag.value for tag in tags})


def _timestamp(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)
