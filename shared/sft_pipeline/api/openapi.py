"""Writes the API's OpenAPI document, generated from the routes and their pydantic models.

``python -m sft_pipeline.api.openapi openapi/api.json``; a test fails when the
committed file no longer matches the code.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from sft_pipeline.api.routes import API_TITLE, API_VERSION, app


def document() -> str:
    schema = json.loads(app.get_openapi_json_schema(title=API_TITLE, version=API_VERSION))
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m sft_pipeline.api.openapi OUTPUT.json", file=sys.stderr)
        return 2
    Path(args[0]).write_text(document())
    return 0


if __name__ == "__main__":
    sys.exit(main())
