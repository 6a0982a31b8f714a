"""Uploads as S3 delivers them on the local stack: every version its own run, a rejected
version notified once however often its event arrives, keys up to S3's limit reported."""

from __future__ import annotations

import json
from typing import Any

import boto3

from sft_local.stack import LocalStack
from tests.e2e.conftest import BROKEN_SET, SUPPORT_SET

KEY = "training/customer support.jsonl"


def validations(stack: LocalStack) -> list[dict[str, Any]]:
    return [
        i.event
        for i in stack.seam.invocations
        if i.function.endswith("ValidateUploadFunction") and i.error is None
    ]


def test_each_upload_of_one_key_is_its_own_version_and_run(stack: LocalStack) -> None:
    uploads = [stack.upload(SUPPORT_SET, KEY, {"suffix": f"try{n}"}) for n in range(3)]
    stack.settle()
    assert len({upload.version_id for upload in uploads}) == 3
    names = {execution["name"] for execution in stack.executions()}
    assert names == {upload.execution_name for upload in uploads}
    # Each event names the version its own put made, not the key's latest.
    delivered = [
        event["Records"][0]["s3"]["object"].get("versionId") for event in validations(stack)
    ]
    assert delivered == [upload.version_id for upload in uploads]
    table = stack.table()
    for n, upload in enumerate(uploads):
        item = table.get_item(Key={"PK": f"DATASET#{upload.dataset_id}", "SK": "DATASET"})["Item"]
        assert item["upload"]["version_id"] == upload.version_id
        assert item["settings"]["suffix"] == f"try{n}"  # each run trains its own version


def test_a_rejected_version_delivered_again_is_notified_once(stack: LocalStack) -> None:
    upload = stack.upload(BROKEN_SET, "training/broken.jsonl")
    stack.settle()
    [event] = validations(stack)
    for _ in range(2):  # S3 delivers at least once: the same event again
        answer = boto3.client("lambda").invoke(
            FunctionName=stack.ref("ValidateUploadFunction"), Payload=json.dumps(event)
        )
        assert "FunctionError" not in answer
    stack.settle()
    assert len(validations(stack)) == 3
    [email] = stack.emails()
    assert "INVALID" in email
    assert len(stack.slack.messages) == 1
    dataset = stack.table().get_item(Key={"PK": f"DATASET#{upload.dataset_id}", "SK": "DATASET"})
    assert dataset["Item"]["status"] == "rejected"


def test_a_key_near_s3s_limit_gets_its_report(stack: LocalStack) -> None:
    key = "training/" + "ünïcödé-" * 40 + "x" * 520 + ".jsonl"
    assert 1000 < len(key.encode()) <= 1024
    upload = stack.upload(BROKEN_SET, key)
    stack.settle()
    dataset = stack.table().get_item(Key={"PK": f"DATASET#{upload.dataset_id}", "SK": "DATASET"})[
        "Item"
    ]
    assert dataset["status"] == "rejected"
    report_uri = dataset["report_uri"]
    report_key = report_uri.removeprefix(f"s3://{stack.bucket}/")
    # moto takes longer keys; S3 refuses them.
    assert len(report_key.encode()) <= 1024
    assert len(report_key.removesuffix(".json").encode() + b".txt") <= 1024
    report = json.loads(stack.read_object(report_uri))
    assert report["upload"] == {"bucket": stack.bucket, "key": key, "version_id": upload.version_id}
    text = stack.read_object(report_uri.removesuffix(".json") + ".txt").decode()
    assert f"s3://{stack.bucket}/{key}" in text and "special_token" in text
    [email] = stack.emails()
    assert "INVALID" in email
    assert stack.dead_letters("ValidationFailureQueue") == []
