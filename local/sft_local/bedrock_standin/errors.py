"""Errors in Bedrock's REST/JSON wire shape.

An error answer carries its code in the ``x-amzn-ErrorType`` header and
``{"message": ...}`` as its body; botocore reads the header to raise the
matching ``client.exceptions.<code>`` class.
"""

from __future__ import annotations


class BedrockError(Exception):
    """An error answer: the error code, its HTTP status and the message."""

    def __init__(self, code: str, status: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.status = status
        self.message = message


def validation_error(message: str) -> BedrockError:
    return BedrockError("ValidationException", 400, message)


def conflict(message: str) -> BedrockError:
    return BedrockError("ConflictException", 400, message)


def not_found(message: str) -> BedrockError:
    return BedrockError("ResourceNotFoundException", 404, message)


def throttling() -> BedrockError:
    return BedrockError(
        "ThrottlingException", 429, "Too many requests, please wait before trying again."
    )


def internal_error() -> BedrockError:
    return BedrockError(
        "InternalServerException", 500, "An internal server error occurred. Retry your request."
    )
