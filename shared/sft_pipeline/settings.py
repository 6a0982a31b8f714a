"""Settings of the pipeline's functions, each read from the environment the template sets.

Every function has its own class, composed of the parts it uses, and its handler loads
it at import: a variable the template forgot fails the cold start with its name, not the
first AWS call. Each adapter builder in the composition root loads only its own part.
Secrets are never here: only the ARNs of the secrets that hold them.
"""

from __future__ import annotations

from typing import Annotated, Self, TypeVar

from pydantic import Field, StringConstraints, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from sft_pipeline.jobs import Hyperparameters, JobSettings, PollPolicy

# Slack answers within a second; waiting much longer only burns Lambda time before the retry.
DEFAULT_SLACK_TIMEOUT_SECONDS = 5.0

# The name or ARN of a resource of the stack: set, and not empty.
ResourceName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]


class ConfigurationError(RuntimeError):
    """The environment lacks (or garbles) a variable the function needs."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(frozen=True, extra="ignore")

    @classmethod
    def from_environment(cls) -> Self:
        """The settings, or a ConfigurationError naming every missing or invalid variable."""
        try:
            return cls()
        except ValidationError as invalid:
            raise ConfigurationError(_explain(cls, invalid)) from None


def _explain(kind: type[Settings], invalid: ValidationError) -> str:
    prefix = str(kind.model_config.get("env_prefix", ""))
    problems = []
    for error in invalid.errors():
        name = str(error["loc"][0]) if error["loc"] else ""
        variable = f"{prefix}{name}".upper()
        field = kind.model_fields.get(name)
        purpose = f" ({field.description})" if field and field.description else ""
        if error["type"] == "missing":
            problems.append(f"{variable} is not set{purpose}")
        else:
            problems.append(f"{variable}: {error['msg']}{purpose}")
    return (
        f"{kind.__name__}: {'; '.join(problems)}. template.yaml sets each function's environment."
    )


# ---------------------------------------------------------------- the parts


class StorageLayout(Settings):
    """Where in the training bucket each kind of object goes."""

    training_prefix: str = "training/"
    reports_prefix: str = "reports/"
    prepared_prefix: str = "prepared/"
    # Where Bedrock writes each job's metrics.
    bedrock_output_prefix: str = "bedrock-output/"
    # Retrain orders (sft retrain, POST /models/{id}/retrain), which the validation step runs.
    retrain_prefix: str = "retrain/"


class StorageSettings(StorageLayout):
    training_bucket: ResourceName = Field(description="the training bucket's name")


class RegistrySettings(Settings):
    registry_table: ResourceName = Field(description="the DynamoDB registry table's name")


class WorkflowSettings(Settings):
    state_machine_arn: ResourceName = Field(description="the fine-tuning state machine's ARN")


class NotifierSettings(Settings):
    notification_topic_arn: ResourceName = Field(description="the notification topic's ARN")


class StackDefaultsSettings(StorageLayout):
    """Who trains which base model under which cost cap when an upload (or a generation
    spec) names none."""

    default_provider: str = "openai"
    default_base_model: str = "gpt-4o-mini-2024-07-18"
    # 0 means no cap.
    default_cost_cap_usd: float = Field(default=0, ge=0)


class GenerationWorkflowSettings(Settings):
    generation_state_machine_arn: ResourceName = Field(
        description="the generation state machine's ARN"
    )


class JobDefaultsSettings(StackDefaultsSettings):
    """What the validation step decides a run with: the stack-wide job settings (an upload's
    metadata overrides them) and how the workflow polls."""

    default_n_epochs: str = "auto"
    default_batch_size: str = "auto"
    default_learning_rate_multiplier: str = "auto"
    poll_interval_seconds: int = Field(default=60, ge=0)
    max_poll_interval_seconds: int = Field(default=600, ge=0)
    max_job_duration_hours: float = Field(default=24, gt=0)

    def job_defaults(self) -> JobSettings:
        return JobSettings(
            provider=self.default_provider,
            base_model=self.default_base_model,
            hyperparameters=Hyperparameters.model_validate(
                {
                    "n_epochs": self.default_n_epochs,
                    "batch_size": self.default_batch_size,
                    "learning_rate_multiplier": self.default_learning_rate_multiplier,
                }
            ),
            cost_cap_usd=self.default_cost_cap_usd,
        )

    def poll_policy(self) -> PollPolicy:
        return PollPolicy(
            interval_seconds=self.poll_interval_seconds,
            max_interval_seconds=self.max_poll_interval_seconds,
            max_duration_seconds=max(1, round(self.max_job_duration_hours * 3600)),
        )


class ProviderSettings(StorageSettings):
    """What the provider adapters need. The provider is chosen per run, so every function
    that calls one can build either."""

    openai_secret_arn: ResourceName = Field(description="the ARN of the OpenAI key's secret")
    # Empty: api.openai.com. Set only for an OpenAI-compatible endpoint.
    openai_base_url: str = ""
    # Only the function that creates jobs passes the role (LaunchJobSettings requires it).
    bedrock_role_arn: ResourceName | None = None
    bedrock_deploy_on_demand: bool = True
    # Only to reach a local stand-in.
    bedrock_endpoint_url: str = ""
    bedrock_runtime_endpoint_url: str = ""


class ApiLimits(Settings):
    # The largest max_tokens the inference API passes on.
    max_output_tokens: int = Field(default=4096, ge=1)


# ---------------------------------------------------------------- one class per function


class ValidateUploadSettings(
    JobDefaultsSettings, RegistrySettings, WorkflowSettings, NotifierSettings
):
    pass


class LaunchJobSettings(ProviderSettings, RegistrySettings):
    bedrock_role_arn: ResourceName = Field(
        description="the service role Bedrock's training jobs run as"
    )


class PollJobSettings(ProviderSettings, RegistrySettings, NotifierSettings):
    pass


class CancelJobSettings(ProviderSettings):
    pass


class FinishJobSettings(ProviderSettings, RegistrySettings, NotifierSettings):
    # The stack's own OpenAI-compatible API, named in notifications.
    api_base_url: ResourceName = Field(description="the stack's API base URL")


class RegisterModelSettings(ProviderSettings, RegistrySettings):
    pass


class PrepareEvaluationSettings(ProviderSettings, RegistrySettings):
    # Shards answered at once: the Map state reads it from the prepared plan.
    evaluation_concurrency: int = Field(default=10, ge=1, le=1000)
    # The pairwise judge when an upload names none; empty: no judge.
    evaluation_judge_model: str = Field(default="", max_length=200)


class EvaluateShardSettings(ProviderSettings):
    pass


class AggregateEvaluationSettings(RegistrySettings):
    pass


class ApiSettings(ProviderSettings, RegistrySettings, ApiLimits):
    pass


class ApiAuthorizerSettings(RegistrySettings):
    pass


class RetirementWatcherSettings(RegistrySettings, NotifierSettings):
    # Named in the warnings' retrain command (sft retrain ... --stack).
    stack_name: ResourceName = Field(description="the stack's name")


class WaitForJobSettings(RegistrySettings, WorkflowSettings):
    pass


class JobWebhookSettings(RegistrySettings, WorkflowSettings):
    openai_webhook_secret_arn: ResourceName = Field(
        description="the ARN of the secret holding the webhook signing secret (whsec_...)"
    )


class BedrockJobEventSettings(RegistrySettings, WorkflowSettings):
    pass


class StartGenerationSettings(
    StackDefaultsSettings, RegistrySettings, NotifierSettings, GenerationWorkflowSettings
):
    pass


class GenerateBatchSettings(ProviderSettings):
    pass


class FinishGenerationSettings(StorageLayout, RegistrySettings, NotifierSettings):
    pass


class SlackNotifierSettings(Settings):
    model_config = SettingsConfigDict(env_prefix="SLACK_")

    webhook_secret_arn: ResourceName = Field(description="the ARN of the Slack webhook's secret")
    timeout_seconds: float = Field(default=DEFAULT_SLACK_TIMEOUT_SECONDS, gt=0)


# ---------------------------------------------------------------- loading, once per container

S = TypeVar("S", bound=Settings)
_loaded: dict[type[Settings], Settings] = {}


def load_settings(kind: type[S]) -> S:
    """The settings of this kind, read from the environment once per container."""
    loaded = _loaded.get(kind)
    if not isinstance(loaded, kind):
        loaded = _loaded[kind] = kind.from_environment()
    return loaded


def forget_settings() -> None:
    """Read the environment again on next use, as a new container would."""
    _loaded.clear()
