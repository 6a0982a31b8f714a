"""Request and response bodies, member for member as in botocore's service models.

Requests are parsed only after the input-shape check in ``protocol``, so these
models carry types, not constraints; members the stand-in does not act on are
ignored. Responses dump under the wire's camelCase names and leave out unset
optional members, as the service does.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

JobStatus = Literal["InProgress", "Completed", "Failed", "Stopping", "Stopped"]
DeploymentStatus = Literal["Creating", "Active", "Failed"]
StopReason = Literal["end_turn", "tool_use", "max_tokens"]


class WireModel(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel,
        validate_by_name=True,
        validate_by_alias=True,
        serialize_by_alias=True,
        extra="ignore",
        frozen=True,
    )


# Control plane: model customization jobs


class Tag(WireModel):
    key: str
    value: str


class S3DataConfig(WireModel):
    s3_uri: str


class ValidationDataConfig(WireModel):
    validators: list[S3DataConfig]


class CreateModelCustomizationJobRequest(WireModel):
    job_name: str
    custom_model_name: str
    role_arn: str
    base_model_identifier: str
    client_request_token: str | None = None
    customization_type: str = "FINE_TUNING"
    job_tags: list[Tag] = Field(default_factory=list)
    custom_model_tags: list[Tag] = Field(default_factory=list)
    training_data_config: S3DataConfig
    validation_data_config: ValidationDataConfig | None = None
    output_data_config: S3DataConfig
    hyper_parameters: dict[str, str] = Field(default_factory=dict)


class CreateModelCustomizationJobResponse(WireModel):
    job_arn: str


class JobIdentifierRequest(WireModel):
    job_identifier: str


class ListModelCustomizationJobsRequest(WireModel):
    creation_time_after: datetime | None = None
    creation_time_before: datetime | None = None
    status_equals: JobStatus | None = None
    name_contains: str | None = None
    max_results: int = 100
    next_token: str | None = None
    sort_order: Literal["Ascending", "Descending"] = "Descending"


class TrainingMetrics(WireModel):
    training_loss: float


class ValidatorMetric(WireModel):
    validation_loss: float


class ModelCustomizationJob(WireModel):
    """GetModelCustomizationJob's answer."""

    job_arn: str
    job_name: str
    output_model_name: str
    output_model_arn: str | None = None
    client_request_token: str | None = None
    role_arn: str
    status: JobStatus
    failure_message: str | None = None
    creation_time: datetime
    last_modified_time: datetime
    end_time: datetime | None = None
    base_model_arn: str
    hyper_parameters: dict[str, str] | None = None
    training_data_config: S3DataConfig
    validation_data_config: ValidationDataConfig
    output_data_config: S3DataConfig
    customization_type: str
    training_metrics: TrainingMetrics | None = None
    validation_metrics: list[ValidatorMetric] | None = None


class ModelCustomizationJobSummary(WireModel):
    job_arn: str
    base_model_arn: str
    job_name: str
    status: JobStatus
    last_modified_time: datetime
    creation_time: datetime
    end_time: datetime | None = None
    custom_model_arn: str | None = None
    custom_model_name: str
    customization_type: str


class ListModelCustomizationJobsResponse(WireModel):
    next_token: str | None = None
    model_customization_job_summaries: list[ModelCustomizationJobSummary]


class EmptyResponse(WireModel):
    pass


# Control plane: custom model deployments


class CreateCustomModelDeploymentRequest(WireModel):
    model_deployment_name: str
    model_arn: str
    description: str | None = None
    tags: list[Tag] = Field(default_factory=list)
    client_request_token: str | None = None


class CreateCustomModelDeploymentResponse(WireModel):
    custom_model_deployment_arn: str


class DeploymentIdentifierRequest(WireModel):
    custom_model_deployment_identifier: str


class CustomModelDeployment(WireModel):
    """GetCustomModelDeployment's answer."""

    custom_model_deployment_arn: str
    model_deployment_name: str
    model_arn: str
    created_at: datetime
    status: DeploymentStatus
    description: str | None = None
    failure_message: str | None = None
    last_updated_at: datetime


# Runtime: Converse


class ToolResultContent(WireModel):
    text: str | None = None


class ToolResultBlock(WireModel):
    content: list[ToolResultContent]


class ToolUseBlock(WireModel):
    tool_use_id: str
    name: str
    input: dict[str, object]


class ContentBlock(WireModel):
    text: str | None = None
    tool_use: ToolUseBlock | None = None
    tool_result: ToolResultBlock | None = None


class Message(WireModel):
    role: str
    content: list[ContentBlock]

    def text(self) -> str:
        """The text blocks, or for a message answering a tool call, the tool results' text."""
        texts = [block.text for block in self.content if block.text is not None]
        if not texts:
            texts = [
                part.text
                for block in self.content
                if block.tool_result is not None
                for part in block.tool_result.content
                if part.text is not None
            ]
        return "\n".join(texts)


class SystemContentBlock(WireModel):
    text: str | None = None


class ToolInputSchema(WireModel):
    document: dict[str, object] | None = Field(default=None, alias="json")


class ToolSpecification(WireModel):
    name: str
    input_schema: ToolInputSchema | None = None


class Tool(WireModel):
    tool_spec: ToolSpecification | None = None


class SpecificToolChoice(WireModel):
    name: str


class ToolChoice(WireModel):
    tool: SpecificToolChoice | None = None


class ToolConfiguration(WireModel):
    tools: list[Tool]
    tool_choice: ToolChoice | None = None

    def forced(self) -> ToolSpecification | None:
        """The tool ``toolChoice`` forces the model to use, if it forces one."""
        if self.tool_choice is None or self.tool_choice.tool is None:
            return None
        name = self.tool_choice.tool.name
        return next(
            (t.tool_spec for t in self.tools if t.tool_spec and t.tool_spec.name == name), None
        )


class InferenceConfiguration(WireModel):
    max_tokens: int | None = None


class ConverseRequest(WireModel):
    model_id: str
    messages: list[Message] = Field(default_factory=list)
    system: list[SystemContentBlock] = Field(default_factory=list)
    tool_config: ToolConfiguration | None = None
    inference_config: InferenceConfiguration | None = None


class OutputContentBlock(WireModel):
    text: str | None = None
    tool_use: ToolUseBlock | None = None


class OutputMessage(WireModel):
    role: Literal["assistant"] = "assistant"
    content: list[OutputContentBlock]


class ConverseOutput(WireModel):
    message: OutputMessage


class TokenUsage(WireModel):
    input_tokens: int
    output_tokens: int
    total_tokens: int


class ConverseMetrics(WireModel):
    latency_ms: int


class ConverseResponse(WireModel):
    output: ConverseOutput
    stop_reason: StopReason
    usage: TokenUsage
    metrics: ConverseMetrics
