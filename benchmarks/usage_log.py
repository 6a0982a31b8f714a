"""What recording a model's last use costs the API's answers.

The API notes the day a registered model answered (for the retirement watcher) through
``UsageLog``: the first answer of the day per model and warm function makes one
conditional DynamoDB update; every later one is a dictionary look-up. Prints both, on a
moto table with the template's key schema. Nothing is asserted.

Usage:
    .venv/bin/python benchmarks/usage_log.py
"""

from __future__ import annotations

import datetime as dt
import os
import time
from pathlib import Path

import boto3
from moto import mock_aws

from sft_local.template import load_template
from sft_pipeline.adapters.registry import Registry
from sft_pipeline.api.service import UsageLog
from sft_pipeline.jobs import UploadRef
from sft_pipeline.records import ModelRecord

REPO = Path(__file__).resolve().parents[1]
MODEL = "ft:gpt-4o-mini-2024-07-18:acme:support:AbC123xy"
LATER_ANSWERS = 200_000


def registry() -> Registry:
    props = load_template(REPO / "template.yaml")["Resources"]["RegistryTable"]["Properties"]
    boto3.client("dynamodb").create_table(
        TableName="registry",
        AttributeDefinitions=props["AttributeDefinitions"],
        KeySchema=props["KeySchema"],
        GlobalSecondaryIndexes=props["GlobalSecondaryIndexes"],
        BillingMode=props["BillingMode"],
    )
    table = Registry(boto3.resource("dynamodb").Table("registry"))
    now = dt.datetime.now(dt.UTC)
    upload = UploadRef(bucket="data", key="training/support.jsonl", version_id="v1")
    table.register_model(
        ModelRecord(
            model_id=MODEL,
            provider="openai",
            job_id="ftjob-1",
            base_model="gpt-4o-mini-2024-07-18",
            dataset_id=upload.dataset_id,
            upload=upload,
            hyperparameters={},
            started_at=now,
            finished_at=now,
            created_at=now,
        )
    )
    return table


def main() -> None:
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    with mock_aws():
        table, log = registry(), UsageLog()
        started = time.perf_counter()
        log.note(MODEL, table)
        first = time.perf_counter() - started
        started = time.perf_counter()
        for _ in range(LATER_ANSWERS):
            log.note(MODEL, table)
        later = (time.perf_counter() - started) / LATER_ANSWERS
    print(f"first answer of the day per model: {first * 1000:.2f} ms (one conditional update)")
    print(f"every later answer that day:        {later * 1e9:,.0f} ns (no registry call)")


if __name__ == "__main__":
    main()
