"""The model card: one self-contained HTML page and its Markdown twin in words.

The page loads nothing: no script, font, image or stylesheet from anywhere, so it opens from a
bucket, an email attachment or a laptop alike. Its charts (the score comparison with its 95%
intervals, the training and validation loss) are inline SVG. Every text that came from data
(answers, prompts, file names, model names) is escaped.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import datetime
from html import escape

from pydantic import BaseModel, ConfigDict

from sft_pipeline.evaluation.answers import Answer, EvalExample
from sft_pipeline.evaluation.summary import EvaluationSummary, score_table

EXAMPLES_SHOWN = 5
TEXT_SHOWN = 600  # characters of one answer in a side-by-side cell


class FileLineage(BaseModel):
    """Where a file the model was trained or judged on came from."""

    model_config = ConfigDict(frozen=True)

    role: str  # training, validation, evaluation
    bucket: str
    key: str
    version: str | None = None
    sha256: str | None = None


class LossPoint(BaseModel):
    model_config = ConfigDict(frozen=True)

    step: int
    train_loss: float | None = None
    valid_loss: float | None = None


class SideBySide(BaseModel):
    """One held-out example: the question, the reference, and each contender's answer."""

    model_config = ConfigDict(frozen=True)

    line: int
    prompt: str
    reference: str
    answers: dict[str, str]


class ModelFacts(BaseModel):
    """What the card says about the model besides its evaluation."""

    model_config = ConfigDict(frozen=True)

    model: str
    base_model: str | None = None
    provider: str | None = None
    job_id: str | None = None
    created_at: datetime | None = None
    hyperparameters: dict[str, str | int | float | None] = {}
    lineage: list[FileLineage] = []
    loss_curve: list[LossPoint] = []
    examples: list[SideBySide] = []
    # Why there is no evaluation, when there is none (no held-out set, a failed run).
    evaluation_note: str | None = None


def answer_text(answer: Answer) -> str:
    calls = [f"{call.name}({call.arguments})" for call in answer.tool_calls]
    return "\n".join([answer.content or "", *calls]).strip()


def side_by_side(
    examples: Sequence[EvalExample],
    answers: Mapping[str, Sequence[Answer]],
    limit: int = EXAMPLES_SHOWN,
) -> list[SideBySide]:
    """The first ``limit`` examples with each contender's answer (answers in example order)."""
    rows = []
    for index, example in enumerate(examples[:limit]):
        questions = [m for m in example.messages if m.get("role") == "user"]
        prompt = questions[-1].get("content") if questions else ""
        rows.append(
            SideBySide(
                line=example.line,
                prompt=prompt if isinstance(prompt, str) else str(prompt),
                reference=answer_text(example.reference),
                answers={
                    name: answer_text(given[index])
                    for name, given in answers.items()
                    if index < len(given)
                },
            )
        )
    return rows


# ------------------------------------------------------------------ HTML

