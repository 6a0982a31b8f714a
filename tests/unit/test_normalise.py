"""The near-duplicate normaliser: exactly the reference regex's result, on any text."""

# Non-ASCII punctuation is what these tests are about.
# ruff: noqa: RUF001

from __future__ import annotations

import re
from unittest import mock

from hypothesis import given
from hypothesis import strategies as st

from sft_pipeline.validation import normalise as normalise_module
from sft_pipeline.validation.normalise import normalise

_NOT_WORD = re.compile(r"[\W_]+")


def reference(text: str) -> str:
    """The definition: words case-folded, every run of other characters one space."""
    return _NOT_WORD.sub(" ", text.casefold()).strip()


# Characters where a shortcut could go wrong: ASCII separators and the underscore, Unicode
# spaces and line breaks, letters whose case folding changes length or adds a combining
# mark (ß, İ, ﬁ), final sigma, combining marks, digits of other scripts, curly quotes,
# dashes, CJK punctuation, emoji with a variation selector.
TRICKY = list(
    "aZz09_ -,.!'\"\n\r\t\x0b\x0c\x1c\x1f\x85\xa0\u2028\u3000"
    "’“”—–…«»·éÉßẞİıΣσςﬁ\u0301\u0307ЖжЁёあア中文，。、！？٣５"
    "🙂❤\ufe0f👍🏽"
)
TEXT = st.text(
    alphabet=st.one_of(st.sampled_from(TRICKY), st.characters(codec="utf-8")), max_size=400
)
# Mostly one script, so each of the normaliser's paths is taken.
SCRIPT_TEXT = st.sampled_from(
    [
        "The refund of $12.50 — approved; it’s on its way!",
        "Je suis désolé : la commande « ORD-1 » a été expédiée.",
        "Приносим извинения. Заказ №42 отправлен — ждите.",
        "非常抱歉给您带来不便。订单ORD-1234567已发货！",
        "ご注文は発送済みです。",
        "Ünïcödé_snake_case and CamelCase 🙂🙂",
    ]
).flatmap(lambda base: st.lists(st.sampled_from([base, "\n", " ", "", base.upper()])))


@given(TEXT)
def test_normalise_is_the_reference_on_any_text(text: str) -> None:
    assert normalise(text) == reference(text)


@given(SCRIPT_TEXT)
def test_normalise_is_the_reference_in_every_script(pieces: list[str]) -> None:
    text = "".join(pieces)
    assert normalise(text) == reference(text)


@given(st.one_of(TEXT, SCRIPT_TEXT.map("".join)))
def test_long_lines_cut_in_slices_are_the_reference(text: str) -> None:
    # Tiny bounds send every line through the uncached and the slice-by-slice paths.
    with (
        mock.patch.object(normalise_module, "SLICE_CHARS", 7),
        mock.patch.object(normalise_module, "CACHED_LINE_CHARS", 3),
    ):
        assert normalise(text) == reference(text)


def test_huge_lines_of_any_shape_are_the_reference() -> None:
    words = "Élan vital, naïve café — 東京 🙂 über_alles\t" * 20_000
    for text in ("a" * 300_000, words, words.replace(" ", ""), "," * 200_000 + "x"):
        assert normalise(text) == reference(text)


def test_long_lines_are_not_cached() -> None:
    cached = normalise_module._cached_line
    before = cached.cache_info().currsize
    normalise("é" * (normalise_module.CACHED_LINE_CHARS + 1))
    normalise("word " * normalise_module.SLICE_CHARS)
    assert cached.cache_info().currsize == before
