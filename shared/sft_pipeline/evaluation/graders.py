"""Graders: each scores an answer against the reference in [0, 1], a small pure function.

:func:`pick_graders` chooses them from the references; the first is the primary score the
statistics and the gate use. The optional judge asks a model which of two answers is
better, twice with the positions swapped, so a judge that prefers a position cancels out.
"""

from __future__ import annotations

import re
import statistics
import string
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any, Literal

import orjson

from sft_pipeline.evaluation.answers import Answer

Verdict = Literal["A", "B", "tie"]

_PUNCTUATION = string.punctuation + "\u201c\u201d\u2018\u2019\u2026"
_ARTICLES = {"a", "an", "the"}
_TOKEN = re.compile(r"\w+")
# Answers this short are labels or short facts: whole-answer matches grade them best.
SHORT_ANSWER_TOKENS = 5


def _text(answer: Answer) -> str:
    return answer.content or ""


def normalise(text: str) -> str:
    """Case folded, whitespace collapsed, surrounding punctuation stripped."""
    return " ".join(text.casefold().split()).strip(_PUNCTUATION + " ")


def tokens(text: str) -> list[str]:
    """SQuAD-style tokens: case folded words, punctuation and articles dropped."""
    return [word for word in _TOKEN.findall(text.casefold()) if word not in _ARTICLES]


def _parse_json(text: str | None) -> tuple[bool, Any]:
    if text is None:
        return False, None
    try:
        return True, orjson.loads(text)
    except orjson.JSONDecodeError:
        return False, None


def _same_json(first: Any, second: Any) -> bool:
    """JSON equality: objects ignore key order, 1 equals 1.0, but true is not 1."""
    if isinstance(first, bool) or isinstance(second, bool):
        return first is second
    if isinstance(first, int | float) and isinstance(second, int | float):
        return first == second
    if isinstance(first, dict) and isinstance(second, dict):
        return first.keys() == second.keys() and all(_same_json(first[k], second[k]) for k in first)
    if isinstance(first, list) and isinstance(second, list):
        return len(first) == len(second) and all(map(_same_json, first, second))
    return type(first) is type(second) and bool(first == second)


def exact_match(answer: Answer, reference: Answer) -> float:
    return float(_text(answer) == _text(reference))


def normalised_match(answer: Answer, reference: Answer) -> float:
    return float(normalise(_text(answer)) == normalise(_text(reference)))


def json_valid(answer: Answer, reference: Answer) -> float:
    return float(_parse_json(answer.content)[0])


def json_equal(answer: Answer, reference: Answer) -> float:
    parsed, value = _parse_json(answer.content)
    expected_parsed, expected = _parse_json(reference.content)
    return float(parsed and expected_parsed and _same_json(value, expected))


def tool_call_match(answer: Answer, reference: Answer) -> float:
    """1 when the same functions are called in order with equal argument objects.

    A reference that calls no tool is matched by an answer that calls none and says the
    same (normalised), so a file mixing tool calls and plain replies grades both.
    """
    if not reference.tool_calls:
        return 0.0 if answer.tool_calls else normalised_match(answer, reference)
    if len(answer.tool_calls) != len(reference.tool_calls):
        return 0.0
    for call, expected in zip(answer.tool_calls, reference.tool_calls, strict=True):
        parsed, arguments = _parse_json(call.arguments)
        expected_parsed, expected_arguments = _parse_json(expected.arguments)
        if call.name != expected.name or not (parsed and expected_parsed):
            return 0.0
        if not _same_json(arguments, expected_arguments):
            return 0.0
    return 1.0


