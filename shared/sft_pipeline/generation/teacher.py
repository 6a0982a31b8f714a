"""What the teacher is asked, the structured answer it must give, and the example made of it.

Every request is an OpenAI-compatible chat completion with a JSON-schema ``response_format``:
OpenAI-compatible endpoints answer in that schema, and the Bedrock adapter turns it into a
tool whose input schema it is, with that tool forced (Converse's toolChoice). Either way the
answer arrives as JSON text and is parsed with pydantic here; anything that does not parse, or
has the wrong number of turns, or calls a tool the spec does not define, is malformed: it is
never written, and the slot is asked again.
"""

from __future__ import annotations

import json
import re
from typing import Annotated, Any

import orjson
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from sft_pipeline.generation.plan import Slot, attempt_seed
from sft_pipeline.generation.spec import GenerationSpec

# The response format's name: the local stand-ins recognise a generation request by it.
SCHEMA_NAME = "training_conversation"
# Lines of the request the local stand-ins read to write a fitting conversation.
TOPIC_LINE = "Topic: "
TURNS_LINE = "Turns: "
VARIATION_LINE = "Variation key: "
# Seed examples shown to the teacher, at most this many characters each.
SHOWN_EXAMPLE_CHARS = 4000
_FENCE = re.compile(r"^```(?:json)?\s*(.*?)\s*```$", re.DOTALL)

Said = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=20_000)]


class MalformedAnswerError(ValueError):
    """The teacher's answer is not a conversation this spec can use; the message says why."""