STYLE = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:2rem auto;
max-width:60rem;padding:0 1rem;color:#1d232a;line-height:1.45}
h1{font-size:1.6rem;margin-bottom:.2rem}h2{font-size:1.2rem;margin-top:2rem;
border-bottom:1px solid #d5dbe1;padding-bottom:.2rem}
table{border-collapse:collapse;width:100%;margin:.5rem 0;font-size:.9rem}
th,td{border:1px solid #d5dbe1;padding:.3rem .5rem;text-align:left;vertical-align:top}
th{background:#f2f5f8}td.num{text-align:right;font-variant-numeric:tabular-nums}
.decision{padding:.6rem .8rem;border-left:4px solid #3b6ea8;background:#f2f5f8}
.muted{color:#5c6873}pre{white-space:pre-wrap;margin:0;font-size:.85rem}
code{overflow-wrap:anywhere}svg{max-width:100%;height:auto}
"""
COLOURS = {
    "candidate": "#3b6ea8",
    "base": "#8a96a3",
    "few_shot": "#c7883a",
    "champion": "#5b9a5d",
}
TRAIN_COLOUR = "#3b6ea8"
VALID_COLOUR = "#c7883a"


def report_html(summary: EvaluationSummary | None, facts: ModelFacts) -> str:
    title = f"Model card: {facts.model}"
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{_e(title)}</title><style>{STYLE}</style></head><body>",
        f"<h1>{_e(title)}</h1>",
        _facts_html(facts),
        _lineage_html(facts.lineage),
        "<h2>Evaluation</h2>",
        _evaluation_html(summary, facts.evaluation_note),
        "<h2>Training and validation loss</h2>",
        loss_chart_svg(facts.loss_curve)
        if _loss_series(facts.loss_curve)
        else '<p class="muted">The provider reported no loss curve.</p>',
        _examples_html(facts.examples),
        "</body></html>",
    ]
    return "\n".join(part for part in parts if part) + "\n"


def _training_facts(facts: ModelFacts) -> list[tuple[str, str]]:
    """The training section's rows, the same on the page and in the Markdown card."""
    rows = [
        ("Model", facts.model),
        ("Base model", facts.base_model),
        ("Provider", facts.provider),
        ("Job", facts.job_id),
        ("Created", facts.created_at.isoformat(timespec="seconds") if facts.created_at else None),
        *((f"Hyperparameter {k}", _plain(v)) for k, v in facts.hyperparameters.items()),
    ]
    return [(name, value) for name, value in rows if value is not None]


def _facts_html(facts: ModelFacts) -> str:
    body = "".join(
        f"<tr><th>{_e(name)}</th><td><code>{_e(value)}</code></td></tr>"
        for name, value in _training_facts(facts)
    )
    return f"<h2>Training</h2><table>{body}</table>"


def _lineage_html(lineage: Sequence[FileLineage]) -> str:
    if not lineage:
        return ""
    head = "<tr><th>File</th><th>Bucket</th><th>Key</th><th>Version</th><th>SHA-256</th></tr>"
    body = "".join(
        f"<tr><th>{_e(item.role)}</th>"
        + "".join(
            f"<td><code>{_e(cell or '-')}</code></td>"
            for cell in (item.bucket, item.key, item.version, item.sha256)
        )
        + "</tr>"
        for item in lineage
    )
    return f"<h2>Data lineage</h2><table>{head}{body}</table>"


def _evaluation_html(summary: EvaluationSummary | None, note: str | None) -> str:
    if summary is None:
        return f'<p class="muted">{_e(note or "This model was not evaluated.")}</p>'
    table = _table_html(evaluation_rows(summary))
    decision = f'<p class="decision">{_e(summary.decision.reason)}</p>' if summary.decision else ""
    graders = ", ".join(summary.graders)
    about = (
        f'<p class="muted">{summary.examples} held-out examples; score: {_e(summary.primary)} '
        f"(graders: {_e(graders)}); 95% bootstrap intervals, seed {summary.seed}.</p>"
    )
    return decision + about + score_chart_svg(summary) + table


def evaluation_rows(summary: EvaluationSummary) -> list[list[str]]:
    """The score table, with each contender's mean latency, tokens and cost beside it."""
    header, *rows = score_table(summary)
    table = [[*header, "latency ms", "tokens in/out", "cost USD"]]
    for row, result in zip(rows, summary.contenders, strict=True):
        latency = f"{result.mean_latency_ms:,.0f}" if result.mean_latency_ms is not None else "-"
        cost = f"{result.cost_usd:.4f}" if result.cost_usd is not None else "unknown"
        table.append([*row, latency, f"{result.input_tokens:,}/{result.output_tokens:,}", cost])
    return table


def _table_html(rows: Sequence[Sequence[str]]) -> str:
    head, *body = rows
    cells = "".join(f"<th>{_e(cell)}</th>" for cell in head)
    lines = "".join(
        "<tr>" + "".join(f"<td>{_e(cell)}</td>" for cell in row) + "</tr>" for row in body
    )
    return f"<table><tr>{cells}</tr>{lines}</table>"


def _examples_html(examples: Sequence[SideBySide]) -> str:
    if not examples:
        return ""
    names = list(dict.fromkeys(name for example in examples for name in example.answers))
    head = "".join(f"<th>{_e(name)}</th>" for name in ["line", "prompt", "reference", *names])
    body = "".join(
        "<tr>"
        + f'<td class="num">{example.line}</td>'
        + "".join(
            f"<td><pre>{_e(_clip(text))}</pre></td>"
            for text in [
                example.prompt,
                example.reference,
                *(example.answers.get(name, "") for name in names),
            ]
        )
        + "</tr>"
        for example in examples
    )
    return f"<h2>Example answers</h2><table><tr>{head}</tr>{body}</table>"


# ------------------------------------------------------------------ SVG charts


def score_chart_svg(summary: EvaluationSummary) -> str:
    """One bar per contender (mean primary score, 0 to 1) with its 95% interval as a whisker."""
    label_width, bar_width, row, top = 150, 420, 34, 24
    width = label_width + bar_width + 70
    height = top + row * len(summary.contenders) + 28

    def x(value: float) -> float:
        return label_width + bar_width * min(max(value, 0.0), 1.0)

    items = [
        f'<svg xmlns="http://www.w3.org/2000/svg" id="score-chart" class="chart" role="img" '
        f'viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
        f'aria-label="{_e(summary.primary)} per contender with 95% intervals">',
        f'<text x="{label_width}" y="14" font-size="12" fill="#5c6873">'
        f"{_e(summary.primary)} (mean, 95% interval)</text>",
    ]
    for tick in (0.0, 0.25, 0.5, 0.75, 1.0):
        items.append(
            f'<line x1="{x(tick):.1f}" y1="{top - 4}" x2="{x(tick):.1f}" '
            f'y2="{height - 22}" stroke="#e3e8ed"/>'
            f'<text x="{x(tick):.1f}" y="{height - 8}" font-size="11" text-anchor="middle" '
            f'fill="#5c6873">{tick:g}</text>'
        )
    for index, result in enumerate(summary.contenders):
        y = top + index * row
        middle = y + row / 2 - 2
        colour = COLOURS.get(result.name, "#6d7a87")
        score = result.score
        items.append(
            f'<g class="contender"><text x="{label_width - 8}" y="{middle + 4:.1f}" '
            f'font-size="12" text-anchor="end">{_e(result.name)}</text>'
            f'<rect x="{label_width}" y="{y + 6}" width="{x(score.mean) - label_width:.1f}" '
            f'height="{row - 16}" fill="{colour}"><title>{_e(result.model)}: '
            f"{score.mean:.3f} ({score.low:.3f} to {score.high:.3f})</title></rect>"
            f'<line x1="{x(score.low):.1f}" y1="{middle:.1f}" x2="{x(score.high):.1f}" '
            f'y2="{middle:.1f}" stroke="#1d232a" stroke-width="1.5"/>'
            + "".join(
                f'<line x1="{x(end):.1f}" y1="{middle - 6:.1f}" x2="{x(end):.1f}" '
                f'y2="{middle + 6:.1f}" stroke="#1d232a" stroke-width="1.5"/>'
                for end in (score.low, score.high)
            )
            + f'<text x="{label_width + bar_width + 8}" y="{middle + 4:.1f}" font-size="12">'
            f"{score.mean:.3f}</text></g>"
        )
    items.append("</svg>")
    return "".join(items)


def _loss_series(points: Sequence[LossPoint]) -> dict[str, list[tuple[int, float]]]:
    series = {
        "train": [(p.step, p.train_loss) for p in points if _finite(p.train_loss)],
        "valid": [(p.step, p.valid_loss) for p in points if _finite(p.valid_loss)],
    }
    return {
        name: [(s, float(v or 0.0)) for s, v in values] for name, values in series.items() if values
    }


def loss_chart_svg(points: Sequence[LossPoint]) -> str:
    """The training (and validation) loss by step as polylines, with the axes' ranges."""
    series = _loss_series(points)
    width, height, left, right, top, bottom = 640, 260, 56, 16, 16, 36
    values = [v for pairs in series.values() for _, v in pairs]
    steps = [s for pairs in series.values() for s, _ in pairs]
    low, high = (min(values), max(values)) if values else (0.0, 1.0)
    first, last = (min(steps), max(steps)) if steps else (0, 1)
    span_v = (high - low) or 1.0
    span_s = (last - first) or 1

    def point(step: int, value: float) -> str:
        px = left + (width - left - right) * (step - first) / span_s
        py = top + (height - top - bottom) * (1 - (value - low) / span_v)
        return f"{px:.1f},{py:.1f}"

    colours = {"train": TRAIN_COLOUR, "valid": VALID_COLOUR}
    items = [
        f'<svg xmlns="http://www.w3.org/2000/svg" id="loss-chart" class="chart" role="img" '
        f'viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
        f'aria-label="training and validation loss by step">',
        f'<rect x="{left}" y="{top}" width="{width - left - right}" '
        f'height="{height - top - bottom}" fill="none" stroke="#d5dbe1"/>',
        f'<text x="{left - 6}" y="{top + 10}" font-size="11" text-anchor="end">{high:.3g}</text>',
        f'<text x="{left - 6}" y="{height - bottom}" font-size="11" text-anchor="end">'
        f"{low:.3g}</text>",
        f'<text x="{left}" y="{height - bottom + 16}" font-size="11">step {first}</text>',
        f'<text x="{width - right}" y="{height - bottom + 16}" font-size="11" '
        f'text-anchor="end">step {last}</text>',
    ]
    for index, (name, pairs) in enumerate(series.items()):
        colour = colours[name]
        coordinates = " ".join(point(step, value) for step, value in pairs)
        items.append(
            f'<polyline class="loss {name}" points="{coordinates}" fill="none" '
            f'stroke="{colour}" stroke-width="2"/>'
        )
        if len(pairs) == 1:  # a single point is no line: show it as a dot
            cx, cy = coordinates.split(",")
            items.append(f'<circle cx="{cx}" cy="{cy}" r="3" fill="{colour}"/>')
        legend_x = left + 12 + 110 * index
        items.append(
            f'<line x1="{legend_x}" y1="{height - 8}" x2="{legend_x + 18}" y2="{height - 8}" '
            f'stroke="{colour}" stroke-width="2"/><text x="{legend_x + 24}" '
            f'y="{height - 4}" font-size="11">{name} loss</text>'
        )
    items.append("</svg>")
    return "".join(items)


# ------------------------------------------------------------------ Markdown


def report_markdown(summary: EvaluationSummary | None, facts: ModelFacts) -> str:
    lines = [f"# Model card: {_md(facts.model)}", "", "## Training", ""]
    lines += _md_table([["Fact", "Value"], *([n, v] for n, v in _training_facts(facts))])
    if facts.lineage:
        lines += ["", "## Data lineage", ""]
        lines += _md_table(
            [
                ["File", "Bucket", "Key", "Version", "SHA-256"],
                *(
                    [f.role, f.bucket, f.key, f.version or "-", f.sha256 or "-"]
                    for f in facts.lineage
                ),
            ]
        )
    lines += ["", "## Evaluation", ""]
    if summary is None:
        lines.append(_md(facts.evaluation_note or "This model was not evaluated."))
    else:
        if summary.decision:
            lines += [_md(summary.decision.reason), ""]
        lines += [
            f"{summary.examples} held-out examples; score: {_md(summary.primary)} "
            f"(graders: {_md(', '.join(summary.graders))}); 95% bootstrap intervals, "
            f"seed {summary.seed}.",
            "",
        ]
        lines += _md_table(evaluation_rows(summary))
    final = _final_losses(facts.loss_curve)
    if final:
        lines += ["", "## Training and validation loss", "", final]
    if facts.examples:
        names = list(dict.fromkeys(n for e in facts.examples for n in e.answers))
        lines += ["", "## Example answers", ""]
        lines += _md_table(
            [
                ["line", "prompt", "reference", *names],
                *(
                    [str(e.line), _clip(e.prompt), _clip(e.reference)]
                    + [_clip(e.answers.get(n, "")) for n in names]
                    for e in facts.examples
                ),
            ]
        )
    return "\n".join(lines) + "\n"


def _final_losses(points: Sequence[LossPoint]) -> str:
    series = _loss_series(points)
    if not series:
        return ""
    words = [
        f"{name} loss {pairs[-1][1]:.4g} at step {pairs[-1][0]}" for name, pairs in series.items()
    ]
    return "Final " + "; ".join(words) + "."


def _md_table(rows: Sequence[Sequence[str]]) -> list[str]:
    head, *body = rows
    return [
        "| " + " | ".join(_md(cell) for cell in head) + " |",
        "|" + "---|" * len(head),
        *("| " + " | ".join(_md(cell) for cell in row) + " |" for row in body),
    ]


# ------------------------------------------------------------------ helpers


def _e(value: object) -> str:
    return escape(str(value), quote=True)


def _md(text: str) -> str:
    """Table-safe Markdown: no pipe, line break or HTML from the data."""
    return escape(" ".join(text.split()), quote=False).replace("|", "\\|")


def _clip(text: str) -> str:
    return text if len(text) <= TEXT_SHOWN else text[: TEXT_SHOWN - 1] + "…"


def _plain(value: str | int | float | None) -> str | None:
    return None if value is None else str(value)


def _finite(value: float | None) -> bool:
    return value is not None and math.isfinite(value)
