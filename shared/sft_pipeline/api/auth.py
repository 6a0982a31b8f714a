"""Who is calling, and what they may do: the bearer key, checked against the stored hashes,
and its scope, checked against the route."""

from __future__ import annotations

from typing import Protocol

from sft_pipeline.api_keys import ApiKeyRecord, bearer_token, key_hash, looks_like_key

ADMIN_SCOPE = "admin"
# What an inference key may call; every other route (jobs, cancel, aliases, and any route
# added later) needs an admin key.
INFERENCE_ROUTES = frozenset({("POST", "/v1/chat/completions"), ("GET", "/v1/models")})


class KeyLookup(Protocol):
    def get_api_key(self, key_hash: str) -> ApiKeyRecord | None: ...


def authenticate(authorization: str | None, keys: KeyLookup) -> ApiKeyRecord | None:
    """The active key behind an Authorization header, or None. Says nothing about why not."""
    secret = bearer_token(authorization)
    if secret is None or not looks_like_key(secret):
        return None
    record = keys.get_api_key(key_hash(secret))
    return record if record is not None and record.active else None


def allowed(scope: str | None, method: str, resource: str) -> bool:
    """Whether a key of ``scope`` may call ``method`` on the route template ``resource``.
    An unknown or missing scope counts as the least: inference."""
    return scope == ADMIN_SCOPE or (method.upper(), resource) in INFERENCE_ROUTES
