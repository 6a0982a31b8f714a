"""Whatever the upload's metadata says, the validation step answers: a report, a record,
and a notification or a launch, never an exception."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sft_pipeline.jobs import METADATA_KEYS, UploadRef
from sft_pipeline.pipeline.validate_upload import ValidateUploadPorts, report_key, validate_upload
from sft_pipeline.settings import JobDefaultsSettings
from tests.conftest import as_lines, good_examples
from tests.fakes import FakeBucket, FakeNotifier, FakeWorkflow, InMemoryRegistry

BUCKET = "training-bucket"
TRAINING_KEY = "training/support.jsonl"
VALIDATION_KEY = "validation/valid.jsonl"
EVAL_KEY = "eval/heldout.jsonl"
SETTINGS = JobDefaultsSettings(default_cost_cap_usd=20)

# Every key a user may set, in both spellings and odd cases, and one nobody knows.
keys = st.sampled_from(
    [spelling for key in METADATA_KEYS for spelling in (key, f"sft-{key}", f"SFT-{key.upper()}")]
    + ["colour"]
)
values = st.one_of(
    st.text(),
    st.text(min_size=2_000, max_size=5_000),
    st.integers().map(str),
    st.floats().map(repr),
    st.floats().map(str),
    st.sampled_from(
        [
            "",
            " ",
            "auto",
            "inf",
            "-Infinity",
            "NaN",
            "1e300",
            "1e-320",
            "1e-300",
            "0",
            "-0",
            "50",
            "../x",
            "/etc/passwd",
            VALIDATION_KEY,
            "bedrock",
            "amazon.nova-micro-v1:0:128k",
            EVAL_KEY,
            "support-bot",
            "if-better",
            "always",
            "never",
            "0.05",
            "20",
        ]
    ),
)
versions = itertools.count()


@pytest.fixture(scope="module")
def registry() -> InMemoryRegistry:
    return InMemoryRegistry()


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(metadata=st.dictionaries(keys, values, max_size=6))
def test_any_metadata_gives_a_report_and_a_word_back(
    registry: InMemoryRegistry, metadata: dict[str, str]
) -> None:
    files = FakeBucket(metadata=metadata)
    files.objects[(BUCKET, TRAINING_KEY)] = as_lines(good_examples(30))
    files.objects[(BUCKET, VALIDATION_KEY)] = as_lines(good_examples(10))
    files.objects[(BUCKET, EVAL_KEY)] = as_lines(good_examples(12))
    notifier, workflow = FakeNotifier(), FakeWorkflow()
    upload = UploadRef(bucket=BUCKET, key=TRAINING_KEY, version_id=f"v{next(versions)}")

    result = validate_upload(
        upload, ValidateUploadPorts(files, registry, workflow, notifier), SETTINGS
    )

    stem = report_key(SETTINGS, upload)
    assert (BUCKET, f"{stem}.json") in files.objects and (BUCKET, f"{stem}.txt") in files.objects
    dataset = registry.get_dataset(upload.dataset_id)
    assert dataset is not None and dataset.status in ("rejected", "launched")
    if result.status == "rejected":
        [notification] = notifier.sent
        assert notification.error_code and notification.error_message
        assert workflow.started == {}
    else:
        assert result.status == "launched" and notifier.sent == []
        assert list(workflow.started) == [upload.execution_name]
