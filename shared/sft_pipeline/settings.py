"""Settings of the pipeline's functions, read once from the environment the template sets."""

from __future__ import annotations

from functools import cache

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from sft_pipeline.jobs import Hyperparameters, JobSettings, PollPolicy


class PipelineSettings(BaseSettings):
    """Names and ARNs of the stack's resources and the stack-wide defaults.

    Secrets are never here: only the ARNs of the secrets that hold them.
    """

    model_config = SettingsConfigDict(frozen=True, extra="ignore")

    training_bucket: str = ""
    registry_table: str = ""
    notification_topic_arn: str = ""
    state_machine_arn: str = ""
    openai_secret_arn: str = ""
    openai_base_url: str = ""
    training_prefix: str = "training/"
    reports_prefix: str = "reports/"
    prepared_prefix: str = "prepared/"
    default_provider: str = "openai"
    default_base_model: str = "gpt-4o-mini-2024-07-18"
    default_n_epochs: str = "auto"
    default_batch_size: str = "auto"
    default_learning_rate_multiplier: str = "auto"
    # 0 means no cap.
    default_cost_cap_usd: float = Field(default=0, ge=0)
    poll_interval_seconds: int = Field(default=60, ge=0)
    max_poll_interval_seconds: int = Field(default=600, ge=0)
    max_job_duration_hours: float = Field(default=24, gt=0)
    # Amazon Bedrock: the service role jobs run as, where their metrics go, whether a Nova
    # model gets an on-demand deployment; endpoints only to reach a local stand-in.
    bedrock_role_arn: str = ""
    bedrock_output_prefix: str = "bedrock-output/"
    bedrock_deploy_on_demand: bool = True
    bedrock_endpoint_url: str = ""
    bedrock_runtime_endpoint_url: str = ""
    # The stack's own OpenAI-compatible API, named in notifications.
    api_base_url: str = ""
    # The largest max_tokens the inference API passes on.
    max_output_tokens: int = Field(default=4096, ge=1)

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


@cache
def load_settings() -> PipelineSettings:
    return PipelineSettings()
