"""A stand-in for a Slack incoming webhook: a real HTTP server on 127.0.0.1 that
keeps what it is sent, and can be taken down to show that no message is lost.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any


class SlackReceiver:
    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []
        self.refused = 0
        self._outage_status: int | None = None
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with receiver._lock:
                    status = receiver._outage_status
                    if status is None:
                        receiver.messages.append(json.loads(body))
                    else:
                        receiver.refused += 1
                self.send_response(status or 200)
                self.send_header("Content-Type", "text/plain")
                self.end_headers()
                self.wfile.write(b"ok" if status is None else b"service_unavailable")

            def log_message(self, format: str, *args: Any) -> None:
                """Quiet: the demo prints what matters."""

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}/services/T000/B000/local"

    def outage(self, status: int = 503) -> None:
        """Answer every post with ``status`` until :meth:`recover`."""
        self._outage_status = status

    def recover(self) -> None:
        self._outage_status = None

    def __enter__(self) -> SlackReceiver:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._server.shutdown()
        self._server.server_close()
