"""A registered model's card written to its training bucket: Markdown and HTML side by side."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from html.parser import HTMLParser

from sft_pipeline.evaluation.report_html import FileLineage, LossPoint, SideBySide
from sft_pipeline.jobs import UploadRef
from sft_pipeline.pipeline.model_card import model_card_folder, write_model_card
from sft_pipeline.records import ModelRecord
from tests.evaluation_samples import CANDIDATE, evaluation_summary

NOW = datetime(2026, 11, 30, 9, tzinfo=UTC)
SHA = "ab" * 32
UPLOAD = UploadRef(bucket="acme-training", key="training/support.jsonl", version_id="v3")
CURVE = [
    LossPoint(step=1, train_loss=2.0, valid_loss=2.2),
    LossPoint(step=2, train_loss=1.0),
    LossPoint(step=3, train_loss=0.5, valid_loss=0.9),
]
EXAMPLES = [
    SideBySide(
        line=4,
        prompt="Where is my order?",
        reference="It ships today.",
        answers={"candidate": "It ships today.", "base": "<b>I don't know.</b>"},
    )
]
HELD_OUT = FileLineage(role="evaluation", bucket="acme-training", key="eval/support.jsonl")


@dataclass
class RecordingBucket:
    objects: dict[tuple[str, str], tuple[bytes, str]] = field(default_factory=dict)

    def put(self, bucket: str, key: str, body: bytes, content_type: str) -> str:
        self.objects[(bucket, key)] = (body, content_type)
        return f"s3://{bucket}/{key}"


def model(model_id: str = CANDIDATE) -> ModelRecord:
    return ModelRecord(
        model_id=model_id,
        provider="openai",
        job_id="ftjob-1",
        base_model="gpt-4o-mini-2024-07-18",
        dataset_id=UPLOAD.dataset_id,
        upload=UPLOAD,
        dataset_sha256=SHA,
        hyperparameters={"n_epochs": 3, "learning_rate_multiplier": 1.8},
        started_at=NOW,
        finished_at=NOW,
        created_at=NOW,
    )


class Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)


def test_the_card_is_written_as_markdown_and_html_under_reports_models() -> None:
    bucket = RecordingBucket()
    uri = write_model_card(
        bucket,
        model(),
        evaluation_summary(),
        curve=CURVE,
        examples=EXAMPLES,
        other_files=[HELD_OUT],
    )
    folder = "reports/models/ft-gpt-4o-mini-2024-07-18-acme-support-a-AAA111/"
    assert uri == f"s3://acme-training/{folder}card.html"
    assert set(bucket.objects) == {
        ("acme-training", f"{folder}card.md"),
        ("acme-training", f"{folder}card.html"),
    }
    markdown, markdown_type = bucket.objects[("acme-training", f"{folder}card.md")]
    html, html_type = bucket.objects[("acme-training", f"{folder}card.html")]
    assert (markdown_type, html_type) == (
        "text/markdown; charset=utf-8",
        "text/html; charset=utf-8",
    )
    text = markdown.decode()
    # Training parameters, the training file's exact version first, then the held-out file.
    assert "| Hyperparameter n_epochs | 3 |" in text
    assert f"| training | acme-training | training/support.jsonl | v3 | {SHA} |" in text
    assert "| evaluation | acme-training | eval/support.jsonl | - | - |" in text
    assert "promoted: +0.70 over the base model (95% interval +0.30 to +1.00)" in text
    assert "| candidate |" in text and "| few_shot |" in text
    assert "It ships today." in text
    page = html.decode()
    tags = Tags()
    tags.feed(page)
    # Self-contained: both charts drawn inline, nothing loaded from elsewhere.
    assert tags.tags.count("svg") == 2
    assert not {"script", "link", "img", "iframe"} & set(tags.tags)
    assert "&lt;b&gt;I don&#x27;t know.&lt;/b&gt;" in page


def test_a_model_without_an_evaluation_says_why() -> None:
    bucket = RecordingBucket()
    write_model_card(bucket, model(), None, evaluation_note="No held-out set was named.")
    (markdown, _), (html, _) = bucket.objects.values()
    assert "No held-out set was named." in markdown.decode()
    assert "No held-out set was named." in html.decode()
    assert "The provider reported no loss curve." in html.decode()


def test_every_model_id_gives_one_readable_path_segment() -> None:
    arn = "arn:aws:bedrock:eu-west-1:123456789012:custom-model/amazon.nova-micro-v1:0:128k/ab12"
    assert model_card_folder(arn) == (
        "reports/models/arn-aws-bedrock-eu-west-1-123456789012-custom-model-"
        "amazon.nova-micro-v1-0-128k-ab12/"
    )
    assert model_card_folder("../..") == "reports/models/model/"
    assert len(model_card_folder("x" * 2000)) == len("reports/models/") + 200 + 1
