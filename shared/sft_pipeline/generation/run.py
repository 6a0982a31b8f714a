"""A generation run in the cloud: what the state machine carries and where its work lives.

A spec dropped under ``generation/`` in the training bucket is one run, identified by the
spec's object version (as an upload's dataset is), so a repeated S3 event starts nothing
new. The run's slots are written to batch manifests under ``generation-runs/<run id>/``, and
the state machine carries only their keys: a Map state generates each batch (one Lambda
each, within its 15 minutes), a merge step dedupes across batches and either writes the
manifests of the slots still open (the next round, at most ``MAX_ROUNDS``) or the result.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from sft_pipeline.generation.plan import Slot
from sft_pipeline.jobs import ProviderName, UploadRef

WORK_PREFIX = "generation-runs/"
# Where a spec left for review (auto-train: false) and every held-out file go: outside
# training/, so writing them starts nothing.
GENERATED_PREFIX = "generated/"
EXECUTION_NAME_PREFIX = "gen-"
ATTEMPTS_SUFFIX = ".attempts.jsonl"
# Examples one Lambda makes: at 16 requests in flight a slow teacher (20 s a conversation)
# still finishes a batch in well under its 15 minutes.
BATCH_SIZE = 50
# Requests in flight per batch.
BATCH_CONCURRENCY = 16
# Rounds of top-ups (the first round included) before a run ends short.
MAX_ROUNDS = 4

Status = Literal["generating", "done", "failed"]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class GenerationRun(_Frozen):
    """One spec version being generated; small, so the state stays far below 256 KiB."""

    run_id: str
    spec: UploadRef
    round: int = Field(default=0, ge=0)
    started_at: int
    # What the examples are checked for: the spec's train.base-model, else the stack's.
    target_model: str = ""
    target_provider: ProviderName | None = None
    # The spec's cost-cap-usd, else the stack's CostCapUsd; None: no cap.
    cost_cap_usd: float | None = None


class GenerationState(BaseModel):
    """What the generation state machine carries between its tasks."""

    model_config = ConfigDict(extra="ignore")

    run: GenerationRun
    # This round's batch manifest keys: the Map's items.
    batches: list[str] = Field(default_factory=list)
    status: Status = "generating"
    # A caught task error (Error, Cause), for the failure notification.
    failure: dict[str, str] | None = None


class BatchInput(_Frozen):
    """One Map item: the run and the key of the batch's manifest."""

    run: GenerationRun
    batch_key: str


class BatchManifest(_Frozen):
    """The slots one batch fills, each with the attempt (the seed) to start from."""

    slots: list[tuple[Slot, int]]


def execution_name(run_id: str) -> str:
    return EXECUTION_NAME_PREFIX + run_id


def manifest_key(run_id: str, round_number: int, batch: int) -> str:
    return f"{WORK_PREFIX}{run_id}/round-{round_number}/batch-{batch:04d}.json"


def attempts_key(batch_key: str) -> str:
    """Where a batch writes its attempts (accepted examples and refusals) as JSONL."""
    return batch_key.removesuffix(".json") + ATTEMPTS_SUFFIX


def run_prefix(run_id: str) -> str:
    return f"{WORK_PREFIX}{run_id}/"


def output_keys(name: str, run_id: str, training_prefix: str, auto_train: bool) -> dict[str, str]:
    """Where the result goes: the training file under training/ (which starts fine-tuning)
    or generated/ (for review), the held-out file under generated/."""
    stem = f"{name}-{run_id[:8]}"
    training = training_prefix if auto_train else GENERATED_PREFIX
    return {
        "train": f"{training}{stem}.jsonl",
        "eval": f"{GENERATED_PREFIX}{stem}.heldout.jsonl",
    }
