"""Job-end events as the local stand-ins send them: each job's end told once, soon after it
happens, the way OpenAI's webhooks and Bedrock's EventBridge events tell it.

The stand-ins move their jobs on only when asked (``catch_up``), so a daemon thread asks
every ``tick`` seconds; a state announces each end it applies (under its own lock, so this
only queues it) and the same thread delivers it afterwards, so a slow receiver never holds a
stand-in's state. Nothing runs until ``deliver_to`` names a receiver. ``drop`` loses the next
events, as an unregistered webhook or an unreachable endpoint would: the workflow's polling
must end the run all the same.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

logger = logging.getLogger(__name__)

Event = TypeVar("Event")
DEFAULT_TICK_SECONDS = 0.02


@dataclass(frozen=True)
class Delivery(Generic[Event]):
    """One event and what became of it: sent (with the receiver's answer) or dropped."""

    event: Event
    answer: object = None
    dropped: bool = False


class JobEndEvents(Generic[Event]):
    """The job-end events of one stand-in. Thread-safe."""

    def __init__(self, catch_up: Callable[[], None], *, tick: float = DEFAULT_TICK_SECONDS) -> None:
        self._catch_up = catch_up
        self._tick = tick
        self._lock = threading.Lock()
        self._queue: deque[Event] = deque()
        self._drops: int | None = 0
        self._send: Callable[[Event], object] | None = None
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self.deliveries: list[Delivery[Event]] = []

    def deliver_to(self, send: Callable[[Event], object]) -> None:
        """Send every later job end through ``send`` (its answer is kept in ``deliveries``)."""
        with self._lock:
            self._send = send
            if self._thread is None:
                self._stopping.clear()
                self._thread = threading.Thread(
                    target=self._run, name="job-end-events", daemon=True
                )
                self._thread.start()

    def announce(self, event: Event) -> None:
        """A job ended: queue its event (called by the stand-in's state, under its lock)."""
        with self._lock:
            if self._send is not None:
                self._queue.append(event)

    def drop(self, times: int | None = 1) -> None:
        """Lose the next ``times`` events (None: every event until ``clear``)."""
        if times is not None and times < 1:
            raise ValueError(f"times must be at least 1 or None, got {times}")
        with self._lock:
            self._drops = times

    def clear(self) -> None:
        with self._lock:
            self._drops = 0

    @property
    def sent(self) -> list[Delivery[Event]]:
        return [delivery for delivery in self.deliveries if not delivery.dropped]

    def stop(self) -> None:
        self._stopping.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stopping.wait(self._tick):
            try:
                self._catch_up()
            except Exception:  # a stand-in's own failure shows in its request answers
                logger.exception("catching up the stand-in's jobs failed")
            while (taken := self._take()) is not None:
                event, send = taken
                if send is None:
                    self.deliveries.append(Delivery(event, dropped=True))
                    continue
                try:
                    answer = send(event)
                except Exception as exc:  # the receiver is down: the event is lost
                    logger.warning("a job-end event could not be delivered: %s", exc)
                    answer = exc
                self.deliveries.append(Delivery(event, answer))

    def _take(self) -> tuple[Event, Callable[[Event], object] | None] | None:
        """The next queued event and how to send it (None: it is to be dropped)."""
        with self._lock:
            if not self._queue:
                return None
            event = self._queue.popleft()
            if self._drops is None or self._drops > 0:
                if self._drops is not None:
                    self._drops -= 1
                return event, None
            return event, self._send
