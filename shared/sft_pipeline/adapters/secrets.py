"""Secrets (the Slack webhook URL, the provider API key) from Secrets Manager.

Reads go through the Powertools Parameters cache, so a warm Lambda calls Secrets
Manager at most once per ``max_age_seconds`` and still picks up a rotated value.
Secret values are never logged or put into exception messages.
"""

from __future__ import annotations

from aws_lambda_powertools.utilities import parameters

DEFAULT_MAX_AGE_SECONDS = 300


def read_secret(arn: str, *, max_age_seconds: int = DEFAULT_MAX_AGE_SECONDS) -> str:
    """The secret's string value; raises Powertools' GetParameterError if it cannot be read."""
    value = parameters.get_secret(arn, max_age=max_age_seconds)
    # The typing says str, but a secret stored as SecretBinary comes back as bytes.
    if not isinstance(value, str):
        raise TypeError(f"secret {arn} holds binary data; store the value as a string")
    return value
