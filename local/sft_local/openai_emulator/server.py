"""The emulator as a real HTTP server on 127.0.0.1, for tests and the local demo."""

from __future__ import annotations

import argparse
import contextlib
import threading
import time
from collections.abc import Callable, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

from sft_local.openai_emulator.app import EmulatorApp, RecordedRequest
from sft_local.openai_emulator.faults import FaultInjector
from sft_local.openai_emulator.state import EmulatorState, JobTimeline

# How often the serving loop checks for shutdown; keeps stop() quick.
SHUTDOWN_POLL_SECONDS = 0.02


class OpenAIEmulator:
    """OpenAI's files, uploads, fine-tuning, models and chat API, served on a local port.

    Point the official SDK at it with ``OpenAI(base_url=emulator.base_url, api_key="test")``.
    Jobs move through their phases on ``clock`` (default: wall time) plus whatever
    ``advance`` added, so a test freezes time with ``clock=lambda: 1_700_000_000.0``
    and jumps it forward with ``advance(seconds)``. ``api_key`` None accepts any
    bearer key; a string makes every other key a 401. ``faults`` injects failures,
    ``requests`` is the log of every request answered.
    """

    def __init__(
        self,
        *,
        timeline: JobTimeline | None = None,
        clock: Callable[[], float] = time.time,
        api_key: str | None = None,
        organization: str = "emulator",
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self._clock = clock
        self._offset = 0.0
        self._offset_lock = threading.Lock()
        self._address = (host, port)
        self._stopping = threading.Event()
        state = EmulatorState(
            timeline=timeline or JobTimeline(), organization=organization, now=self.now
        )
        self._app = EmulatorApp(state, api_key=api_key, stopping=self._stopping)
        self._server: _EmulatorHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def faults(self) -> FaultInjector:
        return self._app.faults

    @property
    def requests(self) -> list[RecordedRequest]:
        return self._app.requests

    def requests_to(self, route: str) -> list[RecordedRequest]:
        """The logged requests for a route such as ``"POST /fine_tuning/jobs"``."""
        return [request for request in self.requests if request.route == route]

    @property
    def base_url(self) -> str:
        if self._server is None:
            raise RuntimeError("the emulator is not running; call start() first")
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}/v1"

    def now(self) -> float:
        with self._offset_lock:
            return self._clock() + self._offset

    def advance(self, seconds: float) -> None:
        """Move the emulator's time forward; jobs catch up on the next request."""
        if seconds < 0:
            raise ValueError(f"time only moves forward, got {seconds}")
        with self._offset_lock:
            self._offset += seconds

    def start(self) -> OpenAIEmulator:
        if self._server is not None:
            raise RuntimeError("the emulator is already running")
        self._stopping.clear()
        self._server = _EmulatorHTTPServer(self._address, self._app)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": SHUTDOWN_POLL_SECONDS},
            name="openai-emulator",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is None or self._thread is None:
            return
        self._stopping.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()
        self._server = None
        self._thread = None

    def __enter__(self) -> OpenAIEmulator:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


class _EmulatorHTTPServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], app: EmulatorApp) -> None:
        self.app = app
        super().__init__(address, _RequestHandler)


class _RequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in two writes; with Nagle on, each answer waits for a delayed ACK.
    disable_nagle_algorithm = True
    server: _EmulatorHTTPServer

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def do_DELETE(self) -> None:
        self._serve()

    def do_PUT(self) -> None:
        self._serve()

    def do_PATCH(self) -> None:
        self._serve()

    def log_message(self, format: str, *args: Any) -> None:
        """Silent: the emulator keeps its own request log."""

    def _serve(self) -> None:
        body = self._read_body()
        headers = {name.lower(): value for name, value in self.headers.items()}
        response = self.server.app.handle(self.command, self.path, headers, body)
        try:
            self.send_response(response.status)
            self.send_header("content-type", response.content_type)
            self.send_header("content-length", str(len(response.body)))
            for name, value in response.headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(response.body)
        except (BrokenPipeError, ConnectionResetError):
            # The client stopped waiting, e.g. it timed out during an injected delay.
            self.close_connection = True

    def _read_body(self) -> bytes:
        if self.headers.get("transfer-encoding", "").lower() != "chunked":
            return self.rfile.read(int(self.headers.get("content-length") or 0))
        chunks = []
        while size := int(self.rfile.readline().split(b";")[0], 16):
            chunks.append(self.rfile.read(size))
            self.rfile.readline()
        self.rfile.readline()
        return b"".join(chunks)


def main(argv: Sequence[str] | None = None) -> None:
    defaults = JobTimeline()
    parser = argparse.ArgumentParser(
        prog="python -m sft_local.openai_emulator",
        description="Serve an emulated OpenAI fine-tuning API until interrupted.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8787, help="0 picks a free port")
    parser.add_argument("--api-key", help="the only key accepted (default: any key)")
    for phase in ("validating", "queued", "running"):
        parser.add_argument(
            f"--{phase}",
            type=float,
            default=getattr(defaults, phase),
            metavar="SEC",
            help=f"seconds a job spends {phase} (default: %(default)s)",
        )
    args = parser.parse_args(argv)
    timeline = JobTimeline(validating=args.validating, queued=args.queued, running=args.running)
    with OpenAIEmulator(
        timeline=timeline, api_key=args.api_key, host=args.host, port=args.port
    ) as emulator:
        print(f"OpenAI emulator listening on {emulator.base_url}", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            threading.Event().wait()
