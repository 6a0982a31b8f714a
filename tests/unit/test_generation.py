"""The generator against a scripted teacher: structured answers parsed, every example judged by
the validator's rules, refusals regenerated until the counts are met, a run resumed."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from typing import Any

import orjson
import pytest

from sft_local.emulated_generation import conversation, malformed_text
from sft_pipeline.chat_calls import RetryPolicy
from sft_pipeline.generation.acceptance import Acceptor
from sft_pipeline.generation.estimate import cap_problem, estimate_generation
from sft_pipeline.generation.generator import (
    CALL_FAILED,
    MALFORMED,
    Attempt,
    GenerationResult,
    Tally,
    generate,
    replay,
)
from sft_pipeline.generation.plan import Slot, open_slots, plan_slots
from sft_pipeline.generation.report import distinct_ngrams, diversity_report, render_report
from sft_pipeline.generation.spec import GenerationSpec, load_spec
from sft_pipeline.generation.teacher import (
    SCHEMA_NAME,
    MalformedAnswerError,
    parse_answer,
    teacher_request,
    to_example,
)
from sft_pipeline.providers.base import (
    ProviderPermanentError,
    ProviderRateLimitError,
    ProviderTransientError,
)
from sft_pipeline.validation import DataSource, ValidationOptions, validate

pytestmark = pytest.mark.unit

FAST = RetryPolicy(attempts=4, backoff_seconds=0.001, max_backoff_seconds=0.002)
SPEC = """
teacher: {model: gpt-4.1-mini}
system-prompt: You are the support assistant of Trailhead Outfitters.
topics:
  - {name: Returns, count: 12}
  - {name: Shipping, count: 8}
eval-share: 0.25
"""
TOOLS = """
turns: 2
tools:
  - type: function
    function:
      name: lookup_order
      description: Look an order up.
      parameters: {type: object, properties: {reference: {type: string}}}
