"""A one-line progress bar for long runs (bytes validated, requests answered), drawn on a
terminal only."""

from __future__ import annotations

import time
from types import TracebackType
from typing import TextIO

BAR_WIDTH = 30
REDRAW_SECONDS = 0.1


class ProgressBar:
    def __init__(self, total: int, out: TextIO, *, unit: str = "MB", scale: float = 1e6) -> None:
        self.total = max(total, 1)
        self.out = out
        # Amounts are shown divided by ``scale``: millions of bytes as MB, requests one by one.
        self.unit = unit
        self.scale = scale
        self._digits = 0 if scale == 1 else 1
        self.started = time.monotonic()
        self._last_draw = 0.0

    def update(self, done: int, detail: str = "") -> None:
        """Draw ``done`` of the total, with ``detail`` (a few words of counts) after it."""
        now = time.monotonic()
        if now - self._last_draw < REDRAW_SECONDS and done < self.total:
            return
        self._last_draw = now
        fraction = min(done / self.total, 1.0)
        filled = int(fraction * BAR_WIDTH)
        elapsed = max(now - self.started, 1e-6)
        rate = done / elapsed / self.scale
        eta = (self.total - done) / (done / elapsed) if done else 0.0
        digits, unit = self._digits, self.unit
        self.out.write(
            f"\r[{'#' * filled}{'.' * (BAR_WIDTH - filled)}] {fraction:6.1%} "
            f"{done / self.scale:,.{digits}f}/{self.total / self.scale:,.{digits}f} {unit}  "
            f"{rate:,.1f} {unit}/s  eta {eta:,.0f}s {detail}"
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
        self.out.write("\r" + " " * (BAR_WIDTH + 120) + "\r")
        self.out.flush()
