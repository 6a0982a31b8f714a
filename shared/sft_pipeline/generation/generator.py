"""The generator: a bounded pool of teacher requests, each answer parsed and judged as it comes,
refused slots asked again with their next seed until the counts are met.

Every attempt, accepted or not, is handed to ``record`` in the thread that started the run, as
soon as it is judged: a caller that writes accepted examples there (and flushes) loses nothing
when it is killed, and a caller that also writes the refused attempts knows, on a rerun, which
seed each open slot is at. Bounded everywhere: ``concurrency`` requests in flight, at most
``max_attempts`` per slot in one run, and the run stops early when many attempts in a row give
nothing (a bad key, a teacher that cannot follow the schema, a spec the validator refuses
every example of), or when ``should_stop`` says so (a deadline, a budget).
"""

from __future__ import annotations

import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from sft_pipeline.chat_calls import CallOutcome, Chat, ChatCaller, RetryPolicy
from sft_pipeline.generation.acceptance import Acceptor
from sft_pipeline.generation.estimate import teacher_cost
from sft_pipeline.generation.plan import Slot, Split
from sft_pipeline.generation.spec import GenerationSpec
from sft_pipeline.generation.teacher import (
    MalformedAnswerError,
    parse_answer,
    teacher_request,
    to_example,
)

MAX_ATTEMPTS_PER_SLOT = 6
MALFORMED = "malformed_answer"
CALL_FAILED = "call_failed"
# Refused attempts in a row (none accepted between them) that stop the run, at the least.
GIVE_UP_AFTER = 30
# Requests in a row that failed for good (a bad key, a model the endpoint does not serve).
GIVE_UP_AFTER_PERMANENT = 3


class Attempt(BaseModel):
    """One request for one slot and what came of it; ``line`` is the accepted example."""

    model_config = ConfigDict(frozen=True)

    slot: Slot
    attempt: int = Field(ge=0)
    line: str | None = None
    tokens: int = 0
    refused: str | None = None
    why: str | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    # Requests beyond the first (429s waited out, 5xx backed off).
    retries: int = 0

    @property
    def accepted(self) -> bool:
        return self.line is not None


class Tally(BaseModel):
    """What a run (and the runs it resumes) made, refused and spent."""

    made: int = 0
    made_by: dict[str, int] = Field(default_factory=dict)
    refused: dict[str, int] = Field(default_factory=dict)
    retries: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    example_tokens: list[int] = Field(default_factory=list)
    last_error: str | None = None

    def add(self, attempt: Attempt) -> None:
        self.retries += attempt.retries
        self.input_tokens += attempt.input_tokens
        self.output_tokens += attempt.output_tokens
        if attempt.accepted:
            self.made += 1
            key = by_key(attempt.slot.topic, attempt.slot.split)
            self.made_by[key] = self.made_by.get(key, 0) + 1
            self.example_tokens.append(attempt.tokens)
        elif attempt.refused:
            self.refused[attempt.refused] = self.refused.get(attempt.refused, 0) + 1
            self.last_error = attempt.why

    def spent_usd(self, spec: GenerationSpec) -> float | None:
        return teacher_cost(spec, self.input_tokens, self.output_tokens)


def by_key(topic: int, split: Split) -> str:
    return f"{topic}:{split}"


class GenerationResult(BaseModel):
    tally: Tally
    # Slots this run could not fill, each with the next attempt to try.
    unfilled: list[tuple[Slot, int]]
    # Why the run stopped before trying every slot, when it did.
    stopped: str | None = None