def token_f1(answer: Answer, reference: Answer) -> float:
    """SQuAD's F1 over tokens; two empty answers agree."""
    predicted, expected = tokens(_text(answer)), tokens(_text(reference))
    if not predicted or not expected:
        return float(predicted == expected)
    common = sum((Counter(predicted) & Counter(expected)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(predicted), common / len(expected)
    return 2 * precision * recall / (precision + recall)


def _lcs_length(first: Sequence[str], second: Sequence[str]) -> int:
    """Longest common subsequence, bit-parallel (Hyyroe 2004): one big-integer step per
    token of ``second`` instead of a row of the quadratic table."""
    masks: dict[str, int] = {}
    for position, token in enumerate(first):
        masks[token] = masks.get(token, 0) | (1 << position)
    full = (1 << len(first)) - 1
    row = full
    for token in second:
        matches = row & masks.get(token, 0)
        row = ((row + matches) | (row - matches)) & full
    return len(first) - row.bit_count()


def rouge_l(answer: Answer, reference: Answer) -> float:
    """ROUGE-L F-measure (precision and recall weighted equally) over tokens."""
    predicted, expected = tokens(_text(answer)), tokens(_text(reference))
    if not predicted or not expected:
        return float(predicted == expected)
    common = _lcs_length(expected, predicted)
    if common == 0:
        return 0.0
    precision, recall = common / len(predicted), common / len(expected)
    return 2 * precision * recall / (precision + recall)


Grader = Callable[[Answer, Answer], float]

GRADERS: dict[str, Grader] = {
    "exact_match": exact_match,
    "normalised_match": normalised_match,
    "json_valid": json_valid,
    "json_equal": json_equal,
    "tool_call_match": tool_call_match,
    "token_f1": token_f1,
    "rouge_l": rouge_l,
}


def pick_graders(references: Sequence[Answer]) -> list[str]:
    """The graders the references call for; the first is the primary score."""
    if any(reference.tool_calls for reference in references):
        return ["tool_call_match"]
    parsed = [_parse_json(reference.content) for reference in references]
    # Objects and arrays only: a bare "42" or "true" is a short answer, not structured output.
    if parsed and all(ok and isinstance(value, dict | list) for ok, value in parsed):
        return ["json_equal", "json_valid"]
    lengths = [len(tokens(_text(reference))) for reference in references]
    if lengths and statistics.median(lengths) <= SHORT_ANSWER_TOKENS:
        return ["exact_match", "normalised_match"]
    return ["token_f1", "rouge_l", "normalised_match"]


def grade(answer: Answer, reference: Answer, graders: Sequence[str]) -> dict[str, float]:
    """Every named grader's score; an unknown name raises KeyError."""
    return {name: GRADERS[name](answer, reference) for name in graders}


# ---------------------------------------------------------------- the pairwise judge

JUDGE_INSTRUCTIONS = (
    "You compare two answers to the same conversation. Judge which answer is better: "
    "correct, complete and consistent with the reference answer, which is known to be "
    "good. Ignore the order in which the answers are shown and their length. Reply with "
    'only a JSON object: {"winner": "A"}, {"winner": "B"} or {"winner": "tie"}.'
)


def _render_answer(answer: Answer) -> str:
    parts = [answer.content] if answer.content else []
    parts += [f"[calls {call.name}({call.arguments})]" for call in answer.tool_calls]
    return "\n".join(parts) or "(empty answer)"


def _render_conversation(messages: Sequence[dict[str, Any]]) -> str:
    lines = []
    for message in messages:
        text = Answer.from_message(message)
        lines.append(f"{message.get('role', 'user')}: {_render_answer(text)}")
    return "\n".join(lines)


def judge_messages(
    prompt_messages: list[dict[str, Any]], reference: Answer, first: Answer, second: Answer
) -> list[dict[str, Any]]:
    """A chat request asking the judge whether answer A (``first``) or B is better."""
    question = (
        f"<conversation>\n{_render_conversation(prompt_messages)}\n</conversation>\n\n"
        f"<reference>\n{_render_answer(reference)}\n</reference>\n\n"
        f"<answer_a>\n{_render_answer(first)}\n</answer_a>\n\n"
        f"<answer_b>\n{_render_answer(second)}\n</answer_b>"
    )
    return [
        {"role": "system", "content": JUDGE_INSTRUCTIONS},
        {"role": "user", "content": question},
    ]


_VERDICTS: dict[str, Verdict] = {"a": "A", "b": "B", "tie": "tie"}
_OBJECT = re.compile(r"\{[^{}]*\}")


def parse_verdict(text: str) -> Verdict | None:
    """The judge's verdict from its reply (a JSON object, possibly fenced or surrounded
    by prose, or a bare A / B / tie); None when the reply names none."""
    for candidate in _OBJECT.findall(text):
        ok, value = _parse_json(candidate)
        if ok and isinstance(value, dict) and isinstance(value.get("winner"), str):
            return _VERDICTS.get(value["winner"].strip().casefold())
    return _VERDICTS.get(normalise(text))


def pairwise_outcome(verdict_ab: Verdict | None, verdict_ba: Verdict | None) -> float:
    """The candidate's score from two verdicts: first shown as A, then as B.

    A consistent win is 1, a consistent loss 0; a tie, a disagreement between the two
    orders (position bias) or a missing verdict is 0.5.
    """
    if verdict_ab == "A" and verdict_ba == "B":
        return 1.0
    if verdict_ab == "B" and verdict_ba == "A":
        return 0.0
    return 0.5
