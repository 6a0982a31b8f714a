"""The evaluation gate's speed: the workflow's Map over held-out shards against one sequential
loop over the same examples, with the statistics of both compared.

Runs the whole pipeline on the local stack (moto runs the real state machine, the functions
run in-process, the OpenAI emulator trains the model and answers every chat in ``--latency``
seconds). A deterministic 200-example support training set and a held-out set of
``--examples`` similar prompts (under ``evaluation/``, named by the upload's eval-key) are
uploaded with an alias and a seed; the workflow trains, registers, then evaluates the
fine-tune against its base model and a few-shot prompt:

1. Map path: PrepareEvaluation shards the held-out set (50 examples a shard), the inline Map
   runs ``--concurrency`` shard tasks at once (the stack's EvaluationConcurrency; each task
   keeps 4 requests in flight), AggregateEvaluation computes the statistics. Timed from the
   execution's history, PrepareEvaluation entered to AggregateEvaluation exited.
2. Sequential path: the same examples and the contenders of the workflow's plan through
   ``sft_pipeline.evaluation.runner.evaluate`` with one request at a time, through the OpenAI
   provider's chat port against the same emulator, with the plan's graders, seed and gate.

Prints each path's wall time, examples/s and answers/s, the speedup (goal: at least 8x at
MaxConcurrency 10), and whether the two summaries hold the same statistics (every
contender's scores and interval, the candidate's wins/ties/losses and paired difference
against each contender, tokens, the gate's decision; latencies and costs aside). Exits with
status 1 when they differ or the run fails; the figures themselves are not asserted.

Usage:
    .venv/bin/python benchmarks/eval_bench.py                   # 2,000 examples, about 12 minutes
    .venv/bin/python benchmarks/eval_bench.py --examples 200    # about a minute
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import random
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO
from unittest import mock

import boto3
import openai
from openai.resources.chat.completions import Completions

from sft_local.stack import LOCAL_OPENAI_KEY, LocalStack
from sft_pipeline.evaluation.answers import read_examples
from sft_pipeline.evaluation.summary import EvaluationSummary, score_table
from sft_pipeline.jobs import UploadRef
from sft_pipeline.pipeline.evaluation_steps import (
    EVALUATIONS_PREFIX,
    INLINE_SHARDS,
    SHARD_CONCURRENCY,
    SHARD_SIZE,
    EvaluationPlan,
)
from sft_pipeline.providers.openai_provider import TIMEOUTS, OpenAIProvider

GOAL = 8.0
GOAL_CONCURRENCY = 10  # the goal is stated for this MaxConcurrency only
TRAINING_KEY = "training/support-bench.jsonl"
HELD_OUT_KEY = "evaluation/support-bench-heldout.jsonl"
UPLOAD_METADATA = {"alias": "support-bench", "seed": "7", "suffix": "bench"}
DEFAULT_FUNCTION_LOGS = Path(tempfile.gettempdir()) / "sft-eval-bench" / "function-logs.jsonl"
# What the benchmark times of the execution: the evaluation, from shards to statistics.
FIRST_STATE, MAP_STATES, LAST_STATE = (
    "PrepareEvaluation",
    ("EvaluateShards", "EvaluateShardsDistributed"),
    "AggregateEvaluation",
)
# The task inside each Map (inline, distributed) that answers one shard.
SHARD_STATES = ("EvaluateShard", "EvaluateManifestShard")
# The workflow's summary values that depend on timing or on prices, not on the answers.
NOT_COMPARED = ("mean_latency_ms", "cost_usd")


class BenchmarkError(Exception):
    """The run cannot go on; the message says why."""


# ----------------------------------------------------------------------------- data

SYSTEM = (
    "You are Nova, the customer-support assistant for Northwind Outfitters, an online "
    "outdoor-gear shop. Be warm, concise and specific. Refunds are possible within 30 days "
    "of delivery; exchanges within 60 days. Shipping is free over $75."
)


@dataclass(frozen=True)
class Product:
    name: str
    kind: str
    material: str
    grams: int
    warranty_years: int
    price: int
    care: str


PRODUCTS = (
    Product("Ridge 45L backpack", "backpack", "ripstop nylon", 1450, 5, 189, "hand-wash it"),
    Product("Aurora headlamp", "headlamp", "anodised aluminium", 92, 3, 49, "wipe it dry"),
    Product("Summit 2 tent", "tent", "silnylon", 1850, 10, 349, "air it out"),
    Product("Drift down jacket", "jacket", "800-fill goose down", 410, 2, 279, "tumble-dry it"),
    Product("Trailhead trekking poles", "poles", "carbon fibre", 460, 5, 129, "rinse them"),
    Product("Glacier 0C sleeping bag", "sleeping bag", "recycled down", 980, 10, 299, "air it"),
    Product("Canyon water filter", "filter", "hollow-fibre membrane", 85, 1, 39, "backflush it"),
    Product("Ember camp stove", "stove", "stainless steel", 320, 3, 89, "scrub it cool"),
    Product("Tidal dry bag 20L", "dry bag", "TPU-coated nylon", 140, 2, 29, "rinse it"),
    Product("Boulder chalk bag", "chalk bag", "waxed canvas", 110, 1, 25, "brush it"),
    Product("Vista binoculars", "binoculars", "magnesium alloy", 640, 10, 219, "blow the lenses"),
    Product("Fjord rain shell", "rain shell", "three-layer membrane", 350, 2, 229, "wash it warm"),
    Product("Pine camp chair", "chair", "aluminium and polyester", 900, 2, 79, "wipe it down"),
    Product("Compass trail shoes", "trail shoes", "mesh and rubber", 620, 1, 139, "rinse them"),
    Product("Harbor kayak paddle", "paddle", "fibreglass", 870, 3, 159, "rinse it fresh"),
    Product("Meadow picnic blanket", "blanket", "recycled fleece", 700, 1, 59, "machine-wash it"),
    Product("Cirrus sleeping pad", "sleeping pad", "insulated TPU", 480, 5, 149, "wipe it"),
    Product("Ranger multitool", "multitool", "hardened steel", 240, 25, 99, "oil the joints"),
    Product("Solstice solar lantern", "lantern", "polycarbonate", 180, 2, 35, "dust the panel"),
    Product("Tundra merino base layer", "base layer", "merino wool", 190, 1, 89, "wash it cold"),
)

# Each topic: four ways customers ask, then the reply.
TOPICS: dict[str, tuple[tuple[str, ...], str]] = {
    "care": (
        (
            "How do I clean my {name}?",
            "What's the best way to wash the {name}?",
            "my {name} got muddy, how should I clean it",
            "Any care tips for the {name} after a trip?",
        ),
        "To keep your {name} in shape, {care} and let it dry away from direct heat. "
        "Its {material} lasts longest without bleach or fabric softener.",
    ),
    "weight": (
        (
            "How heavy is the {name}?",
            "What does the {name} weigh?",
            "is the {name} light enough for ultralight trips",
            "Can you tell me the weight of the {name}?",
        ),
        "The {name} weighs {grams} g. It is made of {material}, which keeps the weight down "
        "without giving up durability.",
    ),
    "warranty": (
        (
            "What warranty comes with the {name}?",
            "How long is the {name} guaranteed for?",
            "does the {name} have a warranty",
            "If my {name} breaks, is it covered?",
        ),
        "The {name} has a {warranty_years}-year warranty against defects in materials and "
        "workmanship. Send us a photo and your order number and we will repair or replace it.",
    ),
    "price": (
        (
            "How much is the {name}?",
            "What's the price of the {name} right now?",
            "how much does the {name} cost",
            "Is the {name} expensive?",
        ),
        "The {name} is ${price}. Orders over $75 ship free, and you can return it within "
        "30 days of delivery.",
    ),
    "material": (
        (
            "What is the {name} made of?",
            "Which material does the {name} use?",
            "what fabric is the {name}",
            "Tell me about the materials in the {name}.",
        ),
        "The {name} is made of {material}, chosen for strength and low weight. "
        "The full specification is on the product page.",
    ),
    "return": (
        (
            "Can I return the {name}?",
            "I want to send back my {name}, how?",
            "return policy for the {name}?",
            "The {name} isn't right for me, can I get a refund?",
        ),
        "Yes: you can return the {name} within 30 days of delivery for a refund, or exchange "
        "it within 60 days. Start the return from your order page and print the free label.",
    ),
    "shipping": (
        (
            "When will the {name} ship?",
            "How fast can you deliver the {name}?",
            "shipping time for the {name}",
            "If I order the {name} today, when does it arrive?",
        ),
        "The {name} ships within one business day and arrives in 3 to 5 business days. "
        "At ${price} it ships free, since shipping is free over $75.",
    ),
    "stock": (
        (
            "Is the {name} in stock?",
            "Do you have the {name} available?",
            "can I still buy the {name}",
            "Is the {name} sold out?",
        ),
        "The {name} is in stock and ready to ship. If it sells out, the product page lets "
        "you sign up for a restock email.",
    ),
    "repair": (
        (
            "My {name} is damaged, can you repair it?",
            "Do you fix a broken {name}?",
            "repair service for the {name}?",
            "Something tore on my {name}, what can I do?",
        ),
        "We repair the {name} at our workshop: under its {warranty_years}-year warranty the "
        "repair is free, after that we quote before we start.",
    ),
    "gift": (
        (
            "Can I send the {name} as a gift?",
            "Do you gift-wrap the {name}?",
            "gift options for the {name}",
            "I'd like to buy the {name} for a friend, can you include a note?",
        ),
        "Of course: add gift wrap to the {name} at checkout and write your note. The "
        "receipt leaves out the ${price} price, and the 60-day exchange still applies.",
    ),
}
OPENERS = ("Hi,", "Hello!", "Hey there,", "Good morning,", "Quick question:", "Hi team,", "")
CONTEXTS = (
    "",
    "",
    "I'm heading out on a trip next week.",
    "Thanks in advance!",
    "I ordered it last month.",
    "It's for my daughter.",
    "I couldn't find it on the website.",
)
SIGN_OFFS = (
    "",
    " Anything else I can help with?",
    " Happy trails!",
    " Let me know if you have any other questions.",
)


def _conversation(user: str, reply: str) -> bytes:
    messages = [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": user},
        {"role": "assistant", "content": reply},
    ]
    return json.dumps({"messages": messages}).encode() + b"\n"


def _fill(template: str, product: Product) -> str:
    return template.format(**vars(product))


def _asked_in_training(product_index: int, topic_index: int) -> int:
    """Which of a topic's ways of asking the training set uses for a product: all of them,
    spread over the products."""
    return (product_index + topic_index) % 4


def _pairs() -> list[tuple[int, Product, int, tuple[tuple[str, ...], str]]]:
    return [
        (p, product, t, topic)
        for p, product in enumerate(PRODUCTS)
        for t, topic in enumerate(TOPICS.values())
    ]


def training_set() -> bytes:
    """One example per product and topic (200), with a greeting."""
    return b"".join(
        _conversation(
            f"{OPENERS[number % len(OPENERS)]} "
            f"{_fill(asked[_asked_in_training(p, t)], product)}".strip(),
            _fill(reply, product),
        )
        for number, (p, product, t, (asked, reply)) in enumerate(_pairs())
    )


def held_out_set(examples: int, seed: int = 2026) -> bytes:
    """Customers asking what the training set answers: mostly as it was asked there, with
    another greeting and often some context, sometimes in another way; the replies sometimes
    end differently. A fine-tune scores high (not perfectly), its base model low."""
    rng = random.Random(seed)
    pairs = _pairs()
    rows = []
    for _ in range(examples):
        p, product, t, (asked, reply) = rng.choice(pairs)
        usual = _asked_in_training(p, t)
        way = usual if rng.random() < 0.8 else rng.choice([i for i in range(4) if i != usual])
        question = " ".join(
            part
            for part in (rng.choice(OPENERS), _fill(asked[way], product), rng.choice(CONTEXTS))
            if part
        )
        rows.append(_conversation(question, _fill(reply, product) + rng.choice(SIGN_OFFS)))
    return b"".join(rows)


# ----------------------------------------------------------------------------- progress


class ProgressLine:
    """One line that counts up: redrawn on a terminal, else printed every tenth of the way."""

    def __init__(self, label: str, unit: str, stream: TextIO = sys.stderr) -> None:
        self._label = label
        self._unit = unit
        self._stream = stream
        self._redraw = stream.isatty()
        self._started = time.perf_counter()
        self._shown = -1

    def update(self, done: int, total: int) -> None:
        elapsed = time.perf_counter() - self._started
        tenth = done * 10 // max(total, 1)
        if not self._redraw and tenth == self._shown:
            return
        self._shown = tenth
        eta = elapsed / done * (total - done) if done else math.nan
        text = f"{self._label}: {done:,}/{total:,} {self._unit}, {elapsed:.0f} s"
        text += f", about {eta:.0f} s left" if done and done < total else ""
        if self._redraw:
            self._stream.write(f"\r{text}\x1b[K")
            if done >= total:
                self._stream.write("\n")
        else:
            self._stream.write(text + "\n")
        self._stream.flush()


# ----------------------------------------------------------------------------- the two paths


@dataclass(frozen=True)
class PathRun:
    name: str
    examples: int
    contenders: int
    answers: int
    seconds: float

    @property
    def row(self) -> tuple[str, ...]:
        return (
            self.name,
            f"{self.examples:,}",
            str(self.contenders),
            f"{self.answers:,}",
            f"{self.seconds:.1f}",
            f"{self.examples / self.seconds:.1f}",
            f"{self.answers / self.seconds:.1f}",
        )


@dataclass(frozen=True)
class MapRun:
    run: PathRun
    plan: EvaluationPlan
    summary: EvaluationSummary
    # Seconds from the upload to the end of the execution (training included).
    whole_run: float
    # Seconds of each part of the evaluation, in order.
    phases: dict[str, float]
    concurrency: int
    shards: int
    # Shard tasks Step Functions had started and not finished, at most.
    tasks_at_once: int | None
    # Chat requests the shard functions had sent and not had answered, at most.
    requests_at_once: int


class InFlight:
    """Counts the chat completions being sent through the openai SDK in this process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._now = 0
        self.most = 0

    def _change(self, step: int) -> None:
        with self._lock:
            self._now += step
            self.most = max(self.most, self._now)

    @contextmanager
    def counting(self) -> Iterator[None]:
        create: Callable[..., Any] = Completions.create

        def counted(completions: Completions, *args: Any, **kwargs: Any) -> Any:
            self._change(1)
            try:
                return create(completions, *args, **kwargs)
            finally:
                self._change(-1)

        with mock.patch.object(Completions, "create", counted):
            yield


