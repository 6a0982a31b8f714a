"""A deployed stack's outputs (CloudFormation), so tools can be pointed at a stack by name."""

from __future__ import annotations

from typing import Any


class StackNotFoundError(LookupError):
    def __init__(self, stack_name: str) -> None:
        super().__init__(f"no stack named {stack_name!r} in this account and region")
        self.stack_name = stack_name


def stack_outputs(client: Any, stack_name: str) -> dict[str, str]:
    """The stack's outputs by key. ``client`` is a boto3 ``cloudformation`` client."""
    try:
        response = client.describe_stacks(StackName=stack_name)
    except client.exceptions.ClientError as exc:
        # CloudFormation reports a missing stack as a ValidationError, told apart by its message.
        error = exc.response.get("Error", {})
        if error.get("Code") == "ValidationError" and "does not exist" in error.get("Message", ""):
            raise StackNotFoundError(stack_name) from None
        raise
    [stack] = response["Stacks"]
    return {output["OutputKey"]: output["OutputValue"] for output in stack.get("Outputs", [])}
