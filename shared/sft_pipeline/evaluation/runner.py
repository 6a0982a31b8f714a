"""Run an evaluation: every contender answers every held-out example, then the answers are graded.

Requests go through ``chat`` (see sft_pipeline.chat_calls, which retries 429s, 5xx and
timeouts a bounded number of times). A bounded pool of threads keeps ``concurrency`` requests
in flight. A request that still fails scores 0 and says why, so a flaky model is not flattered
by leaving its failures out; a contender whose every request fails stops the run (a bad key or
model name, not a verdict on the model).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from typing import Any

from pydantic import BaseModel, ConfigDict

from sft_pipeline.chat_calls import CallOutcome, Chat, ChatCaller, RetryPolicy
from sft_pipeline.evaluation.answers import Answer, EvalExample
from sft_pipeline.evaluation.contenders import Contender, chat_request
from sft_pipeline.evaluation.gate import GatePolicy
from sft_pipeline.evaluation.graders import (
    Verdict,
    grade,
    judge_messages,
    pairwise_outcome,
    parse_verdict,
    pick_graders,
)
from sft_pipeline.evaluation.pricing import inference_cost
from sft_pipeline.evaluation.summary import EvaluationSummary, summarise

# (requests done, requests in all), called from the thread that started the run.
Progress = Callable[[int, int], None]

# The judge's score of a contender against the candidate, beside the graders' scores.
JUDGE = "judge"
CANDIDATE = "candidate"


class Reply(BaseModel):
    """One contender's answer to one example, with its grades."""

    model_config = ConfigDict(frozen=True)

    line: int
    contender: str
    model: str
    answer: Answer
    scores: dict[str, float]
    latency_ms: float | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    attempts: int = 1
    error: str | None = None


class Evaluation(BaseModel):
    model_config = ConfigDict(frozen=True)

    summary: EvaluationSummary
    # Example by example, in the held-out file's order, each example's contenders in the
    # order they were given.
    replies: list[Reply]

    def answers(self, contender: str) -> list[Answer]:
        return [reply.answer for reply in self.replies if reply.contender == contender]


class EvaluationError(Exception):
    """The evaluation cannot give a verdict; the message says why."""


