"""API keys for the inference API: generation, hashing and the stored record. No AWS calls.

A key is shown to its owner once and never stored: the registry keeps its
SHA-256 hash, and lists and logs name it by a short id derived from that hash.
A plain (unsalted, fast) hash is enough because a key carries 256 random bits,
far beyond any guessing; it also makes the lookup a single read by hash.

Each key has a scope: ``inference`` keys may call chat completions and list the
models; ``admin`` keys may also read and cancel jobs and repoint aliases.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from datetime import datetime
from typing import Annotated, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, model_validator

KEY_PREFIX = "sk-sft-"
_SECRET_BYTES = 32
# token_urlsafe(32) is 32 bytes in unpadded base64url: 43 characters.
_KEY_SHAPE = re.compile(re.escape(KEY_PREFIX) + r"[A-Za-z0-9_-]{43}")
KEY_ID_PREFIX = "key_"
_KEY_ID_HEX_CHARS = 12
# Anchored: pydantic's pattern constraint searches rather than matches.
KEY_NAME = re.compile(r"^[A-Za-z0-9 _.-]{1,64}$")
_HASH_PATTERN = r"^[0-9a-f]{64}$"
_BEARER = re.compile(r"\s*bearer\s+(\S+)\s*", re.IGNORECASE)

KeyScope = Literal["inference", "admin"]
# Least privilege: new keys, and keys stored before scopes existed, may only call models.
DEFAULT_SCOPE: KeyScope = "inference"


class ApiKeyNotFound(KeyError):  # noqa: N818
    def __init__(self, key_id: str) -> None:
        super().__init__(key_id)
        self.key_id = key_id

    def __str__(self) -> str:
        return f"no API key with id {self.key_id!r}"


class DuplicateApiKeyError(ValueError):
    """A key with this hash is already stored; a key is never overwritten."""


def generate_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(_SECRET_BYTES)


def key_hash(secret: str) -> str:
    """The SHA-256 hex digest of the whole key: the only form of a key that is stored."""
    return hashlib.sha256(secret.encode()).hexdigest()


def key_id_of(hash_: str) -> str:
    """The short public id shown in lists and logs, e.g. ``key_3f9a0c1d2e4b``."""
    return KEY_ID_PREFIX + hash_[:_KEY_ID_HEX_CHARS]


def looks_like_key(value: str) -> bool:
    """A shape check to refuse garbage before any lookup; says nothing about validity."""
    return _KEY_SHAPE.fullmatch(value) is not None


def bearer_token(authorization_header: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header, or None for any other header."""
    if authorization_header is None:
        return None
    match = _BEARER.fullmatch(authorization_header)
    return match.group(1) if match else None


class ApiKeyRecord(BaseModel):
    """An issued key as the registry keeps it: its hash, never the key itself."""

    model_config = ConfigDict(frozen=True)

    key_id: str
    name: Annotated[str, Field(pattern=KEY_NAME.pattern)]
    key_hash: Annotated[str, Field(pattern=_HASH_PATTERN)]
    created_at: datetime
    revoked_at: datetime | None = None
    scope: KeyScope = DEFAULT_SCOPE
    # The API Gateway API key (its value is the hash) that throttles this key's requests.
    usage_key_id: str | None = None

    @model_validator(mode="after")
    def _id_matches_hash(self) -> ApiKeyRecord:
        if self.key_id != key_id_of(self.key_hash):
            raise ValueError(f"key_id must be {key_id_of(self.key_hash)!r}, derived from key_hash")
        return self

    @property
    def active(self) -> bool:
        return self.revoked_at is None


def new_key(name: str, now: datetime, scope: KeyScope = DEFAULT_SCOPE) -> tuple[str, ApiKeyRecord]:
    """A fresh key and the record to store for it. The key must be shown once, then dropped."""
    secret = generate_key()
    hash_ = key_hash(secret)
    record = ApiKeyRecord(
        key_id=key_id_of(hash_), name=name, key_hash=hash_, created_at=now, scope=scope
    )
    return secret, record


class ApiKeyStore(Protocol):
    """What managing keys needs of the registry (``sft keys``)."""

    def put_api_key(self, record: ApiKeyRecord) -> None:
        """Store a new key; :class:`DuplicateApiKeyError` if its hash is already stored."""
        ...

    def list_api_keys(self) -> list[ApiKeyRecord]:
        """Every key, revoked ones included, newest first."""
        ...

    def revoke_api_key(self, key_id: str, now: datetime) -> ApiKeyRecord:
        """Mark the key revoked, keeping the first time; :class:`ApiKeyNotFound` if unknown."""
        ...
