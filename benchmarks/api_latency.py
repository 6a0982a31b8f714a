"""Latency the inference API adds over calling the model provider directly.

Starts the local stack (moto for AWS, the Lambda functions in-process, the OpenAI
emulator as the provider), trains the shipped sample, points the alias support-bot
at the trained model and issues an API key. Then it sends the same chat completion,
one request at a time, four ways:

    (a) direct:    the openai SDK against the emulator, model = the ft: id
    (b) by alias:  the openai SDK against the local API, model = support-bot
    (c) by ft: id: the openai SDK against the local API, model = the ft: id
    (d) in-process: the API function's code alone (``routes.handle`` on a prepared
        API Gateway proxy event, in the API function's environment), no HTTP gateway

and prints p50, p90, p99 and mean per path, and each path's overhead over (a).
Nothing is asserted on the figures; any failed request ends the run with status 1.

Usage:
    .venv/bin/python benchmarks/api_latency.py
    .venv/bin/python benchmarks/api_latency.py --requests 3000 --warmup 100
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import statistics
import sys
import tempfile
import time
import urllib.error
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO
from unittest import mock

import openai
from aws_lambda_powertools.utilities.typing import LambdaContext

from sft_local.api_server import LocalApiServer
from sft_local.serve import DEMO_ALIAS, issue_key, point_alias, train_sample
from sft_local.stack import ACCOUNT, LOCAL_OPENAI_KEY, REGION, LocalStack
from sft_pipeline import runtime
from sft_pipeline.adapters.registry import Registry

REPO = Path(__file__).resolve().parents[1]
SAMPLE_EVENT = REPO / "events" / "api_chat_completions.json"
API_FUNCTION = "ApiFunction"
# Throttling would turn a fast run into 429s: the usage plan is opened wide.
UNTHROTTLED = {"ApiRateLimit": "100000", "ApiBurstLimit": "100000"}
DEFAULT_FUNCTION_LOGS = Path(tempfile.gettempdir()) / "sft-api-latency" / "function-logs.jsonl"
MESSAGES: list[dict[str, str]] = [
    {"role": "system", "content": "You are a helpful support agent for an outdoor-gear shop."},
    {"role": "user", "content": "Can I return a tent I used once?"},
]
MAX_TOKENS = 256
TEMPERATURE = 0.2

Send = Callable[[], None]


class BenchmarkError(Exception):
    """The run cannot go on; the message says why."""


@dataclass(frozen=True)
class CallPath:
    """One way of getting a chat completion; ``tag`` is its row letter, a for the baseline."""

    tag: str
    description: str
    send: Send

    @property
    def label(self) -> str:
        return f"({self.tag}) {self.description}"


@dataclass(frozen=True)
class Latencies:
    path: CallPath
    milliseconds: list[float]

    def percentile(self, share: int) -> float:
        cuts = statistics.quantiles(self.milliseconds, n=100, method="inclusive")
        return cuts[share - 1]

    @property
    def mean(self) -> float:
        return statistics.fmean(self.milliseconds)


class InvocationContext(LambdaContext):
    """The context object Lambda hands the API function."""

    def __init__(self, function_name: str) -> None:
        self._function_name = function_name
        self._function_version = "$LATEST"
        self._invoked_function_arn = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{function_name}"
        self._memory_limit_in_mb = 1024
        self._aws_request_id = str(uuid.uuid4())
        self._log_group_name = f"/aws/lambda/{function_name}"
        self._log_stream_name = "benchmark"


# ----------------------------------------------------------------------------- the four paths


def chat_request(model: str) -> dict[str, Any]:
    return {
        "model": model,
        "messages": MESSAGES,
        "max_tokens": MAX_TOKENS,
        "temperature": TEMPERATURE,
    }


def sdk_sender(client: openai.OpenAI, model: str, served_model: str) -> Send:
    """One chat completion through the openai SDK; the answer must come from ``served_model``."""

    def send() -> None:
        completion = client.chat.completions.create(**chat_request(model))
        if completion.model != served_model:
            raise BenchmarkError(f"answered by {completion.model}, expected {served_model}")

    return send


def in_process_sender(function_name: str, served_model: str) -> Send:
    """The API function's code on an API Gateway proxy event, as Lambda would call it."""
    # Imported once the stack has loaded the API function: its logger then writes where the
    # stack sends function output, not to this console.
    from sft_pipeline.api import routes  # noqa: PLC0415

    event: dict[str, Any] = json.loads(SAMPLE_EVENT.read_text())
    event["body"] = json.dumps(chat_request(DEMO_ALIAS))
    context = InvocationContext(function_name)

    def send() -> None:
        response = routes.handle(event, context)
        if response["statusCode"] != 200:
            raise BenchmarkError(f"status {response['statusCode']}: {response['body']}")
        answered = json.loads(response["body"])["model"]
        if answered != served_model:
            raise BenchmarkError(f"answered by {answered}, expected {served_model}")

    return send


def measure(path: CallPath, requests: int, warmup: int) -> Latencies:
    for attempt in range(warmup):
        send_checked(path, attempt, "warm-up request")
    timings: list[float] = []
    for attempt in range(requests):
        started = time.perf_counter()
        send_checked(path, attempt, "request")
        timings.append((time.perf_counter() - started) * 1000)
    return Latencies(path, timings)


