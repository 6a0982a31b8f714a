"""Model aliases: stable names the inference API accepts in place of a model id.

An alias has numbered, immutable versions; each version splits traffic between
one to five models by integer weights that add up to 100 (a canary is a 90/10
split). Pointing the alias at another version is how a change is rolled out or
rolled back. A variant names a model id, never another alias, so resolving an
alias takes one step. Pure models and functions, no AWS calls.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

# A name never starts with "ft:" and never contains "@" or ":", so it cannot be
# mistaken for a provider's fine-tuned model id or for a pinned version.
ALIAS_NAME = re.compile(r"^[a-z][a-z0-9-]{0,62}$")
_PINNED_VERSION = re.compile(r"[0-9]+")
TOTAL_WEIGHT = 100
MAX_VARIANTS = 5


# The not-found names are the ones the API and the CLI were written against.
class AliasNotFound(LookupError):  # noqa: N818
    def __init__(self, alias: str) -> None:
        super().__init__(f"no alias named {alias!r}")
        self.alias = alias


class AliasVersionNotFound(LookupError):  # noqa: N818
    def __init__(self, alias: str, version: int) -> None:
        super().__init__(f"alias {alias!r} has no version {version}")
        self.alias = alias
        self.version = version


class AliasVersionConflictError(RuntimeError):
    """Other writers kept creating versions of the alias; nothing was written. Try again."""


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True)


class Variant(_Frozen):
    model: Annotated[str, Field(min_length=1)]
    weight: Annotated[int, Field(ge=1, le=TOTAL_WEIGHT)]


def _check_alias_name(name: str) -> str:
    if not ALIAS_NAME.fullmatch(name):
        raise ValueError(
            f"{name!r} is not an alias name: 1-63 characters of lowercase letters, "
            "digits and '-', starting with a letter"
        )
    return name


AliasName = Annotated[str, AfterValidator(_check_alias_name)]


class AliasVersion(_Frozen):
    alias: AliasName
    version: Annotated[int, Field(ge=1)]
    variants: Annotated[list[Variant], Field(min_length=1, max_length=MAX_VARIANTS)]
    created_at: datetime
    note: Annotated[str, Field(max_length=500)] | None = None

    @model_validator(mode="after")
    def _consistent_split(self) -> AliasVersion:
        total = sum(variant.weight for variant in self.variants)
        if total != TOTAL_WEIGHT:
            raise ValueError(f"variant weights must add up to {TOTAL_WEIGHT}, not {total}")
        models = [variant.model for variant in self.variants]
        if len(set(models)) != len(models):
            raise ValueError("each model may appear in only one variant")
        return self


class ModelReference(_Frozen):
    """What a request's ``model`` names: an alias (at its current or a pinned version) or a model."""

    kind: Literal["alias", "model"]
    name: Annotated[str, Field(min_length=1)]
    version: Annotated[int, Field(ge=1)] | None = None

    @model_validator(mode="after")
    def _version_only_for_aliases(self) -> ModelReference:
        if self.kind == "model" and self.version is not None:
            raise ValueError("only an alias can be pinned to a version")
        return self


def parse_reference(value: str) -> ModelReference:
    """Read a request's ``model``: ``support-bot``, ``support-bot@3`` or a model id.

    Anything with ":" (``ft:gpt-4o-mini:acme::abc123``) or that is not an alias
    name (``gpt-4.1-mini``) is a model id. A bare name in the alias shape is an
    alias: note that some provider ids have that shape too (``gpt-4o``), so a
    caller that finds no such alias may try the name as a model id.
    """
    if not value:
        raise ValueError("the model name is empty")
    if ":" in value:
        return ModelReference(kind="model", name=value)
    name, pinned, version = value.partition("@")
    if not pinned:
        kind: Literal["alias", "model"] = "alias" if ALIAS_NAME.fullmatch(value) else "model"
        return ModelReference(kind=kind, name=value)
    if not name:
        raise ValueError(f"{value!r} names no alias: write <alias>@<version>, e.g. support-bot@3")
    _check_alias_name(name)
    if not _PINNED_VERSION.fullmatch(version) or int(version) < 1:
        raise ValueError(
            f"{value!r}: the version after '@' must be a whole number from 1, e.g. {name}@3"
        )
    return ModelReference(kind="alias", name=name, version=int(version))


def pick_variant(version: AliasVersion, draw: float) -> Variant:
    """The variant a uniform ``draw`` in [0, 1) lands on, walking cumulative weights in order.

    With 90/10, draws below 0.9 pick the first variant and the rest the second.
    The same draw always gives the same variant, so a seeded generator is repeatable.
    """
    if not 0.0 <= draw < 1.0:
        raise ValueError(f"draw must be in [0, 1), not {draw}")
    cumulative = 0
    for variant in version.variants[:-1]:
        cumulative += variant.weight
        # Integer weights divided once: 90 / 100 is exactly the float 0.9.
        if draw < cumulative / TOTAL_WEIGHT:
            return variant
    return version.variants[-1]


def single(model: str) -> list[Variant]:
    """All traffic to one model."""
    return [Variant(model=model, weight=TOTAL_WEIGHT)]
