"""Composition root for the Lambda functions: each adapter built once per container.

Handlers ask for what they need; nothing here runs at import time, so a function
pays only for the clients it uses (the validation function never imports openai).
Each builder reads only its own part of the settings; the registry and the providers
come wrapped for tracing.
"""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING

import boto3

from sft_pipeline.adapters.notifier import Notifier
from sft_pipeline.adapters.registry import Registry
from sft_pipeline.adapters.training_bucket import TrainingBucket
from sft_pipeline.adapters.workflow import Workflow
from sft_pipeline.observability import traced
from sft_pipeline.providers import build_provider
from sft_pipeline.settings import (
    GenerationWorkflowSettings,
    NotifierSettings,
    ProviderSettings,
    RegistrySettings,
    WorkflowSettings,
    forget_settings,
    load_settings,
)

if TYPE_CHECKING:
    from sft_pipeline.providers.base import ChatPort, Provider, TrainingPort


@cache
def training_bucket() -> TrainingBucket:
    return TrainingBucket(boto3.client("s3"))


@cache
def registry() -> Registry:
    table = load_settings(RegistrySettings).registry_table
    return traced(Registry(boto3.resource("dynamodb").Table(table)))


@cache
def workflow() -> Workflow:
    return Workflow(
        boto3.client("stepfunctions"), load_settings(WorkflowSettings).state_machine_arn
    )


@cache
def generation_workflow() -> Workflow:
    return Workflow(
        boto3.client("stepfunctions"),
        load_settings(GenerationWorkflowSettings).generation_state_machine_arn,
    )


@cache
def notifier() -> Notifier:
    return Notifier(boto3.client("sns"), load_settings(NotifierSettings).notification_topic_arn)


def provider(name: str) -> TrainingPort:
    """The named provider's training port, for the workflow's steps."""
    return traced(build_provider(name, load_settings(ProviderSettings), "workflow"))


def chat_provider(name: str) -> ChatPort:
    """The named provider's chat port for the workflow's evaluation: the workflow's longer
    timeouts, since a shard's task can wait out a slow answer (it backs off 429s itself)."""
    return traced(build_provider(name, load_settings(ProviderSettings), "workflow"))


def inference_provider(name: str) -> Provider:
    """The named provider for the API (its chat port answers, its training port serves the job
    routes): answers or fails fast, inside API Gateway's 29 s."""
    return traced(build_provider(name, load_settings(ProviderSettings), "inference"))


def reset() -> None:
    """Forget every built adapter and cached secret, as a new Lambda container would."""
    from aws_lambda_powertools.utilities import parameters  # noqa: PLC0415

    forget_settings()
    for builder in (training_bucket, registry, workflow, generation_workflow, notifier):
        builder.cache_clear()
    parameters.clear_caches()  # type: ignore[no-untyped-call]
