"""pydantic models of OpenAI's fine-tuning data formats: supervised chat and DPO.

The shapes follow the fine-tuning chat-input schema: unknown keys are refused,
content may be a string or a list of parts, images only in user messages,
assistant ``weight`` is 0 or 1, ``content`` may be null only beside
``tool_calls`` or ``function_call``.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictStr


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TextPart(_Strict):
    type: Literal["text"]
    text: StrictStr


class ImageUrl(_Strict):
    url: StrictStr
    detail: Literal["auto", "low", "high"] | None = None


class ImagePart(_Strict):
    type: Literal["image_url"]
    image_url: ImageUrl


class RefusalPart(_Strict):
    type: Literal["refusal"]
    refusal: StrictStr


UserPart = Annotated[TextPart | ImagePart, Field(discriminator="type")]
AssistantPart = Annotated[TextPart | RefusalPart, Field(discriminator="type")]


class FunctionCall(_Strict):
    name: StrictStr
    arguments: StrictStr


class ToolCall(_Strict):
    id: StrictStr
    type: Literal["function"]
    function: FunctionCall


class SystemMessage(_Strict):
    role: Literal["system"]
    content: StrictStr | list[TextPart]
    name: StrictStr | None = None


class UserMessage(_Strict):
    role: Literal["user"]
    content: StrictStr | list[UserPart]
    name: StrictStr | None = None


class AssistantMessage(_Strict):
    role: Literal["assistant"]
    # May be null or left out beside tool_calls / function_call (checked in rules).
    content: StrictStr | list[AssistantPart] | None = None
    name: StrictStr | None = None
    refusal: StrictStr | None = None
    weight: Literal[0, 1] | None = None
    tool_calls: list[ToolCall] | None = None
    function_call: FunctionCall | None = None


class ToolMessage(_Strict):
    role: Literal["tool"]
    content: StrictStr | list[TextPart]
    tool_call_id: StrictStr


class FunctionMessage(_Strict):
    """Deprecated by OpenAI in favour of tool messages, still accepted for training."""

    role: Literal["function"]
    content: StrictStr | None
    name: StrictStr


Message = Annotated[
    SystemMessage | UserMessage | AssistantMessage | ToolMessage | FunctionMessage,
    Field(discriminator="role"),
]

MESSAGE_MODELS: dict[str, type[_Strict]] = {
    "system": SystemMessage,
    "user": UserMessage,
    "assistant": AssistantMessage,
    "tool": ToolMessage,
    "function": FunctionMessage,
}


class FunctionDefinition(_Strict):
    name: StrictStr
    description: StrictStr | None = None
    parameters: dict[str, Any] | None = None
    strict: StrictBool | None = None


class ToolDefinition(_Strict):
    type: Literal["function"]
    function: FunctionDefinition


class ChatExample(_Strict):
    """One line of a supervised fine-tuning file."""

    messages: list[Message] = Field(min_length=1)
    tools: list[ToolDefinition] | None = None
    parallel_tool_calls: StrictBool | None = None
    functions: list[FunctionDefinition] | None = Field(default=None, min_length=1, max_length=128)


class PreferenceInput(_Strict):
    messages: list[Message] = Field(min_length=1)
    tools: list[ToolDefinition] | None = None
    parallel_tool_calls: StrictBool | None = None


class DpoExample(_Strict):
    """One line of a DPO (preference) fine-tuning file."""

    input: PreferenceInput
    preferred_output: list[AssistantMessage] = Field(min_length=1, max_length=1)
    non_preferred_output: list[AssistantMessage] = Field(min_length=1, max_length=1)


# Top-level keys that identify each format, used to spot a file of the wrong kind.
CHAT_KEYS = frozenset({"messages"})
DPO_KEYS = frozenset({"input", "preferred_output", "non_preferred_output"})
COMPLETION_KEYS = frozenset({"prompt", "completion"})
