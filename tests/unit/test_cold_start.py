"""Cold start: the functions that never call the provider must not pay for importing
openai. Each handler is imported in a fresh interpreter, as the Lambda runtime does
(its folder first on sys.path, then ``import app``), and sys.modules is inspected.

A behaviour check, not a timing one: benchmarks/import_times.py prints the figures.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PROBE = """
import json, sys
sys.path.insert(0, sys.argv[1])
import app
print(json.dumps({"openai": "openai" in sys.modules, "handler": callable(app.lambda_handler)}))
"""
# The handlers' environment, with fake values: settings read at import must find what they need.
FAKE_ENV = {
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
    "POWERTOOLS_SERVICE_NAME": "sft-pipeline",
    "POWERTOOLS_METRICS_NAMESPACE": "SftPipeline",
    "SLACK_WEBHOOK_SECRET_ARN": "arn:aws:secretsmanager:us-east-1:123456789012:secret:slack-AbCdEf",
    "OPENAI_SECRET_ARN": "arn:aws:secretsmanager:us-east-1:123456789012:secret:openai-AbCdEf",
}


def imports_at_cold_start(function: str) -> dict[str, bool]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "OPENAI_"))}
    env.update(FAKE_ENV)
    proc = subprocess.run(
        [sys.executable, "-c", PROBE, str(ROOT / "functions" / function)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    result: dict[str, bool] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


# The functions that never call the provider (the API authorizer only once the API exists).
WITHOUT_PROVIDER = sorted(
    name
    for name in ("validate_upload", "slack_notifier", "api_authorizer")
    if (ROOT / "functions" / name / "app.py").is_file()
)


def test_the_functions_without_the_provider_exist() -> None:
    assert {"validate_upload", "slack_notifier"} <= set(WITHOUT_PROVIDER)


@pytest.mark.parametrize("function", WITHOUT_PROVIDER)
def test_functions_without_the_provider_do_not_import_openai(function: str) -> None:
    result = imports_at_cold_start(function)
    assert result["handler"]
    assert not result["openai"], f"functions/{function}/app.py imports openai at cold start"


def test_the_probe_sees_openai_when_it_is_imported(tmp_path: Path) -> None:
    """The check above can fail: a handler that imports openai is caught."""
    (tmp_path / "app.py").write_text("import openai\n\ndef lambda_handler(event, context): ...\n")
    env = {**os.environ, **FAKE_ENV}
    proc = subprocess.run(
        [sys.executable, "-c", PROBE, str(tmp_path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == {"openai": True, "handler": True}
