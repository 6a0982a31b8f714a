"""Time of the evaluation's statistics and graders, in pure Python as the Lambda runs them.

Per case it reports the best wall time of --repeat runs of:

- ``mean_interval`` (percentile bootstrap) over N scores, binary and continuous;
- ``compare`` (paired bootstrap) of two contenders over N examples;
- ``summarise`` of four contenders (4 intervals, 3 paired comparisons, the gate);
- every grader once per example, on free-text answers of about 40 words.

Usage:
    .venv/bin/python benchmarks/eval_statistics_bench.py                 # N=2000, 2000 resamples
    .venv/bin/python benchmarks/eval_statistics_bench.py --examples 10000 --repeat 5
"""

from __future__ import annotations

import argparse
import platform
import random
import time
from collections.abc import Callable

from sft_pipeline.evaluation.answers import Answer
from sft_pipeline.evaluation.gate import GatePolicy
from sft_pipeline.evaluation.graders import GRADERS
from sft_pipeline.evaluation.statistics import compare, mean_interval
from sft_pipeline.evaluation.summary import summarise

WORDS = [
    "the",
    "order",
    "ships",
    "within",
    "three",
    "days",
    "refund",
    "account",
    "password",
    "reset",
    "invoice",
]


def best_of(repeat: int, run: Callable[[], object]) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return min(times)


def sentence(rng: random.Random, length: int) -> Answer:
    return Answer(content=" ".join(rng.choice(WORDS) for _ in range(length)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=2000)
    parser.add_argument("--resamples", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    n, resamples, repeat = args.examples, args.resamples, args.repeat
    rng = random.Random(0)
    binary = [float(rng.random() < 0.7) for _ in range(n)]
    continuous = [rng.random() for _ in range(n)]
    other = [min(1.0, score + rng.uniform(-0.1, 0.2)) for score in continuous]
    per_example = {
        name: [{"token_f1": rng.random()} for _ in range(n)]
        for name in ("candidate", "base", "few_shot", "champion")
    }
    answers = [(sentence(rng, 40), sentence(rng, 40)) for _ in range(n)]

    print(
        f"Python {platform.python_version()}, {n} examples, {resamples} resamples, best of {repeat}"
    )
    cases: list[tuple[str, Callable[[], object]]] = [
        ("mean_interval, 0/1 scores", lambda: mean_interval(binary, resamples=resamples)),
        ("mean_interval, continuous", lambda: mean_interval(continuous, resamples=resamples)),
        ("compare (paired)", lambda: compare(continuous, other, resamples=resamples)),
        (
            "summarise, 4 contenders",
            lambda: summarise(
                per_example,
                graders=["token_f1"],
                seed=0,
                models=dict.fromkeys(per_example, "m"),
                policy=GatePolicy(alias="bot"),
            ),
        ),
    ]
    cases += [
        (f"grader {name}", lambda grader=grader: [grader(a, b) for a, b in answers])
        for name, grader in GRADERS.items()
    ]
    for label, run in cases:
        print(f"  {label:<28} {best_of(repeat, run) * 1000:9.1f} ms")


if __name__ == "__main__":
    main()
