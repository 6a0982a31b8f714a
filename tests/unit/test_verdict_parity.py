"""``sft validate`` and the validation Lambda give one verdict, with the same error
codes, for the same file and the same settings (flags on one side, the upload's S3
metadata on the other): a file the CLI calls valid is not refused after the upload.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from sft_pipeline.cli import EXIT_VALID, main
from sft_pipeline.jobs import UploadRef
from sft_pipeline.pipeline.validate_upload import ValidateUploadPorts, validate_upload
from sft_pipeline.settings import JobDefaultsSettings
from tests.conftest import as_lines, good_examples
from tests.fakes import FakeBucket, FakeNotifier, FakeWorkflow, InMemoryRegistry

NOVA_MICRO = "amazon.nova-micro-v1:0:128k"
UPLOAD = UploadRef(bucket="sft-data", key="training/train.jsonl", version_id="v1")
TOOL = {
    "type": "function",
    "function": {
        "name": "lookup_order",
        "description": "Look up an order by its id.",
        "parameters": {"type": "object", "properties": {"order_id": {"type": "string"}}},
    },
}


def tool_example(call_id: str) -> dict[str, Any]:
    call = {
        "id": call_id,
        "type": "function",
        "function": {"name": "lookup_order", "arguments": "{}"},
    }
    return {
        "messages": [
            {"role": "user", "content": "Where is NW-1?"},
            {"role": "assistant", "content": None, "tool_calls": [call]},
            {"role": "tool", "tool_call_id": call_id, "content": "shipped"},
            {"role": "assistant", "content": "It has shipped."},
        ],
        "tools": [TOOL],
    }


# (case, extra rows, S3 metadata, the same settings as CLI flags, the error codes both give)
CASES: list[tuple[str, list[dict[str, Any]], dict[str, str], list[str], dict[str, int]]] = [
    ("defaults", [], {}, [], {}),
    ("five epochs", [], {"n-epochs": "5"}, ["--n-epochs", "5"], {}),
    ("six epochs", [], {"n-epochs": "6"}, ["--n-epochs", "6"], {"invalid_job_setting": 1}),
    ("a batch size", [], {"batch-size": "8"}, ["--batch-size", "8"], {"invalid_job_setting": 1}),
    (
        "a learning rate below Nova's",
        [],
        {"learning-rate-multiplier": "0.05"},
        ["--learning-rate-multiplier", "0.05"],
        {"invalid_job_setting": 1},
    ),
    ("a good suffix", [], {"suffix": "tents_v2"}, ["--suffix", "tents_v2"], {}),
    (
        "a doubled separator in the suffix",
        [],
        {"suffix": "tents__v2"},
        ["--suffix", "tents__v2"],
        {"invalid_job_setting": 1},
    ),
    (
        "a 50-character suffix",
        [],
        {"suffix": "a" * 50},
        ["--suffix", "a" * 50],
        {"invalid_job_setting": 1},
    ),
    (
        "a tool-call id with a space",
        [tool_example("call 1")],
        {},
        [],
        {"nova_invalid_tool_call_id": 1},
    ),
]


@pytest.fixture
def ports() -> ValidateUploadPorts:
    return ValidateUploadPorts(
        bucket=FakeBucket(),
        registry=InMemoryRegistry(),
        workflow=FakeWorkflow(),
        notifier=FakeNotifier(),
    )


@pytest.mark.parametrize(
    ("rows", "metadata", "flags", "errors"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_the_cli_and_the_lambda_give_one_verdict(
    ports: ValidateUploadPorts,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    rows: list[dict[str, Any]],
    metadata: dict[str, str],
    flags: list[str],
    errors: dict[str, int],
) -> None:
    data = as_lines([*good_examples(10), *rows])
    path = tmp_path / "train.jsonl"
    path.write_bytes(data)
    exit_status = main(
        ["validate", str(path), "--model", NOVA_MICRO, "--json", "--no-progress", *flags]
    )
    cli_report = json.loads(capsys.readouterr().out)

    assert isinstance(ports.bucket, FakeBucket)
    ports.bucket.objects[(UPLOAD.bucket, UPLOAD.key)] = data
    ports.bucket.metadata = {"provider": "bedrock", "base-model": NOVA_MICRO, **metadata}
    result = validate_upload(UPLOAD, ports, JobDefaultsSettings())
    lambda_report = json.loads(
        ports.bucket.objects[(UPLOAD.bucket, "reports/train.jsonl.v1.report.json")]
    )

    assert (exit_status == EXIT_VALID, result.status == "launched") == (not errors, not errors)
    assert cli_report["error_counts"] == lambda_report["error_counts"] == errors
    assert [f["message"] for f in cli_report["errors"]] == [
        f["message"] for f in lambda_report["errors"]
    ]
