"""The stand-in as a real HTTP server on 127.0.0.1, for tests and the local stack."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from sft_local.bedrock_standin.app import RecordedRequest, StandInApp
from sft_local.bedrock_standin.events import job_state_change
from sft_local.bedrock_standin.faults import BedrockFaults
from sft_local.bedrock_standin.state import (
    BedrockTimeline,
    DeploymentView,
    JobView,
    ReadObject,
    StandInState,
    WriteObject,
)
from sft_local.emulated_answers import DEFAULT_CHAT_LATENCY
from sft_local.http_service import LocalHttpServer, ManualClock, Reply
from sft_local.job_end_events import JobEndEvents


class BedrockStandIn:
    """Amazon Bedrock's model customization, custom model deployment and Converse APIs, served locally.

    Point unmodified boto3 clients at it with ``endpoint_url=standin.endpoint_url``
    (services ``bedrock`` and ``bedrock-runtime``, any region and credentials; the
    signature is not checked). Requests to 127.0.0.1 pass through moto's
    ``mock_aws``, so the stand-in serves them even inside a mocked AWS.

    ``read_object(s3_uri)`` returns the bytes of a job's training and validation
    data; ``write_object(s3_uri, body)`` stores its metrics files. Jobs and
    deployments move on ``clock`` (default: wall time) plus whatever ``advance``
    added, so a test freezes time with ``clock=lambda: 1_700_000_000.0`` and jumps
    it forward with ``advance(seconds)``. A Converse answer takes ``chat_latency``
    seconds (0 for instant answers); ``sleep`` is how the stand-in waits, out
    for a test's fake (default: a wait that shutdown cuts short). ``faults`` injects failures,
    ``requests`` is the log of every request answered, and ``jobs`` and
    ``deployments`` show what the account holds.
    """

    def __init__(
        self,
        *,
        read_object: ReadObject,
        write_object: WriteObject,
        timeline: BedrockTimeline | None = None,
        clock: Callable[[], float] = time.time,
        account: str = "123456789012",
        region: str = "us-east-1",
        chat_latency: float = DEFAULT_CHAT_LATENCY,
        sleep: Callable[[float], object] | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self._clock = ManualClock(clock)
        self._stopping = threading.Event()
        state = StandInState(
            timeline=timeline or BedrockTimeline(),
            read_object=read_object,
            write_object=write_object,
            now=self.now,
            account=account,
            region=region,
            on_job_end=lambda job: self.job_events.announce(
                job_state_change(job.describe().model_dump(mode="json", exclude_none=True))
            ),
        )
        self._app = StandInApp(state, chat_latency=chat_latency, sleep=sleep or self._stopping.wait)
        # EventBridge: off until publish_job_events_to names where events go.
        self.job_events: JobEndEvents[dict[str, Any]] = JobEndEvents(self._app.catch_up)
        self._http = LocalHttpServer(self._serve, name="bedrock-standin", host=host, port=port)

    def _serve(self, method: str, target: str, headers: dict[str, str], body: bytes) -> Reply:
        response = self._app.handle(method, target, body)
        return Reply(
            response.status, response.body, {"content-type": "application/json", **response.headers}
        )

    @property
    def faults(self) -> BedrockFaults:
        return self._app.faults

    @property
    def requests(self) -> list[RecordedRequest]:
        return self._app.requests

    def requests_to(self, operation: str) -> list[RecordedRequest]:
        """The logged requests for an operation such as ``"CreateModelCustomizationJob"``."""
        return [request for request in self.requests if request.operation == operation]

    @property
    def jobs(self) -> Mapping[str, JobView]:
        """The model customization jobs, by job ARN, as of now."""
        return self._app.jobs()

    @property
    def deployments(self) -> Mapping[str, DeploymentView]:
        """The custom model deployments, by deployment ARN, as of now."""
        return self._app.deployments()

    @property
    def endpoint_url(self) -> str:
        return self._http.url()

    def publish_job_events_to(self, put_event: Callable[[dict[str, Any]], object]) -> None:
        """Hand each job's end to ``put_event`` as the PutEvents entry of Bedrock's
        "Model Customization Job State Change" (e.g. an EventBridge client's put_events);
        ``job_events`` holds what was published and can drop events."""
        self.job_events.deliver_to(put_event)

    def now(self) -> float:
        return self._clock.now()

    def advance(self, seconds: float) -> None:
        """Move the stand-in's time forward; due transitions, metrics files included, happen now."""
        self._clock.advance(seconds)
        self._app.catch_up()

    def start(self) -> BedrockStandIn:
        self._stopping.clear()
        self._http.start()
        return self

    def stop(self) -> None:
        # Answers waiting out their latency end at once, so shutting down never waits for them.
        self._stopping.set()
        self.job_events.stop()
        self._http.stop()

    def __enter__(self) -> BedrockStandIn:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
