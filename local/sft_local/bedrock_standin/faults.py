"""Fault injection: make the next requests fail, or the next job or deployment fail.

Every request rule applies to the next ``times`` matching requests, or to all of
them until ``clear()`` when ``times`` is None. A rule with an ``operation`` only
matches that operation, named as in the API, e.g. ``"GetModelCustomizationJob"``
(``known_operations`` lists them); without one it matches every request. A
request takes the oldest matching rule before any work, so a faulted request
changes nothing. botocore retries both injected errors, so a test that wants
to see one raised sets ``times`` above the client's attempts or turns retries off.

What ``ModelFaults`` adds is set per model, named by its custom model ARN, its
deployment ARN or the base model ID Converse is called with: chat latency, and
custom models that answer from the wrong training example.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Iterable

from sft_local.bedrock_standin.errors import BedrockError, internal_error, throttling
from sft_local.fault_rules import FaultRules, ModelFaults

DEFAULT_JOB_FAILURE = "An internal error occurred during training. Retry the job."
DEFAULT_DEPLOYMENT_FAILURE = "An internal error occurred while deploying the model."


class BedrockFaults(ModelFaults):
    """Injects the failures a Bedrock client has to survive. Thread-safe."""

    def __init__(self, known_operations: Iterable[str], *, chat_latency: float) -> None:
        super().__init__(chat_latency=chat_latency)
        self.known_operations = frozenset(known_operations)
        self._lock = threading.Lock()
        self._rules = FaultRules[Callable[[], BedrockError]](
            self.known_operations, kind="operation"
        )
        self._job_failures: deque[str] = deque()
        self._deployment_failures: deque[str] = deque()

    def throttle(self, times: int | None = 1, *, operation: str | None = None) -> None:
        """ThrottlingException (429) for the next ``times`` requests."""
        self._add(throttling, times, operation)

    def server_error(self, times: int | None = 1, *, operation: str | None = None) -> None:
        """InternalServerException (500) for the next ``times`` requests."""
        self._add(internal_error, times, operation)

    def fail_next_job(self, message: str = DEFAULT_JOB_FAILURE) -> None:
        """The next created job fails once its data check is over, with ``message``."""
        with self._lock:
            self._job_failures.append(message)

    def fail_next_deployment(self, message: str = DEFAULT_DEPLOYMENT_FAILURE) -> None:
        """The next created deployment ends ``Failed`` instead of ``Active``, with ``message``."""
        with self._lock:
            self._deployment_failures.append(message)

    def clear(self) -> None:
        with self._lock:
            self._rules.clear()
            self._job_failures.clear()
            self._deployment_failures.clear()
        self.clear_models()

    def take_error(self, operation: str | None) -> BedrockError | None:
        """The error for a request to ``operation`` (None: an unknown path), if one is due."""
        with self._lock:
            make_error = self._rules.take(operation)
        return None if make_error is None else make_error()

    def take_job_failure(self) -> str | None:
        with self._lock:
            return self._job_failures.popleft() if self._job_failures else None

    def take_deployment_failure(self) -> str | None:
        with self._lock:
            return self._deployment_failures.popleft() if self._deployment_failures else None

    def _add(
        self, error: Callable[[], BedrockError], times: int | None, operation: str | None
    ) -> None:
        with self._lock:
            self._rules.add(error, times, operation)
