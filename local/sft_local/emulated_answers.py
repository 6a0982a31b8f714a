"""How the local stand-ins' models answer, so that an evaluation can tell a fine-tune from its base.

An emulated fine-tune remembers its training examples: the text of each
example's user turns and the reply of its last assistant message. Asked a
conversation, it answers with the reply of the example whose user turns are
most similar to the conversation's: TF-IDF cosine over lower-cased words, ties
going to the earlier line. A degraded fine-tune answers a share of the prompts
(chosen by a hash of the prompt, so the same ones every time) from the wrong
example, half the training set away from the right one. A base model, or a
fine-tune with nothing it could learn from, answers generically: one sentence
that names the question and copies no training reply. Shown answered questions
earlier in the conversation (a few-shot prompt), a base model answers the way
the closest of them was answered when it is close enough (a cosine of at least
``IN_CONTEXT_SIMILARITY``), so a few-shot prompt helps where its examples match.

Tokens are counted as one per four characters, at least one per text. Chat
answers take ``DEFAULT_CHAT_LATENCY`` seconds unless the stand-in is told
otherwise, so that concurrency is measurable against them.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from itertools import pairwise
from typing import Generic, TypeVar

CHARS_PER_TOKEN = 4
DEFAULT_CHAT_LATENCY = 0.1
GENERIC_SNIPPET_WORDS = 8
IN_CONTEXT_SIMILARITY = 0.5
WORD = re.compile(r"\w+")

Reply = TypeVar("Reply")


def approximate_tokens(text: str) -> int:
    return max(1, math.ceil(len(text) / CHARS_PER_TOKEN))


def generic_reply(question: str) -> str:
    """A base model's answer: plausible, the same shape for every question."""
    words = question.split()
    snippet = " ".join(words[:GENERIC_SNIPPET_WORDS]) + (
        "..." if len(words) > GENERIC_SNIPPET_WORDS else ""
    )
    return (
        f'Thanks for your question about "{snippet}". I can only give general guidance here: '
        "please share a few more details so I can help."
    )


def in_context_reply(turns: Sequence[tuple[str, str]]) -> str | None:
    """A base model's answer to the last of ``turns`` (role, text) when an earlier user turn
    that an assistant turn answered is close to it: that answer; None when none is."""
    if not turns or turns[-1][0] != "user":
        return None
    shown = [
        (question, answer)
        for (role, question), (next_role, answer) in pairwise(turns)
        if role == "user" and next_role == "assistant" and answer
    ]
    return ExampleMemory(shown).recall(turns[-1][1], at_least=IN_CONTEXT_SIMILARITY)


def _words(text: str) -> list[str]:
    return WORD.findall(text.lower())


def _share(prompt: str) -> float:
    """Where ``prompt`` falls in [0, 1), the same on every run."""
    digest = hashlib.sha256(prompt.encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


class ExampleMemory(Generic[Reply]):
    """The training examples of one fine-tune, as (user turns' text, reply), in line order."""

    def __init__(self, examples: Iterable[tuple[str, Reply]]) -> None:
        prompts: list[Counter[str]] = []
        self._replies: list[Reply] = []
        for prompt, reply in examples:
            prompts.append(Counter(_words(prompt)))
            self._replies.append(reply)
        document_frequency = Counter(word for counts in prompts for word in counts)
        total = len(prompts)
        # Smoothed inverse document frequency: words every example shares still count a little.
        self._idf = {
            word: math.log((1 + total) / (1 + frequency)) + 1
            for word, frequency in document_frequency.items()
        }
        # word -> (example index, weight) for each example holding it, weights unit-normalised.
        self._postings: dict[str, list[tuple[int, float]]] = {}
        for index, counts in enumerate(prompts):
            for word, weight in self._unit_vector(counts).items():
                self._postings.setdefault(word, []).append((index, weight))

    def __len__(self) -> int:
        return len(self._replies)

    def recall(
        self, prompt: str, *, degradation: float = 0.0, at_least: float = 0.0
    ) -> Reply | None:
        """The reply to ``prompt``; None when there are no examples, or when none is at least
        ``at_least`` similar to it (0: the closest always answers).

        ``degradation`` is the share of prompts answered from the wrong example.
        """
        if not self._replies:
            return None
        scores: dict[int, float] = {}
        for word, weight in self._unit_vector(Counter(_words(prompt))).items():
            for index, example_weight in self._postings.get(word, ()):
                scores[index] = scores.get(index, 0.0) + weight * example_weight
        best = min(scores, key=lambda index: (-scores[index], index), default=0)
        if scores.get(best, 0.0) < at_least:
            return None
        if degradation > 0 and _share(prompt) < degradation:
            best = (best + max(1, len(self._replies) // 2)) % len(self._replies)
        return self._replies[best]

    def _unit_vector(self, counts: Counter[str]) -> dict[str, float]:
        weights = {
            word: count * self._idf[word] for word, count in counts.items() if word in self._idf
        }
        norm = math.sqrt(sum(weight * weight for weight in weights.values()))
        return {word: weight / norm for word, weight in weights.items()} if norm else {}
