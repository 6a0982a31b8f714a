"""What a model answered, and the held-out examples it is asked: the conversation minus
its last assistant message, whose content and tool calls are the reference.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import orjson
from pydantic import BaseModel, ConfigDict


class EvalDataError(ValueError):
    """A held-out line that cannot be evaluated; ``line`` is 1-based."""

    def __init__(self, line: int, message: str) -> None:
        super().__init__(f"line {line}: {message}")
        self.line = line
        self.message = message


class ToolCall(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str
    # The raw JSON string, as the chat API gives it; graders parse it.
    arguments: str


class Answer(BaseModel):
    model_config = ConfigDict(frozen=True)

    content: str | None = None
    tool_calls: list[ToolCall] = []

    @classmethod
    def from_message(cls, message: dict[str, Any]) -> Answer:
        """An assistant message of a training line, or ``choices[0].message`` of a response."""
        calls = [
            ToolCall(name=str(call["function"]["name"]), arguments=_arguments(call["function"]))
            for call in message.get("tool_calls") or []
        ]
        # The deprecated single function call is a tool call all the same.
        legacy = message.get("function_call")
        if isinstance(legacy, dict):
            calls.append(ToolCall(name=str(legacy["name"]), arguments=_arguments(legacy)))
        return cls(content=_text(message.get("content")), tool_calls=calls)

    def to_message(self) -> dict[str, Any]:
        """The answer as an assistant turn of a chat request."""
        message: dict[str, Any] = {"role": "assistant", "content": self.content}
        if self.tool_calls:
            message["tool_calls"] = [
                {
                    "id": f"call_{index}",
                    "type": "function",
                    "function": {"name": call.name, "arguments": call.arguments},
                }
                for index, call in enumerate(self.tool_calls)
            ]
        return message


class EvalExample(BaseModel):
    model_config = ConfigDict(frozen=True)

    line: int
    # What the contenders are asked: the conversation minus its last assistant message.
    messages: list[dict[str, Any]]
    reference: Answer
    tools: list[dict[str, Any]] | None = None


def _arguments(function: dict[str, Any]) -> str:
    arguments = function.get("arguments", "")
    return arguments if isinstance(arguments, str) else orjson.dumps(arguments).decode()


def _text(content: Any) -> str | None:
    """Plain text of a message's content: a string, or the text of its content parts."""
    if content is None or isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            str(part.get("text", ""))
            for part in content
            if isinstance(part, dict) and part.get("type") == "text"
        )
    return str(content)


def read_examples(lines: Iterable[bytes | str]) -> list[EvalExample]:
    """Held-out examples from chat JSONL lines; blank lines are skipped (but counted)."""
    examples = []
    for number, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        try:
            row = orjson.loads(raw)
        except orjson.JSONDecodeError as error:
            raise EvalDataError(number, f"not JSON ({error})") from None
        messages = row.get("messages") if isinstance(row, dict) else None
        if not isinstance(messages, list) or not all(isinstance(m, dict) for m in messages):
            raise EvalDataError(number, "no list of chat messages")
        if not messages or messages[-1].get("role") != "assistant":
            raise EvalDataError(number, "the conversation does not end with an assistant message")
        try:
            reference = Answer.from_message(messages[-1])
        except (KeyError, TypeError, ValueError) as error:
            raise EvalDataError(number, f"unreadable assistant message ({error})") from None
        tools = row.get("tools")
        examples.append(
            EvalExample(
                line=number,
                messages=messages[:-1],
                reference=reference,
                tools=tools if isinstance(tools, list) else None,
            )
        )
    return examples
