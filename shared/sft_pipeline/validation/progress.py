"""A one-line progress bar for long validations, drawn on a terminal only."""

from __future__ import annotations

import time
from types import TracebackType
from typing import TextIO

BAR_WIDTH = 30
REDRAW_SECONDS = 0.1


class ProgressBar:
    def __init__(self, total_bytes: int, out: TextIO) -> None:
        self.total = max(total_bytes, 1)
        self.out = out
        self.started = time.monotonic()
        self._last_draw = 0.0

    def update(self, done_bytes: int) -> None:
        now = time.monotonic()
        if now - self._last_draw < REDRAW_SECONDS and done_bytes < self.total:
            return
        self._last_draw = now
        fraction = min(done_bytes / self.total, 1.0)
        filled = int(fraction * BAR_WIDTH)
        elapsed = max(now - self.started, 1e-6)
        rate = done_bytes / elapsed / 1e6
        eta = (self.total - done_bytes) / (done_bytes / elapsed) if done_bytes else 0.0
        self.out.write(
            f"\r[{'#' * filled}{'.' * (BAR_WIDTH - filled)}] {fraction:6.1%} "
            f"{done_bytes / 1e6:,.1f}/{self.total / 1e6:,.1f} MB  {rate:,.1f} MB/s  eta {eta:,.0f}s "
        )
        self.out.flush()

    def __enter__(self) -> ProgressBar:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.out.write("\r" + " " * (BAR_WIDTH + 70) + "\r")
        self.out.flush()
