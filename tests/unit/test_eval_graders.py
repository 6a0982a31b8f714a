"""Held-out examples and graders, on hand-made cases."""

from __future__ import annotations

import json
import random

import pytest

from sft_pipeline.evaluation.answers import Answer, EvalDataError, ToolCall, read_examples
from sft_pipeline.evaluation.graders import (
    GRADERS,
    _lcs_length,
    exact_match,
    grade,
    json_equal,
    json_valid,
    judge_messages,
    normalised_match,
    pairwise_outcome,
    parse_verdict,
    pick_graders,
    rouge_l,
    token_f1,
    tool_call_match,
)


def text(content: str | None) -> Answer:
    return Answer(content=content)


def calls(*pairs: tuple[str, str]) -> Answer:
    return Answer(tool_calls=[ToolCall(name=name, arguments=args) for name, args in pairs])


# ---------------------------------------------------------------- examples


def test_read_examples_splits_off_the_last_assistant_message() -> None:
    lines = [
        json.dumps(
            {
                "messages": [
                    {"role": "system", "content": "Be brief."},
                    {"role": "user", "content": "Hi"},
                    {"role": "assistant", "content": [{"type": "text", "text": "Hello"}]},
                ]
            }
        ),
        "",
        json.dumps(
            {
                "messages": [
                    {"role": "user", "content": "Weather in Paris?"},
                    {
                        "role": "assistant",
                        "tool_calls": [
                            {
                                "id": "c1",
                                "type": "function",
                                "function": {"name": "weather", "arguments": '{"city": "Paris"}'},
                            }
                        ],
                    },
                ],
                "tools": [{"type": "function", "function": {"name": "weather"}}],
            }
        ).encode(),
    ]
    first, second = read_examples(lines)
    assert first.line == 1
    assert [m["role"] for m in first.messages] == ["system", "user"]
    assert first.reference == text("Hello")
    assert second.line == 3  # the blank line still counts
    assert second.reference == calls(("weather", '{"city": "Paris"}'))
    assert second.tools == [{"type": "function", "function": {"name": "weather"}}]


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('{"messages": [{"role": "user", "content": "Hi"}]}', "does not end with an assistant"),
        ("not json", "not JSON"),
        ('{"prompt": "x"}', "no list of chat messages"),
        ("[1, 2]", "no list of chat messages"),
    ],
)
def test_read_examples_names_the_line_it_cannot_use(line: str, message: str) -> None:
    good = '{"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]}'
    with pytest.raises(EvalDataError) as raised:
        read_examples([good, line])
    assert raised.value.line == 2
    assert message in raised.value.message


def test_answer_from_a_chat_completion_message_and_back() -> None:
    message = {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {"id": "x", "type": "function", "function": {"name": "f", "arguments": '{"a": 1}'}}
        ],
    }
    answer = Answer.from_message(message)
    assert answer == calls(("f", '{"a": 1}'))
    assert Answer.from_message(answer.to_message()) == answer


# ---------------------------------------------------------------- graders


@pytest.mark.parametrize(
    ("answer", "reference", "exact", "normalised"),
    [
        ("Paris", "Paris", 1.0, 1.0),
        ("paris.", "Paris", 0.0, 1.0),
        ("  The   capital is\nParis!", "the capital is paris", 0.0, 1.0),
        ("Paris, France", "Paris", 0.0, 0.0),
        (None, "", 1.0, 1.0),
    ],
)
def test_exact_and_normalised_match(
    answer: str | None, reference: str, exact: float, normalised: float
) -> None:
    assert exact_match(text(answer), text(reference)) == exact
    assert normalised_match(text(answer), text(reference)) == normalised


@pytest.mark.parametrize(
    ("answer", "valid", "equal"),
    [
        ('{"b": [1, 2], "a": {"x": null}}', 1.0, 1.0),  # key order does not matter
        ('{"a": {"x": null}, "b": [2, 1]}', 1.0, 0.0),  # list order does
        ('{"a": {"x": null}, "b": [1.0, 2]}', 1.0, 1.0),  # 1 and 1.0 are one JSON number
        ('{"a": {"x": false}, "b": [1, 2]}', 1.0, 0.0),  # null is not false
        ('{"a": {"x": null}, "b": [true, 2]}', 1.0, 0.0),  # true is not 1
        ('{"a": {"x": null}, "b": [1, 2], "c": 3}', 1.0, 0.0),
        ('{"a": ', 0.0, 0.0),
        ("Sure! Here it is", 0.0, 0.0),
    ],
)
def test_json_graders(answer: str, valid: float, equal: float) -> None:
    reference = text('{"a": {"x": null}, "b": [1, 2]}')
    assert json_valid(text(answer), reference) == valid
    assert json_equal(text(answer), reference) == equal


def test_json_equal_is_zero_when_the_reference_is_not_json() -> None:
    assert json_equal(text("{}"), text("not json")) == 0.0


def test_tool_call_match() -> None:
    reference = calls(("weather", '{"city": "Paris", "unit": "C"}'), ("time", "{}"))
    assert (
        tool_call_match(
            calls(("weather", '{"unit":"C","city":"Paris"}'), ("time", "{}")), reference
        )
        == 1.0
    )
    assert (
        tool_call_match(
            calls(("time", "{}"), ("weather", '{"city": "Paris", "unit": "C"}')), reference
        )
        == 0.0
    )
    assert (
        tool_call_match(
            calls(("weather", '{"city": "Lyon", "unit": "C"}'), ("time", "{}")), reference
        )
        == 0.0
    )
    assert tool_call_match(calls(("weather", '{"city": "Paris", "unit": "C"}')), reference) == 0.0
    assert tool_call_match(calls(("weather", "{broken"), ("time", "{}")), reference) == 0.0
    assert tool_call_match(text("It is sunny in Paris."), reference) == 0.0


