"""How soon the pipeline notices a job's end, with job events and with polling only, and what
a 2-hour job costs in Step Functions state transitions and Lambda invocations.

Runs the whole pipeline on the local stack (moto runs the real state machine, the functions
run in-process, the OpenAI emulator trains and sends its signed webhooks to the local API).
The stack's default poll intervals (first wait 60 s, growing by 1.5 to 600 s) are kept and
every wait is scaled down by one factor (``--factor``), as the local stack scales Wait states
and the wait's timeout; the emulator's job durations are scaled by the same factor. Three
ways are compared:

    events      the wait task, with the emulator's webhooks delivered
    poll only   the wait task, with every webhook dropped (never configured, or lost)
    before      the state machine as it was before job events: a plain Wait state instead
                of the wait task (the same definition otherwise, run from a temporary copy)

1. Latency: for ``--runs`` jobs of 5 to 30 simulated minutes, the time from the job's end at
   the emulator to the notification (the SNS message, read from the email queue's
   SentTimestamp). Polling's share is also shown at full scale: what a deployed stack sees.
2. Cost of a 2-hour job (``--long-factor``): state transitions (states entered) and Lambda
   invocations, counted from the execution's history and the functions called.

Nothing is asserted; figures are printed.

Usage:
    .venv/bin/python benchmarks/events_bench.py
    .venv/bin/python benchmarks/events_bench.py --runs 9 --factor 0.01
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import statistics
import tempfile
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import boto3

from sft_local.openai_emulator import JobTimeline
from sft_local.openai_emulator.webhooks import JobEnd
from sft_local.stack import LocalStack
from sft_pipeline.jobs import PollPolicy

REPO = Path(__file__).resolve().parents[1]
SAMPLE = (REPO / "samples" / "customer_support.jsonl").read_bytes()
DEFAULTS = {"PollIntervalSeconds": "60", "MaxPollIntervalSeconds": "600"}
SHORTEST_JOB, LONGEST_JOB = 300.0, 1800.0
LONG_JOB = 7200.0
# Standard workflows: USD per state transition; Lambda: USD per request (us-east-1 list prices).
PRICE_PER_TRANSITION = 0.000025
PRICE_PER_REQUEST = 0.0000002
# The functions' logs, of every run (the handlers' loggers keep the stream they first got).
QUIET = Path(os.devnull).open("w")  # noqa: SIM115

Mode = Literal["events", "poll only", "before"]
MODES: tuple[Mode, ...] = ("events", "poll only", "before")


@dataclass(frozen=True)
class Run:
    latency: float
    transitions: int
    invocations: Counter[str]


def before_job_events(workdir: Path) -> Path:
    """A copy of template.yaml whose state machine waits with a plain Wait state, as the
    workflow did before job events; returns the copy's template path."""
    shutil.copy(REPO / "template.yaml", workdir / "template.yaml")
    definition = json.loads((REPO / "statemachine" / "fine_tune.asl.json").read_text())
    definition["States"]["WaitForJob"] = {
        "Type": "Wait",
        "SecondsPath": "$.job.next_wait_seconds",
        "Next": "PollJob",
    }
    del definition["States"]["WaitForJobByInterval"]
    shutil.copytree(REPO / "statemachine", workdir / "statemachine")
    (workdir / "statemachine" / "fine_tune.asl.json").write_text(json.dumps(definition))
    return workdir / "template.yaml"


@contextlib.contextmanager
def stack(factor: float, running: float, template: Path) -> Iterator[LocalStack]:
    """The local stack at the default intervals scaled by ``factor``, its jobs running for
    ``running`` simulated seconds."""
    timeline = JobTimeline(validating=5 * factor, queued=5 * factor, running=running * factor)
    with LocalStack(
        parameters=DEFAULTS,
        timeline=timeline,
        time_scale=factor,
        chat_latency=0,
        function_logs=QUIET,
        template_path=template,
    ) as local:
        yield local


def run_job(factor: float, running: float, mode: Mode, before: Path) -> Run:
    with stack(factor, running, before if mode == "before" else REPO / "template.yaml") as local:
        if mode != "events":
            local.openai.job_events.drop(None)
        upload = local.upload(SAMPLE, "training/support.jsonl", {"suffix": "bench"})
        status = local.wait_for_execution(upload, timeout=600 + 3 * running * factor)["status"]
        if status != "SUCCEEDED":
            raise SystemExit(f"the run ended {status}")
        local.settle()
        [end] = [d.event for d in local.openai.job_events.deliveries if isinstance(d.event, JobEnd)]
        history = local.history(upload)
        called = Counter(
            invocation.function.removeprefix("sft-local-") for invocation in local.seam.invocations
        )
        return Run(
            latency=first_notification(local) - end.at,
            transitions=sum(event["type"].endswith("StateEntered") for event in history),
            invocations=called,
        )


