"""``sft eval`` with a chat function in place of the endpoint: its output, files, exit codes
and how it refuses input it cannot evaluate."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest

from sft_pipeline.cli import eval_command, main
from sft_pipeline.evaluation.summary import EvaluationSummary
from sft_pipeline.providers.base import ProviderPermanentError

MODEL = "ft:gpt-4o-mini-2024-07-18:acme:support:abc123"


def row(question: str, answer: str) -> dict[str, Any]:
    return {
        "messages": [
            {"role": "system", "content": "You are Acme's support bot."},
            {"role": "user", "content": question},
            {"role": "assistant", "content": answer},
        ]
    }


HELD_OUT = [row(f"Where is order {n}?", f"Order {n} ships today.") for n in range(12)]


def write(path: Path, rows: list[dict[str, Any]]) -> str:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return str(path)


class FakeEndpoint:
    """The fine-tune knows the answers; ``base_knows`` says for which orders the base does."""

    def __init__(self, base_knows: set[int] | None = None) -> None:
        self.base_knows = base_knows or set()
        self.bodies: list[dict[str, Any]] = []

    def __call__(self, body: dict[str, Any]) -> dict[str, Any]:
        self.bodies.append(body)
        number = int(body["messages"][-1]["content"].split()[3].rstrip("?"))
        knows = body["model"] == MODEL or number in self.base_knows
        content = f"Order {number} ships today." if knows else "Please contact support."
        return {
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content}}],
            "usage": {"prompt_tokens": 30, "completion_tokens": 6},
        }


@pytest.fixture
def endpoint(monkeypatch: pytest.MonkeyPatch) -> FakeEndpoint:
    fake = FakeEndpoint()
    seen: dict[str, Any] = {}

    def chat(base_url: str | None, api_key: str | None) -> FakeEndpoint:
        seen.update(base_url=base_url, api_key=api_key)
        return fake

    monkeypatch.setattr(eval_command, "openai_chat", chat)
    fake.seen = seen  # type: ignore[attr-defined]
    return fake


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["eval", *args, "--no-progress"])
    out, err = capsys.readouterr()
    return code, out, err


def test_the_table_compares_the_fine_tune_with_its_base_and_a_few_shot_prompt(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], endpoint: FakeEndpoint
) -> None:
    held_out = write(tmp_path / "heldout.jsonl", HELD_OUT)
    train = write(tmp_path / "train.jsonl", [row(f"Is {n} late?", "No.") for n in range(9)])
    code, out, err = run(
        capsys, held_out, "--model", MODEL, "--few-shot", train, "--k", "3", "--base-url", "u"
    )
    assert (code, err) == (0, "")
    assert endpoint.seen == {"base_url": "u", "api_key": None}  # type: ignore[attr-defined]
    lines = out.splitlines()
    assert lines[0].startswith("12 examples, score: ")
    assert lines[2].split()[:3] == ["contender", "model", "score"]
    assert lines[3].split()[:3] == ["candidate", MODEL, "1.000"]
    assert lines[4].split()[:4] == ["base", "gpt-4o-mini-2024-07-18", "0.000", "0.000"]
    assert lines[5].split()[:2] == ["few_shot", "gpt-4o-mini-2024-07-18"]
    assert "12/0/0" in lines[4]
    assert lines[-1].startswith("gate: passes: +1.00 over the base model")
    # The base model is named by the ft: id; few-shot turns come after the system prompt.
    few_shot = [b for b in endpoint.bodies if len(b["messages"]) > 2]
    assert len(few_shot) == 12
    assert few_shot[0]["messages"][0]["role"] == "system"
    assert [m["role"] for m in few_shot[0]["messages"][1:7]] == ["user", "assistant"] * 3


def test_min_improvement_makes_the_exit_code_the_gate(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], endpoint: FakeEndpoint
) -> None:
    held_out = write(tmp_path / "heldout.jsonl", HELD_OUT)
    assert run(capsys, held_out, "--model", MODEL, "--min-improvement", "0.5")[0] == 0
    endpoint.base_knows = set(range(10))  # the fine-tune is barely better
    code, out, _ = run(capsys, held_out, "--model", MODEL, "--min-improvement", "0.05")
    assert code == 1
    assert "gate: does not pass: +0.17 over the base model is not significant" in out
    # Without --min-improvement the gate is reported but the run succeeds.
    code, out, _ = run(capsys, held_out, "--model", MODEL)
    assert code == 0
    assert "does not pass" in out


def test_json_html_and_answers_out(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], endpoint: FakeEndpoint
) -> None:
    held_out = write(tmp_path / "heldout.jsonl", HELD_OUT)
    html, answers = tmp_path / "report.html", tmp_path / "answers.jsonl"
    code, out, _ = run(
        capsys,
        held_out,
        "--model",
        MODEL,
        "--champion",
        "ft:gpt-4o-mini-2024-07-18:acme:support:old",
        "--json",
        "--html",
        str(html),
        "--answers-out",
        str(answers),
        "--graders",
        "token_f1,exact_match",
    )
    assert code == 0
    summary = EvaluationSummary.model_validate_json(out)
    assert [c.name for c in summary.contenders] == ["candidate", "base", "champion"]
    assert (summary.primary, summary.graders) == ("token_f1", ["token_f1", "exact_match"])
    assert summary.decision is not None and summary.decision.against == "champion"
    written = [json.loads(line) for line in answers.read_text().splitlines()]
    assert len(written) == 36
    assert written[0]["line"] == 1 and written[0]["contender"] == "candidate"
    assert written[0]["answer"]["content"] == "Order 0 ships today."
    assert written[0]["scores"] == {"token_f1": 1.0, "exact_match": 1.0}
    page = html.read_text()
    assert 'id="score-chart"' in page and "Order 0 ships today." in page


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"messages": [{"role": "user", "content": "hi"}]}\n', "line 1: the conversation does"),
        (json.dumps(HELD_OUT[0]) + "\n\n{not json\n", "line 3: not JSON"),
        ('{"prompt": "a", "completion": "b"}\n', "line 1: no list of chat messages"),
        ("\n\n", "no examples"),
        ("\xff\xfe garbage", "line 1: not JSON"),
    ],
)
def test_a_bad_held_out_file_gets_a_line_numbered_message_and_exit_2(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    endpoint: FakeEndpoint,
    content: str,
    message: str,
) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_bytes(content.encode("latin-1"))
    code, out, err = run(capsys, str(path), "--model", MODEL)
    assert (code, out) == (2, "")
    assert err.startswith(f"sft: {path}: ")
    assert message in err
    assert "Traceback" not in err
    assert endpoint.bodies == []


def test_usage_errors_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], endpoint: FakeEndpoint
) -> None:
    held_out = write(tmp_path / "heldout.jsonl", HELD_OUT)
    code, _, err = run(capsys, str(tmp_path / "missing.jsonl"), "--model", MODEL)
    assert (code, err) == (2, f"sft: {tmp_path / 'missing.jsonl'}: no such file\n")
    code, _, err = run(capsys, held_out, "--model", "my-own-model")
    assert code == 2 and "--baseline is needed" in err
    bad_train = write(tmp_path / "train.jsonl", [{"messages": []}])
    code, _, err = run(capsys, held_out, "--model", MODEL, "--few-shot", bad_train)
    assert code == 2 and "train.jsonl: line 1" in err
    for flags in (["--graders", "bleu"], ["--min-improvement", "-1"], ["--concurrency", "0"]):
        with pytest.raises(SystemExit) as usage:
            main(["eval", held_out, "--model", MODEL, *flags])
        assert usage.value.code == 2
    assert endpoint.bodies == []


def test_an_endpoint_that_refuses_everything_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(body: dict[str, Any]) -> dict[str, Any]:
        raise ProviderPermanentError(
            "model_not_found", f"The model `{body['model']}` does not exist"
        )

    monkeypatch.setattr(eval_command, "openai_chat", lambda url, key: refuse)
    held_out = write(tmp_path / "heldout.jsonl", HELD_OUT[:2])
    code, out, err = run(capsys, held_out, "--model", MODEL)
    assert (code, out) == (2, "")
    assert err.startswith(f"sft: every request to candidate ({MODEL}) failed: model_not_found")


def test_no_api_key_anywhere_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    held_out = write(tmp_path / "heldout.jsonl", HELD_OUT[:2])
    code, _, err = run(capsys, held_out, "--model", MODEL)
    assert code == 2
    assert err.startswith("sft: no API key: pass --api-key or set OPENAI_API_KEY")


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_terminal_gets_a_progress_bar_counting_answers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, endpoint: FakeEndpoint
) -> None:
    held_out = write(tmp_path / "heldout.jsonl", HELD_OUT)
    terminal = Terminal()
    monkeypatch.setattr("sys.stderr", terminal)
    assert main(["eval", held_out, "--model", MODEL]) == 0
    drawn = terminal.getvalue()
    assert "100.0% 24/24 answers" in drawn
    assert drawn.endswith("\r")  # cleared before the table is printed
