"""The model card opened in a real browser: headless Chromium (Debian's ``chromium`` package,
installed by ``make browser-tools``) renders the page with both charts and logs no error.

Without Chromium these tests fail: a page nobody has seen render is not tested."""

from __future__ import annotations

import shutil
import struct
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest

from sft_pipeline.evaluation.report_html import report_html
from tests.unit.test_eval_report import HOSTILE, facts, summary

WINDOW = (1000, 1400)
# Chromium's own complaints about the machine (no D-Bus, no GPU), not about the page.
MACHINE_NOISE = ("dbus", "D-Bus", "vaapi", "bluez", "sandbox", "unexpected operator")


class Elements(HTMLParser):
    """Every element of the rendered DOM, with the id of the SVG chart it is in."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[tuple[str, str | None, dict[str, str | None]]] = []
        self._chart: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if tag == "svg":
            self._chart = attributes.get("id")
        self.found.append((tag, self._chart, attributes))

    def handle_endtag(self, tag: str) -> None:
        if tag == "svg":
            self._chart = None

    def in_chart(self, chart: str, tag: str) -> list[dict[str, str | None]]:
        return [attrs for name, where, attrs in self.found if where == chart and name == tag]


def chromium(page: Path, *flags: str, profile: Path) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("chromium")
    if binary is None:
        pytest.fail("chromium is not installed: `make browser-tools` installs Debian's package")
    return subprocess.run(
        [
            binary,
            "--headless",
            "--disable-gpu",
            "--no-sandbox",
            "--no-first-run",
            f"--user-data-dir={profile}",
            "--enable-logging=stderr",
            "--v=0",
            f"--window-size={WINDOW[0]},{WINDOW[1]}",
            *flags,
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )


def page_errors(stderr: str) -> list[str]:
    """What the page itself logged: console messages and uncaught errors."""
    return [
        line
        for line in stderr.splitlines()
        if ("CONSOLE" in line or "Uncaught" in line)
        and not any(noise in line for noise in MACHINE_NOISE)
    ]


def test_the_model_card_renders_with_both_charts_and_no_error(tmp_path: Path) -> None:
    result = summary()
    page = tmp_path / "card.html"
    page.write_text(report_html(result, facts()), encoding="utf-8")

    rendered = chromium(page, "--dump-dom", profile=tmp_path / "profile")
    assert page_errors(rendered.stderr) == []
    dom = Elements()
    dom.feed(rendered.stdout)
    charts = {attrs.get("id") for tag, _, attrs in dom.found if tag == "svg"}
    assert charts == {"score-chart", "loss-chart"}
    assert len(dom.in_chart("score-chart", "rect")) == len(result.contenders)
    assert {a.get("class") for a in dom.in_chart("loss-chart", "polyline")} == {
        "loss train",
        "loss valid",
    }
    # The hostile answer stayed text: no element came of it.
    assert not [tag for tag, _, _ in dom.found if tag in {"script", "img"}]
    assert "alert(" in rendered.stdout

    shot = tmp_path / "card.png"
    taken = chromium(page, f"--screenshot={shot}", "--hide-scrollbars", profile=tmp_path / "p2")
    assert page_errors(taken.stderr) == []
    png = shot.read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert struct.unpack(">II", png[16:24]) == WINDOW


def test_the_error_check_sees_what_a_page_logs(tmp_path: Path) -> None:
    """The check above is live: a page that throws is caught by it."""
    page = tmp_path / "broken.html"
    page.write_text(
        report_html(summary(), facts()).replace(
            "</body>", "<script>console.error('chart failed'); missing();</script></body>"
        ),
        encoding="utf-8",
    )
    rendered = chromium(page, "--dump-dom", profile=tmp_path / "profile")
    errors = page_errors(rendered.stderr)
    assert any("chart failed" in line for line in errors)
    assert any("Uncaught ReferenceError" in line for line in errors)
    assert HOSTILE not in rendered.stdout
