"""Secrets taken out of text that people read: provider error messages, notifications.

Providers quote what they were sent: OpenAI's 401 names the key's first and last
characters ("Incorrect API key provided: sk-abc***...xyz"). Such text reaches
emails, Slack, reports and API errors, so every key-like string is replaced before
it goes anywhere. Pure; no AWS calls.
"""

from __future__ import annotations

import re

REDACTED = "[redacted]"

# (what a secret looks like, what stays of it). Masked forms ("sk-ab***yz") count too.
_SECRETS = (
    # OpenAI keys (sk-..., sk-proj-..., sk-svcacct-...) and this API's own (sk-sft-...).
    (re.compile(r"\bsk-[A-Za-z0-9_*.\-]*[A-Za-z0-9_*\-]"), "sk-"),
    # Webhook signing secrets.
    (re.compile(r"\bwhsec_[A-Za-z0-9+/=_*\-]+"), "whsec_"),
    # Slack incoming-webhook URLs: the path is the credential.
    (re.compile(r"(hooks\.slack\.com/)[A-Za-z0-9/_*\-]+"), r"\1"),
    # Bearer credentials, whatever their shape; real ones are long, words after "bearer" short.
    (re.compile(r"(?i)\b(bearer\s+)[A-Za-z0-9._~+/=*\-]{16,}"), r"\1"),
    # AWS access key ids (long-lived AKIA, temporary ASIA).
    (re.compile(r"\b(?:AKIA|ASIA)[A-Z0-9*]{16}\b"), ""),
    # An AWS secret key written as a setting.
    (re.compile(r"(?i)(aws_secret_access_key\s*[=:]\s*)\S+"), r"\1"),
)


def redact_secrets(text: str) -> str:
    """``text`` with every key, token and webhook secret in it replaced by [redacted]."""
    for pattern, kept in _SECRETS:
        text = pattern.sub(kept + REDACTED, text)
    return text
