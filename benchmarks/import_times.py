"""Cold import time of each Lambda handler (functions/*/app.py).

For every handler, fresh child processes import its ``app`` module the way the
Lambda runtime does (the function folder first on sys.path, then ``import app``),
with the environment template.yaml gives the function (fake ARNs and names,
parameter defaults, AWS_DEFAULT_REGION=us-east-1) and the variables by which libraries
know they run in Lambda (LAMBDA_TASK_ROOT: the X-Ray tracer is on, as deployed, and
skips the sampler it builds elsewhere). Per handler it reports:

- the cumulative import time of ``app`` from ``python -X importtime``;
- the wall time of ``import app`` measured with time.perf_counter;
- how many modules were loaded, and whether ``openai`` and ``boto3`` were among them;
- the heaviest packages that ``import app`` loads (from the importtime tree).

Both times are the best of --repeat fresh processes. The functions that never call
the provider (validate_upload, slack_notifier, api_authorizer) must not import openai;
the script exits with status 1 if one does.

Usage:
    .venv/bin/python benchmarks/import_times.py               # every handler, best of 5
    .venv/bin/python benchmarks/import_times.py --repeat 10 --only validate_upload
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from sft_local.template import load_template, offline_environments

REPO_ROOT = Path(__file__).resolve().parent.parent
FUNCTIONS = REPO_ROOT / "functions"
REGION = "us-east-1"
# Handlers that never talk to the provider: importing openai there is a regression.
MUST_NOT_IMPORT_OPENAI = frozenset({"validate_upload", "slack_notifier", "api_authorizer"})
# "import time: <self us> | <cumulative us> | <indent><module>"
IMPORTTIME_LINE = re.compile(r"^import time:\s+(\d+)\s+\|\s+(\d+)\s+\|( *)(\S+)\s*$")

# Runs in the child: import the handler as the Lambda runtime would, then describe sys.modules.
PROBE = """
import sys, time
sys.path.insert(0, {folder!r})
started = time.perf_counter()
import app
elapsed = time.perf_counter() - started
print("RESULT", elapsed, len(sys.modules), "openai" in sys.modules, "boto3" in sys.modules)
"""


@dataclass
class Figures:
    name: str
    importtime_ms: list[float] = field(default_factory=list)
    wall_ms: list[float] = field(default_factory=list)
    modules: int = 0
    openai: bool = False
    boto3: bool = False
    heaviest: list[tuple[str, float]] = field(default_factory=list)


def child_env(folder: Path, function_env: dict[str, str]) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("AWS_", "POWERTOOLS_", "OPENAI_"))
    }
    env.update(
        {
            "AWS_DEFAULT_REGION": REGION,
            "AWS_REGION": REGION,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_LAMBDA_FUNCTION_NAME": "bench",
            "LAMBDA_TASK_ROOT": str(folder),
        }
    )
    # Compiled bytecode is kept, as in a deployment package: later runs measure imports only.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env.update(function_env)
    return env


def run_probe(
    python: str, folder: Path, env: dict[str, str], importtime: bool
) -> tuple[list[str], str]:
    command = [python, *(["-X", "importtime"] if importtime else []), "-c"]
    command.append(PROBE.format(folder=str(folder)))
    proc = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"importing {folder.name}/app.py failed:\n{proc.stderr[-3000:]}")
    result = next(line for line in proc.stdout.splitlines() if line.startswith("RESULT "))
    return result.split()[1:], proc.stderr


def parse_importtime(stderr: str, top: int) -> tuple[float, list[tuple[str, float]]]:
    """The cumulative ms of the top-level ``app`` import, and the heaviest packages it pulled in.

    A package's figure is the cumulative time of its first import, which includes the
    packages it imports in turn (boto3 includes botocore), so the figures overlap.
    """
    packages: list[tuple[str, float]] = []
    for line in stderr.splitlines():
        match = IMPORTTIME_LINE.match(line)
        if match is None:
            continue
        cumulative_ms, indent, module = (
            int(match.group(2)) / 1000,
            len(match.group(3)),
            match.group(4),
        )
        if indent == 1 and module == "app":
            heaviest = sorted(packages, key=lambda item: item[1], reverse=True)[:top]
            return cumulative_ms, heaviest
        if indent == 1:
            packages = []  # an import of the probe itself, before ``import app``
        elif "." not in module:
            packages.append((module, cumulative_ms))
    raise SystemExit("no 'import app' line in the -X importtime output")


def measure(python: str, folder: Path, env: dict[str, str], repeat: int, top: int) -> Figures:
    figures = Figures(folder.name)
    for _ in range(repeat):
        _, stderr = run_probe(python, folder, env, importtime=True)
        total, heaviest = parse_importtime(stderr, top)
        figures.importtime_ms.append(total)
        if total == min(figures.importtime_ms):
            figures.heaviest = heaviest
        values, _ = run_probe(python, folder, env, importtime=False)
        figures.wall_ms.append(float(values[0]) * 1000)
        figures.modules = int(values[1])
        figures.openai = values[2] == "True"
        figures.boto3 = values[3] == "True"
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5, help="fresh processes per handler")
    parser.add_argument("--only", action="append", help="a function folder name (repeatable)")
    parser.add_argument("--top", type=int, default=5, help="heaviest packages to list")
    parser.add_argument("--python", default=sys.executable, help="the interpreter to measure")
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")

    environments = offline_environments(load_template(REPO_ROOT / "template.yaml"), REGION)
    folders = sorted(p.parent for p in FUNCTIONS.glob("*/app.py"))
    if args.only:
        unknown = set(args.only) - {f.name for f in folders}
        if unknown:
            parser.error(f"no such function folder: {', '.join(sorted(unknown))}")
        folders = [f for f in folders if f.name in args.only]

    version = subprocess.run(
        [args.python, "-c", "import platform; print(platform.python_version())"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    print(f"machine: {os.cpu_count()} CPUs, {platform.system()}; CPython {version}")
    print(f"repeat: best of {args.repeat} fresh processes per handler\n")

    results = []
    for folder in folders:
        env = child_env(folder, environments.get(folder.name, {}))
        results.append(measure(args.python, folder, env, args.repeat, args.top))

    header = ("handler", "importtime ms", "wall ms", "modules", "openai", "boto3")
    rows = [
        (
            r.name,
            f"{min(r.importtime_ms):.1f}",
            f"{min(r.wall_ms):.1f}",
            str(r.modules),
            "yes" if r.openai else "no",
            "yes" if r.boto3 else "no",
        )
        for r in results
    ]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    print(
        "  ".join(
            h.ljust(w) if i == 0 else h.rjust(w)
            for i, (h, w) in enumerate(zip(header, widths, strict=True))
        )
    )
    print("  ".join("-" * w for w in widths))
    for row in rows:
        print(
            "  ".join(
                c.ljust(w) if i == 0 else c.rjust(w)
                for i, (c, w) in enumerate(zip(row, widths, strict=True))
            )
        )

    print("\nheaviest packages loaded (cumulative ms of their first import; nested ones overlap):")
    for r in results:
        print(f"  {r.name}: " + ", ".join(f"{name} {ms:.0f}" for name, ms in r.heaviest))

    failures = [r.name for r in results if r.openai and r.name in MUST_NOT_IMPORT_OPENAI]
    lazy = [r.name for r in results if not r.openai and r.name not in MUST_NOT_IMPORT_OPENAI]
    if lazy:
        print(f"\nopenai is imported on first use, not at import, by: {', '.join(lazy)}")
    if failures:
        print(f"\nFAIL: openai imported at cold start by {', '.join(failures)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
