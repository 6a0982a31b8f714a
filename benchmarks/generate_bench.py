"""Examples per second that `sft generate` makes against a teacher answering in 300 ms.

Starts the OpenAI emulator with every chat answer taking ``--latency`` seconds (outside its
lock, so answers in flight overlap as a real service's do), then makes ``--examples``
examples from a spec of four topics at each ``--concurrency`` in turn, through the real
path: the openai SDK, structured output parsed with pydantic, every example judged by the
validator's rules and duplicate fingerprints, appended to a file with its journal. Each run
starts from empty files. Prints seconds and examples/s per concurrency, and the speedup of
each over the first. Nothing is asserted on the figures; a run that makes fewer examples
than asked ends the script with status 1.

Usage:
    .venv/bin/python benchmarks/generate_bench.py                    # 1,000 examples at 1, 4, 16
    .venv/bin/python benchmarks/generate_bench.py --examples 200 --concurrency 1,16
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from sft_local.openai_emulator import OpenAIEmulator

SPEC = """
name: bench
teacher: {{model: gpt-4.1-mini}}
system-prompt: You are the support assistant of Trailhead Outfitters.
seed: 1
topics:
  - {{name: returns, weight: 1}}
  - {{name: shipping, weight: 1}}
  - {{name: sizing, weight: 1}}
  - {{name: product care, weight: 1}}
total: {total}
eval-share: 0.1
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=1000)
    parser.add_argument("--concurrency", default="1,4,16", help="comma-separated levels")
    parser.add_argument("--latency", type=float, default=0.3, help="seconds per chat answer")
    args = parser.parse_args()
    levels = [int(level) for level in args.concurrency.split(",")]
    sft = Path(sys.executable).with_name("sft")
    print(
        f"machine: {os.cpu_count()} CPUs, {platform.python_implementation()} "
        f"{platform.python_version()}, {platform.system()}"
    )
    print(f"examples: {args.examples:,} per run; teacher latency {args.latency * 1000:.0f} ms")
    results: list[tuple[int, float, int]] = []
    with tempfile.TemporaryDirectory() as work, OpenAIEmulator(chat_latency=args.latency) as emu:
        spec = Path(work) / "spec.yaml"
        spec.write_text(SPEC.format(total=args.examples))
        env = {**os.environ, "OPENAI_BASE_URL": emu.base_url, "OPENAI_API_KEY": "sk-bench"}
        for level in levels:
            out = Path(work) / f"train-{level}.jsonl"
            started = time.perf_counter()
            run = subprocess.run(
                [
                    str(sft),
                    "generate",
                    str(spec),
                    "-o",
                    str(out),
                    "--yes",
                    "--json",
                    "--concurrency",
                    str(level),
                    "--no-progress",
                ],
                env=env,
                capture_output=True,
                text=True,
                check=False,
            )
            seconds = time.perf_counter() - started
            if run.returncode != 0:
                print(f"concurrency {level}: sft generate failed ({run.returncode}):\n{run.stderr}")
                return 1
            made = json.loads(run.stdout)["report"]["examples"]
            print(f"concurrency {level:>3}: {made:,} examples in {seconds:,.1f} s", flush=True)
            results.append((level, seconds, made))
    print()
    print("concurrency  seconds  examples/s  speedup")
    print("-----------  -------  ----------  -------")
    base_rate = results[0][2] / results[0][1]
    for level, seconds, made in results:
        rate = made / seconds
        print(f"{level:>11}  {seconds:>7.1f}  {rate:>10.1f}  {rate / base_rate:>6.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
