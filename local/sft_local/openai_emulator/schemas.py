"""Request and response bodies, field for field as in OpenAI's API.

Request models forbid unknown fields (OpenAI answers "Unrecognized request
argument") and validate in strict mode, so ``"3"`` is not taken for ``3``.
Response models dump to the JSON the real API sends: required fields are
always present, ``null`` when empty, and optional fields the spec does not let
be ``null`` are left out when unset.
"""

from __future__ import annotations

from typing import Annotated, Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, PlainValidator, StringConstraints
from pydantic_core import PydanticCustomError

Auto = Literal["auto"]
EventLevel = Literal["info", "warn", "error"]
JobStatus = Literal["validating_files", "queued", "running", "succeeded", "failed", "cancelled"]
UploadPurpose = Literal["assistants", "batch", "fine-tune", "vision"]
FilePurpose = Literal["assistants", "batch", "fine-tune", "vision", "user_data"]
StoredFilePurpose = FilePurpose | Literal["assistants_output", "batch_output", "fine-tune-results"]

MAX_UPLOAD_BYTES = 8 * 1024**3
MAX_SEED = 2_147_483_647
MAX_METADATA_PAIRS = 16
MAX_METADATA_KEY = 64
MAX_METADATA_VALUE = 512


def _omitted_when_none(value: object) -> bool:
    return value is None


def _auto_or_integer(low: int, high: int) -> PlainValidator:
    def validate(value: object) -> Auto | int:
        if value == "auto":
            return "auto"
        if type(value) is int and low <= value <= high:
            return value
        raise PydanticCustomError(
            "invalid_value", f"expected 'auto' or an integer from {low} to {high}"
        )

    return PlainValidator(validate)


def _auto_or_positive_number(high: float | None = None) -> PlainValidator:
    bound = "a number above 0" if high is None else f"a number above 0 and at most {high}"

    def validate(value: object) -> Auto | float:
        if value == "auto":
            return "auto"
        if (
            isinstance(value, int | float)
            and not isinstance(value, bool)
            and value > 0
            and (high is None or value <= high)
        ):
            return float(value)
        raise PydanticCustomError("invalid_value", f"expected 'auto' or {bound}")

    return PlainValidator(validate)


# Plain validators instead of pydantic unions and dict types keep error locations
# free of branch names and dict keys, so they map straight onto OpenAI's ``param``.
NEpochs = Annotated[Auto | int, _auto_or_integer(1, 50)]
BatchSize = Annotated[Auto | int, _auto_or_integer(1, 256)]
LearningRateMultiplier = Annotated[Auto | float, _auto_or_positive_number()]
Beta = Annotated[Auto | float, _auto_or_positive_number(high=2.0)]


def _validate_metadata(value: object) -> dict[str, str]:
    if not isinstance(value, dict) or not all(
        isinstance(key, str) and isinstance(item, str) for key, item in value.items()
    ):
        raise PydanticCustomError("invalid_type", "expected an object of string values")
    if len(value) > MAX_METADATA_PAIRS:
        raise PydanticCustomError("invalid_value", f"at most {MAX_METADATA_PAIRS} pairs allowed")
    if any(len(key) > MAX_METADATA_KEY for key in value):
        raise PydanticCustomError("invalid_value", f"keys are at most {MAX_METADATA_KEY} chars")
    if any(len(item) > MAX_METADATA_VALUE for item in value.values()):
        raise PydanticCustomError("invalid_value", f"values are at most {MAX_METADATA_VALUE} chars")
    return value


Metadata = Annotated[dict[str, str], PlainValidator(_validate_metadata)]


