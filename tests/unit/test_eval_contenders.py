"""Contenders' requests and the few-shot examples drawn from the training file."""

from __future__ import annotations

from sft_pipeline.evaluation.answers import Answer, EvalExample, ToolCall
from sft_pipeline.evaluation.contenders import (
    Contender,
    chat_request,
    few_shot_budget,
    few_shot_examples,
    request_messages,
)

SYSTEM = {"role": "system", "content": "You are the support bot."}


def example(line: int, question: str, answer: str, *, system: str = "Train prompt") -> EvalExample:
    return EvalExample(
        line=line,
        messages=[{"role": "system", "content": system}, {"role": "user", "content": question}],
        reference=Answer(content=answer),
    )


def words(text: str) -> int:
    return len(text.split())


TRAINING = [example(i, f"question {i}", f"answer {i}") for i in range(1, 21)]
HELD_OUT = EvalExample(
    line=1,
    messages=[SYSTEM, {"role": "user", "content": "How do I reset my password?"}],
    reference=Answer(content="From the account page."),
)


def test_few_shot_examples_are_deterministic_by_seed() -> None:
    first = few_shot_examples(TRAINING, k=5, seed=11, max_tokens=1000, count_tokens=words)
    assert len(first) == 5
    assert first == few_shot_examples(TRAINING, k=5, seed=11, max_tokens=1000, count_tokens=words)
    assert first != few_shot_examples(TRAINING, k=5, seed=12, max_tokens=1000, count_tokens=words)
    assert len({shot.line for shot in first}) == 5


def test_few_shot_examples_fit_the_token_budget_dropping_the_longest() -> None:
    long = example(99, "word " * 50, "reply " * 50)
    training = [*TRAINING[:4], long]
    # Each short example is 4 words (its question and answer); the long one is 100.
    chosen = few_shot_examples(training, k=5, seed=0, max_tokens=20, count_tokens=words)
    assert sorted(shot.line for shot in chosen) == [1, 2, 3, 4]
    assert few_shot_examples(training, k=5, seed=0, max_tokens=9, count_tokens=words).__len__() == 2
    assert few_shot_examples(training, k=5, seed=0, max_tokens=3, count_tokens=words) == []


def test_few_shot_examples_skip_tool_conversations() -> None:
    tool_call = EvalExample(
        line=50,
        messages=[{"role": "user", "content": "weather?"}],
        reference=Answer(tool_calls=[ToolCall(name="weather", arguments="{}")]),
    )
    tool_answer = EvalExample(
        line=51,
        messages=[
            {"role": "user", "content": "weather?"},
            {
                "role": "assistant",
                "tool_calls": [
                    {"id": "c", "type": "function", "function": {"name": "w", "arguments": "{}"}}
                ],
            },
            {"role": "tool", "tool_call_id": "c", "content": "sunny"},
        ],
        reference=Answer(content="Sunny."),
    )
    chosen = few_shot_examples(
        [tool_call, tool_answer, TRAINING[0]], k=5, seed=0, max_tokens=100, count_tokens=words
    )
    assert [shot.line for shot in chosen] == [1]


def test_zero_shot_sends_the_example_as_is() -> None:
    base = Contender(name="base", model="gpt-4o-mini")
    assert request_messages(base, HELD_OUT) == HELD_OUT.messages


def test_few_shot_turns_follow_the_same_system_prompt() -> None:
    shots = [example(3, "q3", "a3"), example(7, "q7", "a7")]
    few_shot = Contender(name="few_shot", model="gpt-4o-mini", few_shot=shots)
    assert request_messages(few_shot, HELD_OUT) == [
        SYSTEM,
        {"role": "user", "content": "q3"},
        {"role": "assistant", "content": "a3"},
        {"role": "user", "content": "q7"},
        {"role": "assistant", "content": "a7"},
        {"role": "user", "content": "How do I reset my password?"},
    ]


def test_chat_request_at_temperature_zero_with_the_examples_tools() -> None:
    tools = [{"type": "function", "function": {"name": "reset_password"}}]
    with_tools = HELD_OUT.model_copy(update={"tools": tools})
    candidate = Contender(name="candidate", model="ft:gpt-4o-mini-2024-07-18:acme::abc")
    body = chat_request(candidate, with_tools, max_tokens=256)
    assert body == {
        "model": "ft:gpt-4o-mini-2024-07-18:acme::abc",
        "messages": HELD_OUT.messages,
        "temperature": 0,
        "max_tokens": 256,
        "tools": tools,
    }
    assert "tools" not in chat_request(candidate, HELD_OUT)


def test_the_few_shot_budget_leaves_half_a_small_models_limit_for_the_conversation() -> None:
    assert few_shot_budget(65_536) == 8_000
    assert few_shot_budget(4_096) == 2_048
    assert few_shot_budget(None) == 8_000