def _history(stack: LocalStack, upload: UploadRef) -> list[dict[str, Any]]:
    client = boto3.client("stepfunctions")
    pages = client.get_paginator("get_execution_history").paginate(
        executionArn=stack.execution_arn(upload)
    )
    return [event for page in pages for event in page["events"]]


def _state_times(history: Sequence[dict[str, Any]]) -> dict[tuple[str, str], datetime]:
    """(state, "entered" or "exited") -> its last timestamp, for top-level states."""
    times: dict[tuple[str, str], datetime] = {}
    for event in history:
        kind = event["type"]
        for suffix, which, details in (
            ("StateEntered", "entered", "stateEnteredEventDetails"),
            ("StateExited", "exited", "stateExitedEventDetails"),
        ):
            if kind.endswith(suffix):
                times[event[details]["name"], which] = event["timestamp"]
    return times


def _phases(history: Sequence[dict[str, Any]]) -> dict[str, float]:
    times = _state_times(history)
    map_state = next((state for state in MAP_STATES if (state, "entered") in times), None)
    if map_state is None or (LAST_STATE, "exited") not in times:
        raise BenchmarkError("the execution did not run the evaluation's Map and aggregate")

    def between(start: tuple[str, str], end: tuple[str, str]) -> float:
        return (times[end] - times[start]).total_seconds()

    return {
        "evaluation": between((FIRST_STATE, "entered"), (LAST_STATE, "exited")),
        "prepare": between((FIRST_STATE, "entered"), (FIRST_STATE, "exited")),
        "map": between((map_state, "entered"), (map_state, "exited")),
        "aggregate": between((LAST_STATE, "entered"), (LAST_STATE, "exited")),
    }


