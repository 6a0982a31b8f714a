"""API keys: generation, hashing, the cheap shape check, bearer parsing, the stored record
and what each scope may call."""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from sft_pipeline.api.auth import allowed
from sft_pipeline.api_keys import (
    KEY_PREFIX,
    ApiKeyRecord,
    bearer_token,
    generate_key,
    key_hash,
    key_id_of,
    looks_like_key,
    new_key,
)

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
SAMPLE_KEY = KEY_PREFIX + "A" * 20 + "b" * 20 + "-_9"


def test_generated_keys_have_the_prefix_43_urlsafe_characters_and_differ() -> None:
    keys = {generate_key() for _ in range(200)}
    assert len(keys) == 200
    for key in keys:
        assert key.startswith(KEY_PREFIX)
        assert re.fullmatch(r"[A-Za-z0-9_-]{43}", key.removeprefix(KEY_PREFIX))
        assert looks_like_key(key)


def test_the_hash_is_sha256_hex_of_the_whole_key_and_the_id_its_first_12_characters() -> None:
    hash_ = key_hash(SAMPLE_KEY)
    assert hash_ == hashlib.sha256(SAMPLE_KEY.encode()).hexdigest()
    assert hash_ != key_hash(SAMPLE_KEY.removeprefix(KEY_PREFIX))
    assert key_id_of(hash_) == "key_" + hash_[:12]


@pytest.mark.parametrize(
    "value",
    [
        "",
        KEY_PREFIX,
        SAMPLE_KEY[:-1],  # 42 characters
        SAMPLE_KEY + "x",  # 44 characters
        SAMPLE_KEY.replace(KEY_PREFIX, "sk-"),
        SAMPLE_KEY.upper(),
        SAMPLE_KEY[:-1] + "+",  # standard base64, not urlsafe
        SAMPLE_KEY[:-1] + "=",
        SAMPLE_KEY + "\n",
        " " + SAMPLE_KEY,
        "Bearer " + SAMPLE_KEY,
    ],
)
def test_shapes_that_are_not_keys(value: str) -> None:
    assert not looks_like_key(value)


def test_a_well_formed_key_passes_the_shape_check() -> None:
    assert looks_like_key(SAMPLE_KEY)


@pytest.mark.parametrize(
    ("header", "token"),
    [
        (f"Bearer {SAMPLE_KEY}", SAMPLE_KEY),
        (f"bearer {SAMPLE_KEY}", SAMPLE_KEY),
        (f"BEARER {SAMPLE_KEY}", SAMPLE_KEY),
        (f"  Bearer \t {SAMPLE_KEY}  ", SAMPLE_KEY),
        ("Bearer anything-else", "anything-else"),  # shape is looks_like_key's job
        (None, None),
        ("", None),
        ("Bearer", None),
        ("Bearer   ", None),
        (f"Basic {SAMPLE_KEY}", None),
        (f"Bearer{SAMPLE_KEY}", None),
        (f"Bearer {SAMPLE_KEY} extra", None),
        (SAMPLE_KEY, None),
    ],
)
def test_bearer_token(header: str | None, token: str | None) -> None:
    assert bearer_token(header) == token


def test_a_new_key_comes_with_a_record_that_holds_only_its_hash() -> None:
    secret, record = new_key("ci bot", NOW)
    assert looks_like_key(secret)
    assert record.key_hash == key_hash(secret)
    assert record.key_id == key_id_of(record.key_hash)
    assert (record.name, record.created_at, record.revoked_at, record.usage_key_id) == (
        "ci bot",
        NOW,
        None,
        None,
    )
    assert record.active
    assert secret not in record.model_dump_json()


def test_a_revoked_key_is_inactive() -> None:
    _, record = new_key("ci bot", NOW)
    assert not record.model_copy(update={"revoked_at": NOW}).active


@pytest.mark.parametrize("name", ["", "x" * 65, "a/b", "tab\there", "line\n", "émile"])
def test_key_names_are_refused_outside_the_allowed_characters(name: str) -> None:
    with pytest.raises(ValidationError, match="name"):
        new_key(name, NOW)


@pytest.mark.parametrize("name", ["a", "x" * 64, "Support Bot 2.0_prod-eu"])
def test_key_names_within_the_rules(name: str) -> None:
    assert new_key(name, NOW)[1].name == name


def test_a_record_whose_id_is_not_derived_from_its_hash_is_refused() -> None:
    hash_ = key_hash(SAMPLE_KEY)
    with pytest.raises(ValidationError, match="derived from key_hash"):
        ApiKeyRecord(key_id="key_000000000000", name="x", key_hash=hash_, created_at=NOW)


def test_a_record_refuses_anything_but_a_sha256_hex_digest_as_hash() -> None:
    with pytest.raises(ValidationError, match="key_hash"):
        ApiKeyRecord(key_id=key_id_of(SAMPLE_KEY), name="x", key_hash=SAMPLE_KEY, created_at=NOW)


def test_new_keys_are_inference_keys_unless_asked_for_admin() -> None:
    assert new_key("web app", NOW)[1].scope == "inference"
    assert new_key("ops", NOW, "admin")[1].scope == "admin"


def test_a_key_stored_before_scopes_existed_is_an_inference_key() -> None:
    _, record = new_key("old", NOW, "admin")
    stored = record.model_dump(mode="json", exclude={"scope"})
    assert ApiKeyRecord.model_validate(stored).scope == "inference"


@pytest.mark.parametrize("scope", ["", "Admin", "root", "inference admin"])
def test_unknown_scopes_are_refused(scope: str) -> None:
    with pytest.raises(ValidationError, match="scope"):
        new_key("x", NOW, scope)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("scope", "method", "resource", "may"),
    [
        ("inference", "POST", "/v1/chat/completions", True),
        ("inference", "get", "/v1/models", True),
        ("inference", "GET", "/jobs", False),
        ("inference", "GET", "/jobs/{job_id}", False),
        ("inference", "POST", "/jobs/{job_id}/cancel", False),
        ("inference", "PUT", "/aliases/{name}", False),
        ("inference", "GET", "/v1/chat/completions", False),
        (None, "GET", "/jobs", False),
        ("", "PUT", "/aliases/{name}", False),
        (None, "GET", "/v1/models", True),
        ("admin", "POST", "/jobs/{job_id}/cancel", True),
        ("admin", "PUT", "/aliases/{name}", True),
        ("admin", "POST", "/v1/chat/completions", True),
        ("ADMIN", "GET", "/jobs", False),
    ],
)
def test_what_each_scope_may_call(scope: str | None, method: str, resource: str, may: bool) -> None:
    assert allowed(scope, method, resource) is may
