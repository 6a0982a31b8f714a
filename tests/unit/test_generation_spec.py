"""The generation spec: every mistake is named by its field, and the plan it makes."""

from __future__ import annotations

from pathlib import Path

import pytest

from sft_pipeline.generation.plan import attempt_seed, held_out, plan_slots, wanted
from sft_pipeline.generation.spec import MAX_EXAMPLES, SpecError, load_spec

pytestmark = pytest.mark.unit

SAMPLES = Path(__file__).resolve().parents[2] / "samples"
MINIMAL = """
teacher: {model: gpt-4.1-mini}
system-prompt: You are the support assistant.
topics:
  - {name: returns, count: 10}
"""


def problems(text: str) -> list[str]:
    with pytest.raises(SpecError) as raised:
        load_spec(text, "spec.yaml")
    return raised.value.problems


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (MINIMAL.replace("teacher: {model: gpt-4.1-mini}\n", ""), "teacher: required"),
        (MINIMAL.replace("model:", "modle:"), "teacher.modle: unknown field"),
        (MINIMAL + "eval-share: 0.8\n", "eval-share: Input should be less than or equal to 0.5"),
        (MINIMAL.replace("count: 10", "count: 0"), "topics[0].count: Input should be greater"),
        (
            MINIMAL.replace("count: 10", "count: 10, weight: 2"),
            "topics[0]: give either count or weight, not both",
        ),
        (
            MINIMAL + "  - {name: shipping, weight: 2}\n",
            "topics: give every topic a count, or every topic a weight",
        ),
        (
            MINIMAL.replace("count: 10", "weight: 1"),
            "total: weighted topics need the total number of examples",
        ),
        (MINIMAL + "turns: 9\n", "turns: Input should be less than or equal to 8"),
        (MINIMAL + "train: {base-modle: x}\n", "train: unknown upload metadata key(s) base-modle"),
        (
            MINIMAL + "seed-examples: [{messages: [{role: robot, content: hi}]}]\n",
            "seed-examples[0].messages[0]: Input tag 'robot'",
        ),
        (
            MINIMAL.replace("{model: gpt-4.1-mini}", "{model: x, provider: azure}"),
            "teacher.provider: unknown provider 'azure'",
        ),
        (MINIMAL + "name: Bad Name\n", "name: String should match pattern"),
        (
            MINIMAL + "  - {name: Returns, count: 1}\n",
            "topics: each topic needs its own name",
        ),
        (
            MINIMAL.replace("count: 10", f"count: {MAX_EXAMPLES}") + "  - {name: b, count: 1}\n",
            f"topics: at most {MAX_EXAMPLES:,} examples in all",
        ),
    ],
)
def test_each_mistake_is_named_by_its_field(text: str, expected: str) -> None:
    found = problems(text)
    assert any(problem.startswith(expected) for problem in found), found


def test_every_problem_is_reported_at_once() -> None:
    found = problems(MINIMAL.replace("count: 10", "count: -1") + "turns: 0\nfoo: 1\n")
    assert [p.split(":")[0] for p in found] == ["topics[0].count", "turns", "foo"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[1, 2", "line 1, column 6: not valid YAML or JSON"),
        ("- a list\n", "the spec must be a mapping"),
        ("", "the spec must be a mapping"),
    ],
)
def test_unreadable_specs_say_where(text: str, expected: str) -> None:
    assert problems(text)[0].startswith(expected)


def test_json_and_yaml_give_the_same_spec() -> None:
    as_json = (
        '{"teacher": {"model": "gpt-4.1-mini"}, "system-prompt": "You are the support '
        'assistant.", "topics": [{"name": "returns", "count": 10}]}'
    )
    assert load_spec(as_json).fingerprint() == load_spec(MINIMAL).fingerprint()
    assert load_spec(MINIMAL + "seed: 3\n").fingerprint() != load_spec(MINIMAL).fingerprint()


def test_weights_share_the_total_by_largest_remainder() -> None:
    spec = load_spec(
        MINIMAL.replace("count: 10", "weight: 1")
        + "  - {name: b, weight: 2}\n  - {name: c, weight: 1}\ntotal: 10\n"
    )
    assert spec.counts() == [3, 5, 2]


def test_upload_metadata_values_are_text() -> None:
    spec = load_spec(MINIMAL + "train: {n-epochs: 3, suffix: support, sft-seed: 7}\n")
    assert spec.train == {"n-epochs": "3", "suffix": "support", "sft-seed": "7"}


def test_the_eval_share_holds_out_part_of_each_topic_and_never_all() -> None:
    assert [held_out(n, 0.1) for n in (1, 2, 5, 10, 15)] == [0, 1, 1, 1, 2]
    assert held_out(10, 0.0) == 0
    assert held_out(2, 0.5) == 1
    spec = load_spec(MINIMAL + "eval-share: 0.2\n")
    slots = plan_slots(spec)
    assert [s.split for s in slots].count("eval") == 2
    assert wanted(spec) == {(0, "eval"): 2, (0, "train"): 8}


def test_every_attempt_has_its_own_seed_the_same_on_every_run() -> None:
    spec = load_spec(MINIMAL)
    slots = plan_slots(spec)
    seeds = {attempt_seed(spec, slot, attempt) for slot in slots for attempt in range(3)}
    assert len(seeds) == 30
    assert attempt_seed(spec, slots[0], 0) == attempt_seed(load_spec(MINIMAL), slots[0], 0)
    assert attempt_seed(load_spec(MINIMAL + "seed: 1\n"), slots[0], 0) != attempt_seed(
        spec, slots[0], 0
    )


@pytest.mark.parametrize("name", ["generate_support.yaml", "generate_tools.yaml"])
def test_the_sample_specs_are_valid(name: str) -> None:
    spec = load_spec((SAMPLES / name).read_text(), name)
    assert sum(spec.counts()) > 0