def _most_shards_at_once(history: Sequence[dict[str, Any]]) -> int | None:
    """How many shard tasks Step Functions ran at the same time, at most (None: not in this
    history, as a Distributed Map's children are not)."""
    changes = [
        (event["timestamp"], step)
        for event in history
        for key, step in (("stateEnteredEventDetails", 1), ("stateExitedEventDetails", -1))
        if (event.get(key) or {}).get("name") in SHARD_STATES
    ]
    running = most = 0
    # At the same instant, a task leaving is counted before one entering.
    for _, step in sorted(changes):
        running += step
        most = max(most, running)
    return most if changes else None


def _planned_concurrency(history: Sequence[dict[str, Any]]) -> int:
    """The Map's MaxConcurrency as the workflow read it from PrepareEvaluation's output."""
    for event in history:
        details = event.get("stateExitedEventDetails") or {}
        if details.get("name") == FIRST_STATE:
            return int(json.loads(details["output"])["evaluation_plan"]["concurrency"])
    raise BenchmarkError(f"the execution never left {FIRST_STATE}")


def _wait(stack: LocalStack, upload: UploadRef, shards: int, timeout: float) -> dict[str, Any]:
    """Wait for the execution, showing the shards whose answers are written."""
    client = boto3.client("stepfunctions")
    s3 = boto3.client("s3")
    results = f"{EVALUATIONS_PREFIX}{upload.dataset_id}/results/"
    progress = ProgressLine("map path", "shards answered")
    deadline = time.monotonic() + timeout
    stack.settle()  # the upload's validation, which starts the execution
    while True:
        description: dict[str, Any] = client.describe_execution(
            executionArn=stack.execution_arn(upload)
        )
        written = s3.list_objects_v2(Bucket=stack.bucket, Prefix=results).get("KeyCount", 0)
        if written:
            progress.update(written, shards)
        if description["status"] != "RUNNING":
            return description
        if time.monotonic() > deadline:
            raise BenchmarkError(f"the execution still ran after {timeout:.0f} s")
        time.sleep(0.5)


