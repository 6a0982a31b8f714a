"""Per-upload settings from S3 metadata over the stack's defaults; the poll schedule."""

from __future__ import annotations

import pytest

from sft_pipeline.evaluation.gate import GatePolicy
from sft_pipeline.jobs import (
    JobSettings,
    JobSettingsError,
    PollPolicy,
    UploadRef,
    settings_from_metadata,
)

DEFAULTS = JobSettings(base_model="gpt-4o-mini-2024-07-18", cost_cap_usd=50)


def test_metadata_overrides_defaults() -> None:
    settings = settings_from_metadata(
        {
            "base-model": "gpt-4.1-mini",
            "suffix": "support",
            "n-epochs": "3",
            "batch-size": "auto",
            "learning-rate-multiplier": "1.5",
            "seed": "7",
            "holdout-percent": "10",
            "cost-cap-usd": "20",
        },
        DEFAULTS,
    )
    assert (
        settings.base_model,
        settings.suffix,
        settings.seed,
        settings.holdout_percent,
        settings.cost_cap_usd,
    ) == ("gpt-4.1-mini", "support", 7, 10, 20.0)
    assert settings.hyperparameters.model_dump() == {
        "n_epochs": 3,
        "batch_size": "auto",
        "learning_rate_multiplier": 1.5,
    }


def test_the_sft_prefix_and_case_are_accepted() -> None:
    assert settings_from_metadata({"SFT-Suffix": "bot"}, DEFAULTS).suffix == "bot"


def test_a_zero_cost_cap_means_no_cap() -> None:
    assert settings_from_metadata({"cost-cap-usd": "0"}, DEFAULTS).cost_cap_usd is None
    assert JobSettings(base_model="m", cost_cap_usd=0).cost_cap_usd is None


@pytest.mark.parametrize(
    ("metadata", "problem"),
    [
        ({"n-epochs": "many"}, "n-epochs"),
        ({"n-epochs": "51"}, "n-epochs"),
        ({"suffix": "Has:Colon"}, "suffix"),
        ({"holdout-percent": "80"}, "holdout-percent"),
        ({"colour": "blue"}, "unknown metadata key(s) colour"),
        ({"cost-cap-usd": "inf"}, "cost-cap-usd: Input should be a finite number"),
        ({"cost-cap-usd": "Infinity"}, "cost-cap-usd: Input should be a finite number"),
        ({"cost-cap-usd": "nan"}, "cost-cap-usd: Input should be a finite number"),
        ({"cost-cap-usd": "1e300"}, "cost-cap-usd: Input should be less than or equal to 1000000"),
        ({"cost-cap-usd": "1e-320"}, "cost-cap-usd: must be 0 (no cap) or from 0.01"),
        ({"cost-cap-usd": "-1"}, "cost-cap-usd"),
        ({"learning-rate-multiplier": "1e-300"}, "learning-rate-multiplier: Input should be"),
        (
            {"learning-rate-multiplier": "-inf"},
            "learning-rate-multiplier: Input should be a finite",
        ),
        ({"learning-rate-multiplier": "NaN"}, "learning-rate-multiplier: Input should be a finite"),
        ({"validation-key": ""}, "validation-key: must be the key of an object"),
        ({"validation-key": "../x"}, "validation-key: must be the key of an object"),
        ({"validation-key": "validation/../../x"}, "validation-key: must be the key"),
        ({"validation-key": "/validation/valid.jsonl"}, "validation-key: must be the key"),
        ({"validation-key": "validation/\nvalid.jsonl"}, "validation-key: must be the key"),
        ({"validation-key": "v/" + "é" * 512}, "validation-key: must be the key"),
        (
            {"base-model": "gpt-4.1-mini", "sft-base-model": "gpt-4o-mini"},
            "base-model and sft-base-model disagree",
        ),
        ({"n-epochs": "3", "SFT-N-Epochs": "4"}, "SFT-N-Epochs and n-epochs disagree"),
        ({"eval-key": ""}, "eval-key: must be the key of an object"),
        ({"eval-key": "eval/../../x"}, "eval-key: must be the key of an object"),
        ({"eval-key": "/eval/heldout.jsonl"}, "eval-key: must be the key"),
        ({"alias": "Support-Bot"}, "alias: must be an alias name"),
        ({"alias": "ft:gpt-4o-mini:acme"}, "alias: must be an alias name"),
        ({"alias": "bot@2"}, "alias: must be an alias name"),
        ({"alias": "a" * 64}, "alias: must be an alias name"),
        (
            {"promote": "sometimes"},
            "promote: must be one of if-better, if-not-worse, always, never",
        ),
        ({"promote": ""}, "promote: must be one of"),
        ({"min-improvement": "nan"}, "min-improvement: Input should be a finite number"),
        ({"min-improvement": "inf"}, "min-improvement: Input should be a finite number"),
        ({"min-improvement": "-0.1"}, "min-improvement: Input should be greater than or equal"),
        ({"min-improvement": "1.5"}, "min-improvement: Input should be less than or equal to 1"),
        ({"min-improvement": "a lot"}, "min-improvement"),
        ({"judge-model": ""}, "judge-model"),
        ({"judge-model": "m" * 201}, "judge-model"),
        ({"few-shot-k": "21"}, "few-shot-k: Input should be less than or equal to 20"),
        ({"few-shot-k": "-1"}, "few-shot-k"),
        ({"few-shot-k": "2.5"}, "few-shot-k"),
    ],
)
def test_bad_metadata_is_explained(metadata: dict[str, str], problem: str) -> None:
    with pytest.raises(JobSettingsError) as raised:
        settings_from_metadata(metadata, DEFAULTS)
    assert problem in str(raised.value)


