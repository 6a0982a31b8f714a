"""`make demo` runs the whole pipeline locally and shows what a user would see."""

from __future__ import annotations

import re

import pytest

from sft_local import demo


def test_demo_trains_registers_and_notifies(capsys: pytest.CaptureFixture[str]) -> None:
    assert demo.run() == 0
    out = capsys.readouterr().out
    model_id = re.search(r"Fine-tuned model: (ft:\S+)", out)
    assert model_id, out
    assert "2. Validation: valid: 62 examples" in out
    # The poll loop samples the job: the first and the last status are always seen.
    assert ": validating_files" in out and ": succeeded" in out
    assert f'"model_id": "{model_id.group(1)}"' in out  # the registry record
    assert "Fine-tune succeeded" in out  # the email
    assert '"blocks"' in out  # the Slack message
    assert "-> rejected (invalid_training_file)" in out
    # The evaluation: registered first, then the gate promotes the alias with the numbers,
    # and the score table reaches the email; a worse second fine-tune keeps the alias.
    assert re.search(r"gate: promoted support-bot to v1: \+\d\.\d\d over the base model", out)
    scores: dict[str, float] = {}
    for name, score in re.findall(r"^ +(candidate|base|few_shot) +\S+ +(\d\.\d{3}) ", out, re.M):
        scores.setdefault(name, float(score))
    # The first upload's table: the few-shot prompt helps where its examples match, the
    # fine-tune, which saw every example, does best.
    assert scores["candidate"] > scores["few_shot"] > scores["base"], scores
    assert re.search(r"candidate +ft:\S+ +\d\.\d{3} +\d\.\d{3} to \d\.\d{3} +-", out)
    assert re.search(r"gate: kept support-bot at v1: -\d\.\d\d over v1", out)
    assert re.search(r"champion +ft:\S+ +\d\.\d{3}", out)
    assert "alias support-bot (version 1)" in out
    # The fine-tune answers with the reply of the training example most like the question.
    assert "assistant: The Summit 2 tent is covered by our 2-year warranty" in out
    assert re.search(r"inference key \(chat completions, models\): *sk-sft-", out)
    assert re.search(r"admin key \(also jobs, cancel, aliases\): *sk-sft-", out)