def map_path(stack: LocalStack, held_out: bytes, examples: int, timeout: float) -> MapRun:
    boto3.client("s3").put_object(Bucket=stack.bucket, Key=HELD_OUT_KEY, Body=held_out)
    shards = math.ceil(examples / SHARD_SIZE)
    started = time.perf_counter()
    upload = stack.upload(
        training_set(), TRAINING_KEY, {**UPLOAD_METADATA, "eval-key": HELD_OUT_KEY}
    )
    in_flight = InFlight()
    with in_flight.counting():
        description = _wait(stack, upload, shards, timeout)
    whole_run = time.perf_counter() - started
    if description["status"] != "SUCCEEDED":
        raise BenchmarkError(f"the execution ended {description['status']}")
    final = json.loads(description["output"])
    outcome = final.get("evaluation") or {}
    if final.get("evaluation_error") or not outcome.get("summary_key"):
        raise BenchmarkError(
            f"the workflow evaluated nothing: {final.get('evaluation_error') or outcome}"
        )
    history = _history(stack, upload)
    prefix = f"s3://{stack.bucket}/{EVALUATIONS_PREFIX}{upload.dataset_id}/"
    plan = EvaluationPlan.model_validate_json(stack.read_object(prefix + "plan.json"))
    summary = EvaluationSummary.model_validate_json(stack.read_object(prefix + "summary.json"))
    phases = _phases(history)
    run = PathRun(
        name="map",
        examples=summary.examples,
        contenders=len(plan.contenders),
        answers=summary.examples * len(plan.contenders),
        seconds=phases["evaluation"],
    )
    return MapRun(
        run=run,
        plan=plan,
        summary=summary,
        whole_run=whole_run,
        phases=phases,
        concurrency=_planned_concurrency(history),
        shards=shards,
        tasks_at_once=_most_shards_at_once(history),
        requests_at_once=in_flight.most,
    )


