"""Request fault rules, as the local stand-ins inject them.

A rule applies to the next ``times`` matching requests, or to all of them until
``clear()`` when ``times`` is None. A rule with a target (a route or an
operation, among the service's known names) only matches requests to it;
without one it matches every request. A request takes the oldest matching rule.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Generic, TypeVar

Effect = TypeVar("Effect")


@dataclass
class _Rule(Generic[Effect]):
    effect: Effect
    target: str | None
    remaining: int | None


class FaultRules(Generic[Effect]):
    """Rules targeting the ``known`` names of one ``kind``, e.g. routes.

    Not thread-safe: the owner serialises access.
    """

    def __init__(self, known: Iterable[str], *, kind: str) -> None:
        self._known = frozenset(known)
        self._kind = kind
        self._rules: list[_Rule[Effect]] = []

    def add(self, effect: Effect, times: int | None, target: str | None) -> None:
        if target is not None and target not in self._known:
            raise ValueError(f"unknown {self._kind} {target!r}; known: {sorted(self._known)}")
        if times is not None and times < 1:
            raise ValueError(f"times must be at least 1 or None, got {times}")
        self._rules.append(_Rule(effect, target, times))

    def take(self, target: str | None) -> Effect | None:
        """The effect due for a request to ``target`` (None: an unknown path), if any."""
        for rule in self._rules:
            if rule.target is None or rule.target == target:
                if rule.remaining is not None:
                    rule.remaining -= 1
                    if rule.remaining == 0:
                        self._rules.remove(rule)
                return rule.effect
        return None

    def clear(self) -> None:
        self._rules.clear()
