"""Composition root for the Lambda functions: each adapter built once per container.

Handlers ask for what they need; nothing here runs at import time, so a function
pays only for the clients it uses (the validation function never imports openai).
"""

from __future__ import annotations

from functools import cache, lru_cache
from typing import TYPE_CHECKING, Any

import boto3

from sft_pipeline.adapters.notifier import Notifier
from sft_pipeline.adapters.registry import Registry
from sft_pipeline.adapters.s3_objects import TrainingObjects
from sft_pipeline.adapters.workflow import Workflow
from sft_pipeline.settings import PipelineSettings, load_settings

if TYPE_CHECKING:
    from sft_pipeline.providers.base import FineTuningProvider

# Control-plane calls: well under the task timeouts, including the SDK's own retries of reads.
OPENAI_TIMEOUT_SECONDS = 60.0
INFERENCE_TIMEOUT_SECONDS = 25.0


def settings() -> PipelineSettings:
    return load_settings()


@cache
def storage() -> TrainingObjects:
    return TrainingObjects(boto3.client("s3"))


@cache
def registry() -> Registry:
    return Registry(boto3.resource("dynamodb").Table(settings().registry_table))


@cache
def workflow() -> Workflow:
    return Workflow(boto3.client("stepfunctions"), settings().state_machine_arn)


@cache
def notifier() -> Notifier:
    return Notifier(boto3.client("sns"), settings().notification_topic_arn)


def provider() -> FineTuningProvider:
    """The provider for the workflow's steps, with a key read through the secrets cache."""
    return _openai_provider(OPENAI_TIMEOUT_SECONDS, sdk_retries=2, rate_limit_wait=20.0)


def inference_provider() -> FineTuningProvider:
    """The provider for the API: answers or fails fast (a 429 goes back to the caller
    with its Retry-After), well inside API Gateway's 29-second limit."""
    return _openai_provider(INFERENCE_TIMEOUT_SECONDS, sdk_retries=1, rate_limit_wait=0.0)


def _openai_provider(
    timeout: float, sdk_retries: int, rate_limit_wait: float
) -> FineTuningProvider:
    from sft_pipeline.adapters.secrets import read_secret  # noqa: PLC0415
    from sft_pipeline.providers.openai_provider import OpenAIProvider  # noqa: PLC0415

    config = settings()
    client = _openai_client(
        read_secret(config.openai_secret_arn), config.openai_base_url or None, timeout, sdk_retries
    )
    return OpenAIProvider(client, max_rate_limit_wait=rate_limit_wait)


@lru_cache(maxsize=4)
def _openai_client(api_key: str, base_url: str | None, timeout: float, retries: int) -> Any:
    """One client (and connection pool) per key: a rotated key gets a new one."""
    import openai  # noqa: PLC0415

    return openai.OpenAI(api_key=api_key, base_url=base_url, timeout=timeout, max_retries=retries)


def reset() -> None:
    """Forget every built adapter and cached secret, as a new Lambda container would."""
    from aws_lambda_powertools.utilities import parameters  # noqa: PLC0415

    load_settings.cache_clear()
    for builder in (storage, registry, workflow, notifier):
        builder.cache_clear()
    _openai_client.cache_clear()
    parameters.clear_caches()  # type: ignore[no-untyped-call]