def sequential_path(
    stack: LocalStack, held_out: bytes, plan: EvaluationPlan
) -> tuple[PathRun, EvaluationSummary]:
    """The plan's contenders, graders, seed and gate, one request at a time, through the chat
    port the workflow's provider builds (same timeouts and retries), against the same emulator."""
    timeout, retries, rate_limit_wait = TIMEOUTS["workflow"]
    client = openai.OpenAI(
        api_key=LOCAL_OPENAI_KEY,
        base_url=stack.openai.base_url,
        timeout=timeout,
        max_retries=retries,
    )
    chat = OpenAIProvider(client, max_rate_limit_wait=rate_limit_wait).chat
    examples = read_examples(held_out.splitlines())
    progress = ProgressLine("sequential path", "requests")
    started = time.perf_counter()
    evaluation = plan.answer(
        examples, chat, concurrency=1, policy=plan.policy, on_progress=progress.update
    )
    seconds = time.perf_counter() - started
    run = PathRun(
        name="sequential",
        examples=len(examples),
        contenders=len(plan.contenders),
        answers=len(evaluation.replies),
        seconds=seconds,
    )
    return run, evaluation.summary


# ----------------------------------------------------------------------------- comparison


def statistics_of(summary: EvaluationSummary) -> dict[str, Any]:
    """The summary without what timing and prices decide."""
    values = summary.model_dump(mode="json")
    for contender in values["contenders"]:
        for key in NOT_COMPARED:
            contender.pop(key)
    return values


