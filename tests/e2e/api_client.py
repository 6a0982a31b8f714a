"""A client for the local API in tests: the openai SDK, or raw HTTP for the rest."""

from __future__ import annotations

import datetime as dt
import json
import urllib.error
import urllib.request
from typing import Any

import openai

from sft_local.api_server import LocalApiServer
from sft_local.serve import issue_key
from sft_local.stack import LocalStack
from sft_pipeline.adapters.registry import Registry
from sft_pipeline.api_keys import KeyScope

NOW = dt.datetime(2026, 11, 25, 12, tzinfo=dt.UTC)


class Api:
    def __init__(self, stack: LocalStack, server: LocalApiServer, key: str, model_id: str) -> None:
        self.stack, self.server, self.key, self.model_id = stack, server, key, model_id

    def client(self, key: str | None = None) -> openai.OpenAI:
        return openai.OpenAI(base_url=self.server.base_url, api_key=key or self.key, max_retries=0)

    def call(
        self, method: str, path: str, body: Any = None, key: str | None = None
    ) -> tuple[int, dict[str, str], Any]:
        """A raw HTTP call, for routes and cases an OpenAI SDK does not cover."""
        root = self.server.base_url.removesuffix("/v1")
        data = (
            body
            if isinstance(body, bytes)
            else (json.dumps(body).encode() if body is not None else None)
        )
        request = urllib.request.Request(root + path, data=data, method=method)
        request.add_header("Content-Type", "application/json")
        if key != "":
            request.add_header("Authorization", f"Bearer {key or self.key}")
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return (
                    response.status,
                    dict(response.headers),
                    json.loads(response.read() or b"null"),
                )
        except urllib.error.HTTPError as error:
            return error.code, dict(error.headers), json.loads(error.read() or b"null")


def new_key(registry: Registry, name: str, scope: KeyScope = "inference") -> str:
    return issue_key(registry, name, scope)
