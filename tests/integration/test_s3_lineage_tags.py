"""The training bucket adapter on moto's versioned S3: the exact version is tagged, the
uploader's tags are kept, a registered version is never downgraded, and a named file is
pinned to the version that was current when it was found."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from sft_pipeline.adapters.training_bucket import (
    LINEAGE_TAG,
    MAX_TAGS,
    REGISTERED,
    UNREGISTERED,
    TrainingBucket,
)
from sft_pipeline.jobs import UploadRef

BUCKET = "training"
KEY = "training/support.jsonl"


@pytest.fixture
def s3(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    with mock_aws():
        client = boto3.client("s3")
        client.create_bucket(Bucket=BUCKET)
        client.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
        yield client


def upload(s3: Any, tagging: str = "") -> UploadRef:
    version = s3.put_object(Bucket=BUCKET, Key=KEY, Body=b"{}\n", Tagging=tagging)["VersionId"]
    return UploadRef(bucket=BUCKET, key=KEY, version_id=version)


def tags(s3: Any, ref: UploadRef) -> dict[str, str]:
    tag_set = s3.get_object_tagging(Bucket=BUCKET, Key=KEY, VersionId=ref.version_id)["TagSet"]
    return {tag["Key"]: tag["Value"] for tag in tag_set}


def test_only_the_named_version_is_tagged_and_the_uploaders_tags_stay(s3: Any) -> None:
    trained = upload(s3, tagging="team=support")
    newer = upload(s3)
    objects = TrainingBucket(s3)

    objects.mark_unregistered(trained)
    assert tags(s3, trained) == {"team": "support", LINEAGE_TAG: UNREGISTERED}
    objects.keep_for_lineage(trained)
    assert tags(s3, trained) == {"team": "support", LINEAGE_TAG: REGISTERED}
    assert tags(s3, newer) == {}


def test_a_registered_version_is_not_made_expirable_again(s3: Any) -> None:
    """An S3 event delivered again after the model was registered validates once more."""
    trained = upload(s3)
    objects = TrainingBucket(s3)
    objects.keep_for_lineage(trained)
    objects.mark_unregistered(trained)
    assert tags(s3, trained) == {LINEAGE_TAG: REGISTERED}


def test_a_version_with_no_room_for_the_tag_is_left_as_it_is(s3: Any) -> None:
    full = "&".join(f"t{i}=v" for i in range(MAX_TAGS))
    crowded = upload(s3, tagging=full)
    TrainingBucket(s3).mark_unregistered(crowded)
    assert len(tags(s3, crowded)) == MAX_TAGS
    assert LINEAGE_TAG not in tags(s3, crowded)  # untagged: never expired, the safe side


def test_a_named_file_is_found_at_its_current_version_and_read_at_that_version(s3: Any) -> None:
    validated = upload(s3)
    objects = TrainingBucket(s3)
    found = objects.find_version(BUCKET, KEY)
    assert found == validated
    s3.put_object(Bucket=BUCKET, Key=KEY, Body=b"overwritten\n")
    assert found is not None
    with objects.source(found.bucket, found.key, found.version_id).open() as stream:
        assert stream.read() == b"{}\n"
    assert objects.find_version(BUCKET, "training/absent.jsonl") is None
