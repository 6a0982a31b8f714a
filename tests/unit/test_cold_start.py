"""Cold start: the functions that never call the provider must not pay for importing
openai, and a function whose environment lacks a variable fails there, naming it. Each
handler is imported in a fresh interpreter, as the Lambda runtime does (its folder first
on sys.path, then ``import app``), with the environment template.yaml gives it.

A behaviour check, not a timing one: benchmarks/import_times.py prints the figures.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from sft_local.template import load_template, offline_environments

ROOT = Path(__file__).resolve().parents[2]
PROBE = """
import json, sys
sys.path.insert(0, sys.argv[1])
import app
print(json.dumps({"openai": "openai" in sys.modules, "handler": callable(app.lambda_handler)}))
"""
FAKE_ENV = {"AWS_DEFAULT_REGION": "us-east-1", "AWS_REGION": "us-east-1"}
# Each function's environment as template.yaml sets it, with fake resource names.
ENVIRONMENTS = offline_environments(load_template(ROOT / "template.yaml"))


def cold_start(function: str, without: str | None = None) -> subprocess.CompletedProcess[str]:
    # What the template gives the function, and nothing of it that this shell happens to set.
    named = {name for environment in ENVIRONMENTS.values() for name in environment}
    env = {k: v for k, v in os.environ.items() if k not in named and not k.startswith("AWS_")}
    env |= FAKE_ENV | ENVIRONMENTS[function]
    if without:
        del env[without]
    return subprocess.run(
        [sys.executable, "-c", PROBE, str(ROOT / "functions" / function)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def imports_at_cold_start(function: str) -> dict[str, bool]:
    proc = cold_start(function)
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


def test_the_template_names_every_function_folder() -> None:
    assert sorted(ENVIRONMENTS) == sorted(p.parent.name for p in ROOT.glob("functions/*/app.py"))


@pytest.mark.parametrize("function", sorted(ENVIRONMENTS))
def test_every_function_starts_with_the_environment_the_template_gives_it(function: str) -> None:
    assert imports_at_cold_start(function)["handler"]


@pytest.mark.parametrize(
    ("function", "variable"),
    [
        ("validate_upload", "REGISTRY_TABLE"),
        ("validate_upload", "STATE_MACHINE_ARN"),
        ("launch_job", "BEDROCK_ROLE_ARN"),
        ("poll_job", "NOTIFICATION_TOPIC_ARN"),
        ("cancel_job", "OPENAI_SECRET_ARN"),
        ("finish_job", "API_BASE_URL"),
        ("api", "TRAINING_BUCKET"),
        ("api_authorizer", "REGISTRY_TABLE"),
        ("slack_notifier", "SLACK_WEBHOOK_SECRET_ARN"),
    ],
)
def test_a_missing_variable_fails_the_cold_start_by_its_name(function: str, variable: str) -> None:
    """Not the first AWS call, minutes later, with an empty name."""
    assert variable in ENVIRONMENTS[function]
    proc = cold_start(function, without=variable)
    assert proc.returncode != 0
    assert "ConfigurationError" in proc.stderr
    assert f"{variable} is not set" in proc.stderr
