"""One chat completion with the retries a provider's answers call for, shared by the evaluation
runner and the data generator.

``chat`` is one OpenAI-compatible chat completion (request and response as JSON objects): the
provider's chat port in the workflow, an OpenAI-compatible client on a laptop. A 429 waits what
its Retry-After asks (plus jitter), a 5xx or a timeout backs off exponentially, each a bounded
number of times; any other error is final. Every failure is returned as an outcome, never
raised, so a caller running many requests loses none of them.

The port's errors are recognised by their class names, as the state machine's Retry does: the
names are the providers' contract, and the domain imports no adapter.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

Chat = Callable[[dict[str, Any]], dict[str, Any]]

RATE_LIMITED = "ProviderRateLimitError"
TRANSIENT = "ProviderTransientError"


class RetryPolicy(BaseModel):
    model_config = ConfigDict(frozen=True)

    attempts: int = Field(default=6, ge=1)
    backoff_seconds: float = Field(default=0.5, ge=0)
    max_backoff_seconds: float = Field(default=20.0, ge=0)
    # A longer Retry-After is a quota, not a burst: waiting it out would stall the run.
    max_retry_after_seconds: float = Field(default=120.0, ge=0)


class CallOutcome(BaseModel):
    """What one request finally gave: the response, or why there is none."""

    model_config = ConfigDict(frozen=True)

    response: dict[str, Any] | None
    latency_ms: float | None
    attempts: int
    error: str | None
    # The last error was one that no retry could fix (a bad key, a refused request).
    permanent: bool = False


class ChatCaller:
    """Calls ``chat`` with retries; safe to use from many threads at once."""

    def __init__(
        self, chat: Chat, retry: RetryPolicy, sleep: Callable[[float], None], seed: int
    ) -> None:
        self._chat = chat
        self._retry = retry
        self._sleep = sleep
        # Jitter only spreads retries out; it never changes what is asked or answered.
        self._jitter = random.Random(seed)
        self._lock = threading.Lock()

    def call(self, body: dict[str, Any]) -> CallOutcome:
        attempt = 0
        while True:
            attempt += 1
            started = time.monotonic()
            try:
                response = self._chat(body)
            except Exception as error:  # every failure is recorded, none is lost
                wait = self._wait(error, attempt)
                if wait is None:
                    return CallOutcome(
                        response=None,
                        latency_ms=None,
                        attempts=attempt,
                        error=describe(error),
                        permanent=not _retryable(error),
                    )
                self._sleep(wait)
                continue
            latency = (time.monotonic() - started) * 1000
            return CallOutcome(response=response, latency_ms=latency, attempts=attempt, error=None)

    def _wait(self, error: Exception, attempt: int) -> float | None:
        """Seconds to wait before trying again, or None when retrying cannot help."""
        kinds = _kinds(error)
        if attempt >= self._retry.attempts or not _retryable(error):
            return None
        backoff = min(
            self._retry.max_backoff_seconds, self._retry.backoff_seconds * 2.0 ** (attempt - 1)
        )
        with self._lock:
            jitter = self._jitter.uniform(0, backoff / 2)
        retry_after = getattr(error, "retry_after", None)
        if RATE_LIMITED in kinds and isinstance(retry_after, int | float):
            if retry_after > self._retry.max_retry_after_seconds:
                return None
            return float(retry_after) + jitter
        return backoff / 2 + jitter


def _kinds(error: Exception) -> set[str]:
    return {cls.__name__ for cls in type(error).__mro__}


def _retryable(error: Exception) -> bool:
    return bool(_kinds(error) & {RATE_LIMITED, TRANSIENT})


def describe(error: Exception) -> str:
    return str(error) or type(error).__name__
