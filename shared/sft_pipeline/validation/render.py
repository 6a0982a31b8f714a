"""The report as text a person reads in a terminal, an email or a .txt next to the file."""

from __future__ import annotations

from collections import defaultdict

from sft_pipeline.validation.report import Distribution, Finding, ValidationReport


def _where(finding: Finding) -> str:
    prefix = f"{finding.file} " if finding.file else ""
    if finding.line is not None:
        return f"{prefix}line {finding.line}"
    if finding.lines:
        return f"{prefix}lines {finding.lines[0]}.."
    return f"{prefix}file"


def _section(title: str, findings: list[Finding], counts: dict[str, int]) -> list[str]:
    if not counts:
        return []
    out = [f"{title} ({sum(counts.values()):,})"]
    by_code: dict[str, list[Finding]] = defaultdict(list)
    for finding in findings:
        by_code[finding.code].append(finding)
    for code, total in sorted(counts.items(), key=lambda item: (-item[1], item[0])):
        shown = by_code.get(code, [])
        more = f", first {len(shown)} shown" if total > len(shown) else ""
        out.append(f"  {code}: {total:,}{more}")
        out.extend(f"    {_where(f):>14}  {f.message}" for f in shown)
    out.append("")
    return out


def _dist(name: str, dist: Distribution | None) -> str:
    if dist is None:
        return f"  {name:<22} -"
    return (
        f"  {name:<22} min {dist.min:,}  median {dist.median:,}  p95 {dist.p95:,}  "
        f"max {dist.max:,}  total {dist.total:,}"
    )


def render_text(report: ValidationReport) -> str:
    lines: list[str] = []
    name = report.file.name if report.file else "(unreadable)"
    lines.append(f"{name}: {report.summary()}")
    if report.file:
        lines.append(
            f"  {report.file.bytes:,} bytes, {report.file.lines:,} lines, sha256 {report.file.sha256[:16]}…"
        )
    lines.append("")
    lines += _section("Errors", report.errors, report.error_counts)
    lines += _section("Warnings", report.warnings, report.warning_counts)
    stats = report.stats
    lines.append("Statistics")
    lines.append(
        f"  examples               {stats.examples:,} ({stats.valid_examples:,} valid, "
        f"{stats.invalid_examples:,} invalid, {stats.blank_lines:,} blank lines skipped)"
    )
    lines.append(_dist("messages per example", stats.messages_per_example))
    lines.append(_dist("tokens per example", stats.tokens_per_example))
    lines.append(_dist("assistant tokens", stats.assistant_tokens_per_example))
    lines.append(f"  over the token limit   {stats.examples_over_token_limit:,}")
    lines.append(
        f"  with tools / images    {stats.examples_with_tools:,} / {stats.examples_with_images:,}"
    )
    if stats.validation_examples is not None:
        lines.append(f"  validation examples    {stats.validation_examples:,}")
    if stats.evaluation_examples is not None:
        lines.append(f"  evaluation examples    {stats.evaluation_examples:,}")
    estimate = report.estimate
    if estimate is not None:
        lines.append("")
        lines.append(f"Estimate for {estimate.base_model or estimate.model} ({estimate.encoding})")
        lines.append(
            f"  epochs                 {estimate.n_epochs} "
            f"({'as n_epochs=auto would choose' if estimate.n_epochs_source == 'auto' else 'requested'})"
        )
        lines.append(f"  billable tokens/epoch  {estimate.billable_tokens_per_epoch:,}")
        lines.append(f"  billed tokens          {estimate.billed_tokens:,}")
        if estimate.estimated_cost_usd is None:
            lines.append("  training cost          unknown (model not in the price table)")
        else:
            lines.append(
                f"  training cost          ${estimate.estimated_cost_usd:,.2f} at "
                f"${estimate.training_price_per_million_usd}/1M tokens (prices as of {estimate.price_as_of})"
            )
        if estimate.evaluation_examples is not None:
            cost = estimate.evaluation_cost_usd
            lines.append(
                f"  evaluation (estimated) "
                f"{'unknown (a model not in the price table)' if cost is None else f'${cost:,.2f}'}"
                f" for {estimate.evaluation_examples:,} held-out examples x "
                f"{estimate.evaluation_contenders} contenders"
            )
        lines.extend(f"  note: {note}" for note in estimate.notes)
    lines.append("")
    return "\n".join(lines)
