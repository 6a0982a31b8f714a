"""What every local stand-in shares: a real HTTP server on 127.0.0.1 in a daemon thread,
a clock that tests can move forward, and path templates for routing."""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self
from urllib.parse import unquote

# How often the serving loop checks for shutdown; keeps stop() quick.
SHUTDOWN_POLL_SECONDS = 0.02


@dataclass(frozen=True)
class Reply:
    status: int
    body: bytes
    headers: Mapping[str, str] = field(default_factory=dict)


# method, path with query, headers with lower-case names, body -> the answer
Handle = Callable[[str, str, dict[str, str], bytes], Reply]


def match_path_template(template: str, path: str) -> dict[str, str] | None:
    """The decoded ``{name}`` segments when ``path`` fits ``template``, else None."""
    found = _path_pattern(template).fullmatch(path)
    return None if found is None else {k: unquote(v) for k, v in found.groupdict().items()}


@cache
def _path_pattern(template: str) -> re.Pattern[str]:
    """A path template as a regex: each ``{name}`` matches one encoded path segment."""
    return re.compile(re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", re.escape(template)))


class ManualClock:
    """Wall time (or any clock) plus whatever ``advance`` added."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._offset = 0.0
        self._lock = threading.Lock()

    def now(self) -> float:
        with self._lock:
            return self._clock() + self._offset

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError(f"time only moves forward, got {seconds}")
        with self._lock:
            self._offset += seconds


class LocalHttpServer:
    """Serves ``handle`` on ``host:port`` (port 0: any free one) until stopped."""

    def __init__(
        self, handle: Handle, *, name: str, host: str = "127.0.0.1", port: int = 0
    ) -> None:
        self._handle = handle
        self._name = name
        self._address = (host, port)
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def address(self) -> tuple[str, int]:
        if self._server is None:
            raise RuntimeError(f"the {self._name} is not running; call start() first")
        host, port = self._server.server_address[:2]
        return str(host), int(port)

    def url(self, path: str = "") -> str:
        host, port = self.address
        return f"http://{host}:{port}{path}"

    def start(self) -> Self:
        if self._server is not None:
            raise RuntimeError(f"the {self._name} is already running")
        self._server = _Server(self._address, self._handle)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": SHUTDOWN_POLL_SECONDS},
            name=self._name,
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

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], handle: Handle) -> None:
        self.handle = handle
        super().__init__(address, _RequestHandler)


class _RequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in two writes; with Nagle on, each answer waits for a delayed ACK.
    disable_nagle_algorithm = True
    server: _Server

    def do_GET(self) -> None:
        self._serve()

    do_POST = do_PUT = do_PATCH = do_DELETE = do_GET  # noqa: N815

    def log_message(self, format: str, *args: Any) -> None:
        """Silent: each service keeps its own request log."""

    def _serve(self) -> None:
        body = self._read_body()
        headers = {name.lower(): value for name, value in self.headers.items()}
        reply = self.server.handle(self.command, self.path, headers, body)
        try:
            self.send_response(reply.status)
            self.send_header("content-length", str(len(reply.body)))
            for name, value in reply.headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(reply.body)
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
