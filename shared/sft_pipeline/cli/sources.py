"""Turns what a user typed (a path or s3://bucket/key) into a DataSource, or a clear error."""

from __future__ import annotations

import os
from pathlib import Path

from sft_pipeline.validation.validator import DataSource


class SourceError(Exception):
    """The file cannot be read at all (missing, a folder, no permission, S3 refused)."""


def open_source(spec: str) -> DataSource:
    if spec.startswith("s3://"):
        return _s3(spec)
    path = Path(spec)
    if not path.exists():
        raise SourceError(f"{spec}: no such file")
    if path.is_dir():
        raise SourceError(f"{spec}: is a directory, not a file")
    if not os.access(path, os.R_OK):
        raise SourceError(f"{spec}: permission denied")
    return DataSource.from_path(path)


def _s3(spec: str) -> DataSource:
    import boto3  # noqa: PLC0415 - only S3 users pay for importing boto3
    from botocore.exceptions import BotoCoreError, ClientError  # noqa: PLC0415

    from sft_pipeline.adapters.training_bucket import parse_s3_uri, s3_source  # noqa: PLC0415

    try:
        bucket, key = parse_s3_uri(spec)
        return s3_source(boto3.client("s3"), bucket, key)
    except ValueError as exc:
        raise SourceError(str(exc)) from None
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "error")
        raise SourceError(f"{spec}: S3 refused ({code})") from None
    except BotoCoreError as exc:
        raise SourceError(f"{spec}: cannot reach S3 ({exc})") from None
