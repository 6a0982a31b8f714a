"""Every module of the package imports on its own, as the first import of a fresh
interpreter: an import cycle (a module needing a name from one still half-loaded)
only shows when the cycle is entered from its far end, which the handlers' fixed
import order can hide.

One interpreter loads the third-party libraries once; each module is then imported
in a forked child that has loaded nothing of the package.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

PACKAGE_ROOT = Path(__file__).resolve().parents[2] / "shared"
PROBE = """
import json, os, sys, traceback
import boto3, botocore, orjson, pydantic, pydantic_settings, tiktoken  # noqa: F401
assert not any(name.startswith("sft_pipeline") for name in sys.modules)
failures = {}
for module in sys.argv[1:]:
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read)
        try:
            __import__(module)
            status = 0
        except BaseException:
            os.write(write, traceback.format_exc(limit=-3).encode())
            status = 1
        os._exit(status)
    os.close(write)
    with os.fdopen(read, "rb") as pipe:
        detail = pipe.read().decode()
    _, status = os.waitpid(pid, 0)
    if status:
        failures[module] = detail or f"exit status {status}"
print(json.dumps(failures))
"""


def package_modules() -> list[str]:
    modules = []
    for path in sorted((PACKAGE_ROOT / "sft_pipeline").rglob("*.py")):
        parts = path.relative_to(PACKAGE_ROOT).with_suffix("").parts
        modules.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return modules


def test_every_module_imports_first_in_a_fresh_interpreter() -> None:
    modules = package_modules()
    assert "sft_pipeline.providers.nova_format" in modules
    proc = subprocess.run(
        [sys.executable, "-c", PROBE, *modules],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    failures: dict[str, str] = json.loads(proc.stdout)
    assert failures == {}, "\n\n".join(f"{name}:\n{detail}" for name, detail in failures.items())
