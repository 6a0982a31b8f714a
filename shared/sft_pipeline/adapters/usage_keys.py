"""API Gateway API keys in the inference API's usage plan: per-key throttling and quotas.

Each inference key gets an API Gateway API key whose value is the key's hash,
never the key: the authorizer returns that hash as ``usageIdentifierKey``, and
API Gateway applies the usage plan's limits to it.
"""

from __future__ import annotations

import contextlib
from typing import Any


class UsageKeys:
    def __init__(self, client: Any, usage_plan_id: str) -> None:
        """``client`` is a boto3 ``apigateway`` client."""
        self._client = client
        self._usage_plan_id = usage_plan_id

    def create(self, name: str, key_hash: str) -> str:
        """Add a key for this hash to the usage plan; returns the API Gateway key id."""
        key_id = str(
            self._client.create_api_key(name=f"sft-{name}", value=key_hash, enabled=True)["id"]
        )
        try:
            self._client.create_usage_plan_key(
                usagePlanId=self._usage_plan_id, keyId=key_id, keyType="API_KEY"
            )
        except Exception:
            # A key outside the plan would never be throttled: leave none behind.
            self._client.delete_api_key(apiKey=key_id)
            raise
        return key_id

    def disable(self, usage_key_id: str) -> None:
        """Stop counting requests under this key. Repeating it, or a deleted key, is fine."""
        with contextlib.suppress(self._client.exceptions.NotFoundException):
            self._client.update_api_key(
                apiKey=usage_key_id,
                patchOperations=[{"op": "replace", "path": "/enabled", "value": "false"}],
            )