def send_checked(path: CallPath, attempt: int, what: str) -> None:
    try:
        path.send()
    except (openai.APIError, BenchmarkError) as failure:
        raise BenchmarkError(f"{path.label}: {what} {attempt + 1} failed: {failure}") from failure


# ----------------------------------------------------------------------------- the run


def run(requests: int, warmup: int, function_logs: TextIO) -> list[Latencies]:
    print("starting the local stack and training the sample ...", flush=True)
    with (
        # Instant model answers: the figures are the path's own overhead, not the model's time.
        LocalStack(parameters=UNTHROTTLED, chat_latency=0, function_logs=function_logs) as stack,
        LocalApiServer(stack) as server,
    ):
        started = time.perf_counter()
        try:
            model = train_sample(stack)
        except (RuntimeError, TimeoutError) as failure:
            raise BenchmarkError(f"training the sample failed: {failure}") from failure
        key = issue_key(Registry(stack.table()), "latency-benchmark")
        try:
            point_alias(server, key, DEMO_ALIAS, model)
        except urllib.error.URLError as failure:
            raise BenchmarkError(f"pointing {DEMO_ALIAS} at {model} failed: {failure}") from failure
        print(f"trained {model} in {time.perf_counter() - started:.1f} s; {DEMO_ALIAS} -> it")

        direct = openai.OpenAI(
            base_url=stack.openai.base_url, api_key=LOCAL_OPENAI_KEY, max_retries=0
        )
        through_api = openai.OpenAI(base_url=server.base_url, api_key=key, max_retries=0)
        over_http = [
            CallPath("a", "direct to the emulator", sdk_sender(direct, model, model)),
            CallPath("b", "local API, by alias", sdk_sender(through_api, DEMO_ALIAS, model)),
            CallPath("c", "local API, by ft: id", sdk_sender(through_api, model, model)),
        ]
        results = []
        for path in over_http:
            print(f"measuring {path.label} ...", flush=True)
            results.append(measure(path, requests, warmup))

        function_name = stack.ref(API_FUNCTION)
        in_process = CallPath(
            "d", "API code in-process, by alias", in_process_sender(function_name, model)
        )
        print(f"measuring {in_process.label} ...", flush=True)
        with (
            mock.patch.dict(os.environ, stack.seam.functions[function_name].environment),
            contextlib.redirect_stdout(function_logs),
        ):
            runtime.reset()
            results.append(measure(in_process, requests, warmup))
        return results


# ----------------------------------------------------------------------------- report


def machine_description() -> str:
    cpu_model = platform.processor() or "unknown CPU"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    return (
        f"{os.cpu_count()} CPUs ({cpu_model}), "
        f"{platform.python_implementation()} {platform.python_version()}, {platform.system()}"
    )


def table(header: tuple[str, ...], rows: Sequence[tuple[str, ...]]) -> list[str]:
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]

    def line(cells: tuple[str, ...]) -> str:
        first = cells[0].ljust(widths[0])
        rest = (cell.rjust(width) for cell, width in zip(cells[1:], widths[1:], strict=True))
        return "  ".join([first, *rest])

    return [line(header), "  ".join("-" * width for width in widths), *map(line, rows)]


def report(results: list[Latencies]) -> list[str]:
    latency_rows = [
        (
            result.path.label,
            f"{result.percentile(50):.2f}",
            f"{result.percentile(90):.2f}",
            f"{result.percentile(99):.2f}",
            f"{result.mean:.2f}",
        )
        for result in results
    ]
    direct, *others = results
    overhead_rows = [
        (
            f"({result.path.tag}) - ({direct.path.tag})",
            f"{result.percentile(50) - direct.percentile(50):+.2f}",
            f"{result.percentile(99) - direct.percentile(99):+.2f}",
        )
        for result in others
    ]
    return [
        *table(("path", "p50 ms", "p90 ms", "p99 ms", "mean ms"), latency_rows),
        "",
        *table((f"overhead over ({direct.path.tag})", "p50 ms", "p99 ms"), overhead_rows),
    ]


# ----------------------------------------------------------------------------- command line


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--requests", type=int, default=1000, help="timed requests per path (default 1000)"
    )
    parser.add_argument(
        "--warmup", type=int, default=50, help="untimed requests per path first (default 50)"
    )
    parser.add_argument(
        "--function-logs",
        type=Path,
        default=DEFAULT_FUNCTION_LOGS,
        help=f"where the functions' logs and metrics go (default {DEFAULT_FUNCTION_LOGS})",
    )
    args = parser.parse_args(argv)
    if args.requests < 2:
        parser.error("--requests must be at least 2")
    if args.warmup < 0:
        parser.error("--warmup must not be negative")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    print(f"machine: {machine_description()}")
    print(f"requests: {args.requests} timed after {args.warmup} warm-up, per path, one at a time")
    print(f"function logs: {args.function_logs}")
    args.function_logs.parent.mkdir(parents=True, exist_ok=True)
    try:
        with args.function_logs.open("w") as function_logs:
            results = run(args.requests, args.warmup, function_logs)
    except BenchmarkError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print()
    print("\n".join(report(results)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
