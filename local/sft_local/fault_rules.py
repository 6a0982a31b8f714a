"""Request fault rules, as the local stand-ins inject them.

A rule applies to the next ``times`` matching requests, or to all of them until
``clear()`` when ``times`` is None. A rule with a target (a route or an
operation, among the service's known names) only matches requests to it;
without one it matches every request. A request takes the oldest matching rule.
``ModelFaults`` holds what is set per served model rather than per request, and the faults of
data-generation answers.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Generic, TypeVar

from sft_local.emulated_generation import GenerationFault

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


class ModelFaults:
    """Standing behaviour of the served models: how long a chat answer takes, which
    fine-tunes answer from the wrong training example. Thread-safe.

    A setting for a named model wins over one for every model (``model=None``);
    ``clear()`` restores the constructor's latency and undegrades every model.
    """

    def __init__(self, *, chat_latency: float) -> None:
        if chat_latency < 0:
            raise ValueError(f"chat_latency must not be negative, got {chat_latency}")
        self._model_lock = threading.Lock()
        self._default_latency = chat_latency
        self._latencies: dict[str | None, float] = {}
        self._degradations: dict[str | None, float] = {}
        self._next_job_degradations: deque[float] = deque()
        self._generation_faults: deque[GenerationFault] = deque()

    def set_chat_latency(self, seconds: float, *, model: str | None = None) -> None:
        """Chat answers from ``model`` (None: every model) take ``seconds`` from now on."""
        if seconds < 0:
            raise ValueError(f"seconds must not be negative, got {seconds}")
        with self._model_lock:
            self._latencies[model] = seconds

    def degrade(self, model: str | None = None, *, fraction: float = 1.0) -> None:
        """Fine-tune ``model`` (None: every fine-tune) answers ``fraction`` of the prompts
        from the wrong training example, as an overfitted or mislabelled fine-tune would."""
        with self._model_lock:
            self._degradations[model] = _checked_fraction(fraction)

    def degrade_next_job(self, fraction: float = 1.0) -> None:
        """The model the next created job trains is degraded, as with ``degrade``."""
        with self._model_lock:
            self._next_job_degradations.append(_checked_fraction(fraction))

    def job_created(self, model: str) -> None:
        """A job that will train ``model`` was created: it takes a pending next-job setting."""
        with self._model_lock:
            if self._next_job_degradations:
                self._degradations[model] = self._next_job_degradations.popleft()

    def malform_generations(self, times: int = 1) -> None:
        """The next ``times`` data-generation answers are malformed (see emulated_generation)."""
        self._add_generation_faults("malformed", times)

    def repeat_generations(self, times: int = 1) -> None:
        """The next ``times`` data-generation answers are one and the same conversation."""
        self._add_generation_faults("repeat", times)

    def take_generation_fault(self) -> GenerationFault | None:
        with self._model_lock:
            return self._generation_faults.popleft() if self._generation_faults else None

    def _add_generation_faults(self, fault: GenerationFault, times: int) -> None:
        if times < 1:
            raise ValueError(f"times must be at least 1, got {times}")
        with self._model_lock:
            self._generation_faults.extend([fault] * times)

    def chat_latency(self, *names: str) -> float:
        """Seconds a chat answer from the model known by any of ``names`` takes."""
        with self._model_lock:
            return _setting(self._latencies, names, self._default_latency)

    def degradation(self, *names: str) -> float:
        """The share of prompts the model known by any of ``names`` answers wrongly."""
        with self._model_lock:
            return _setting(self._degradations, names, 0.0)

    def clear_models(self) -> None:
        with self._model_lock:
            self._latencies.clear()
            self._degradations.clear()
            self._next_job_degradations.clear()
            self._generation_faults.clear()


def _setting(settings: dict[str | None, float], names: tuple[str, ...], default: float) -> float:
    for name in names:
        if name in settings:
            return settings[name]
    return settings.get(None, default)


def _checked_fraction(fraction: float) -> float:
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must be above 0 and at most 1, got {fraction}")
    return fraction