def test_the_same_setting_spelled_twice_with_one_value_is_fine() -> None:
    settings = settings_from_metadata(
        {"base-model": "gpt-4.1-mini", "sft-base-model": "gpt-4.1-mini"}, DEFAULTS
    )
    assert settings.base_model == "gpt-4.1-mini"


def test_finite_numbers_in_range_are_kept() -> None:
    settings = settings_from_metadata(
        {
            "cost-cap-usd": "0.01",
            "learning-rate-multiplier": "0.0001",
            "validation-key": "valid/a b.jsonl",
        },
        DEFAULTS,
    )
    assert settings.cost_cap_usd == 0.01
    assert settings.hyperparameters.learning_rate_multiplier == 0.0001
    assert settings.validation_key == "valid/a b.jsonl"


def test_the_evaluation_settings_are_read() -> None:
    settings = settings_from_metadata(
        {
            "eval-key": "eval/heldout.jsonl",
            "alias": "support-bot",
            "promote": "always",
            "min-improvement": "0.05",
            "judge-model": "gpt-4.1",
            "few-shot-k": "0",
        },
        DEFAULTS,
    )
    assert (settings.eval_key, settings.judge_model, settings.few_shot_k) == (
        "eval/heldout.jsonl",
        "gpt-4.1",
        0,
    )
    assert settings.gate_policy() == GatePolicy(
        alias="support-bot", promote="always", min_improvement=0.05
    )


def test_the_evaluation_settings_default_to_no_promotion_without_an_alias() -> None:
    assert (DEFAULTS.eval_key, DEFAULTS.judge_model, DEFAULTS.few_shot_k) == (None, None, 5)
    assert DEFAULTS.gate_policy() == GatePolicy(alias=None, promote="never", min_improvement=0)


def test_naming_an_alias_promotes_if_better_unless_told_otherwise() -> None:
    named = settings_from_metadata({"alias": "support-bot"}, DEFAULTS)
    assert named.gate_policy().promote == "if-better"
    never = settings_from_metadata({"alias": "support-bot", "promote": "never"}, DEFAULTS)
    assert never.gate_policy().promote == "never"


def test_dataset_id_and_execution_name_are_stable_per_version() -> None:
    first = UploadRef(bucket="b", key="training/a.jsonl", version_id="v1")
    assert (
        first.dataset_id
        == UploadRef(bucket="b", key="training/a.jsonl", version_id="v1").dataset_id
    )
    assert (
        first.dataset_id
        != UploadRef(bucket="b", key="training/a.jsonl", version_id="v2").dataset_id
    )
    assert first.execution_name.startswith("ft-") and len(first.execution_name) <= 80


def test_poll_waits_back_off_to_the_cap() -> None:
    policy = PollPolicy(interval_seconds=10, max_interval_seconds=40, backoff_rate=2)
    waits = [policy.next_wait(None)]
    for _ in range(4):
        waits.append(policy.next_wait(waits[-1]))
    assert waits == [10, 20, 40, 40, 40]


@pytest.mark.parametrize(("interval", "cap"), [(0, 600), (0, 0), (5, 0)])
def test_a_wait_is_never_shorter_than_a_second(interval: int, cap: int) -> None:
    """It is also the timeout of the wait for the job's end event, which cannot be 0."""
    policy = PollPolicy(interval_seconds=interval, max_interval_seconds=cap)
    assert policy.next_wait(None) == max(1, min(interval, cap)) >= 1
    assert policy.next_wait(0) >= 1
