"""Logs, traces and metrics of every function, configured once.

Handlers log through ``logger``, trace through ``tracer`` and count through ``put_metric``;
the composition root wraps the provider and registry adapters in ``traced``. The service,
the namespace and the metric names are fixed here, so alarms and dashboards can name them.
Offline (outside Lambda) the tracer records nothing.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from enum import StrEnum
from typing import Any, TypeVar

from aws_lambda_powertools import Logger, Tracer, single_metric
from aws_lambda_powertools.metrics import MetricUnit

SERVICE = "sft-pipeline"
NAMESPACE = "SftPipeline"

logger = Logger(service=SERVICE)
# Only the AWS SDK is patched: its calls are most of what the functions wait for, and
# patching every library X-Ray knows would import them all at cold start.
tracer = Tracer(service=SERVICE, patch_modules=("botocore",))


class Metric(StrEnum):
    # One per upload the validation step decided on; dimension outcome: its status.
    UPLOADS = "Uploads"
    # One per run the workflow finished; dimension outcome: succeeded, failed...
    JOBS = "Jobs"
    # Per API call; dimensions model (the alias or model asked for) and served_model.
    LATENCY = "Latency"
    ERRORS = "Errors"
    # Per answered API call, same dimensions; cost from the dated price table, absent when
    # the model's price is unknown (never a guessed zero).
    INPUT_TOKENS = "InputTokens"
    OUTPUT_TOKENS = "OutputTokens"
    COST = "CostUsd"
    # Per evaluated fine-tune: the candidate's mean score; dimension model.
    EVALUATION_SCORE = "EvaluationScore"


def put_metric(name: Metric, unit: MetricUnit, value: float, **dimensions: str) -> None:
    """One data point, written at once with its own dimensions (a batch of S3 records or
    an A/B split has a different outcome or model for each)."""
    with single_metric(name=name, unit=unit, value=value, namespace=NAMESPACE) as metric:
        for dimension, dimension_value in dimensions.items():
            metric.add_dimension(name=dimension, value=dimension_value)


def count(name: Metric, outcome: str) -> None:
    put_metric(name, MetricUnit.Count, 1, outcome=outcome)


def record_evaluation_score(model_id: str, score: float) -> None:
    """The evaluated fine-tune's mean score (0..1), for the dashboard's per-model chart."""
    put_metric(Metric.EVALUATION_SCORE, MetricUnit.NoUnit, score, model=model_id)


A = TypeVar("A")


def traced(adapter: A) -> A:
    """The adapter with each public method call recorded as an X-Ray subsegment named by its
    class and method, an exception included. Nothing of the arguments or answers is kept:
    they hold people's data. (Powertools' capture_method would also log every exception,
    and these adapters raise some as answers: a missing record, a provider's retryable error.)
    """
    if getattr(adapter, "_traced", False):
        return adapter  # built once and cached: wrap it once
    # Functions only: reading a property here could call the outside system.
    for name, _ in inspect.getmembers(type(adapter), inspect.isfunction):
        if not name.startswith("_"):
            method = getattr(adapter, name)
            setattr(adapter, name, _recorded(method, f"## {type(adapter).__name__}.{name}"))
    adapter._traced = True  # type: ignore[attr-defined]
    return adapter


def _recorded(method: Callable[..., Any], segment: str) -> Callable[..., Any]:
    @functools.wraps(method)
    def call(*args: Any, **kwargs: Any) -> Any:
        with tracer.provider.in_subsegment(name=segment):
            return method(*args, **kwargs)

    return call