def test_tool_call_match_on_a_plain_reply_compares_the_text() -> None:
    assert tool_call_match(text("done."), text("Done")) == 1.0
    assert tool_call_match(text("no"), text("Done")) == 0.0
    assert tool_call_match(calls(("f", "{}")), text("Done")) == 0.0


def test_token_f1_hand_computed() -> None:
    # Tokens without articles: [cat, sat, on, mat] against [cat, sat]: P = 2/4, R = 1.
    assert token_f1(text("The cat sat on the mat."), text("a cat sat")) == pytest.approx(2 / 3)
    assert token_f1(text("Cat SAT"), text("cat, sat!")) == 1.0
    assert token_f1(text("dog"), text("cat")) == 0.0
    assert token_f1(text(""), text("")) == 1.0
    assert token_f1(text("the"), text("cat")) == 0.0


def test_rouge_l_hand_computed() -> None:
    # LCS of [police, killed, gunman] and [police, kill, gunman] is 2 of 3 each way.
    assert rouge_l(
        text("police killed the gunman"), text("police kill the gunman")
    ) == pytest.approx(2 / 3)
    # Order matters to ROUGE-L and not to F1: [d, c] against [c, d] shares one in order.
    assert rouge_l(text("d c"), text("c d")) == pytest.approx(0.5)
    assert token_f1(text("d c"), text("c d")) == 1.0
    assert rouge_l(text("x"), text("y")) == 0.0
    assert rouge_l(text(""), text("")) == 1.0


def test_bit_parallel_lcs_agrees_with_the_quadratic_table() -> None:
    def table(first: list[str], second: list[str]) -> int:
        rows = [[0] * (len(second) + 1) for _ in range(len(first) + 1)]
        for i, a in enumerate(first):
            for j, b in enumerate(second):
                rows[i + 1][j + 1] = (
                    rows[i][j] + 1 if a == b else max(rows[i][j + 1], rows[i + 1][j])
                )
        return rows[-1][-1]

    rng = random.Random(7)
    for _ in range(500):
        first = [rng.choice("abcd") for _ in range(rng.randint(0, 15))]
        second = [rng.choice("abcd") for _ in range(rng.randint(0, 15))]
        assert _lcs_length(first, second) == table(first, second)


def test_every_grader_scores_within_zero_and_one() -> None:
    answers = [text("Paris"), text('{"a": 1}'), text(None), calls(("f", "{}")), text("a b c d e")]
    for grader in GRADERS.values():
        for answer in answers:
            for reference in answers:
                assert 0.0 <= grader(answer, reference) <= 1.0


def test_grade_names_every_grader_and_refuses_an_unknown_one() -> None:
    assert grade(text("Paris"), text("paris"), ["exact_match", "normalised_match"]) == {
        "exact_match": 0.0,
        "normalised_match": 1.0,
    }
    with pytest.raises(KeyError):
        grade(text("a"), text("a"), ["bleu"])


@pytest.mark.parametrize(
    ("references", "expected"),
    [
        ([text("a"), calls(("f", "{}"))], ["tool_call_match"]),
        ([text('{"label": "spam"}'), text("[1, 2]")], ["json_equal", "json_valid"]),
        ([text("positive"), text("negative"), text("42")], ["exact_match", "normalised_match"]),
        ([text('{"a": 1}'), text("yes")], ["exact_match", "normalised_match"]),
        (
            [text("You can reset your password from the account page, under Security.")] * 3,
            ["token_f1", "rouge_l", "normalised_match"],
        ),
        ([], ["token_f1", "rouge_l", "normalised_match"]),
    ],
)
def test_pick_graders_from_the_references(references: list[Answer], expected: list[str]) -> None:
    assert pick_graders(references) == expected


# ---------------------------------------------------------------- the judge


def test_judge_messages_show_both_answers_and_the_reference() -> None:
    messages = judge_messages(
        [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Capital of France?"},
        ],
        text("Paris"),
        text("It is Paris."),
        calls(("lookup", '{"q": "France"}')),
    )
    assert [m["role"] for m in messages] == ["system", "user"]
    assert '{"winner": "A"}' in messages[0]["content"]
    question = messages[1]["content"]
    assert "user: Capital of France?" in question
    assert "<reference>\nParis\n</reference>" in question
    assert "<answer_a>\nIt is Paris.\n</answer_a>" in question
    assert '[calls lookup({"q": "France"})]' in question.split("<answer_b>")[1]


@pytest.mark.parametrize(
    ("reply", "verdict"),
    [
        ('{"winner": "A"}', "A"),
        ('```json\n{"winner": "b"}\n```', "B"),
        ('I think {"winner": "Tie"} because both are right.', "tie"),
        ("B", "B"),
        ("tie.", "tie"),
        ('{"winner": "C"}', None),
        ("Both answers are fine.", None),
        ("", None),
    ],
)
def test_parse_verdict(reply: str, verdict: str | None) -> None:
    assert parse_verdict(reply) == verdict


def test_pairwise_outcome_cancels_position_bias() -> None:
    # The candidate is A in the first question and B in the second.
    assert pairwise_outcome("A", "B") == 1.0
    assert pairwise_outcome("B", "A") == 0.0
    assert pairwise_outcome("A", "A") == 0.5  # a judge that always picks the first answer
    assert pairwise_outcome("B", "B") == 0.5
    assert pairwise_outcome("tie", "B") == 0.5
    assert pairwise_outcome(None, "B") == 0.5
