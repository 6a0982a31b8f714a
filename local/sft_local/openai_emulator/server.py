"""The emulator as a real HTTP server on 127.0.0.1, for tests and the local demo."""

from __future__ import annotations

import argparse
import contextlib
import threading
import time
from collections.abc import Callable, Sequence

from sft_local.emulated_answers import DEFAULT_CHAT_LATENCY
from sft_local.http_service import LocalHttpServer, ManualClock, Reply
from sft_local.job_end_events import JobEndEvents
from sft_local.openai_emulator.app import EmulatorApp, RecordedRequest
from sft_local.openai_emulator.faults import FaultInjector
from sft_local.openai_emulator.state import EmulatorState, JobTimeline
from sft_local.openai_emulator.webhooks import JobEnd, WebhookSender


class OpenAIEmulator:
    """OpenAI's files, uploads, fine-tuning, models and chat API, served on a local port.

    Point the official SDK at it with ``OpenAI(base_url=emulator.base_url, api_key="test")``.
    Jobs move through their phases on ``clock`` (default: wall time) plus whatever
    ``advance`` added, so a test freezes time with ``clock=lambda: 1_700_000_000.0``
    and jumps it forward with ``advance(seconds)``. ``api_key`` None accepts any
    bearer key; a string makes every other key a 401. A chat answer takes
    ``chat_latency`` seconds (0 for instant answers); ``sleep`` is how the emulator
    waits, out for a test's fake (default: a wait that shutdown cuts short).
    ``faults`` injects failures, ``requests`` is the log of every request answered.
    ``send_webhooks_to`` makes it tell each job's end by a signed webhook, as OpenAI does.
    """

    def __init__(
        self,
        *,
        timeline: JobTimeline | None = None,
        clock: Callable[[], float] = time.time,
        api_key: str | None = None,
        organization: str = "emulator",
        chat_latency: float = DEFAULT_CHAT_LATENCY,
        sleep: Callable[[float], object] | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self._clock = ManualClock(clock)
        self._stopping = threading.Event()
        state = EmulatorState(
            timeline=timeline or JobTimeline(),
            organization=organization,
            now=self.now,
            on_job_end=lambda job_id, status, at: self.job_events.announce(
                JobEnd(job_id, status, at)
            ),
        )
        self._app = EmulatorApp(
            state,
            api_key=api_key,
            chat_latency=chat_latency,
            sleep=sleep or self._stopping.wait,
        )
        # Webhooks: off until send_webhooks_to names an endpoint.
        self.job_events: JobEndEvents[JobEnd] = JobEndEvents(self._app.catch_up)
        self._http = LocalHttpServer(self._serve, name="openai-emulator", host=host, port=port)

    def _serve(self, method: str, target: str, headers: dict[str, str], body: bytes) -> Reply:
        response = self._app.handle(method, target, headers, body)
        return Reply(
            response.status,
            response.body,
            {"content-type": response.content_type, **response.headers},
        )

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
        return self._http.url("/v1")

    def send_webhooks_to(self, url: str, secret: str) -> None:
        """Sign each job's end (fine_tuning.job.succeeded, failed, cancelled) with ``secret``
        (``whsec_...``) and POST it to ``url``, as a registered webhook endpoint gets it;
        ``job_events`` holds what was sent and can drop events."""
        self.job_events.deliver_to(WebhookSender(url, secret))

    def now(self) -> float:
        return self._clock.now()

    def advance(self, seconds: float) -> None:
        """Move the emulator's time forward; jobs catch up on the next request."""
        self._clock.advance(seconds)

    def start(self) -> OpenAIEmulator:
        self._stopping.clear()
        self._http.start()
        return self

    def stop(self) -> None:
        # Injected delays end at once, so shutting down never waits for them.
        self._stopping.set()
        self.job_events.stop()
        self._http.stop()

    def __enter__(self) -> OpenAIEmulator:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


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
    parser.add_argument(
        "--chat-latency",
        type=float,
        default=DEFAULT_CHAT_LATENCY,
        metavar="SEC",
        help="seconds each chat answer takes (default: %(default)s)",
    )
    args = parser.parse_args(argv)
    timeline = JobTimeline(validating=args.validating, queued=args.queued, running=args.running)
    with OpenAIEmulator(
        timeline=timeline,
        api_key=args.api_key,
        chat_latency=args.chat_latency,
        host=args.host,
        port=args.port,
    ) as emulator:
        print(f"OpenAI emulator listening on {emulator.base_url}", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            threading.Event().wait()