"""


class Teacher:
    """Answers like the local stand-ins, with a script of failures to give first."""

    def __init__(self, script: list[str] | None = None) -> None:
        self.script = list(script or [])
        self.requests: list[dict[str, Any]] = []
        self._lock = threading.Lock()

    def __call__(self, body: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            self.requests.append(body)
            step = self.script.pop(0) if self.script else "answer"
        if step == "429":
            raise ProviderRateLimitError("rate_limit_exceeded", "slow down", retry_after=0.001)
        if step == "503":
            raise ProviderTransientError("http_503", "overloaded")
        if step == "401":
            raise ProviderPermanentError("authentication_failed", "bad key")
        prompt = "\n".join(m["content"] for m in body["messages"])
        schema = body["response_format"]["json_schema"]["schema"]
        answer = conversation(prompt, schema, "repeat" if step == "repeat" else None)
        content = malformed_text(answer) if step == "malformed" else json.dumps(answer)
        return {
            "choices": [{"message": {"role": "assistant", "content": content}}],
            "usage": {"prompt_tokens": 100, "completion_tokens": 50},
        }


def spec_of(extra: str = "") -> GenerationSpec:
    return load_spec(SPEC + extra)


def run(
    spec: GenerationSpec,
    teacher: Teacher,
    *,
    slots: list[tuple[Slot, int]] | None = None,
    acceptor: Acceptor | None = None,
    written: list[Attempt] | None = None,
    tally: Tally | None = None,
    **options: Any,
) -> GenerationResult:
    records = written if written is not None else []
    return generate(
        spec,
        slots if slots is not None else [(slot, 0) for slot in plan_slots(spec)],
        chat=teacher,
        acceptor=acceptor or Acceptor(model="gpt-4o-mini-2024-07-18"),
        record=records.append,
        tally=tally,
        retry=FAST,
        sleep=lambda _: None,
        **options,
    )


def accepted(records: list[Attempt]) -> list[Attempt]:
    return [r for r in records if r.accepted]


# ------------------------------------------------------------------ the teacher's side


def test_the_request_asks_for_the_conversation_schema_with_a_seed_per_attempt() -> None:
    spec = spec_of(TOOLS)
    slot = plan_slots(spec)[3]
    body = teacher_request(spec, slot, 0)
    assert body["response_format"]["json_schema"]["name"] == SCHEMA_NAME
    assert body["response_format"]["json_schema"]["strict"] is True
    turn = body["response_format"]["json_schema"]["schema"]["properties"]["turns"]["items"]
    assert set(turn["required"]) == set(turn["properties"]) == {"user", "tool_calls", "assistant"}
    assert turn["properties"]["tool_calls"]["items"]["properties"]["name"]["enum"] == [
        "lookup_order"
    ]
    assert "Topic: Returns" in body["messages"][1]["content"]
    assert "lookup_order" in body["messages"][0]["content"]
    assert body["seed"] != teacher_request(spec, slot, 1)["seed"]
    assert body == teacher_request(spec, slot, 0)


@pytest.mark.parametrize(
    ("content", "why"),
    [
        ("{not json", "answer: Invalid JSON"),
        ('{"turns": []}', "turns"),
        ('{"turns": [{"user": "hi", "assistant": ""}]}', "assistant"),
        (
            '{"turns": [{"user": "a", "assistant": "b"}, {"user": "c", "assistant": "d"}]}',
            "2 turns",
        ),
        ('{"turns": [{"user": "a", "assistant": "b", "mood": "x"}]}', "mood"),
    ],
)
def test_malformed_answers_are_refused_with_a_reason(content: str, why: str) -> None:
    response = {"choices": [{"message": {"content": content}}]}
    with pytest.raises(MalformedAnswerError, match=why):
        parse_answer(spec_of(), response)


def test_a_cut_off_or_empty_answer_is_malformed() -> None:
    with pytest.raises(MalformedAnswerError, match="max-tokens"):
        parse_answer(
            spec_of(), {"choices": [{"message": {"content": "{"}, "finish_reason": "length"}]}
        )
    with pytest.raises(MalformedAnswerError, match="no text"):
        parse_answer(spec_of(), {"choices": [{"message": {"content": None}}]})


def test_tool_calls_must_name_a_spec_tool_with_object_arguments() -> None:
    spec = spec_of(TOOLS.replace("turns: 2", "turns: 1"))

    def answer(name: str, arguments: str) -> dict[str, Any]:
        turn = {
            "user": "u",
            "assistant": "a",
            "tool_calls": [{"name": name, "arguments": arguments, "result": "r"}],
        }
        return {"choices": [{"message": {"content": json.dumps({"turns": [turn]})}}]}

    with pytest.raises(MalformedAnswerError, match="does not define"):
        parse_answer(spec, answer("delete_everything", "{}"))
    with pytest.raises(MalformedAnswerError, match="not a JSON object"):
        parse_answer(spec, answer("lookup_order", "[1]"))
    example = to_example(spec, parse_answer(spec, answer("lookup_order", '{"reference": "A1"}')))
    roles = [m["role"] for m in example["messages"]]
    assert roles == ["system", "user", "assistant", "tool", "assistant"]
    call = example["messages"][2]["tool_calls"][0]
    assert example["messages"][3]["tool_call_id"] == call["id"]
    assert example["tools"][0]["function"]["name"] == "lookup_order"


def test_a_fenced_json_answer_is_read() -> None:
    content = '```json\n{"turns": [{"user": "a", "assistant": "b"}]}\n```'
    parsed = parse_answer(spec_of(), {"choices": [{"message": {"content": content}}]})
    assert parsed.turns[0].assistant == "b"


# ------------------------------------------------------------------ the generator


def test_every_slot_is_filled_and_the_files_pass_the_validator(tmp_path: Any) -> None:
    spec = spec_of(TOOLS)
    written: list[Attempt] = []
    result = run(spec, Teacher(), written=written, concurrency=4)
    assert result.unfilled == [] and result.stopped is None
    made = accepted(written)
    assert len(made) == 20
    assert {(r.slot.topic, r.slot.split) for r in made} == {
        (0, "train"),
        (0, "eval"),
        (1, "train"),
        (1, "eval"),
    }
    train, held_out = tmp_path / "train.jsonl", tmp_path / "eval.jsonl"
    train.write_text("".join(f"{r.line}\n" for r in made if r.slot.split == "train"))
    held_out.write_text("".join(f"{r.line}\n" for r in made if r.slot.split == "eval"))
    report = validate(
        DataSource.from_path(train),
        ValidationOptions(model="gpt-4o-mini-2024-07-18"),
        evaluation=DataSource.from_path(held_out),
    )
    assert report.valid, report.errors
    assert report.warning_counts.get("evaluation_leakage") is None
    assert result.tally.made == 20
    assert result.tally.made_by == {"0:eval": 3, "0:train": 9, "1:eval": 2, "1:train": 6}


def test_malformed_answers_are_asked_again_and_never_written() -> None:
    written: list[Attempt] = []
    teacher = Teacher(["malformed"] * 5)
    result = run(spec_of(), teacher, written=written, concurrency=1)
    assert result.unfilled == []
    assert result.tally.refused == {MALFORMED: 5}
    assert len(accepted(written)) == 20
    assert len(teacher.requests) == 25
    assert all(orjson.loads(r.line or "") for r in accepted(written))


def test_duplicates_are_regenerated_to_reach_the_count() -> None:
    written: list[Attempt] = []
    result = run(spec_of(), Teacher(["repeat"] * 6), written=written, concurrency=1)
    refused = [r for r in written if not r.accepted]
    # The first repeated conversation is accepted; the five after it are the same one.
    assert [r.refused for r in refused] == ["exact_duplicate"] * 5
    assert len(accepted(written)) == 20 == result.tally.made
    assert len({r.line for r in accepted(written)}) == 20
    # Each refused slot was asked again with its next seed.
    assert all(r.attempt == 0 for r in refused)
    assert any(r.attempt == 1 and r.accepted for r in written)


def test_near_duplicates_and_repeated_questions_are_refused() -> None:
    acceptor = Acceptor(model="gpt-4o-mini-2024-07-18")

    def example(user: str, reply: str) -> dict[str, Any]:
        return {
            "messages": [
                {"role": "system", "content": "S"},
                {"role": "user", "content": user},
                {"role": "assistant", "content": reply},
            ]
        }

    assert acceptor.judge(example("Where is my order?", "On its way.")).accepted
    assert acceptor.judge(example("where is my ORDER", "On its way!")).refused == "near_duplicate"
    assert acceptor.judge(example("Where is my order?", "Tomorrow.")).refused == "duplicate_prompt"
    refused = acceptor.judge(example("Hi <|endoftext|>", "Hello"))
    assert refused.refused == "special_token"


def test_a_429_storm_is_waited_out() -> None:
    waits: list[float] = []
    teacher = Teacher(["429"] * 3 + ["503"] + ["429"] * 2)
    result = generate(
        spec_of(),
        [(slot, 0) for slot in plan_slots(spec_of())],
        chat=teacher,
        acceptor=Acceptor(model="gpt-4o-mini-2024-07-18"),
        record=lambda _: None,
        retry=FAST.model_copy(update={"attempts": 8}),
        sleep=waits.append,
        concurrency=1,
    )
    assert result.tally.made == 20
    assert result.tally.retries == 6
    assert len(waits) == 6
    assert result.tally.refused == {}


def test_a_storm_longer_than_the_retries_only_costs_attempts() -> None:
    result = run(spec_of(), Teacher(["429"] * 8), concurrency=1)
    assert result.tally.refused == {CALL_FAILED: 2}
    assert result.tally.made == 20


def test_a_teacher_that_refuses_every_request_stops_the_run() -> None:
    teacher = Teacher(["401"] * 100)
    result = run(spec_of(), teacher, concurrency=2)
    assert result.stopped is not None and "refused 3 requests in a row" in result.stopped
    assert result.tally.made == 0
    assert len(teacher.requests) <= 4
    assert len(result.unfilled) == 20


def test_a_slot_is_given_up_after_its_attempts() -> None:
    spec = load_spec(SPEC.replace("count: 12", "count: 1").replace("count: 8", "count: 1"))
    result = run(spec, Teacher(["malformed"] * 100), max_attempts=3, concurrency=1)
    assert result.tally.refused == {MALFORMED: 6}
    assert sorted((slot.topic, attempt) for slot, attempt in result.unfilled) == [(0, 3), (1, 3)]


def test_should_stop_ends_the_run_with_what_is_left() -> None:
    result = run(
        spec_of(),
        Teacher(),
        concurrency=1,
        should_stop=lambda tally: "deadline" if tally.made >= 5 else None,
    )
    assert result.stopped == "deadline"
    assert result.tally.made == 5
    assert len(result.unfilled) == 15


def test_a_resumed_run_makes_only_what_is_missing_and_no_duplicate() -> None:
    spec = spec_of()
    first: list[Attempt] = []
    run(
        spec,
        Teacher(["repeat"] * 3),
        written=first,
        concurrency=2,
        should_stop=lambda tally: "killed" if tally.made >= 7 else None,
    )
    acceptor, tally = Acceptor(model="gpt-4o-mini-2024-07-18"), Tally()
    kept, next_attempt = replay(acceptor, tally, first)
    filled = [r.slot for r in kept]
    assert kept == accepted(first)
    todo = [(slot, next_attempt.get(slot, 0)) for slot in open_slots(spec, filled)]
    assert len(todo) == 20 - len(filled)
    second: list[Attempt] = []
    teacher = Teacher(["repeat"])  # the repeated conversation was accepted by the first run
    result = run(spec, teacher, slots=todo, acceptor=acceptor, tally=tally, written=second)
    assert second[0].refused == "exact_duplicate" or any(
        r.refused == "exact_duplicate" for r in second
    )
    lines = [r.line for r in accepted(first) + accepted(second)]
    assert len(lines) == 20 == len(set(lines)) == result.tally.made
    assert {r.slot for r in accepted(first)}.isdisjoint({r.slot for r in accepted(second)})


def test_replaying_two_batches_refuses_the_later_copy_of_a_conversation() -> None:
    spec = spec_of()
    first: list[Attempt] = []
    second: list[Attempt] = []
    run(
        spec,
        Teacher(["repeat"]),
        written=first,
        slots=[(s, 0) for s in plan_slots(spec)[:3]],
        concurrency=1,
    )
    run(
        spec,
        Teacher(["repeat"]),
        written=second,
        slots=[(s, 0) for s in plan_slots(spec)[3:6]],
        concurrency=1,
    )
    tally = Tally()
    kept, next_attempt = replay(Acceptor(model="gpt-4o-mini-2024-07-18"), tally, first + second)
    assert len(kept) == 5
    assert tally.refused == {"exact_duplicate": 1}
    assert next_attempt == {second[0].slot: 1}


def test_the_same_spec_asks_the_same_questions_whatever_the_concurrency() -> None:
    one, many = Teacher(), Teacher()
    run(spec_of(), one, concurrency=1)
    run(spec_of(), many, concurrency=8)
    assert sorted(json.dumps(b, sort_keys=True) for b in one.requests) == sorted(
        json.dumps(b, sort_keys=True) for b in many.requests
    )


# ------------------------------------------------------------------ cost and report


def test_the_estimate_prices_the_teacher_and_the_cap_refuses_it() -> None:
    spec = spec_of()
    estimate = estimate_generation(spec, plan_slots(spec))
    assert estimate.examples == 20 and estimate.calls == 23
    assert estimate.cost_usd is not None and estimate.cost_usd > 0
    assert cap_problem(estimate, None) is None
    assert cap_problem(estimate, 100.0) is None
    assert "over the cap" in (cap_problem(estimate, estimate.cost_usd / 2) or "")
    unknown = estimate_generation(load_spec(SPEC.replace("gpt-4.1-mini", "my-own-model")), [])
    assert unknown.cost_usd is None
    assert "unknown" in (cap_problem(unknown, 1.0) or "")


def test_the_report_counts_topics_variety_refusals_and_spend() -> None:
    spec = spec_of()
    written: list[Attempt] = []
    result = run(spec, Teacher(["malformed", "repeat", "repeat"]), written=written)
    report = diversity_report(spec, result.tally, [r.line or "" for r in accepted(written)])
    assert report.complete and report.examples == 20 == report.wanted
    assert [(t.topic, t.train, t.eval) for t in report.topics] == [
        ("Returns", 9, 3),
        ("Shipping", 6, 2),
    ]
    assert report.malformed == 1 and report.duplicates == 1
    # 22 calls (one malformed, one duplicate) of 100 tokens in and 50 out, at gpt-4.1-mini's rate.
    assert report.spent_usd == pytest.approx((2200 * 0.4 + 1100 * 1.6) / 1e6)
    assert 0 < report.distinct_ngrams["distinct_1"] < report.distinct_ngrams["distinct_3"] <= 1
    assert report.tokens_per_example is not None
    text = render_report(report)
    assert "20 of 20 examples made" in text and "Returns" in text and "malformed 1" in text


def test_distinct_ngrams_fall_when_text_repeats() -> None:
    def line(text: str) -> str:
        return json.dumps({"messages": [{"role": "user", "content": text}]})

    varied = distinct_ngrams([line("one two three"), line("four five six")])
    repeated = distinct_ngrams([line("one two three"), line("one two three")])
    assert varied == {"distinct_1": 1.0, "distinct_2": 1.0, "distinct_3": 1.0}
    assert repeated == {"distinct_1": 0.5, "distinct_2": 0.5, "distinct_3": 0.5}


@pytest.fixture(autouse=True)
def _no_threads_left() -> Iterator[None]:
    before = threading.active_count()
    yield
    assert threading.active_count() <= before
