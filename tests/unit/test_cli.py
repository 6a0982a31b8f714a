"""``sft validate``: exit codes, the JSON shape, readable text, S3 input, never a traceback;
``sft local``, added by the local stack through an entry point."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from sft_local import serve
from sft_pipeline import cli
from sft_pipeline.validation.progress import ProgressBar
from tests.conftest import as_lines, chat, good_examples

REPO = Path(__file__).resolve().parents[2]


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    try:
        code = cli.main(list(args))
    except SystemExit as exit_:
        code = int(exit_.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def write(tmp_path: Path, rows: list[Any], name: str = "train.jsonl") -> str:
    path = tmp_path / name
    path.write_bytes(as_lines(rows))
    return str(path)


def test_valid_file_exits_0_with_a_readable_report(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run_cli(capsys, "validate", write(tmp_path, good_examples(12)))
    assert code == 0
    assert "valid: 12 examples, 0 errors" in out
    assert "Estimate for gpt-4o-mini-2024-07-18" in out


def test_invalid_file_exits_1_and_names_lines(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = [*good_examples(10), chat("hi", reply=None)]
    code, out, _ = run_cli(capsys, "validate", write(tmp_path, rows))
    assert code == 1
    assert "example_missing_assistant_message: 1" in out
    assert "line 11" in out


def test_json_output_shape(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rows = [*good_examples(10), good_examples(1)[0], "{oops"]
    valid_path = write(tmp_path, [chat("new q", "new a")], "valid.jsonl")
    code, out, _ = run_cli(
        capsys,
        "validate",
        write(tmp_path, rows),
        "--json",
        "--validation-file",
        valid_path,
        "--model",
        "gpt-4.1-mini",
    )
    assert code == 1
    report = json.loads(out)
    assert report["valid"] is False
    assert {"valid", "errors", "warnings", "stats", "estimate"} <= report.keys()
    assert report["errors"] == [
        {
            "code": "invalid_json",
            "message": report["errors"][0]["message"],
            "line": 12,
            "lines": None,
            "location": None,
            "file": None,
            "total_lines": None,
        }
    ]
    duplicate = next(w for w in report["warnings"] if w["code"] == "exact_duplicate")
    assert duplicate["lines"] == [1, 11]
    assert report["stats"]["examples"] == 12
    assert report["estimate"]["base_model"] == "gpt-4.1-mini-2025-04-14"
    assert report["validation_file"]["lines"] == 1


@pytest.mark.parametrize(
    "args",
    [
        ["validate", "/no/such/file.jsonl"],
        ["validate", "."],
        ["validate"],
        ["frobnicate"],
        ["validate", "x.jsonl", "--n-epochs", "0"],
        ["validate", "x.jsonl", "--format", "completion"],
    ],
)
def test_unreadable_file_or_bad_usage_exits_2(
    capsys: pytest.CaptureFixture[str], args: list[str]
) -> None:
    code, out, err = run_cli(capsys, *args)
    assert code == 2
    assert out == ""
    assert err.strip() and "Traceback" not in err


def test_bad_validation_file_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(
        capsys,
        "validate",
        write(tmp_path, good_examples(10)),
        "--validation-file",
        str(tmp_path / "missing.jsonl"),
    )
    assert code == 2
    assert "missing.jsonl: no such file" in err


def test_installed_command_runs_without_traceback(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_bytes(b"\x00\x01\x02binary")
    result = subprocess.run(
        [str(Path(sys.executable).parent / "sft"), "validate", str(bad), "--json"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 1
    assert json.loads(result.stdout)["errors"][0]["code"] == "binary_file"
    assert "Traceback" not in result.stderr


@mock_aws
def test_validates_an_s3_object(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    s3 = boto3.client("s3", region_name="us-east-1")
    s3.create_bucket(Bucket="training")
    s3.put_object(
        Bucket="training", Key="training/support set.jsonl", Body=as_lines(good_examples(10))
    )
    code, out, _ = run_cli(capsys, "validate", "s3://training/training/support set.jsonl")
    assert code == 0
    assert out.startswith("s3://training/training/support set.jsonl: valid: 10 examples")
    code, _, err = run_cli(capsys, "validate", "s3://training/missing.jsonl")
    assert code == 2
    assert "S3 refused" in err
    code, _, err = run_cli(capsys, "validate", "s3://training")
    assert code == 2
    assert "needs a bucket and a key" in err


def test_progress_bar_draws_and_clears() -> None:
    out = io.StringIO()
    with ProgressBar(2_000_000, out) as bar:
        bar.update(1_000_000)
        bar.update(2_000_000)
    text = out.getvalue()
    assert "50.0%" in text and "100.0%" in text
    assert text.endswith("\r")


def test_local_commands_come_from_the_local_stack_through_an_entry_point(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    served: list[tuple[int, bool]] = []

    def fake_serve(port: int, train: bool, out: Any) -> None:
        served.append((port, train))
        raise KeyboardInterrupt  # Ctrl-C: the normal way out

    monkeypatch.setattr(serve, "serve", fake_serve)
    assert run_cli(capsys, "local", "api", "--port", "9000", "--no-sample")[0] == 0
    assert served == [(9000, False)]

    def busy(port: int, train: bool, out: Any) -> None:
        raise OSError(98, "Address already in use")

    monkeypatch.setattr(serve, "serve", busy)
    code, _, err = run_cli(capsys, "local", "api")
    assert code == 2
    assert err == "sft: cannot serve on 127.0.0.1:8000: Address already in use\n"


def test_the_layer_names_no_local_command_itself(capsys: pytest.CaptureFixture[str]) -> None:
    """Without the entry point (a Lambda layer has no sft_local), ``local`` is unknown."""
    parser = cli.build_parser()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(cli, "entry_points", lambda group: [])
        assert run_cli(capsys, "local", "api")[0] == 2
    assert "local" in parser.format_help()
