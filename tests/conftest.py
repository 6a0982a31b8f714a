"""Helpers shared by the test suites: build JSONL files and validate them."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings as hypothesis_settings

from sft_local.template import load_template, offline_environments
from sft_pipeline.settings import forget_settings
from sft_pipeline.validation import DataSource, ValidationOptions, ValidationReport, validate

# Property tests assert behaviour, never time: no per-example deadline, which a loaded
# 2-core CI machine would turn into flaky failures.
hypothesis_settings.register_profile("sft", deadline=None)
hypothesis_settings.load_profile("sft")

REPO = Path(__file__).resolve().parents[1]
# Every function's environment as template.yaml sets it (fake names), and a cost cap.
TEMPLATE_ENVIRONMENT = {
    name: value
    for environment in offline_environments(load_template(REPO / "template.yaml")).values()
    for name, value in environment.items()
} | {"DEFAULT_COST_CAP_USD": "20"}

SYSTEM = "You are a helpful support agent for an outdoor-gear shop."


def chat(
    user: str, reply: str | None = "Sure, happy to help.", system: bool = True
) -> dict[str, Any]:
    messages: list[dict[str, Any]] = [{"role": "system", "content": SYSTEM}] if system else []
    messages.append({"role": "user", "content": user})
    if reply is not None:
        messages.append({"role": "assistant", "content": reply})
    return {"messages": messages}


def good_examples(n: int = 10) -> list[dict[str, Any]]:
    return [
        chat(f"Question number {i} about tents?", f"Answer number {i} about tents.")
        for i in range(n)
    ]


def as_lines(rows: Iterable[dict[str, Any] | str | bytes]) -> bytes:
    out = b""
    for row in rows:
        if isinstance(row, bytes):
            out += row + b"\n"
        elif isinstance(row, str):
            out += row.encode() + b"\n"
        else:
            out += json.dumps(row, ensure_ascii=False).encode() + b"\n"
    return out


Validator = Callable[..., ValidationReport]


@pytest.fixture
def template_environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    """The functions' environment from template.yaml, so handlers load their settings."""
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    for name, value in TEMPLATE_ENVIRONMENT.items():
        monkeypatch.setenv(name, value)
    forget_settings()
    yield TEMPLATE_ENVIRONMENT
    forget_settings()


@pytest.fixture
def run_validation(tmp_path: Path) -> Validator:
    """Write rows (or raw bytes) to a file and validate it."""

    def _run(
        rows: Iterable[dict[str, Any] | str | bytes] | bytes,
        validation_rows: Iterable[dict[str, Any] | str | bytes] | None = None,
        **options: Any,
    ) -> ValidationReport:
        path = tmp_path / "train.jsonl"
        path.write_bytes(rows if isinstance(rows, bytes) else as_lines(rows))
        held_out = None
        if validation_rows is not None:
            valid_path = tmp_path / "valid.jsonl"
            valid_path.write_bytes(as_lines(validation_rows))
            held_out = DataSource.from_path(valid_path)
        return validate(DataSource.from_path(path), ValidationOptions(**options), held_out)

    return _run


def codes(findings: Iterable[Any]) -> list[str]:
    return [f.code for f in findings]


# Each test carries the marker of its layer, from its folder: `pytest -m unit` and friends.
LAYERS = ("unit", "integration", "e2e")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        layer = next((name for name in LAYERS if f"/tests/{name}/" in item.path.as_posix()), None)
        if layer is not None:
            item.add_marker(getattr(pytest.mark, layer))