def generate(
    spec: GenerationSpec,
    slots: Sequence[tuple[Slot, int]],
    *,
    chat: Chat,
    acceptor: Acceptor,
    record: Callable[[Attempt], None],
    tally: Tally | None = None,
    concurrency: int = 8,
    max_attempts: int = MAX_ATTEMPTS_PER_SLOT,
    retry: RetryPolicy | None = None,
    should_stop: Callable[[Tally], str | None] = lambda _: None,
    on_progress: Callable[[Tally], None] | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> GenerationResult:
    """Fill ``slots`` (each with the attempt to start from). ``tally`` continues an earlier
    run's counts; ``should_stop`` is asked after every answer and returns why to stop."""
    run = _Run(
        spec,
        chat=chat,
        acceptor=acceptor,
        record=record,
        tally=tally or Tally(),
        retry=retry,
        sleep=sleep,
        max_attempts=max_attempts,
    )
    return run.fill(slots, max(1, concurrency), should_stop, on_progress)


class _Run:
    def __init__(
        self,
        spec: GenerationSpec,
        *,
        chat: Chat,
        acceptor: Acceptor,
        record: Callable[[Attempt], None],
        tally: Tally,
        retry: RetryPolicy | None,
        sleep: Callable[[float], None],
        max_attempts: int,
    ) -> None:
        self.spec = spec
        self.caller = ChatCaller(chat, retry or RetryPolicy(), sleep, spec.seed)
        self.acceptor = acceptor
        self.record = record
        self.tally = tally
        self.max_attempts = max_attempts
        self.unaccepted_in_a_row = 0
        self.permanent_in_a_row = 0

    def fill(
        self,
        slots: Sequence[tuple[Slot, int]],
        concurrency: int,
        should_stop: Callable[[Tally], str | None],
        on_progress: Callable[[Tally], None] | None,
    ) -> GenerationResult:
        pending: deque[tuple[Slot, int, int]] = deque((s, a, a) for s, a in slots)
        unfilled: list[tuple[Slot, int]] = []
        in_flight: dict[Future[CallOutcome], tuple[Slot, int, int]] = {}
        give_up = max(GIVE_UP_AFTER, 2 * concurrency)
        stopped: str | None = None
        with ThreadPoolExecutor(max_workers=concurrency) as pool:
            while in_flight or (pending and stopped is None):
                while pending and stopped is None and len(in_flight) < concurrency:
                    slot, first, attempt = pending.popleft()
                    body = teacher_request(self.spec, slot, attempt)
                    in_flight[pool.submit(self.caller.call, body)] = (slot, first, attempt)
                done, _ = wait(in_flight, return_when=FIRST_COMPLETED)
                for future in done:
                    slot, first, attempt = in_flight.pop(future)
                    judged = self._judge(slot, attempt, future.result())
                    self.record(judged)
                    self.tally.add(judged)
                    if not judged.accepted:
                        if attempt + 1 - first < self.max_attempts:
                            pending.append((slot, first, attempt + 1))
                        else:
                            unfilled.append((slot, attempt + 1))
                    if on_progress is not None:
                        on_progress(self.tally)
                if stopped is None:
                    stopped = should_stop(self.tally) or self._hopeless(give_up)
        unfilled += [(slot, attempt) for slot, _, attempt in pending]
        return GenerationResult(tally=self.tally, unfilled=unfilled, stopped=stopped)

    def _judge(self, slot: Slot, attempt: int, outcome: CallOutcome) -> Attempt:
        usage: dict[str, Any] = (outcome.response or {}).get("usage") or {}
        spent = {
            "slot": slot,
            "attempt": attempt,
            "retries": outcome.attempts - 1,
            "input_tokens": int(usage.get("prompt_tokens") or 0),
            "output_tokens": int(usage.get("completion_tokens") or 0),
        }
        self.permanent_in_a_row = self.permanent_in_a_row + 1 if outcome.permanent else 0
        if outcome.response is None:
            self.unaccepted_in_a_row += 1
            return Attempt(**spent, refused=CALL_FAILED, why=outcome.error)
        try:
            example = to_example(self.spec, parse_answer(self.spec, outcome.response))
        except MalformedAnswerError as malformed:
            self.unaccepted_in_a_row += 1
            return Attempt(**spent, refused=MALFORMED, why=str(malformed))
        verdict = self.acceptor.judge(example)
        if not verdict.accepted:
            self.unaccepted_in_a_row += 1
            return Attempt(**spent, refused=verdict.refused, why=verdict.why)
        self.unaccepted_in_a_row = 0
        return Attempt(**spent, line=verdict.raw.decode(), tokens=verdict.tokens)

    def _hopeless(self, give_up: int) -> str | None:
        if self.permanent_in_a_row >= GIVE_UP_AFTER_PERMANENT:
            return f"the teacher refused {self.permanent_in_a_row} requests in a row: {self.tally.last_error}"
        if self.unaccepted_in_a_row >= give_up:
            reason, _ = Counter(self.tally.refused).most_common(1)[0]
            return (
                f"{self.unaccepted_in_a_row} answers in a row gave no usable example (mostly "
                f"{reason}; the last: {self.tally.last_error})"
            )
        return None


def replay(
    acceptor: Acceptor, tally: Tally, attempts: Iterable[Attempt]
) -> tuple[list[Attempt], dict[Slot, int]]:
    """Feed earlier attempts back, in the order they were made: each accepted example is
    judged again against those before it (two batches of a cloud run can make the same
    conversation; the later one is then counted as refused). Returns the examples still
    accepted, and each open slot's next attempt number."""
    kept: list[Attempt] = []
    next_attempt: dict[Slot, int] = {}
    for made in attempts:
        attempt = made
        if made.line is not None:
            verdict = acceptor.judge_line(made.line.encode())
            if verdict.accepted:
                kept.append(made)
            else:
                attempt = made.model_copy(
                    update={"line": None, "refused": verdict.refused, "why": verdict.why}
                )
        tally.add(attempt)
        next_attempt[attempt.slot] = max(next_attempt.get(attempt.slot, 0), attempt.attempt + 1)
    filled = {attempt.slot for attempt in kept}
    return kept, {slot: n for slot, n in next_attempt.items() if slot not in filled}
