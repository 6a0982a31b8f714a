"""The model card: a self-contained HTML page with inline SVG charts, and its Markdown."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from html import escape
from xml.etree import ElementTree

from sft_pipeline.evaluation.answers import Answer, EvalExample, ToolCall
from sft_pipeline.evaluation.gate import GatePolicy
from sft_pipeline.evaluation.report_html import (
    FileLineage,
    LossPoint,
    ModelFacts,
    SideBySide,
    loss_chart_svg,
    report_html,
    report_markdown,
    score_chart_svg,
    side_by_side,
)
from sft_pipeline.evaluation.summary import EvaluationSummary, summarise

HOSTILE = '<script>alert("x")</script><img src="https://evil.example/x.png">'
SVG = "{http://www.w3.org/2000/svg}"


def summary(policy: GatePolicy | None = None) -> EvaluationSummary:
    candidate = [1.0] * 8 + [0.0] * 2
    base = [0.0] * 8 + [1.0] * 2
    return summarise(
        {
            "candidate": [{"exact_match": score} for score in candidate],
            "base": [{"exact_match": score} for score in base],
        },
        graders=["exact_match"],
        seed=3,
        latencies_ms={"candidate": [100.0, 120.0], "base": [90.0]},
        tokens={"candidate": (1200, 80), "base": (1100, 90)},
        costs={"candidate": 0.0012, "base": None},
        models={"candidate": "ft:gpt-4o-mini:org::abc", "base": "gpt-4o-mini"},
        policy=policy or GatePolicy(alias="support-bot"),
    )


def facts(**changes: object) -> ModelFacts:
    base = ModelFacts(
        model="ft:gpt-4o-mini:org::abc",
        base_model="gpt-4o-mini-2024-07-18",
        provider="openai",
        job_id="ftjob-1",
        created_at=datetime(2026, 11, 2, 9, 30, tzinfo=UTC),
        hyperparameters={"n_epochs": 3, "batch_size": None, "learning_rate_multiplier": 1.8},
        lineage=[
            FileLineage(
                role="training",
                bucket="sft-uploads",
                key="training/support.jsonl",
                version="v1",
                sha256="ab" * 32,
            )
        ],
        loss_curve=[
            LossPoint(step=1, train_loss=2.0, valid_loss=2.2),
            LossPoint(step=2, train_loss=1.0),
            LossPoint(step=3, train_loss=0.5, valid_loss=0.9),
        ],
        examples=[
            SideBySide(
                line=4,
                prompt="Where is | my order?",
                reference="It ships today.",
                answers={"candidate": HOSTILE, "base": "I don't know."},
            )
        ],
    )
    return base.model_copy(update=changes)


def svg_elements(page: str) -> dict[str, ElementTree.Element]:
    charts = re.findall(r"<svg .*?</svg>", page, flags=re.DOTALL)
    parsed = [ElementTree.fromstring(chart) for chart in charts]
    return {element.attrib["id"]: element for element in parsed}


def test_the_page_loads_nothing_from_anywhere_and_escapes_every_text() -> None:
    page = report_html(summary(), facts())
    assert page.startswith("<!DOCTYPE html>")
    assert "<script" not in page.lower()
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", page, flags=re.I)
    assert not re.search(r"@import|url\(|<link|<img|<iframe", page, flags=re.I)
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in page
    assert "Where is | my order?" in page


def test_the_page_shows_the_facts_lineage_decision_and_examples() -> None:
    result = summary()
    page = report_html(result, facts())
    assert result.decision is not None
    assert f'<p class="decision">{escape(result.decision.reason)}</p>' in page
    for text in (
        "Model card: ft:gpt-4o-mini:org::abc",
        "gpt-4o-mini-2024-07-18",
        "ftjob-1",
        "2026-11-02T09:30:00+00:00",
        "Hyperparameter n_epochs",
        "Hyperparameter learning_rate_multiplier",
        "sft-uploads",
        "training/support.jsonl",
        "ab" * 32,
        "10 held-out examples",
        "1,200/80",
        "0.0012",
        "unknown",  # the base model's cost: not priced, never shown as zero
        "I don&#x27;t know.",
    ):
        assert text in page, text
    # A hyperparameter left to the provider is not shown as "None".
    assert "Hyperparameter batch_size" not in page


def test_the_score_chart_draws_each_mean_as_a_bar_and_its_interval_as_a_whisker() -> None:
    result = summary()
    chart = ElementTree.fromstring(score_chart_svg(result))
    groups = chart.findall(f"{SVG}g")
    assert len(groups) == len(result.contenders) == 2
    for group, contender in zip(groups, result.contenders, strict=True):
        bar = group.find(f"{SVG}rect")
        assert bar is not None
        # 420 pixels stand for a score of 1.
        assert float(bar.attrib["width"]) == round(420 * contender.score.mean, 1)
        whisker = group.findall(f"{SVG}line")[0]
        assert float(whisker.attrib["x1"]) == round(150 + 420 * contender.score.low, 1)
        assert float(whisker.attrib["x2"]) == round(150 + 420 * contender.score.high, 1)


def test_the_loss_chart_draws_one_line_per_series_and_skips_missing_points() -> None:
    chart = ElementTree.fromstring(loss_chart_svg(facts().loss_curve))
    lines = {
        line.attrib["class"]: line.attrib["points"].split() for line in chart.iter(f"{SVG}polyline")
    }
    assert set(lines) == {"loss train", "loss valid"}
    assert len(lines["loss train"]) == 3
    assert len(lines["loss valid"]) == 2  # step 2 has no validation loss
    # Steps 1..3 span the plot's width; the highest loss is at the top.
    first_x, first_y = map(float, lines["loss valid"][0].split(","))
    assert (first_x, first_y) == (56.0, 16.0)


def test_a_single_loss_point_is_drawn_as_a_dot() -> None:
    chart = ElementTree.fromstring(loss_chart_svg([LossPoint(step=5, train_loss=1.5)]))
    assert len(list(chart.iter(f"{SVG}circle"))) == 1


def test_a_card_without_evaluation_or_loss_curve_says_so() -> None:
    page = report_html(
        None, facts(loss_curve=[], evaluation_note="No held-out set: not evaluated.")
    )
    assert "No held-out set: not evaluated." in page
    assert "The provider reported no loss curve." in page
    assert svg_elements(page) == {}
    with_both = svg_elements(report_html(summary(), facts()))
    assert set(with_both) == {"score-chart", "loss-chart"}


def test_the_markdown_card_has_the_tables_and_keeps_the_data_from_breaking_them() -> None:
    text = report_markdown(summary(), facts())
    assert text.startswith("# Model card: ft:gpt-4o-mini:org::abc\n")
    assert "| contender | model | score | 95% interval | candidate W/T/L |" in text
    assert "| base | gpt-4o-mini | 0.200 |" in text
    decision = summary().decision
    assert decision is not None
    assert f"\n{decision.reason}\n" in text
    assert "Final train loss 0.5 at step 3; valid loss 0.9 at step 3." in text
    assert "Where is \\| my order?" in text
    assert "<script>" not in text
    table_rows = [line for line in text.splitlines() if line.startswith("| 4 |")]
    assert len(table_rows) == 1


def test_side_by_side_shows_the_last_question_the_reference_and_each_answer() -> None:
    examples = [
        EvalExample(
            line=2,
            messages=[
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": "Book it"},
            ],
            reference=Answer(tool_calls=[ToolCall(name="book", arguments='{"day": 1}')]),
        ),
        EvalExample(
            line=5, messages=[{"role": "user", "content": "Hi"}], reference=Answer(content="Hello")
        ),
    ]
    rows = side_by_side(
        examples,
        {"candidate": [Answer(content="Booked"), Answer(content="Hello")], "base": []},
        limit=1,
    )
    assert rows == [
        SideBySide(
            line=2, prompt="Book it", reference='book({"day": 1})', answers={"candidate": "Booked"}
        )
    ]
