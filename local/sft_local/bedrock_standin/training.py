"""The simulated training run: dataset checks, the loss curve and the metrics files.

The metrics files go under the job's ``outputDataConfig.s3Uri``, in the layout
Bedrock documents for its model customization analysis::

    <output>/model-customization-job-<job id>/training_artifacts/step_wise_training_metrics.csv
    <output>/model-customization-job-<job id>/validation_artifacts/post_fine_tuning_validation/validation_metrics.csv

``<job id>`` is the 12-character suffix of the job ARN. The training file has
``step_number,epoch_number,training_loss,perplexity``, one row per step; the
validation file, written only for a job with validation data, has
``step_number,epoch_number,validation_loss,perplexity``, one row per epoch at
its last step. Steps and epochs count from 0; perplexity is ``exp(loss)``.
All validation files of a job are scored as one validation set.

Numbers are deterministic for a given job ID and shaped like a real run: the
loss falls with the steps, validation sits a little above training.
"""

from __future__ import annotations

import csv
import io
import json
import math
import random
from collections.abc import Iterable
from dataclasses import dataclass

SCHEMA_VERSION = "bedrock-conversation-2024"
MIN_TRAINING_RECORDS = 8
MAX_TRAINING_RECORDS = 20_000
RECORDS_PER_STEP = 8
TRAINING_METRICS_PATH = "training_artifacts/step_wise_training_metrics.csv"
VALIDATION_METRICS_PATH = "validation_artifacts/post_fine_tuning_validation/validation_metrics.csv"

INITIAL_LOSS = 2.4
FINAL_LOSS = 0.45
VALIDATION_GAP = 1.08
LOSS_JITTER = 0.03


@dataclass(frozen=True)
class DatasetCheck:
    """How many records a JSONL file holds, and the first problem found in it."""

    records: int
    problem: str | None


@dataclass(frozen=True)
class StepLoss:
    step: int
    epoch: int
    loss: float


@dataclass(frozen=True)
class TrainingRun:
    training: list[StepLoss]
    # Empty for a job without validation data.
    validation: list[StepLoss]

    @property
    def training_loss(self) -> float:
        return self.training[-1].loss

    @property
    def validation_loss(self) -> float | None:
        return self.validation[-1].loss if self.validation else None


def check_dataset(content: bytes) -> DatasetCheck:
    """Each non-blank line must be a ``bedrock-conversation-2024`` record."""
    records = 0
    for number, line in enumerate(content.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError:
            return DatasetCheck(records, f"line {number} is not valid JSON")
        if not isinstance(record, dict):
            return DatasetCheck(records, f"line {number} is not a JSON object")
        if record.get("schemaVersion") != SCHEMA_VERSION:
            return DatasetCheck(
                records,
                f"line {number} has schemaVersion {json.dumps(record.get('schemaVersion'))}, "
                f'expected "{SCHEMA_VERSION}"',
            )
        records += 1
    return DatasetCheck(records, None)


def record_count_problem(records: int) -> str | None:
    if records < MIN_TRAINING_RECORDS:
        return f"it has {records} records, fewer than the minimum of {MIN_TRAINING_RECORDS}"
    if records > MAX_TRAINING_RECORDS:
        return f"it has {records} records, more than the maximum of {MAX_TRAINING_RECORDS}"
    return None


def simulate_training(
    job_id: str, *, records: int, epochs: int, with_validation: bool
) -> TrainingRun:
    steps_per_epoch = math.ceil(records / RECORDS_PER_STEP)
    total = steps_per_epoch * epochs
    jitter = random.Random(job_id)
    training = []
    for step in range(total):
        progress = (step + 1) / total
        loss = FINAL_LOSS + (INITIAL_LOSS - FINAL_LOSS) * math.exp(-4 * progress)
        loss *= 1 + jitter.uniform(-LOSS_JITTER, LOSS_JITTER)
        training.append(StepLoss(step, step // steps_per_epoch, round(loss, 6)))
    validation = [
        StepLoss(row.step, row.epoch, round(row.loss * VALIDATION_GAP, 6))
        for row in training
        if with_validation and (row.step + 1) % steps_per_epoch == 0
    ]
    return TrainingRun(training, validation)


def metrics_files(output_uri: str, job_id: str, run: TrainingRun) -> dict[str, bytes]:
    """The metrics files of a finished run, by S3 URI."""
    folder = f"{output_uri.rstrip('/')}/model-customization-job-{job_id}"
    files = {f"{folder}/{TRAINING_METRICS_PATH}": _csv("training_loss", run.training)}
    if run.validation:
        files[f"{folder}/{VALIDATION_METRICS_PATH}"] = _csv("validation_loss", run.validation)
    return files


def _csv(loss_column: str, rows: Iterable[StepLoss]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(("step_number", "epoch_number", loss_column, "perplexity"))
    for row in rows:
        writer.writerow((row.step, row.epoch, row.loss, round(math.exp(row.loss), 6)))
    return out.getvalue().encode()
