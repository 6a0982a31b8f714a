"""The stand-in as a real HTTP server on 127.0.0.1, for tests and the local stack."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

from sft_local.bedrock_standin.app import RecordedRequest, StandInApp
from sft_local.bedrock_standin.faults import BedrockFaults
from sft_local.bedrock_standin.state import (
    BedrockTimeline,
    DeploymentView,
    JobView,
    ReadObject,
    StandInState,
    WriteObject,
)

# How often the serving loop checks for shutdown; keeps stop() quick.
SHUTDOWN_POLL_SECONDS = 0.02


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
    it forward with ``advance(seconds)``. ``faults`` injects failures,
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
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self._clock = clock
        self._offset = 0.0
        self._offset_lock = threading.Lock()
        self._address = (host, port)
        state = StandInState(
            timeline=timeline or BedrockTimeline(),
            read_object=read_object,
            write_object=write_object,
            now=self.now,
            account=account,
            region=region,
        )
        self._app = StandInApp(state)
        self._server: _StandInHTTPServer | None = None
        self._thread: threading.Thread | None = None

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
        if self._server is None:
            raise RuntimeError("the stand-in is not running; call start() first")
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def now(self) -> float:
        with self._offset_lock:
            return self._clock() + self._offset

    def advance(self, seconds: float) -> None:
        """Move the stand-in's time forward; due transitions, metrics files included, happen now."""
        if seconds < 0:
            raise ValueError(f"time only moves forward, got {seconds}")
        with self._offset_lock:
            self._offset += seconds
        self._app.catch_up()

    def start(self) -> BedrockStandIn:
        if self._server is not None:
            raise RuntimeError("the stand-in is already running")
        self._server = _StandInHTTPServer(self._address, self._app)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": SHUTDOWN_POLL_SECONDS},
            name="bedrock-standin",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is None or self._thread is None:
            return
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()
        self._server = None
        self._thread = None

    def __enter__(self) -> BedrockStandIn:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


class _StandInHTTPServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], app: StandInApp) -> None:
        self.app = app
        super().__init__(address, _RequestHandler)


class _RequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in two writes; with Nagle on, each answer waits for a delayed ACK.
    disable_nagle_algorithm = True
    server: _StandInHTTPServer

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def do_PUT(self) -> None:
        self._serve()

    def do_PATCH(self) -> None:
        self._serve()

    def do_DELETE(self) -> None:
        self._serve()

    def log_message(self, format: str, *args: Any) -> None:
        """Silent: the stand-in keeps its own request log."""

    def _serve(self) -> None:
        body = self.rfile.read(int(self.headers.get("content-length") or 0))
        response = self.server.app.handle(self.command, self.path, body)
        try:
            self.send_response(response.status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(response.body)))
            for name, value in response.headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(response.body)
        except (BrokenPipeError, ConnectionResetError):
            # The client stopped waiting for the answer.
            self.close_connection = True