def differences(left: Any, right: Any, path: str = "summary") -> list[str]:
    """Where two JSON values differ, as paths with both values."""
    if isinstance(left, dict) and isinstance(right, dict):
        return [
            found
            for key in sorted(set(left) | set(right))
            for found in differences(left.get(key), right.get(key), f"{path}.{key}")
        ]
    if isinstance(left, list) and isinstance(right, list) and len(left) == len(right):
        return [
            found
            for index, (a, b) in enumerate(zip(left, right, strict=True))
            for found in differences(a, b, f"{path}[{index}]")
        ]
    return [] if left == right else [f"{path}: map {left!r}, sequential {right!r}"]


# ----------------------------------------------------------------------------- report


def table(header: tuple[str, ...], rows: Sequence[Sequence[str]]) -> list[str]:
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]

    def line(cells: Sequence[str]) -> str:
        first = cells[0].ljust(widths[0])
        rest = (cell.rjust(width) for cell, width in zip(cells[1:], widths[1:], strict=True))
        return "  ".join([first, *rest]).rstrip()

    return [line(header), line(["-" * width for width in widths]), *(line(r) for r in rows)]


def machine() -> str:
    return (
        f"{os.cpu_count()} CPUs, {platform.python_implementation()} "
        f"{platform.python_version()}, {platform.system()}"
    )


