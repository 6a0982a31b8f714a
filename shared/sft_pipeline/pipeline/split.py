"""The automatic held-out split: a stable share of the examples becomes the validation file."""

from __future__ import annotations

import tempfile
import zlib
from pathlib import Path
from typing import BinaryIO, Protocol

from sft_pipeline.jobs import UploadRef
from sft_pipeline.validation import DataSource
from sft_pipeline.validation.reader import BinaryReadable, StreamTally, iter_lines


class SplitStorage(Protocol):
    def source(self, bucket: str, key: str, version_id: str | None = None) -> DataSource: ...

    def upload_file(self, bucket: str, key: str, path: str) -> None: ...


def split_lines(
    stream: BinaryReadable, train: BinaryIO, held_out: BinaryIO, percent: int
) -> tuple[int, int]:
    """Send each example to one side by a hash of its text: stable across retries and runs."""
    counts = [0, 0]
    for line in iter_lines(stream, StreamTally()):
        if not line.raw.strip():
            continue
        side = 1 if zlib.crc32(line.raw) % 100 < percent else 0
        (held_out if side else train).write(line.raw + b"\n")
        counts[side] += 1
    return counts[0], counts[1]


def split_holdout(
    storage: SplitStorage, upload: UploadRef, prefix: str, percent: int
) -> tuple[str, str]:
    """Write the two halves under the prepared-data prefix; return their keys."""
    base = f"{prefix}{upload.dataset_id}"
    keys = (f"{base}/train.jsonl", f"{base}/validation.jsonl")
    with tempfile.TemporaryDirectory(prefix="sft-split-") as folder:
        paths = (Path(folder) / "train.jsonl", Path(folder) / "validation.jsonl")
        source = storage.source(upload.bucket, upload.key, upload.version_id)
        with source.open() as stream, paths[0].open("wb") as train, paths[1].open("wb") as held:
            split_lines(stream, train, held, percent)
        for path, key in zip(paths, keys, strict=True):
            storage.upload_file(upload.bucket, key, str(path))
    return keys
