"""Fault injection: make the next requests fail or stall, or make the next job fail.

Every request rule applies to the next ``times`` matching requests, or to all of
them until ``clear()`` when ``times`` is None. A rule with a ``route`` only
matches that route, written as the method and the path template under /v1, e.g.
``"POST /fine_tuning/jobs"`` or ``"GET /files/{file_id}"`` (``known_routes``
lists them); without one it matches every request. A request first takes the
oldest matching delay, then the oldest matching error, after authentication
and before any work, so a request that gets an error changes nothing; a delayed
one without an error still does its work once the delay is over, whether or not
the client still waits for the answer.

What ``ModelFaults`` adds is set per served model: chat latency, and fine-tunes
that answer from the wrong training example.
"""

from __future__ import annotations

import math
import threading
from collections import deque
from collections.abc import Iterable
from typing import Literal

from sft_local.fault_rules import FaultRules, ModelFaults
from sft_local.openai_emulator.errors import ApiError
from sft_local.openai_emulator.state import JobFailure

JOB_CREATION_ROUTE = "POST /fine_tuning/jobs"
# The SDK honours a Retry-After of up to this many seconds and gives up above it.
SDK_MAX_RETRY_AFTER = 120

SERVER_ERROR_MESSAGES = {
    500: "The server had an error while processing your request. Sorry about that!",
    502: "Bad gateway.",
    503: "The server is overloaded or not ready yet.",
}


class FaultInjector(ModelFaults):
    """Injects the failures a client of the fine-tuning API has to survive. Thread-safe."""

    def __init__(self, known_routes: Iterable[str], *, chat_latency: float) -> None:
        super().__init__(chat_latency=chat_latency)
        self.known_routes = frozenset(known_routes)
        self._lock = threading.Lock()
        self._errors = FaultRules[ApiError](self.known_routes, kind="route")
        self._delays = FaultRules[float](self.known_routes, kind="route")
        self._job_failures: deque[JobFailure] = deque()

    def rate_limit(
        self, times: int | None = 1, *, retry_after: float = 1.0, route: str | None = None
    ) -> None:
        """429 ``rate_limit_exceeded`` with Retry-After; the SDK retries it after that delay."""
        self._add_error(
            ApiError(
                429,
                f"Rate limit reached for requests. Please try again in {retry_after:g}s.",
                type="requests",
                code="rate_limit_exceeded",
                headers=_retry_after_headers(retry_after),
            ),
            times,
            route,
        )

    def daily_rate_limit(
        self,
        times: int | None = 1,
        *,
        retry_after: float = 3600.0,
        route: str | None = JOB_CREATION_ROUTE,
    ) -> None:
        """429 ``daily_rate_limit_exceeded``: the per-day job cap, which retrying cannot fix.

        Its Retry-After must exceed 120 s, which is what stops the SDK from retrying.
        """
        if retry_after <= SDK_MAX_RETRY_AFTER:
            raise ValueError(f"retry_after must exceed {SDK_MAX_RETRY_AFTER} s, got {retry_after}")
        self._add_error(
            ApiError(
                429,
                "This fine-tune request has been rate-limited. Your organization has reached "
                "the maximum number of fine-tuning requests per day for this model.",
                code="daily_rate_limit_exceeded",
                headers=_retry_after_headers(retry_after),
            ),
            times,
            route,
        )

    def server_error(
        self,
        times: int | None = 1,
        *,
        status: Literal[500, 502, 503] = 500,
        route: str | None = None,
        should_retry: bool | None = None,
    ) -> None:
        """A 5xx answer. ``should_retry`` sends ``x-should-retry``, which overrides the SDK."""
        headers = {} if should_retry is None else {"x-should-retry": str(should_retry).lower()}
        self._add_error(
            ApiError(status, SERVER_ERROR_MESSAGES[status], type="server_error", headers=headers),
            times,
            route,
        )

    def block_job_creation(self, times: int | None = None) -> None:
        """403 on job creation, as for an organisation no longer allowed to fine-tune."""
        self._add_error(
            ApiError(
                403,
                "Fine-tuning job creation is not available for this organization.",
                code="permission_denied",
            ),
            times,
            JOB_CREATION_ROUTE,
        )

    def invalid_api_key(self, times: int | None = None, *, route: str | None = None) -> None:
        """401 ``invalid_api_key``, as for a key that was revoked or mistyped in the secret."""
        self._add_error(
            ApiError(
                401,
                "Incorrect API key provided: sk-proj-****ab12. You can find your API key at "
                "https://platform.openai.com/account/api-keys.",
                type="invalid_request_error",
                code="invalid_api_key",
            ),
            times,
            route,
        )

    def slow(self, seconds: float, times: int | None = 1, *, route: str | None = None) -> None:
        """Hold the request back for ``seconds``, long enough to trip a client timeout, then
        do its work: as when the provider is slow to take a request the client gave up on."""
        if seconds <= 0:
            raise ValueError(f"seconds must be positive, got {seconds}")
        with self._lock:
            self._delays.add(seconds, times, route)

    def fail_next_job(
        self,
        code: str = "invalid_training_file",
        message: str = "The job failed due to an invalid training file.",
        param: str | None = "training_file",
    ) -> None:
        """The next created job fails at the end of validation with this ``error``."""
        with self._lock:
            self._job_failures.append(JobFailure(code, message, param))

    def clear(self) -> None:
        with self._lock:
            self._errors.clear()
            self._delays.clear()
            self._job_failures.clear()
        self.clear_models()

    def take_delay(self, route: str | None) -> float:
        """Seconds to stall a request to ``route`` (None: an unknown path), 0 for none."""
        with self._lock:
            return self._delays.take(route) or 0.0

    def take_error(self, route: str | None) -> ApiError | None:
        with self._lock:
            return self._errors.take(route)

    def take_job_failure(self) -> JobFailure | None:
        with self._lock:
            return self._job_failures.popleft() if self._job_failures else None

    def _add_error(self, error: ApiError, times: int | None, route: str | None) -> None:
        with self._lock:
            self._errors.add(error, times, route)


def _retry_after_headers(seconds: float) -> dict[str, str]:
    # Retry-After carries whole seconds; retry-after-ms, which the SDK prefers, the exact delay.
    return {"retry-after": str(math.ceil(seconds)), "retry-after-ms": str(round(seconds * 1000))}
