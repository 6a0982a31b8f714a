"""The upload version a registered model was trained on outlives the bucket's expiry of old
versions, judged by the lifecycle rules template.yaml gives the bucket (applied to moto's)."""

from __future__ import annotations

from typing import Any

import boto3

from sft_local.stack import LocalStack
from sft_pipeline.jobs import UploadRef
from tests.e2e.conftest import BROKEN_SET, SUPPORT_SET


def version_tags(upload: UploadRef) -> dict[str, str]:
    version = {"VersionId": upload.version_id} if upload.version_id else {}
    tag_set = boto3.client("s3").get_object_tagging(
        Bucket=upload.bucket, Key=upload.key, **version
    )["TagSet"]
    return {tag["Key"]: tag["Value"] for tag in tag_set}


def rules_expiring_if_noncurrent(upload: UploadRef) -> list[str]:
    """The bucket's enabled rules that would delete this version once a newer one exists."""
    rules: list[dict[str, Any]] = boto3.client("s3").get_bucket_lifecycle_configuration(
        Bucket=upload.bucket
    )["Rules"]
    tags = version_tags(upload)
    expiring = []
    for rule in rules:
        if rule["Status"] != "Enabled" or "NoncurrentVersionExpiration" not in rule:
            continue
        where = rule.get("Filter", {})
        both = where.get("And", {})
        prefix = where.get("Prefix", both.get("Prefix", ""))
        wanted = [where["Tag"]] if "Tag" in where else both.get("Tags", [])
        if upload.key.startswith(prefix) and all(
            tags.get(tag["Key"]) == tag["Value"] for tag in wanted
        ):
            expiring.append(rule["ID"])
    return expiring


def test_the_trained_version_is_kept_and_other_uploads_still_expire(stack: LocalStack) -> None:
    # A tag of the uploader's own survives the pipeline's tagging.
    key = "training/support.jsonl"
    put = boto3.client("s3").put_object(
        Bucket=stack.bucket, Key=key, Body=SUPPORT_SET, Tagging="team=support"
    )
    trained = UploadRef(bucket=stack.bucket, key=key, version_id=put["VersionId"])
    rejected = stack.upload(BROKEN_SET, "training/broken.jsonl")
    assert stack.wait_for_execution(trained)["status"] == "SUCCEEDED"
    stack.settle()

    assert version_tags(trained) == {"team": "support", "sft-lineage": "registered"}
    assert rules_expiring_if_noncurrent(trained) == []
    assert version_tags(rejected) == {"sft-lineage": "unregistered"}
    assert rules_expiring_if_noncurrent(rejected) == ["ExpireOldUnregisteredUploads"]
    # Reports are still cleaned up once replaced.
    report = stack.table().get_item(Key={"PK": f"DATASET#{rejected.dataset_id}", "SK": "DATASET"})
    report_key = report["Item"]["report_uri"].removeprefix(f"s3://{stack.bucket}/")
    assert rules_expiring_if_noncurrent(UploadRef(bucket=stack.bucket, key=report_key)) == [
        "ExpireOldReports"
    ]