class RequestBody(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class SupervisedHyperparameters(RequestBody):
    n_epochs: NEpochs = "auto"
    batch_size: BatchSize = "auto"
    learning_rate_multiplier: LearningRateMultiplier = "auto"


class DpoHyperparameters(SupervisedHyperparameters):
    beta: Beta = "auto"


class SupervisedMethod(RequestBody):
    hyperparameters: SupervisedHyperparameters = Field(default_factory=SupervisedHyperparameters)


class DpoMethod(RequestBody):
    hyperparameters: DpoHyperparameters = Field(default_factory=DpoHyperparameters)


class FineTuneMethod(RequestBody):
    type: Literal["supervised", "dpo"]
    supervised: SupervisedMethod | None = Field(default=None, exclude_if=_omitted_when_none)
    dpo: DpoMethod | None = Field(default=None, exclude_if=_omitted_when_none)

    @property
    def hyperparameters(self) -> SupervisedHyperparameters:
        """The settings of the chosen method, with defaults when its block was left out."""
        if self.type == "dpo":
            return self.dpo.hyperparameters if self.dpo else DpoHyperparameters()
        return self.supervised.hyperparameters if self.supervised else SupervisedHyperparameters()

    @classmethod
    def of(cls, hyperparameters: SupervisedHyperparameters) -> FineTuneMethod:
        if isinstance(hyperparameters, DpoHyperparameters):
            return cls(type="dpo", dpo=DpoMethod(hyperparameters=hyperparameters))
        return cls(type="supervised", supervised=SupervisedMethod(hyperparameters=hyperparameters))


class WandbSettings(RequestBody):
    project: str
    name: str | None = None
    entity: str | None = None
    # An array in OpenAI's schema, never null: left out when none were given.
    tags: list[str] | None = Field(default=None, exclude_if=_omitted_when_none)


class Integration(RequestBody):
    type: Literal["wandb"]
    wandb: WandbSettings


class CreateFineTuningJobRequest(RequestBody):
    model: str
    training_file: str
    validation_file: str | None = None
    suffix: Annotated[str, StringConstraints(min_length=1, max_length=64)] | None = None
    seed: Annotated[int, Field(ge=0, le=MAX_SEED)] | None = None
    metadata: Metadata | None = None
    method: FineTuneMethod | None = None
    integrations: list[Integration] | None = Field(default=None, max_length=5)
    # Deprecated by OpenAI in favour of ``method``, still accepted.
    hyperparameters: SupervisedHyperparameters | None = None

    def resolved_method(self) -> FineTuneMethod:
        """``method`` as sent, else a supervised method from the legacy hyperparameters."""
        if self.method is not None:
            return FineTuneMethod.of(self.method.hyperparameters)
        return FineTuneMethod.of(self.hyperparameters or SupervisedHyperparameters())


class CreateFileRequest(RequestBody):
    """The form fields of a file upload besides the file itself."""

    purpose: FilePurpose


class CreateUploadRequest(RequestBody):
    filename: str
    purpose: UploadPurpose
    bytes: Annotated[int, Field(ge=0, le=MAX_UPLOAD_BYTES)]
    mime_type: str
    expires_after: dict[str, Any] | None = None


class CompleteUploadRequest(RequestBody):
    part_ids: list[str]
    md5: str | None = None


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow")

    role: str
    content: str | list[dict[str, Any]] | None = None

    def text(self) -> str:
        if isinstance(self.content, str):
            return self.content
        parts = self.content or []
        return " ".join(str(part.get("text", "")) for part in parts if part.get("type") == "text")


class ChatCompletionRequest(BaseModel):
    """Only the fields the emulator acts on; the many sampling options are accepted and ignored."""

    model_config = ConfigDict(extra="allow")

    model: str
    messages: Annotated[list[ChatMessage], Field(min_length=1)]
    stream: bool | None = None


class FileObject(BaseModel):
    id: str
    object: Literal["file"] = "file"
    bytes: int
    created_at: int
    filename: str
    purpose: StoredFilePurpose
    status: Literal["uploaded", "processed", "error"] = "processed"


class FileDeleted(BaseModel):
    id: str
    object: Literal["file"] = "file"
    deleted: bool = True


class Upload(BaseModel):
    id: str
    object: Literal["upload"] = "upload"
    bytes: int
    created_at: int
    expires_at: int
    filename: str
    purpose: UploadPurpose
    status: Literal["pending", "completed", "cancelled", "expired"] = "pending"
    file: FileObject | None = None


class UploadPart(BaseModel):
    id: str
    object: Literal["upload.part"] = "upload.part"
    created_at: int
    upload_id: str


class JobError(BaseModel):
    code: str
    message: str
    param: str | None


class FineTuningJob(BaseModel):
    id: str
    object: Literal["fine_tuning.job"] = "fine_tuning.job"
    created_at: int
    error: JobError | None = None
    fine_tuned_model: str | None = None
    finished_at: int | None = None
    # Declared as the supervised set, so a DPO job's ``beta`` is only shown under ``method``.
    hyperparameters: SupervisedHyperparameters
    model: str
    organization_id: str
    result_files: list[str] = Field(default_factory=list)
    status: JobStatus = "validating_files"
    trained_tokens: int | None = None
    training_file: str
    validation_file: str | None
    seed: int
    estimated_finish: int | None = None
    integrations: list[Integration] | None = None
    metadata: dict[str, str] | None = None
    method: FineTuneMethod


class FineTuningJobEvent(BaseModel):
    id: str
    object: Literal["fine_tuning.job.event"] = "fine_tuning.job.event"
    created_at: int
    level: EventLevel = "info"
    message: str
    type: Literal["message", "metrics"] = "message"
    data: dict[str, float | int] = Field(default_factory=dict)


class FineTuningJobCheckpoint(BaseModel):
    id: str
    object: Literal["fine_tuning.job.checkpoint"] = "fine_tuning.job.checkpoint"
    created_at: int
    fine_tuned_model_checkpoint: str
    fine_tuning_job_id: str
    metrics: dict[str, float]
    step_number: int


class Model(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str
    shutdown_date: str | None


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[Model]


class FunctionCall(BaseModel):
    name: str
    # JSON text, as the model writes it.
    arguments: str


class ToolCall(BaseModel):
    id: str
    type: Literal["function"] = "function"
    function: FunctionCall


class AssistantMessage(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str | None
    refusal: str | None = None
    tool_calls: list[ToolCall] | None = Field(default=None, exclude_if=_omitted_when_none)
    annotations: list[dict[str, Any]] = Field(default_factory=list)


class ChatChoice(BaseModel):
    index: int
    message: AssistantMessage
    logprobs: None = None
    finish_reason: Literal["stop", "length", "tool_calls"] = "stop"


class CompletionUsage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class ChatCompletion(BaseModel):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[ChatChoice]
    usage: CompletionUsage
    service_tier: Literal["default"] = "default"


Item = TypeVar("Item", bound=BaseModel)


class Page(BaseModel, Generic[Item]):
    """A cursor page: the client asks for the next one with ``after`` = the last id."""

    object: Literal["list"] = "list"
    data: list[Item]
    has_more: bool


class CheckpointPage(Page[FineTuningJobCheckpoint]):
    first_id: str | None
    last_id: str | None
