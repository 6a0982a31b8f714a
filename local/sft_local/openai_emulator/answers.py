"""Chat completions: a fine-tune answers from its training file, a base model generically
(or from the answered questions its prompt shows).

How the answer is chosen is in ``sft_local.emulated_answers``. A fine-tune
learns from every line of its training file that parses: a chat example's
reply is its last assistant message (text, tool calls or both), a preference
(DPO) row's is its preferred output. Asked to call tools, a fine-tune calls
them with the names and arguments of the example it answers from, under new
call ids. A data-generation request gets a conversation in its schema instead
(``emulated_generation``).
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable
from dataclasses import dataclass

from sft_local.emulated_answers import (
    ExampleMemory,
    approximate_tokens,
    generic_reply,
    in_context_reply,
)
from sft_local.emulated_generation import (
    GenerationFault,
    conversation,
    generation_schema,
    malformed_text,
)
from sft_local.openai_emulator.schemas import (
    AssistantMessage,
    ChatChoice,
    ChatCompletion,
    ChatCompletionRequest,
    CompletionUsage,
    FunctionCall,
    ToolCall,
)


@dataclass(frozen=True)
class TrainedReply:
    content: str | None
    tool_calls: tuple[FunctionCall, ...] = ()


TrainingMemory = ExampleMemory[TrainedReply]


def training_memory(content: bytes) -> TrainingMemory:
    """What a fine-tune trained on ``content`` (a JSONL training file) answers from."""
    return ExampleMemory(
        example for line in content.splitlines() if (example := _example(line)) is not None
    )


def complete(
    model: str,
    request: ChatCompletionRequest,
    memory: TrainingMemory | None,
    *,
    degradation: float,
    created: int,
    generation_fault: Callable[[], GenerationFault | None] = lambda: None,
) -> ChatCompletion:
    """The completion ``model`` gives; ``memory`` is None for a base model. A data-generation
    request (see ``emulated_generation``) is answered with a conversation in its schema, after
    taking the next generation fault."""
    user_texts = [message.text() for message in request.messages if message.role == "user"]
    schema = generation_schema((request.model_extra or {}).get("response_format"))
    trained: TrainedReply | None
    if schema is not None:
        trained = _generated(request, schema, generation_fault())
    elif memory is not None:
        trained = memory.recall("\n".join(user_texts), degradation=degradation)
    else:
        shown = in_context_reply([(message.role, message.text()) for message in request.messages])
        trained = None if shown is None else TrainedReply(shown)
    if trained is None:
        trained = TrainedReply(generic_reply(user_texts[-1] if user_texts else ""))
    calls = [
        ToolCall(id="call_" + secrets.token_hex(12), function=call) for call in trained.tool_calls
    ]
    prompt_tokens = sum(approximate_tokens(message.text()) for message in request.messages)
    completion_tokens = approximate_tokens(
        (trained.content or "") + "".join(call.name + call.arguments for call in trained.tool_calls)
    )
    return ChatCompletion(
        id="chatcmpl-" + secrets.token_hex(12),
        created=created,
        model=model,
        choices=[
            ChatChoice(
                index=0,
                message=AssistantMessage(content=trained.content, tool_calls=calls or None),
                finish_reason="tool_calls" if calls else "stop",
            )
        ],
        usage=CompletionUsage(
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            total_tokens=prompt_tokens + completion_tokens,
        ),
    )


def _generated(
    request: ChatCompletionRequest, schema: dict[str, object], fault: GenerationFault | None
) -> TrainedReply:
    answer = conversation("\n".join(m.text() for m in request.messages), schema, fault)
    return TrainedReply(malformed_text(answer) if fault == "malformed" else json.dumps(answer))


def _example(line: bytes) -> tuple[str, TrainedReply] | None:
    """One line as (its user turns' text, its reply), or None when it teaches nothing."""
    try:
        row = json.loads(line)
    except ValueError:
        return None
    if not isinstance(row, dict):
        return None
    if isinstance(row.get("input"), dict):
        messages = _list(row["input"].get("messages")) + _list(row.get("preferred_output"))
    else:
        messages = _list(row.get("messages"))
    turns = [message for message in messages if isinstance(message, dict)]
    replies = [index for index, message in enumerate(turns) if message.get("role") == "assistant"]
    if not replies:
        return None
    reply = turns[replies[-1]]
    prompt = "\n".join(
        _text(message.get("content"))
        for message in turns[: replies[-1]]
        if message.get("role") == "user"
    )
    calls = tuple(
        FunctionCall(name=function["name"], arguments=str(function.get("arguments", "{}")))
        for call in _list(reply.get("tool_calls"))
        if isinstance(call, dict)
        and isinstance(function := call.get("function"), dict)
        and isinstance(function.get("name"), str)
    )
    text = _text(reply.get("content"))
    return prompt, TrainedReply(text if text or not calls else None, calls)


def _list(value: object) -> list[object]:
    return value if isinstance(value, list) else []


def _text(content: object) -> str:
    """A message's text: a string, or the text of its content parts."""
    if isinstance(content, str):
        return content
    return " ".join(
        str(part.get("text", ""))
        for part in _list(content)
        if isinstance(part, dict) and part.get("type") == "text"
    )
