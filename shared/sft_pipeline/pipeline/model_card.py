"""A registered model's card in the training bucket: Markdown and a self-contained HTML page
under ``reports/models/<model>/``, with its training parameters, data lineage, loss curve,
evaluation and example answers side by side. The rendering is the evaluation package's;
this step only gathers the model's facts and writes both files.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Protocol

from sft_pipeline.evaluation.report_html import (
    FileLineage,
    LossPoint,
    ModelFacts,
    SideBySide,
    report_html,
    report_markdown,
)
from sft_pipeline.evaluation.summary import EvaluationSummary
from sft_pipeline.records import ModelRecord

MODEL_CARDS_PREFIX = "reports/models/"
# S3 allows longer keys; this keeps a card's key readable and far from the 1,024-byte limit.
MAX_FOLDER_CHARS = 200


class CardBucket(Protocol):
    def put(self, bucket: str, key: str, body: bytes, content_type: str) -> str: ...


def model_card_folder(model_id: str) -> str:
    """The card's folder: the model id with anything but letters, digits, '.', '_' and '-'
    (the ':' of OpenAI ids, the '/' of Bedrock ARNs) replaced, so it is one path segment."""
    safe = re.sub(r"[^A-Za-z0-9._-]+", "-", model_id).strip("-.") or "model"
    return f"{MODEL_CARDS_PREFIX}{safe[:MAX_FOLDER_CHARS]}/"


def model_facts(
    model: ModelRecord,
    *,
    curve: Sequence[LossPoint] = (),
    examples: Sequence[SideBySide] = (),
    other_files: Sequence[FileLineage] = (),
    evaluation_note: str | None = None,
) -> ModelFacts:
    """What the card says of the model: the registry's record, the training file's exact
    version first in the lineage, then the other files (validation, evaluation)."""
    training = FileLineage(
        role="training",
        bucket=model.upload.bucket,
        key=model.upload.key,
        version=model.upload.version_id,
        sha256=model.dataset_sha256,
    )
    return ModelFacts(
        model=model.model_id,
        base_model=model.base_model,
        provider=model.provider,
        job_id=model.job_id,
        created_at=model.created_at,
        hyperparameters=dict(model.hyperparameters),
        lineage=[training, *other_files],
        loss_curve=list(curve),
        examples=list(examples),
        evaluation_note=evaluation_note,
    )


def write_model_card(
    bucket: CardBucket,
    model: ModelRecord,
    summary: EvaluationSummary | None,
    *,
    curve: Sequence[LossPoint] = (),
    examples: Sequence[SideBySide] = (),
    other_files: Sequence[FileLineage] = (),
    evaluation_note: str | None = None,
) -> str:
    """Write card.md and card.html beside each other in the model's training bucket; returns
    the HTML page's URI (the one a notification links to)."""
    facts = model_facts(
        model,
        curve=curve,
        examples=examples,
        other_files=other_files,
        evaluation_note=evaluation_note,
    )
    folder = model_card_folder(model.model_id)
    name = model.upload.bucket
    bucket.put(
        name,
        f"{folder}card.md",
        report_markdown(summary, facts).encode(),
        "text/markdown; charset=utf-8",
    )
    return bucket.put(
        name, f"{folder}card.html", report_html(summary, facts).encode(), "text/html; charset=utf-8"
    )
