"""The automatic held-out split: a stable share of the examples becomes the validation file."""

from __future__ import annotations

import tempfile
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO, Protocol

from sft_pipeline.jobs import JobSettings, UploadRef
from sft_pipeline.validation import DataSource
from sft_pipeline.validation.reader import BinaryReadable, StreamTally, iter_lines
from sft_pipeline.validation.targets import TARGETS


class BucketWriter(Protocol):
    def source(self, bucket: str, key: str, version_id: str | None = None) -> DataSource: ...

    def upload_file(self, bucket: str, key: str, path: str) -> None: ...


def _sides(stream: BinaryReadable, percent: int) -> Iterator[tuple[int, bytes]]:
    """Each example with its side (1: held out) by a hash of its text: stable across retries."""
    for line in iter_lines(stream, StreamTally()):
        if line.raw.strip():
            yield (1 if zlib.crc32(line.raw) % 100 < percent else 0), line.raw


def split_lines(
    stream: BinaryReadable, train: BinaryIO, held_out: BinaryIO, percent: int
) -> tuple[int, int]:
    """Write each example to its side; return how many went to training and to validation."""
    counts = [0, 0]
    for side, raw in _sides(stream, percent):
        (held_out if side else train).write(raw + b"\n")
        counts[side] += 1
    return counts[0], counts[1]


def count_split(source: DataSource, percent: int) -> tuple[int, int]:
    """How many examples ``split_holdout`` would put on each side, without writing them."""
    counts = [0, 0]
    with source.open() as stream:
        for side, _ in _sides(stream, percent):
            counts[side] += 1
    return counts[0], counts[1]


def split_problems(settings: JobSettings, train: int, held_out: int) -> list[str]:
    """Why the provider would refuse either side of the split, with the numbers."""
    target = TARGETS[settings.provider]
    provider, (train_min, held_min) = target.TITLE, target.min_examples(settings.base_model)
    percent, total = settings.holdout_percent, train + held_out
    return [
        f"holdout-percent {percent} of {total:,} examples leaves {count:,} for {side}; "
        f"{provider} needs at least {minimum:,} (change holdout-percent, add examples, "
        "or upload a validation file and name it in validation-key)"
        for side, count, minimum in (
            ("training", train, train_min),
            ("validation", held_out, held_min),
        )
        if count < minimum
    ]


def split_holdout(
    bucket: BucketWriter, upload: UploadRef, prefix: str, percent: int
) -> tuple[str, str]:
    """Write the two halves under the prepared-data prefix; return their keys."""
    base = f"{prefix}{upload.dataset_id}"
    keys = (f"{base}/train.jsonl", f"{base}/validation.jsonl")
    with tempfile.TemporaryDirectory(prefix="sft-split-") as folder:
        paths = (Path(folder) / "train.jsonl", Path(folder) / "validation.jsonl")
        source = bucket.source(upload.bucket, upload.key, upload.version_id)
        with source.open() as stream, paths[0].open("wb") as train, paths[1].open("wb") as held:
            split_lines(stream, train, held, percent)
        for path, key in zip(paths, keys, strict=True):
            bucket.upload_file(upload.bucket, key, str(path))
    return keys