def first_notification(local: LocalStack) -> float:
    """When the notification was published (epoch seconds), as the email queue saw it."""
    messages = boto3.client("sqs").receive_message(
        QueueUrl=local.mailbox_url, AttributeNames=["SentTimestamp"], MaxNumberOfMessages=1
    )["Messages"]
    return int(messages[0]["Attributes"]["SentTimestamp"]) / 1000


def spread(runs: int) -> list[float]:
    """Job durations evenly over 5 to 30 simulated minutes, so ends fall anywhere in a wait."""
    if runs == 1:
        return [SHORTEST_JOB]
    step = (LONGEST_JOB - SHORTEST_JOB) / (runs - 1)
    return [SHORTEST_JOB + i * step for i in range(runs)]


def percentiles(values: Sequence[float]) -> str:
    ordered = sorted(values)
    p90 = ordered[min(len(ordered) - 1, round(0.9 * (len(ordered) - 1)))]
    return f"p50 {statistics.median(ordered):7.2f} s   p90 {p90:7.2f} s   max {ordered[-1]:7.2f} s"


def cost(run: Run) -> str:
    invocations = sum(run.invocations.values())
    usd = run.transitions * PRICE_PER_TRANSITION + invocations * PRICE_PER_REQUEST
    loop = ", ".join(
        f"{name} {run.invocations[f'{name}Function']}"
        for name in ("PollJob", "WaitForJob", "JobWebhook")
    )
    return (
        f"{run.transitions:4d} transitions  {invocations:3d} Lambda invocations ({loop})  "
        f"${usd:.5f}"
    )


def polls_by_policy(duration: float) -> int:
    """Polls of a job that ends after ``duration`` seconds at full scale: one after each wait,
    up to the wait in which it ends, whose poll (or event) sees the end."""
    policy, waited, wait, polls = PollPolicy(), 0.0, None, 0
    while waited < duration:
        wait = policy.next_wait(wait)
        waited += wait
        polls += 1
    return polls


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="jobs per way (default 5)")
    parser.add_argument("--factor", type=float, default=0.02, help="time scale (default 0.02)")
    parser.add_argument(
        "--long-factor", type=float, default=0.005, help="time scale of the 2-hour job"
    )
    args = parser.parse_args(argv)
    started = time.monotonic()
    with tempfile.TemporaryDirectory() as workdir:
        before = before_job_events(Path(workdir))
        print(f"Poll intervals: 60 s growing by 1.5 to 600 s, every wait scaled by {args.factor}")
        print(
            f"{args.runs} jobs of {SHORTEST_JOB / 60:.0f} to {LONGEST_JOB / 60:.0f} simulated minutes per way\n"
        )
        print("job end -> notification")
        latencies: dict[Mode, list[float]] = {}
        for mode in MODES:
            latencies[mode] = [
                run_job(args.factor, d, mode, before).latency for d in spread(args.runs)
            ]
            print(f"  {mode:10s} {percentiles(latencies[mode])}")
        # Polling's share is the latency above what the events' path takes; it scales.
        work = statistics.median(latencies["events"])
        print(f"at full scale (polling's share / {args.factor}, plus {work:.2f} s of work):")
        for mode in ("poll only", "before"):
            full = [max(0.0, x - work) / args.factor + work for x in latencies[mode]]
            print(f"  {mode:10s} {percentiles(full)}")

        print(f"\nA {LONG_JOB / 3600:.0f}-hour job, waits scaled by {args.long_factor}:")
        for mode in MODES:
            print(f"  {mode:10s} {cost(run_job(args.long_factor, LONG_JOB, mode, before))}")
        polls = polls_by_policy(LONG_JOB)
        print(
            f"  at full scale, from the poll policy: {polls} polls, {4 * polls} loop transitions "
            "either way (wait, PollJob, JobPolled, CheckJob); the wait task adds one Lambda "
            "call per poll. (Scaled, each loop's real overhead counts as more simulated time, "
            "so the wait task's runs show a poll or two fewer.)"
        )
    print(f"\n({time.monotonic() - started:.0f} s)")


if __name__ == "__main__":
    main()