def report(mapped: MapRun, sequential: PathRun, sequential_summary: EvaluationSummary) -> int:
    print()
    print(
        "\n".join(
            table(
                ("path", "examples", "contenders", "answers", "wall s", "examples/s", "answers/s"),
                [mapped.run.row, sequential.row],
            )
        )
    )
    phases = mapped.phases
    tasks = "unknown" if mapped.tasks_at_once is None else mapped.tasks_at_once
    print(
        f"\nmap path: {mapped.shards} shards of up to {SHARD_SIZE}, MaxConcurrency "
        f"{mapped.concurrency}, {SHARD_CONCURRENCY} requests in flight per shard; at most "
        f"{tasks} shard tasks running at once (the execution's history) and "
        f"{mapped.requests_at_once} chat requests in flight (the shard functions' own; "
        f"{mapped.concurrency * SHARD_CONCURRENCY} if every task answered at once); "
        f"prepare {phases['prepare']:.1f} s, map {phases['map']:.1f} s, aggregate "
        f"{phases['aggregate']:.1f} s (PrepareEvaluation entered to AggregateEvaluation exited: "
        f"{phases['evaluation']:.1f} s); whole run, upload to end: {mapped.whole_run:.1f} s"
    )
    speedup = sequential.seconds / mapped.run.seconds
    if mapped.concurrency == GOAL_CONCURRENCY:
        verdict = f"goal >= {GOAL:.0f}x at MaxConcurrency {GOAL_CONCURRENCY}: " + (
            "met" if speedup >= GOAL else "NOT met"
        )
    else:
        verdict = f"the goal is stated at MaxConcurrency {GOAL_CONCURRENCY}, not judged here"
    print(f"speedup map/sequential: {speedup:.1f}x ({verdict})")
    print("\nscores (map path):")
    print("\n".join(table(tuple(score_table(mapped.summary)[0]), score_table(mapped.summary)[1:])))
    decision = mapped.summary.decision
    print(f"gate: {decision.reason if decision else 'no decision'}")
    found = differences(statistics_of(mapped.summary), statistics_of(sequential_summary))
    if found:
        print(f"\nstatistics: DIFFERENT between the two paths ({len(found)} values):")
        print("\n".join(f"  {line}" for line in found[:20]))
        return 1
    print(
        "\nstatistics: identical between the two paths (every contender's scores and "
        "interval, wins/ties/losses and paired differences, tokens, the gate's decision; "
        "latencies and costs aside)"
    )
    return 0


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--examples", type=_positive_int, default=2000, help="held-out examples")
    parser.add_argument(
        "--latency", type=float, default=0.1, help="seconds each emulated chat answer takes"
    )
    parser.add_argument(
        "--concurrency",
        type=_positive_int,
        default=10,
        help="the stack's EvaluationConcurrency: shard tasks the Map runs at once",
    )
    parser.add_argument(
        "--timeout", type=float, default=3600.0, help="seconds the workflow may take"
    )
    parser.add_argument(
        "--function-logs",
        type=Path,
        default=DEFAULT_FUNCTION_LOGS,
        help="where the functions' logs and metrics go",
    )
    return parser.parse_args(argv)


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def run(args: argparse.Namespace, function_logs: TextIO) -> int:
    held_out = held_out_set(args.examples)
    parameters = {"EvaluationConcurrency": str(args.concurrency)}
    with LocalStack(
        parameters=parameters, chat_latency=args.latency, function_logs=function_logs
    ) as stack:
        print("map path: training, then evaluating through the workflow ...", flush=True)
        mapped = map_path(stack, held_out, args.examples, args.timeout)
        names = ", ".join(f"{c.name} ({c.model})" for c in mapped.plan.contenders)
        print(f"contenders: {names}; graders: {', '.join(mapped.plan.graders)}", flush=True)
        sequential, summary = sequential_path(stack, held_out, mapped.plan)
    return report(mapped, sequential, summary)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    shards = math.ceil(args.examples / SHARD_SIZE)
    mode = "inline" if shards <= INLINE_SHARDS else "distributed"
    print(f"machine: {machine()}")
    print(
        f"held-out: {args.examples:,} examples ({shards} shards, {mode} Map); training: "
        f"{len(PRODUCTS) * len(TOPICS)} examples; chat answers take {args.latency * 1000:.0f} ms; "
        f"EvaluationConcurrency {args.concurrency}"
    )
    print(f"function logs: {args.function_logs}")
    args.function_logs.parent.mkdir(parents=True, exist_ok=True)
    try:
        with args.function_logs.open("w") as function_logs:
            return run(args, function_logs)
    except BenchmarkError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
