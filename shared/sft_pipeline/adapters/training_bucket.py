"""Reading training files from S3 as streams (never the whole object in memory), writing
reports and splits, and tagging upload versions for the bucket's lifecycle rules."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sft_pipeline.jobs import UploadRef
from sft_pipeline.validation.reader import BinaryReadable
from sft_pipeline.validation.validator import DataSource

# template.yaml expires noncurrent upload versions tagged LINEAGE_TAG=UNREGISTERED only: the
# version a registered model was trained on is retagged REGISTERED, so its lineage never
# points at deleted data.
LINEAGE_TAG = "sft-lineage"
UNREGISTERED = "unregistered"
REGISTERED = "registered"
MAX_TAGS = 10  # S3's limit per object version


# What S3 answers for a missing key or version: HEAD has no body, so only the status code
# (a version id S3 never issued is a 400).
_NOT_FOUND = frozenset({"404", "NoSuchKey", "NotFound", "NoSuchVersion"})
_NO_SUCH_VERSION = _NOT_FOUND | {"400", "InvalidArgument"}


def parse_s3_uri(uri: str) -> tuple[str, str]:
    """Split ``s3://bucket/key`` into bucket and key; ValueError if it is not one."""
    if not uri.startswith("s3://"):
        raise ValueError(f"not an S3 URI: {uri}")
    bucket, _, key = uri[len("s3://") :].partition("/")
    if not bucket or not key:
        raise ValueError(f"an S3 URI needs a bucket and a key: {uri}")
    return bucket, key


def s3_source(client: Any, bucket: str, key: str, version_id: str | None = None) -> DataSource:
    """A DataSource over one S3 object version; raises the client's error if it is missing."""
    version = {"VersionId": version_id} if version_id else {}
    head = client.head_object(Bucket=bucket, Key=key, **version)

    @contextmanager
    def opener() -> Iterator[BinaryReadable]:
        body = client.get_object(Bucket=bucket, Key=key, **version)["Body"]
        try:
            yield body
        finally:
            body.close()

    return DataSource(name=f"s3://{bucket}/{key}", open=opener, size=int(head["ContentLength"]))


class TrainingBucket:
    """The training bucket as the pipeline uses it: read uploads, write reports and splits."""

    def __init__(self, client: Any) -> None:
        self._client = client

    def head(self, upload: UploadRef) -> tuple[UploadRef, dict[str, str]]:
        """The exact version (filled in if the event did not name one) and its user metadata."""
        version = {"VersionId": upload.version_id} if upload.version_id else {}
        head = self._client.head_object(Bucket=upload.bucket, Key=upload.key, **version)
        exact = upload.model_copy(update={"version_id": upload.version_id or head.get("VersionId")})
        return exact, dict(head.get("Metadata", {}))

    def source(self, bucket: str, key: str, version_id: str | None = None) -> DataSource:
        return s3_source(self._client, bucket, key, version_id)

    def version_exists(self, upload: UploadRef) -> bool:
        """Whether the exact version is still in the bucket (not deleted, not expired)."""
        try:
            self.head(upload)
        except self._client.exceptions.ClientError as error:
            if error.response.get("Error", {}).get("Code") in _NO_SUCH_VERSION:
                return False
            raise
        return True

    def read(self, bucket: str, key: str, max_bytes: int) -> bytes:
        """A small object whole (a retrain order); ValueError past ``max_bytes``."""
        body = self._client.get_object(Bucket=bucket, Key=key)["Body"]
        try:
            data: bytes = body.read(max_bytes + 1)
        finally:
            body.close()
        if len(data) > max_bytes:
            raise ValueError(f"s3://{bucket}/{key} is over {max_bytes:,} bytes")
        return data

    def find_version(self, bucket: str, key: str) -> UploadRef | None:
        """The object's current version (its id; None in a bucket without versioning), so
        that whatever reads it later reads that very version; None when the key holds no
        object."""
        try:
            exact, _ = self.head(UploadRef(bucket=bucket, key=key))
        except self._client.exceptions.ClientError as error:
            if error.response.get("Error", {}).get("Code") in _NOT_FOUND:
                return None
            raise
        return exact

    def put(
        self,
        bucket: str,
        key: str,
        body: bytes,
        content_type: str,
        metadata: dict[str, str] | None = None,
    ) -> str:
        """Write an object; ``metadata`` becomes its user metadata (an upload's settings)."""
        self._client.put_object(
            Bucket=bucket, Key=key, Body=body, ContentType=content_type, Metadata=metadata or {}
        )
        return f"s3://{bucket}/{key}"

    def list_keys(self, bucket: str, prefix: str) -> list[str]:
        """Every key under ``prefix``, in S3's (lexicographic) order."""
        pages = self._client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        return [item["Key"] for page in pages for item in page.get("Contents", [])]

    def upload_file(self, bucket: str, key: str, path: str) -> None:
        self._client.upload_file(path, bucket, key)

    def mark_unregistered(self, upload: UploadRef) -> None:
        """Let this version expire once noncurrent, unless it is already tagged (an event
        delivered again after its model was registered must not undo that)."""
        self._tag_lineage(upload, UNREGISTERED, overwrite=False)

    def keep_for_lineage(self, upload: UploadRef) -> None:
        """Keep this version for good: a registered model was trained on it."""
        self._tag_lineage(upload, REGISTERED, overwrite=True)

    def _tag_lineage(self, upload: UploadRef, value: str, *, overwrite: bool) -> None:
        if upload.version_id is None:
            return  # only versions become noncurrent
        version = {"Bucket": upload.bucket, "Key": upload.key, "VersionId": upload.version_id}
        tag_set = self._client.get_object_tagging(**version)["TagSet"]
        tags = {tag["Key"]: tag["Value"] for tag in tag_set}
        current = tags.get(LINEAGE_TAG)
        if current == value or (current is not None and not overwrite):
            return
        if current is None and len(tags) >= MAX_TAGS:
            return  # no room for the tag: the version is kept, the safe side
        # PutObjectTagging replaces the whole set: the uploader's own tags are written back.
        tags[LINEAGE_TAG] = value
        self._client.put_object_tagging(
            **version, Tagging={"TagSet": [{"Key": k, "Value": v} for k, v in tags.items()]}
        )
