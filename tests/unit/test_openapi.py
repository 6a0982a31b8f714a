"""The committed OpenAPI document matches the code, and the template routes match both."""

from __future__ import annotations

import json
from pathlib import Path

from sft_local.template import load_template
from sft_pipeline.api.openapi import document

REPO = Path(__file__).resolve().parents[2]
COMMITTED = REPO / "openapi" / "api.json"


def test_committed_document_matches_the_code() -> None:
    assert COMMITTED.read_text() == document(), (
        "openapi/api.json is out of date: run `python -m sft_pipeline.api.openapi openapi/api.json`"
    )


def test_template_routes_are_the_documented_routes() -> None:
    events = load_template(REPO / "template.yaml")["Resources"]["ApiFunction"]["Properties"][
        "Events"
    ]
    in_template = {
        (e["Properties"]["Method"].lower(), e["Properties"]["Path"]) for e in events.values()
    }
    paths = json.loads(COMMITTED.read_text())["paths"]
    in_document = {(method, path) for path, methods in paths.items() for method in methods}
    assert in_template == in_document
