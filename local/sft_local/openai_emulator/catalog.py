"""The base models the emulator knows: fine-tunable snapshots, their aliases and shutdown dates."""

from __future__ import annotations

import calendar
import datetime as dt
from dataclasses import dataclass

# OpenAI retires these snapshots, and every fine-tune built on them, on this date.
WIND_DOWN_SHUTDOWN_DATE = "2027-01-14"


@dataclass(frozen=True)
class BaseModelInfo:
    snapshot: str
    alias: str
    shutdown_date: str | None

    @property
    def created(self) -> int:
        """Midnight UTC of the date in the snapshot's name, e.g. 2024-07-18."""
        released = dt.date.fromisoformat(self.snapshot.removeprefix(f"{self.alias}-"))
        return calendar.timegm(released.timetuple())


BASE_MODELS = (
    BaseModelInfo("gpt-4o-2024-08-06", "gpt-4o", WIND_DOWN_SHUTDOWN_DATE),
    BaseModelInfo("gpt-4o-mini-2024-07-18", "gpt-4o-mini", WIND_DOWN_SHUTDOWN_DATE),
    BaseModelInfo("gpt-4.1-2025-04-14", "gpt-4.1", WIND_DOWN_SHUTDOWN_DATE),
    BaseModelInfo("gpt-4.1-mini-2025-04-14", "gpt-4.1-mini", WIND_DOWN_SHUTDOWN_DATE),
)


def find_base_model(name: str) -> BaseModelInfo | None:
    """The base model behind a snapshot name or its alias."""
    return next((info for info in BASE_MODELS if name in (info.snapshot, info.alias)), None)
