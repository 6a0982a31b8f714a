"""Aliases: reading a request's model reference, validating splits, picking a variant."""

from __future__ import annotations

import random
from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from sft_pipeline.aliases import (
    AliasVersion,
    ModelReference,
    Variant,
    parse_reference,
    pick_variant,
    single,
)

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
FINE_TUNE = "ft:gpt-4o-mini-2024-07-18:acme:support:AbC123"


def split(*weights: int, alias: str = "support-bot") -> AliasVersion:
    variants = [Variant(model=f"ft:model-{i}", weight=weight) for i, weight in enumerate(weights)]
    return AliasVersion(alias=alias, version=1, variants=variants, created_at=NOW)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("support-bot", ModelReference(kind="alias", name="support-bot")),
        ("support-bot@3", ModelReference(kind="alias", name="support-bot", version=3)),
        ("support-bot@003", ModelReference(kind="alias", name="support-bot", version=3)),
        ("a", ModelReference(kind="alias", name="a")),
        (FINE_TUNE, ModelReference(kind="model", name=FINE_TUNE)),
        ("ft:support-bot@3", ModelReference(kind="model", name="ft:support-bot@3")),
        ("gpt-4.1-mini-2025-04-14", ModelReference(kind="model", name="gpt-4.1-mini-2025-04-14")),
        ("Support-Bot", ModelReference(kind="model", name="Support-Bot")),
        ("9lives", ModelReference(kind="model", name="9lives")),
        ("a" * 64, ModelReference(kind="model", name="a" * 64)),
    ],
)
def test_parse_reference(value: str, expected: ModelReference) -> None:
    assert parse_reference(value) == expected


def test_a_provider_id_in_the_alias_shape_reads_as_an_alias() -> None:
    """Dashes and digits only: the caller falls back to a model id when no such alias exists."""
    assert parse_reference("gpt-4o-mini-2024-07-18").kind == "alias"


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("support-bot@x", "whole number"),
        ("support-bot@", "whole number"),
        ("support-bot@0", "whole number"),
        ("support-bot@-1", "whole number"),
        ("support-bot@1.5", "whole number"),
        ("support-bot@1@2", "whole number"),
        ("support-bot@\u0663", "whole number"),  # an Arabic-Indic digit three
        ("@3", "names no alias"),
        ("Support@3", "not an alias name"),
        ("", "empty"),
    ],
)
def test_references_that_are_refused(value: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_reference(value)


def test_a_model_cannot_be_pinned_to_a_version() -> None:
    with pytest.raises(ValidationError, match="only an alias"):
        ModelReference(kind="model", name=FINE_TUNE, version=2)


def test_a_90_10_split_serves_about_90_10_over_10000_seeded_draws() -> None:
    canary = split(90, 10)
    draws = random.Random(20261125)
    served = [pick_variant(canary, draws.random()).model for _ in range(10_000)]
    share = served.count("ft:model-0") / len(served)
    assert 0.88 <= share <= 0.92
    assert served.count("ft:model-1") == len(served) - served.count("ft:model-0")


@pytest.mark.parametrize(
    ("draw", "model"),
    [(0.0, "ft:model-0"), (0.8999, "ft:model-0"), (0.9, "ft:model-1"), (0.9999, "ft:model-1")],
)
def test_pick_variant_boundaries(draw: float, model: str) -> None:
    assert pick_variant(split(90, 10), draw).model == model


@pytest.mark.parametrize(
    ("draw", "model"),
    [(0.49, "ft:model-0"), (0.5, "ft:model-1"), (0.79, "ft:model-1"), (0.8, "ft:model-2")],
)
def test_pick_variant_walks_the_weights_in_list_order(draw: float, model: str) -> None:
    assert pick_variant(split(50, 30, 20), draw).model == model


@pytest.mark.parametrize("draw", [-0.01, 1.0, 1.5])
def test_pick_variant_refuses_draws_outside_0_1(draw: float) -> None:
    with pytest.raises(ValueError, match="draw"):
        pick_variant(split(100), draw)


def test_single_sends_all_traffic_to_one_model() -> None:
    assert single(FINE_TUNE) == [Variant(model=FINE_TUNE, weight=100)]
    assert pick_variant(split(100), 0.9999).model == "ft:model-0"


@pytest.mark.parametrize(
    ("weights", "message"),
    [
        ((90, 5), "add up to 100, not 95"),
        ((60, 50), "add up to 100, not 110"),
        ((20, 20, 20, 20, 10, 10), "at most 5 items"),
        ((), "at least 1 item"),
        ((0, 100), "greater than or equal to 1"),
        ((101,), "less than or equal to 100"),
    ],
)
def test_splits_that_are_refused(weights: tuple[int, ...], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        split(*weights)


def test_a_model_appears_in_one_variant_only() -> None:
    twice = [Variant(model=FINE_TUNE, weight=50), Variant(model=FINE_TUNE, weight=50)]
    with pytest.raises(ValidationError, match="only one variant"):
        AliasVersion(alias="support-bot", version=1, variants=twice, created_at=NOW)


@pytest.mark.parametrize("alias", ["", "Support", "support_bot", "-bot", "bot@2", "ft:x", "a" * 64])
def test_alias_names_outside_the_pattern_are_refused(alias: str) -> None:
    with pytest.raises(ValidationError, match="not an alias name"):
        split(100, alias=alias)


def test_versions_start_at_1_and_a_variant_names_a_model() -> None:
    with pytest.raises(ValidationError, match="version"):
        AliasVersion(alias="bot", version=0, variants=single(FINE_TUNE), created_at=NOW)
    with pytest.raises(ValidationError, match="model"):
        Variant(model="", weight=100)
