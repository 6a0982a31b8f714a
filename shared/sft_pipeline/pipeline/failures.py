"""A step error the state machine caught, as the people told of it read it."""

from __future__ import annotations

import json


def caught_error(failure: dict[str, str]) -> tuple[str, str]:
    """The code and message of a caught step error (the Catch's ``Error`` and ``Cause``).

    A provider error's message starts with its code ("rate_limit_exceeded: ..."); any other
    error is named by its type."""
    error_type = failure.get("Error", "Error")
    try:
        cause = json.loads(failure.get("Cause", "{}"))
        text = str(cause.get("errorMessage", "")) if isinstance(cause, dict) else str(cause)
    except json.JSONDecodeError:
        text = failure.get("Cause", "")
    code, sep, message = text.partition(": ")
    if sep and code.replace("_", "").isalnum():
        return code, message
    return error_type, text or error_type
