"""The simulated training run: dataset checks, resolved hyperparameters, loss curve, results CSV.

Numbers are deterministic for a given seed, so tests can assert on them, and
shaped like a real run: the loss falls with the steps, validation sits a little
above training.
"""

from __future__ import annotations

import csv
import io
import json
import math
import random
from collections.abc import Iterable
from dataclasses import dataclass

from sft_local.openai_emulator.schemas import DpoHyperparameters, SupervisedHyperparameters

MIN_TRAINING_EXAMPLES = 10
MAX_METRIC_REPORTS = 100
RESULTS_HEADER = ("step", "train_loss", "train_accuracy", "valid_loss", "valid_mean_token_accuracy")

# What OpenAI's "auto" settles on: the cookbook's epoch heuristic, and fixed
# values for the rest (the service's own formula is not published).
TARGET_EPOCHS = 3
MIN_TARGET_EXAMPLES = 100
MAX_TARGET_EXAMPLES = 25_000
MAX_DEFAULT_EPOCHS = 25
DEFAULT_BATCH_SIZE = 1
DEFAULT_LEARNING_RATE_MULTIPLIER = 2.0
DEFAULT_BETA = 0.1
BYTES_PER_TOKEN = 4


def dataset_problem(content: bytes, *, min_examples: int) -> str | None:
    """Why the fine-tuning service would reject this JSONL file, or None when it passes."""
    examples = 0
    for number, line in enumerate(content.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            parsed = json.loads(line)
        except ValueError:
            return f"Invalid file format. Line {number} is not valid JSON."
        if not isinstance(parsed, dict):
            return f"Invalid file format. Line {number} is not a JSON object."
        examples += 1
    if examples < min_examples:
        return f"The file has {examples} example(s), but must have at least {min_examples}."
    return None


def count_examples(content: bytes) -> int:
    return sum(1 for line in content.splitlines() if line.strip())


def default_epochs(examples: int) -> int:
    if examples * TARGET_EPOCHS < MIN_TARGET_EXAMPLES:
        return min(MAX_DEFAULT_EPOCHS, math.ceil(MIN_TARGET_EXAMPLES / examples))
    if examples * TARGET_EPOCHS > MAX_TARGET_EXAMPLES:
        return max(1, MAX_TARGET_EXAMPLES // examples)
    return TARGET_EPOCHS


@dataclass(frozen=True)
class TrainingPlan:
    hyperparameters: SupervisedHyperparameters
    n_epochs: int
    steps_per_epoch: int
    trained_tokens: int

    @property
    def total_steps(self) -> int:
        return self.n_epochs * self.steps_per_epoch

    def reported_steps(self) -> list[int]:
        """Every step of a short run; MAX_METRIC_REPORTS evenly spread ones of a long run."""
        if self.total_steps <= MAX_METRIC_REPORTS:
            return list(range(1, self.total_steps + 1))
        return [
            self.total_steps * report // MAX_METRIC_REPORTS
            for report in range(1, MAX_METRIC_REPORTS + 1)
        ]

    def checkpoint_steps(self) -> list[int]:
        """The ends of the last three epochs: the checkpoints OpenAI keeps."""
        first_kept_epoch = max(1, self.n_epochs - 2)
        return [
            epoch * self.steps_per_epoch for epoch in range(first_kept_epoch, self.n_epochs + 1)
        ]


def plan_training(requested: SupervisedHyperparameters, training_content: bytes) -> TrainingPlan:
    """Replace every "auto" with a number, as the job shows once its files are validated."""
    examples = max(1, count_examples(training_content))
    n_epochs = (
        requested.n_epochs if isinstance(requested.n_epochs, int) else default_epochs(examples)
    )
    batch_size = (
        requested.batch_size if isinstance(requested.batch_size, int) else DEFAULT_BATCH_SIZE
    )
    learning_rate_multiplier = (
        requested.learning_rate_multiplier
        if isinstance(requested.learning_rate_multiplier, float)
        else DEFAULT_LEARNING_RATE_MULTIPLIER
    )
    resolved: dict[str, float | int] = {
        "n_epochs": n_epochs,
        "batch_size": batch_size,
        "learning_rate_multiplier": learning_rate_multiplier,
    }
    if isinstance(requested, DpoHyperparameters):
        resolved["beta"] = requested.beta if isinstance(requested.beta, float) else DEFAULT_BETA
    return TrainingPlan(
        hyperparameters=requested.model_copy(update=resolved),
        n_epochs=n_epochs,
        steps_per_epoch=math.ceil(examples / batch_size),
        trained_tokens=math.ceil(len(training_content) / BYTES_PER_TOKEN) * n_epochs,
    )


@dataclass(frozen=True)
class StepMetrics:
    step: int
    total_steps: int
    train_loss: float
    train_accuracy: float
    valid_loss: float | None
    valid_accuracy: float | None

    def event_message(self) -> str:
        message = f"Step {self.step}/{self.total_steps}: training loss={self.train_loss:.2f}"
        if self.valid_loss is not None:
            message += f", validation loss={self.valid_loss:.2f}"
        return message

    def event_data(self) -> dict[str, float | int]:
        data: dict[str, float | int] = {
            "step": self.step,
            "train_loss": self.train_loss,
            "train_mean_token_accuracy": self.train_accuracy,
            "total_steps": self.total_steps,
        }
        if self.valid_loss is not None and self.valid_accuracy is not None:
            data["valid_loss"] = self.valid_loss
            data["valid_mean_token_accuracy"] = self.valid_accuracy
        return data

    def checkpoint_metrics(self) -> dict[str, float]:
        metrics = {
            "step": float(self.step),
            "train_loss": self.train_loss,
            "train_mean_token_accuracy": self.train_accuracy,
        }
        if self.valid_loss is not None and self.valid_accuracy is not None:
            metrics |= {
                "valid_loss": self.valid_loss,
                "valid_mean_token_accuracy": self.valid_accuracy,
                "full_valid_loss": self.valid_loss,
                "full_valid_mean_token_accuracy": self.valid_accuracy,
            }
        return metrics


def step_metrics(step: int, total_steps: int, *, seed: int, with_validation: bool) -> StepMetrics:
    # Seeded per step, so a step's numbers do not depend on which steps were reported before it.
    noise = random.Random(seed * 1_000_003 + step)
    progress = step / total_steps
    train_loss = round(0.15 + 1.6 * math.exp(-4 * progress) + noise.uniform(-0.03, 0.03), 4)
    valid_loss = round(train_loss + 0.05 + noise.uniform(0.0, 0.05), 4)
    return StepMetrics(
        step=step,
        total_steps=total_steps,
        train_loss=train_loss,
        train_accuracy=_accuracy(train_loss),
        valid_loss=valid_loss if with_validation else None,
        valid_accuracy=_accuracy(valid_loss) if with_validation else None,
    )


def _accuracy(loss: float) -> float:
    return round(min(0.99, max(0.0, 1 - loss / 2.2)), 4)


def results_csv(rows: Iterable[StepMetrics]) -> bytes:
    """The job's result file; validation cells stay empty when there is no validation file."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(RESULTS_HEADER)
    for row in rows:
        writer.writerow(
            [
                row.step,
                row.train_loss,
                row.train_accuracy,
                "" if row.valid_loss is None else row.valid_loss,
                "" if row.valid_accuracy is None else row.valid_accuracy,
            ]
        )
    return buffer.getvalue().encode()
