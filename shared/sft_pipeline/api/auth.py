"""Who is calling: the bearer key, checked against the stored hashes."""

from __future__ import annotations

from typing import Protocol

from sft_pipeline.api_keys import ApiKeyRecord, bearer_token, key_hash, looks_like_key


class KeyLookup(Protocol):
    def get_api_key(self, key_hash: str) -> ApiKeyRecord | None: ...


def authenticate(authorization: str | None, keys: KeyLookup) -> ApiKeyRecord | None:
    """The active key behind an Authorization header, or None. Says nothing about why not."""
    secret = bearer_token(authorization)
    if secret is None or not looks_like_key(secret):
        return None
    record = keys.get_api_key(key_hash(secret))
    return record if record is not None and record.active else None
