"""OpenAI chat examples as Amazon Nova's ``bedrock-conversation-2024`` training records.

:func:`to_nova` converts an example that has no error in
:func:`sft_pipeline.validation.targets.bedrock.nova_issues`; :func:`convert_jsonl`
converts a whole file and refuses, naming its line, any example with one. Pure
functions, no AWS calls.
"""

from __future__ import annotations

from typing import Any, BinaryIO

import orjson
from pydantic import ValidationError

from sft_pipeline.validation.formats import (
    AssistantMessage,
    ChatExample,
    FunctionMessage,
    ImagePart,
    SystemMessage,
    TextPart,
    ToolDefinition,
    ToolMessage,
    UserMessage,
)
from sft_pipeline.validation.reader import BinaryReadable, StreamTally, iter_lines
from sft_pipeline.validation.targets.bedrock import (
    CONVERSE_FORMAT,
    content_texts,
    image_format_of,
    nova_issues,
    spoken_content,
)

NovaMessage = UserMessage | AssistantMessage | ToolMessage | FunctionMessage


def to_nova(example: ChatExample, bucket_owner: str | None = None) -> dict[str, Any]:
    """The ``bedrock-conversation-2024`` record of an example without error issues.

    ``bucket_owner`` is the account that owns the images' bucket, when Bedrock
    should check it.
    """
    system: list[dict[str, Any]] = []
    turns: list[dict[str, Any]] = []
    for message in example.messages:
        if isinstance(message, SystemMessage):
            system.extend({"text": text} for _, text in content_texts(message.content, ""))
            continue
        role = "assistant" if isinstance(message, AssistantMessage) else "user"
        blocks = _blocks(message, bucket_owner)
        # Tool results and a following user message share one user turn, so turns alternate.
        if turns and turns[-1]["role"] == role:
            turns[-1]["content"].extend(blocks)
        else:
            turns.append({"role": role, "content": blocks})
    record: dict[str, Any] = {"schemaVersion": CONVERSE_FORMAT}
    if system:
        record["system"] = system
    if example.tools:
        record["toolConfig"] = {"tools": [_tool_spec(tool) for tool in example.tools]}
    record["messages"] = turns
    return record


def _blocks(message: NovaMessage, bucket_owner: str | None) -> list[dict[str, Any]]:
    if isinstance(message, ToolMessage):
        results = [_tool_result(text) for _, text in content_texts(message.content, "")]
        return [{"toolResult": {"toolUseId": message.tool_call_id, "content": results}}]
    if isinstance(message, FunctionMessage):
        raise ValueError('Nova has no "function" role; the example has an error issue.')
    blocks: list[dict[str, Any]] = []
    content = spoken_content(message) if isinstance(message, AssistantMessage) else message.content
    if isinstance(content, str):
        blocks.append({"text": content})
    for part in content if isinstance(content, list) else ():
        if isinstance(part, TextPart):
            blocks.append({"text": part.text})
        elif isinstance(part, ImagePart):
            blocks.append(_image_block(part.image_url.url, bucket_owner))
    if isinstance(message, AssistantMessage):
        blocks.extend(
            {
                "toolUse": {
                    "toolUseId": call.id,
                    "name": call.function.name,
                    "input": orjson.loads(call.function.arguments),
                }
            }
            for call in message.tool_calls or ()
        )
    return blocks


def _tool_result(text: str) -> dict[str, Any]:
    """A JSON object result keeps its structure; anything else stays text."""
    try:
        parsed = orjson.loads(text)
    except orjson.JSONDecodeError:
        return {"text": text}
    return {"json": parsed} if isinstance(parsed, dict) else {"text": text}


def _image_block(uri: str, bucket_owner: str | None) -> dict[str, Any]:
    location = {"uri": uri, "bucketOwner": bucket_owner} if bucket_owner else {"uri": uri}
    return {"image": {"format": image_format_of(uri), "source": {"s3Location": location}}}


def _tool_spec(tool: ToolDefinition) -> dict[str, Any]:
    function = tool.function
    # A tool without parameters takes an empty object, which Nova must see spelled out.
    schema = function.parameters or {"type": "object", "properties": {}}
    return {
        "toolSpec": {
            "name": function.name,
            "description": function.description,
            "inputSchema": {"json": schema},
        }
    }


def convert_jsonl(
    source: BinaryReadable, out: BinaryIO, base_model: str, *, bucket_owner: str | None = None
) -> int:
    """Convert an OpenAI chat JSONL stream line by line; return the records written.

    Raises ValueError naming the line when an example is not valid chat data or
    has an error issue for ``base_model``.
    """
    written = 0
    for line in iter_lines(source, StreamTally()):
        if line.oversized_bytes:
            raise ValueError(f"line {line.number}: {line.oversized_bytes:,} bytes is too long")
        if not line.raw.strip():
            continue
        try:
            example = ChatExample.model_validate(orjson.loads(line.raw))
        except (orjson.JSONDecodeError, ValidationError) as exc:
            raise ValueError(
                f"line {line.number}: not a valid chat example; validate the file first."
            ) from exc
        errors = [i for i in nova_issues(example, base_model) if i.severity == "error"]
        if errors:
            raise ValueError(f"line {line.number}: {errors[0].code}: {errors[0].message}")
        out.write(orjson.dumps(to_nova(example, bucket_owner)) + b"\n")
        written += 1
    return written
