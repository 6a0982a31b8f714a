"""A stand-in for a Slack incoming webhook: a real HTTP server on 127.0.0.1 that
keeps what it is sent, and can be taken down to show that no message is lost.
"""

from __future__ import annotations

import json
import threading
from typing import Any

from sft_local.http_service import LocalHttpServer, Reply


class SlackReceiver:
    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []
        self.refused = 0
        self._outage_status: int | None = None
        self._lock = threading.Lock()
        self._http = LocalHttpServer(self._receive, name="slack-receiver")

    def _receive(self, method: str, target: str, headers: dict[str, str], body: bytes) -> Reply:
        with self._lock:
            status = self._outage_status
            if status is None:
                self.messages.append(json.loads(body))
            else:
                self.refused += 1
        plain = {"content-type": "text/plain"}
        return (
            Reply(200, b"ok", plain)
            if status is None
            else Reply(status, b"service_unavailable", plain)
        )

    @property
    def url(self) -> str:
        return self._http.url("/services/T000/B000/local")

    def outage(self, status: int = 503) -> None:
        """Answer every post with ``status`` until :meth:`recover`."""
        self._outage_status = status

    def recover(self) -> None:
        self._outage_status = None

    def __enter__(self) -> SlackReceiver:
        self._http.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._http.stop()