def evaluate(
    examples: Sequence[EvalExample],
    contenders: Sequence[Contender],
    *,
    chat: Chat,
    graders: Sequence[str] | None = None,
    judge: str | None = None,
    policy: GatePolicy | None = None,
    seed: int = 0,
    concurrency: int = 8,
    retry: RetryPolicy | None = None,
    on_progress: Progress | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> Evaluation:
    """Ask, grade and summarise. The statistics depend on the answers and ``seed`` only,
    never on ``concurrency`` or the order answers arrive in."""
    if not examples:
        raise EvaluationError("the held-out set has no examples")
    names = [contender.name for contender in contenders]
    if CANDIDATE not in names or len(set(names)) != len(names):
        raise EvaluationError(f"contenders must be distinct and include the candidate: {names}")
    chosen = list(graders) if graders else pick_graders([e.reference for e in examples])
    caller = _Caller(chat, retry or RetryPolicy(), sleep, seed)
    jobs = [
        ((contender.name, index), chat_request(contender, example))
        for index, example in enumerate(examples)
        for contender in contenders
    ]
    total = len(jobs) + (2 * len(examples) * (len(contenders) - 1) if judge else 0)
    progress = _Counter(total, on_progress)
    outcomes = caller.run_all(jobs, concurrency, progress)
    for contender in contenders:
        _require_some_answer(contender, [outcomes[contender.name, i] for i in range(len(examples))])

    replies: dict[tuple[str, int], Reply] = {}
    for (name, index), outcome in outcomes.items():
        contender = next(c for c in contenders if c.name == name)
        replies[name, index] = _reply(examples[index], contender, outcome, chosen)
    if judge:
        replies = _judged(
            examples,
            contenders,
            replies,
            judge=judge,
            caller=caller,
            concurrency=concurrency,
            progress=progress,
        )
    ordered = [replies[c.name, i] for i in range(len(examples)) for c in contenders]
    return Evaluation(
        summary=summarise_replies(
            ordered, contenders, chosen + ([JUDGE] if judge else []), seed, policy
        ),
        replies=ordered,
    )


def summarise_replies(
    replies: Sequence[Reply],
    contenders: Sequence[Contender],
    graders: list[str],
    seed: int,
    policy: GatePolicy | None,
) -> EvaluationSummary:
    by_name = {c.name: [r for r in replies if r.contender == c.name] for c in contenders}
    costs: dict[str, float | None] = {}
    for contender in contenders:
        prices = [
            inference_cost(
                contender.model,
                r.input_tokens,
                r.output_tokens,
                fine_tune_of=contender.fine_tune_of,
            )
            for r in by_name[contender.name]
        ]
        costs[contender.name] = None if None in prices else sum(p or 0.0 for p in prices)
    return summarise(
        {name: [r.scores for r in rows] for name, rows in by_name.items()},
        graders=graders,
        seed=seed,
        latencies_ms={
            name: [r.latency_ms for r in rows if r.latency_ms is not None]
            for name, rows in by_name.items()
        },
        tokens={
            name: (sum(r.input_tokens for r in rows), sum(r.output_tokens for r in rows))
            for name, rows in by_name.items()
        },
        costs=costs,
        models={c.name: c.model for c in contenders},
        policy=policy,
    )


def _reply(
    example: EvalExample, contender: Contender, outcome: CallOutcome, graders: Sequence[str]
) -> Reply:
    usage = (outcome.response or {}).get("usage") or {}
    if outcome.response is None:
        answer = Answer()
        scores = dict.fromkeys(graders, 0.0)
    else:
        answer = _first_message(outcome.response)
        scores = grade(answer, example.reference, graders)
    return Reply(
        line=example.line,
        contender=contender.name,
        model=contender.model,
        answer=answer,
        scores=scores,
        latency_ms=outcome.latency_ms,
        input_tokens=int(usage.get("prompt_tokens") or 0),
        output_tokens=int(usage.get("completion_tokens") or 0),
        attempts=outcome.attempts,
        error=outcome.error,
    )


def _first_message(response: Mapping[str, Any]) -> Answer:
    choices = response.get("choices") or []
    return Answer.from_message(choices[0].get("message") or {}) if choices else Answer()


def _require_some_answer(contender: Contender, outcomes: Sequence[CallOutcome]) -> None:
    if all(outcome.response is None for outcome in outcomes):
        raise EvaluationError(
            f"every request to {contender.name} ({contender.model}) failed: {outcomes[0].error}"
        )


def _judged(
    examples: Sequence[EvalExample],
    contenders: Sequence[Contender],
    replies: dict[tuple[str, int], Reply],
    *,
    judge: str,
    caller: _Caller,
    concurrency: int,
    progress: _Counter,
) -> dict[tuple[str, int], Reply]:
    """Each contender against the candidate, asked twice with the positions swapped so the
    judge's taste for the first (or second) answer cancels out. The candidate's judge score
    is its mean outcome over its rivals; each rival's is one minus the candidate's."""
    rivals = [c.name for c in contenders if c.name != CANDIDATE]
    jobs: list[tuple[tuple[str, int], dict[str, Any]]] = []
    for index, example in enumerate(examples):
        ours = replies[CANDIDATE, index].answer
        for rival in rivals:
            theirs = replies[rival, index].answer
            for order, (first, second) in (("ab", (ours, theirs)), ("ba", (theirs, ours))):
                body = {
                    "model": judge,
                    "temperature": 0,
                    "messages": judge_messages(example.messages, example.reference, first, second),
                }
                jobs.append(((f"{rival}:{order}", index), body))
    verdicts = caller.run_all(jobs, concurrency, progress)
    judged = dict(replies)
    for index in range(len(examples)):
        outcomes = {
            rival: pairwise_outcome(
                _verdict(verdicts[f"{rival}:ab", index]), _verdict(verdicts[f"{rival}:ba", index])
            )
            for rival in rivals
        }
        for rival, outcome in outcomes.items():
            judged[rival, index] = _with_score(judged[rival, index], 1.0 - outcome)
        candidate_score = sum(outcomes.values()) / len(outcomes) if outcomes else 0.0
        judged[CANDIDATE, index] = _with_score(judged[CANDIDATE, index], candidate_score)
    return judged


def _verdict(outcome: CallOutcome) -> Verdict | None:
    answer = _first_message(outcome.response) if outcome.response else Answer()
    return parse_verdict(answer.content or "")


def _with_score(reply: Reply, score: float) -> Reply:
    return reply.model_copy(update={"scores": {**reply.scores, JUDGE: score}})


class _Counter:
    """Counts finished requests and reports them from the thread that started the run."""

    def __init__(self, total: int, on_progress: Progress | None) -> None:
        self.total = total
        self.done = 0
        self._on_progress = on_progress

    def step(self) -> None:
        self.done += 1
        if self._on_progress:
            self._on_progress(self.done, self.total)


class _Caller:
    """Runs a list of requests through a ChatCaller, ``concurrency`` at a time."""

    def __init__(
        self, chat: Chat, retry: RetryPolicy, sleep: Callable[[float], None], seed: int
    ) -> None:
        self._caller = ChatCaller(chat, retry, sleep, seed)

    def run_all(
        self,
        jobs: Sequence[tuple[tuple[str, int], dict[str, Any]]],
        concurrency: int,
        progress: _Counter,
    ) -> dict[tuple[str, int], CallOutcome]:
        outcomes: dict[tuple[str, int], CallOutcome] = {}
        with ThreadPoolExecutor(max_workers=max(1, concurrency)) as pool:
            futures = {pool.submit(self._caller.call, body): key for key, body in jobs}
            for future in as_completed(futures):
                outcomes[futures[future]] = future.result()
                progress.step()
        return outcomes
