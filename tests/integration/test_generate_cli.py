"""`sft generate` against the OpenAI emulator and the Bedrock stand-in: the estimate and its
confirmation, 429 storms, malformed and repeated answers, a killed run resumed, the files
validated, the held-out file disjoint from training."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sft_local.bedrock_standin import BedrockStandIn
from sft_local.openai_emulator import OpenAIEmulator
from sft_pipeline.cli import main
from sft_pipeline.validation import DataSource, ValidationOptions, validate
from sft_pipeline.validation.normalise import normalise

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
SFT = Path(sys.executable).with_name("sft")
CHAT_ROUTE = "POST /chat/completions"
SPEC = """
name: trailhead
teacher: {model: gpt-4.1-mini}
system-prompt: You are the support assistant of Trailhead Outfitters.
seed: 3
topics:
  - {name: Returns, count: 14}
  - {name: Shipping, count: 12}
eval-share: 0.2
"""


@pytest.fixture
def emulator(monkeypatch: pytest.MonkeyPatch) -> Iterator[OpenAIEmulator]:
    with OpenAIEmulator(chat_latency=0.0) as running:
        monkeypatch.setenv("OPENAI_BASE_URL", running.base_url)
        monkeypatch.setenv("OPENAI_API_KEY", "sk-local")
        yield running


def write_spec(tmp_path: Path, text: str = SPEC) -> Path:
    path = tmp_path / "spec.yaml"
    path.write_text(text)
    return path


def sft_generate(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], *extra: str, spec: str = SPEC
) -> tuple[int, dict[str, Any], str]:
    status = main(
        [
            "generate",
            str(write_spec(tmp_path, spec)),
            "-o",
            str(tmp_path / "train.jsonl"),
            "--yes",
            "--json",
            *extra,
        ]
    )
    out, err = capsys.readouterr()
    return status, json.loads(out) if out.strip().startswith("{") else {}, err


def lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def chat_requests(emulator: OpenAIEmulator) -> int:
    return sum(1 for request in emulator.requests if request.route == CHAT_ROUTE)


def prompts(path: Path) -> set[str]:
    return {
        normalise(
            " ".join(m["content"] for m in json.loads(line)["messages"] if m["role"] == "user")
        )
        for line in lines(path)
    }


def test_a_run_writes_valid_disjoint_training_and_held_out_files(
    emulator: OpenAIEmulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, document, err = sft_generate(tmp_path, capsys)
    assert status == 0, err
    assert "Estimated cost: $" in err and "prices as of" in err
    train, held_out = tmp_path / "train.jsonl", tmp_path / "train.heldout.jsonl"
    assert len(lines(train)) == 21 and len(lines(held_out)) == 5
    assert prompts(train).isdisjoint(prompts(held_out))
    report = validate(
        DataSource.from_path(train),
        ValidationOptions(),
        evaluation=DataSource.from_path(held_out),
    )
    assert report.valid and not report.warnings
    summary = document["report"]
    assert summary["complete"] and summary["examples"] == 26
    assert [(t["topic"], t["train"], t["eval"]) for t in summary["topics"]] == [
        ("Returns", 11, 3),
        ("Shipping", 10, 2),
    ]
    assert summary["spent_usd"] > 0
    assert document["validation"]["valid"] is True
    assert chat_requests(emulator) == 26


def test_a_429_storm_is_waited_out_and_counted(
    emulator: OpenAIEmulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    emulator.faults.rate_limit(12, retry_after=0.01, route=CHAT_ROUTE)
    status, document, err = sft_generate(tmp_path, capsys, "--concurrency", "4")
    assert status == 0, err
    assert document["report"]["retries"] >= 12
    assert document["report"]["examples"] == 26


def test_malformed_and_repeated_answers_are_regenerated_never_written(
    emulator: OpenAIEmulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    emulator.faults.malform_generations(4)
    emulator.faults.repeat_generations(5)
    status, document, err = sft_generate(tmp_path, capsys, "--concurrency", "1")
    assert status == 0, err
    report = document["report"]
    assert report["malformed"] == 4
    assert report["rejected"]["exact_duplicate"] == 4  # the first repeat is kept, once
    written = lines(tmp_path / "train.jsonl") + lines(tmp_path / "train.heldout.jsonl")
    assert len(written) == len(set(written)) == 26
    assert chat_requests(emulator) == 26 + 4 + 4


def test_a_killed_run_is_resumed_losing_nothing_and_duplicating_nothing(
    tmp_path: Path,
) -> None:
    spec = write_spec(tmp_path, SPEC.replace("count: 14", "count: 60").replace("12}", "40}"))
    train = tmp_path / "train.jsonl"
    with OpenAIEmulator(chat_latency=0.02) as emulator:
        env = {**os.environ, "OPENAI_BASE_URL": emulator.base_url, "OPENAI_API_KEY": "sk-local"}
        command = [str(SFT), "generate", str(spec), "-o", str(train), "--yes", "--concurrency", "2"]
        child = subprocess.Popen(
            command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 60
        while len(lines(train)) < 30 and child.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        child.send_signal(signal.SIGKILL)
        child.wait()
        assert child.returncode == -signal.SIGKILL, "the run ended before it could be killed"
        before = lines(train) + lines(tmp_path / "train.heldout.jsonl")
        assert 30 <= len(before) < 100
        asked_before = chat_requests(emulator)

        finished = subprocess.run(
            [*command, "--json"], env=env, capture_output=True, text=True, check=False
        )
        assert finished.returncode == 0, finished.stderr
        assert f"{len(before):,} made by an earlier run" in finished.stderr
    after = lines(train) + lines(tmp_path / "train.heldout.jsonl")
    assert set(before) <= set(after)
    assert len(after) == len(set(after)) == 100
    # The rerun asked only for what was missing (and what the kill cut short).
    assert chat_requests(emulator) - asked_before <= 100 - len(before) + 2
    report = json.loads(finished.stdout)["report"]
    assert report["examples"] == 100 and report["complete"]


def test_a_finished_run_asks_nothing_when_run_again(
    emulator: OpenAIEmulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert sft_generate(tmp_path, capsys)[0] == 0
    asked = chat_requests(emulator)
    status, document, _ = sft_generate(tmp_path, capsys)
    assert status == 0 and document["report"]["examples"] == 26
    assert chat_requests(emulator) == asked


def test_another_spec_never_appends_to_the_outputs(
    emulator: OpenAIEmulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert sft_generate(tmp_path, capsys)[0] == 0
    status, _, err = sft_generate(tmp_path, capsys, spec=SPEC.replace("seed: 3", "seed: 4"))
    assert status == 2
    assert "made from another spec" in err
    (tmp_path / "other.jsonl").write_text('{"messages": []}\n')
    status = main(
        ["generate", str(tmp_path / "spec.yaml"), "-o", str(tmp_path / "other.jsonl"), "--yes"]
    )
    assert status == 2
    assert "was not written by sft generate" in capsys.readouterr().err


def test_without_yes_and_without_a_terminal_nothing_is_asked(
    emulator: OpenAIEmulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status = main(["generate", str(write_spec(tmp_path)), "-o", str(tmp_path / "t.jsonl")])
    assert status == 2
    assert "not confirmed" in capsys.readouterr().err
    assert chat_requests(emulator) == 0


def test_an_estimate_over_the_spec_cap_is_refused(
    emulator: OpenAIEmulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, _, err = sft_generate(tmp_path, capsys, spec=SPEC + "cost-cap-usd: 0.0001\n")
    assert status == 2
    assert "over the cap of $0.00" in err
    assert chat_requests(emulator) == 0


def test_a_broken_spec_names_its_fields(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    broken = SPEC.replace("count: 14", "count: -2").replace("eval-share: 0.2", "eval-share: 2")
    status = main(["generate", str(write_spec(tmp_path, broken)), "-o", str(tmp_path / "t.jsonl")])
    err = capsys.readouterr().err
    assert status == 2
    assert "topics[0].count: Input should be greater than or equal to 1" in err
    assert "eval-share: Input should be less than or equal to 0.5" in err
    assert "Traceback" not in err


def test_a_bedrock_teacher_answers_through_a_forced_tool(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = (REPO / "samples" / "generate_tools.yaml").read_text()
    spec = spec.replace("model: gpt-4.1-mini", "provider: bedrock\n  model: amazon.nova-pro-v1:0")
    spec = spec.replace("count: 40", "count: 12").replace("count: 30", "count: 4")
    spec = spec.replace("count: 20", "count: 4")
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)
    with BedrockStandIn(
        read_object=lambda _: b"", write_object=lambda *_: None, chat_latency=0.0
    ) as standin:
        monkeypatch.setenv("AWS_ENDPOINT_URL_BEDROCK_RUNTIME", standin.endpoint_url)
        standin.faults.throttle(3, operation="Converse")
        standin.faults.malform_generations(2)
        status, document, err = sft_generate(tmp_path, capsys, spec=spec)
    assert status == 0, err
    report = document["report"]
    assert report["examples"] == 20 and report["malformed"] == 2 and report["retries"] == 3
    examples = [json.loads(line) for line in lines(tmp_path / "train.jsonl")]
    assert all(
        example["tools"][0]["function"]["name"] == "get_order_status" for example in examples
    )
    assert any(m.get("tool_calls") for example in examples for m in example["messages"])
    # Checked as Nova will train them (the spec's train.base-model is a Nova model).
    assert document["validation"]["valid"] is True