class TeacherToolCall(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Said
    # A JSON object, as text (strict JSON schemas cannot leave an object's keys open).
    arguments: Said
    # What the tool returned.
    result: Said


class TeacherTurn(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    user: Said
    tool_calls: list[TeacherToolCall] = Field(default_factory=list, max_length=8)
    assistant: Said


class TeacherConversation(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    turns: list[TeacherTurn] = Field(min_length=1)


def conversation_schema(spec: GenerationSpec) -> dict[str, Any]:
    """The JSON schema of the answer (strict: every key required, no other key)."""
    turn: dict[str, Any] = {
        "type": "object",
        "additionalProperties": False,
        "required": ["user", "assistant"],
        "properties": {
            "user": {"type": "string", "description": "what the user says"},
            "assistant": {"type": "string", "description": "the assistant's reply"},
        },
    }
    if spec.tools:
        turn["required"] = ["user", "tool_calls", "assistant"]
        turn["properties"]["tool_calls"] = {
            "type": "array",
            "description": "tools the assistant calls before replying; empty when none is needed",
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["name", "arguments", "result"],
                "properties": {
                    "name": {"type": "string", "enum": spec.tool_names},
                    "arguments": {"type": "string", "description": "a JSON object"},
                    "result": {"type": "string", "description": "what the tool returned"},
                },
            },
        }
    return {
        "type": "object",
        "additionalProperties": False,
        "required": ["turns"],
        "properties": {"turns": {"type": "array", "items": turn}},
    }


def teacher_request(spec: GenerationSpec, slot: Slot, attempt: int) -> dict[str, Any]:
    """The chat completion that asks for one conversation of ``slot``."""
    seed = attempt_seed(spec, slot, attempt)
    return {
        "model": spec.teacher.model,
        "messages": [
            {"role": "system", "content": _instructions(spec)},
            {"role": "user", "content": _assignment(spec, slot, seed)},
        ],
        "temperature": spec.teacher.temperature,
        "max_tokens": spec.teacher.max_tokens,
        "seed": seed,
        "response_format": {
            "type": "json_schema",
            "json_schema": {
                "name": SCHEMA_NAME,
                "strict": True,
                "schema": conversation_schema(spec),
            },
        },
    }


def _instructions(spec: GenerationSpec) -> str:
    parts = [
        "You write realistic conversations between a user and an AI assistant. They become "
        "training examples for fine-tuning that assistant, so the assistant's replies must be "
        "exactly what it should say.",
        f"The assistant works under this system prompt:\n<<<\n{spec.system_prompt}\n>>>",
    ]
    if spec.persona:
        parts.append(f"The user: {spec.persona}")
    if spec.style:
        parts.append("How the assistant replies:\n" + "\n".join(f"- {s}" for s in spec.style))
    if spec.tools:
        tools = json.dumps([tool.model_dump(exclude_none=True) for tool in spec.tools], indent=1)
        parts.append(
            "The assistant can call these tools:\n"
            f"{tools}\n"
            "When a turn needs a tool, list the calls in that turn's tool_calls (the tool's "
            "name, its arguments as a JSON object in text, and the result the tool returned), "
            "then write the reply that uses the result. Leave tool_calls empty when no tool "
            "is needed."
        )
    if spec.seed_examples:
        shown = [
            orjson.dumps(example.model_dump(exclude_none=True)).decode()[:SHOWN_EXAMPLE_CHARS]
            for example in spec.seed_examples
        ]
        parts.append(
            "Examples of the kind of conversation wanted (vary the situations; never copy "
            "them):\n" + "\n".join(shown)
        )
    parts.append(
        "Answer with one JSON object in the given schema: 'turns' lists the conversation's "
        "turns in order, each the user's message and the assistant's reply. Write nothing else."
    )
    return "\n\n".join(parts)


def _assignment(spec: GenerationSpec, slot: Slot, seed: int) -> str:
    topic = spec.topics[slot.topic]
    lines = [f"{TOPIC_LINE}{topic.name}"]
    if topic.description:
        lines.append(f"About the topic: {topic.description}")
    lines += [
        f"{TURNS_LINE}{spec.turns}",
        "Write one conversation on this topic with exactly that many user turns. Make it "
        "unlike any other: a situation, details and wording of its own.",
        f"{VARIATION_LINE}{seed}",
    ]
    return "\n".join(lines)


def parse_answer(spec: GenerationSpec, response: dict[str, Any]) -> TeacherConversation:
    """The conversation in a chat completion's answer; MalformedAnswerError if there is none."""
    choices = response.get("choices") or []
    message = (choices[0].get("message") or {}) if choices else {}
    if choices and choices[0].get("finish_reason") == "length":
        raise MalformedAnswerError("the answer was cut off at max-tokens")
    content = message.get("content")
    if not isinstance(content, str) or not content.strip():
        raise MalformedAnswerError("the answer has no text")
    text = content.strip()
    if fenced := _FENCE.match(text):
        text = fenced.group(1)
    try:
        conversation = TeacherConversation.model_validate_json(text)
    except ValidationError as invalid:
        first = invalid.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise MalformedAnswerError(f"{where or 'answer'}: {first['msg']}") from None
    if len(conversation.turns) != spec.turns:
        raise MalformedAnswerError(f"{len(conversation.turns)} turns instead of {spec.turns}")
    for turn in conversation.turns:
        for call in turn.tool_calls:
            if call.name not in spec.tool_names:
                raise MalformedAnswerError(f"calls {call.name!r}, which the spec does not define")
            try:
                arguments = json.loads(call.arguments)
            except json.JSONDecodeError:
                raise MalformedAnswerError(f"{call.name}'s arguments are not JSON") from None
            if not isinstance(arguments, dict):
                raise MalformedAnswerError(f"{call.name}'s arguments are not a JSON object")
    return conversation


def to_example(spec: GenerationSpec, conversation: TeacherConversation) -> dict[str, Any]:
    """The training example: the spec's system prompt, then each turn (tool calls, their
    results and the reply), with the spec's tools."""
    messages: list[dict[str, Any]] = [{"role": "system", "content": spec.system_prompt}]
    for number, turn in enumerate(conversation.turns, start=1):
        messages.append({"role": "user", "content": turn.user})
        if turn.tool_calls:
            calls = [
                {
                    "id": f"call_{number}_{position}",
                    "type": "function",
                    "function": {
                        "name": call.name,
                        "arguments": json.dumps(json.loads(call.arguments), ensure_ascii=False),
                    },
                }
                for position, call in enumerate(turn.tool_calls, start=1)
            ]
            messages.append({"role": "assistant", "content": None, "tool_calls": calls})
            messages += [
                {"role": "tool", "tool_call_id": call["id"], "content": made.result}
                for call, made in zip(calls, turn.tool_calls, strict=True)
            ]
        messages.append({"role": "assistant", "content": turn.assistant})
    example: dict[str, Any] = {"messages": messages}
    if spec.tools:
        example["tools"] = [tool.model_dump(exclude_none=True) for tool in spec.tools]
    return example
