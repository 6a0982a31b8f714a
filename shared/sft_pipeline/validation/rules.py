"""Per-example rules: schema errors in plain words, semantic checks, and the facts
the file-wide checks need (texts to count, fingerprints for duplicate detection).
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import orjson
from pydantic import ValidationError

from sft_pipeline.validation.formats import (
    CHAT_KEYS,
    COMPLETION_KEYS,
    DPO_KEYS,
    MESSAGE_MODELS,
    AssistantMessage,
    ChatExample,
    DpoExample,
    ImagePart,
    RefusalPart,
    TextPart,
    ToolDefinition,
)
from sft_pipeline.validation.normalise import normalise
from sft_pipeline.validation.report import Finding
from sft_pipeline.validation.targets.bedrock import NovaTarget, nova_issues
from sft_pipeline.validation.tokens import MAX_TOKEN_BYTES

DataFormat = Literal["chat", "dpo"]
AnyMessage = Any  # one of the message models of formats.Message

MAX_IMAGES_PER_EXAMPLE = 10
MAX_IMAGE_BYTES = 10 * 1024 * 1024
IMAGE_MEDIA_TYPES = ("image/jpeg", "image/png", "image/webp")
# Strings the tokenizer would read as control tokens; OpenAI fails the whole job on them.
SPECIAL_TOKEN = re.compile(r"<\|[A-Za-z0-9_]{1,40}\|>")
# Chat framing per message (start, role, separator/end) and the primed reply, as in OpenAI's counting.
TOKENS_PER_MESSAGE = 4
TOKENS_PER_NAME = 1
TOKENS_REPLY_PRIMER = 3
SHORT_REPLY_CHARS = 3


@dataclass(slots=True)
class ExampleFacts:
    """What one valid example contributes to file-wide statistics and checks."""

    line: int
    texts: list[str]
    assistant_mask: list[bool]
    overhead: int
    messages: int
    has_system: bool
    has_tools: bool
    has_images: bool
    reply_is_short: bool
    exact: int
    near: int
    prompt: int
    answer: int
    tokens: int = 0
    assistant_tokens: int = 0


@dataclass(slots=True)
class LineResult:
    errors: list[Finding] = field(default_factory=list)
    warnings: list[Finding] = field(default_factory=list)
    facts: ExampleFacts | None = None
    # The line is a whole example of another format (DPO in a chat file, etc.).
    foreign_format: str | None = None

    def error(self, code: str, message: str, line: int, location: str | None = None) -> None:
        self.errors.append(Finding(code=code, message=message, line=line, location=location))

    def warn(self, code: str, message: str, line: int, location: str | None = None) -> None:
        self.warnings.append(Finding(code=code, message=message, line=line, location=location))


# ---------------------------------------------------------------- schema errors


def check_line(
    raw: bytes,
    line: int,
    data_format: DataFormat,
    nova: NovaTarget | None = None,
    *,
    max_text_chars: int,
) -> LineResult:
    """Parse and check one non-blank line; for a ``nova`` target, check it as Nova will too.

    An example with more than ``max_text_chars`` characters of text is refused
    before anything else is done with it.
    """
    result = LineResult()
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        result.errors.append(_json_error(raw, line, exc))
        return result
    if not isinstance(obj, dict):
        kind = _json_kind(obj)
        result.error(
            code="data_type",
            line=line,
            message=f"Each line must be a JSON object (an example); this line is {kind}.",
        )
        return result
    foreign = _foreign_format(obj, data_format)
    if foreign is not None:
        result.foreign_format = foreign
        result.error(
            code=f"{foreign}_example_in_{data_format}_file",
            line=line,
            message=_foreign_hint(foreign, data_format),
        )
        return result
    # Special-token strings are rare: skip the per-string scan when the raw line has none.
    scan_special = b"<|" in raw or b"\\u003" in raw
    try:
        if data_format == "chat":
            chat = ChatExample.model_validate(obj)
            if _refused_as_too_long(chat.messages, max_text_chars, line, result):
                return result
            _check_chat(chat, line, result, scan_special, openai_images=nova is None)
            if nova is not None:
                _add_nova_issues(chat, nova, line, result)
            if not result.errors:
                result.facts = _chat_facts(chat, raw, line)
        else:
            dpo = DpoExample.model_validate(obj)
            messages = [*dpo.input.messages, *dpo.preferred_output, *dpo.non_preferred_output]
            if _refused_as_too_long(messages, max_text_chars, line, result):
                return result
            _check_dpo(dpo, line, result, scan_special)
            if not result.errors:
                result.facts = _dpo_facts(dpo, raw, line)
    except ValidationError as exc:
        result.errors.extend(translate_errors(exc, obj, line))
    return result


def _refused_as_too_long(
    messages: Sequence[AnyMessage], max_text_chars: int, line: int, result: LineResult
) -> bool:
    """Whether the messages' text alone is far over every model's limit (then refused)."""
    chars = sum(len(text) for message in messages for text in _strings_of(message))
    if chars <= max_text_chars:
        return False
    result.error(
        code="line_too_long",
        line=line,
        message=f"The example has {chars:,} characters of text, so at least "
        f"{chars // MAX_TOKEN_BYTES:,} tokens (no token is longer than {MAX_TOKEN_BYTES} "
        f"bytes): far over the {max_text_chars // MAX_TOKEN_BYTES:,} tokens any model takes. "
        "It was not checked further.",
    )
    return True


def _json_kind(obj: object) -> str:
    if isinstance(obj, list):
        return "a JSON array"
    if isinstance(obj, str):
        return "a JSON string"
    if obj is None:
        return "null"
    if isinstance(obj, dict):
        return "a JSON object"
    return "a boolean" if isinstance(obj, bool) else "a number"


def _json_error(raw: bytes, line: int, exc: orjson.JSONDecodeError) -> Finding:
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as bad:
        return Finding(
            code="invalid_utf8",
            line=line,
            message=f"Line is not valid UTF-8 (byte 0x{raw[bad.start]:02x} at column {bad.start + 1}).",
        )
    stripped = raw.strip()
    if stripped in (b"{", b"[") or stripped.endswith(b","):
        hint = " It looks like pretty-printed JSON: put each example on a single line."
    else:
        hint = ""
    detail = str(exc).split(": line")[0]
    return Finding(
        code="invalid_json",
        line=line,
        message=f"Line is not valid JSON ({detail}, column {exc.colno}).{hint}",
    )


def _foreign_format(obj: dict[str, Any], data_format: DataFormat) -> str | None:
    keys = obj.keys()
    if data_format == "chat" and DPO_KEYS & keys and "messages" not in keys:
        return "dpo"
    if data_format == "dpo" and CHAT_KEYS & keys and not DPO_KEYS & keys:
        return "chat"
    if keys >= COMPLETION_KEYS and not (CHAT_KEYS | DPO_KEYS) & keys:
        return "completion"
    return None


def _foreign_hint(foreign: str, data_format: DataFormat) -> str:
    if foreign == "completion":
        return (
            'This is the legacy {"prompt", "completion"} format; chat models need '
            '{"messages": [...]} examples.'
        )
    if foreign == "dpo":
        return (
            "This is a DPO (preference) example (input / preferred_output / "
            "non_preferred_output) in a supervised file; validate it as DPO (--format dpo)."
        )
    return 'This is a supervised chat example ({"messages": [...]}) in a DPO file.'


_UNION_MEMBER = re.compile(r"^(str|int|bool|float|none|dict|list\[.*|tagged-union\[.*|[A-Z]\w*)$")
_TAGGED_LISTS = {"messages", "content"}


def _clean_location(loc: Sequence[int | str]) -> tuple[int | str, ...]:
    """Drop pydantic's union-member and discriminator segments from an error path."""
    cleaned: list[int | str] = []
    for index, part in enumerate(loc):
        if isinstance(part, str) and _UNION_MEMBER.match(part):
            continue
        previous = loc[index - 1] if index else None
        if (
            isinstance(part, str)
            and isinstance(previous, int)
            and len(cleaned) >= 2
            and cleaned[-2] in _TAGGED_LISTS
        ):
            continue  # the role / part-type tag after messages[i] or content[j]
        cleaned.append(part)
    return tuple(cleaned)


def location_text(loc: Sequence[int | str]) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text


def translate_errors(exc: ValidationError, obj: dict[str, Any], line: int) -> list[Finding]:
    """Turn pydantic's errors into findings with stable codes and plain messages."""
    by_location: dict[tuple[int | str, ...], list[dict[str, Any]]] = {}
    for error in exc.errors(include_url=False):
        by_location.setdefault(_clean_location(error["loc"]), []).append(dict(error))
    # A deeper error explains its parents' union failures better than they do.
    locations = [
        loc
        for loc in by_location
        if not any(other != loc and other[: len(loc)] == loc for other in by_location)
    ]
    return [_finding_for(loc, by_location[loc], obj, line) for loc in locations]


def _finding_for(
    loc: tuple[int | str, ...], errors: list[dict[str, Any]], obj: dict[str, Any], line: int
) -> Finding:
    kinds = {e["type"] for e in errors}
    where = location_text(loc)
    code, message = _explain(loc, kinds, errors[0], obj)
    return Finding(code=code, line=line, location=where or None, message=message)


def _role_at(obj: dict[str, Any], loc: tuple[int | str, ...]) -> str | None:
    container: Any = obj
    for part in loc[:2]:
        try:
            container = container[part]
        except (KeyError, IndexError, TypeError):
            return None
    return container.get("role") if isinstance(container, dict) else None


def _explain(
    loc: tuple[int | str, ...], kinds: set[str], error: dict[str, Any], obj: dict[str, Any]
) -> tuple[str, str]:
    where = location_text(loc)
    field_name = next((p for p in reversed(loc) if isinstance(p, str)), "")
    in_message = len(loc) >= 2 and loc[0] == "messages" and isinstance(loc[1], int)
    if loc == ("messages",):
        return "missing_messages_list", 'The example needs a non-empty "messages" list.'
    if in_message and len(loc) == 2:
        if "union_tag_not_found" in kinds:
            return "message_missing_key", f'{where} has no "role".'
        if "union_tag_invalid" in kinds:
            role = error.get("ctx", {}).get("tag", "?")
            hint = ' Use "system" instead.' if role == "developer" else ""
            allowed = ", ".join(MESSAGE_MODELS)
            return (
                "unrecognized_role",
                f'{where} has role "{role}"; allowed roles: {allowed}.{hint}',
            )
        return "message_data_type", f"{where} must be a JSON object with a role and content."
    if "tool_calls" in loc or "function_call" in loc:
        return "invalid_tool_call", f"{where}: {error['msg']}."
    if loc[0] in ("tools", "functions"):
        return "invalid_tool_definition", f"{where}: {error['msg']}."
    if loc[0] in ("preferred_output", "non_preferred_output"):
        return (
            "invalid_preference_output",
            f"{where}: {error['msg']} (one assistant message expected).",
        )
    if "extra_forbidden" in kinds:
        if in_message and len(loc) == 3:
            role = _role_at(obj, loc) or "this"
            owners = [r for r, model in MESSAGE_MODELS.items() if field_name in model.model_fields]
            only = f" (allowed only on {', '.join(owners)} messages)" if owners else ""
            return (
                "message_unrecognized_key",
                f'{where}: key "{field_name}" is not allowed in a {role} message{only}.',
            )
        if len(loc) == 1:
            return "example_unrecognized_key", f'Unknown top-level key "{field_name}".'
        return "unrecognized_key", f'{where}: key "{field_name}" is not allowed here.'
    if "missing" in kinds:
        code = "message_missing_key" if in_message else "missing_key"
        return code, f"{where} is required."
    if in_message and "content" in loc:
        if "union_tag_invalid" in kinds and error.get("ctx", {}).get("tag") == "image_url":
            role = _role_at(obj, loc)
            return (
                "image_not_allowed",
                f"{where}: images are allowed only in user messages, not in {role} messages.",
            )
        if loc[-1] == "content":
            kind = _json_kind(error.get("input"))
            return (
                "invalid_content",
                f"{where} must be a string or a list of content parts, not {kind}.",
            )
        return "invalid_content_part", f"{where}: {error['msg']}."
    if field_name == "weight":
        return "invalid_weight", f"{where} must be 0 or 1."
    return "invalid_value", f"{where}: {error['msg']}."


# ---------------------------------------------------------------- semantic checks


def _check_chat(
    example: ChatExample, line: int, result: LineResult, scan_special: bool, openai_images: bool
) -> None:
    _check_messages(
        example.messages,
        example.tools,
        line,
        result,
        prefix="messages",
        scan_special=scan_special,
        openai_images=openai_images,
    )
    assistants = [m for m in example.messages if isinstance(m, AssistantMessage)]
    if not assistants:
        result.error(
            code="example_missing_assistant_message",
            line=line,
            message="The example has no assistant message, so there is nothing to train on.",
        )
    elif all(m.weight == 0 for m in assistants):
        result.error(
            code="no_trainable_assistant_message",
            line=line,
            message="Every assistant message has weight 0, so nothing in this example is trained on.",
        )
    elif not isinstance(example.messages[-1], AssistantMessage):
        result.warn(
            code="last_message_not_assistant",
            line=line,
            location=f"messages[{len(example.messages) - 1}]",
            message="The example does not end with an assistant message; "
            "the messages after the last assistant reply are not trained on.",
        )


def _add_nova_issues(example: ChatExample, nova: NovaTarget, line: int, result: LineResult) -> None:
    for issue in nova_issues(example, nova.base_model, dataset_bucket=nova.dataset_bucket):
        add = result.error if issue.severity == "error" else result.warn
        add(issue.code, issue.message, line, issue.location)


def _check_dpo(example: DpoExample, line: int, result: LineResult, scan_special: bool) -> None:
    _check_messages(
        example.input.messages,
        example.input.tools,
        line,
        result,
        prefix="input.messages",
        scan_special=scan_special,
    )
    for key in ("preferred_output", "non_preferred_output"):
        _check_messages(
            getattr(example, key), None, line, result, prefix=key, scan_special=scan_special
        )
    last = example.input.messages[-1]
    if last.role != "user":
        result.error(
            code="dpo_input_must_end_with_user",
            line=line,
            location=f"input.messages[{len(example.input.messages) - 1}]",
            message="DPO trains the final assistant turn only: input.messages must end with a user message.",
        )
    preferred, rejected = example.preferred_output[0], example.non_preferred_output[0]
    if preferred.model_dump() == rejected.model_dump():
        result.warn(
            code="identical_preference_pair",
            line=line,
            message="preferred_output and non_preferred_output are identical; the pair teaches nothing.",
        )


def _check_messages(
    messages: Sequence[AnyMessage],
    tools: list[ToolDefinition] | None,
    line: int,
    result: LineResult,
    *,
    prefix: str,
    scan_special: bool,
    openai_images: bool = True,
) -> None:
    """OpenAI's rules; ``openai_images=False`` leaves image sources to the provider's checks."""
    tool_names = {tool.function.name for tool in tools} if tools is not None else None
    open_call_ids: set[str] = set()
    images = 0
    for index, message in enumerate(messages):
        where = f"{prefix}[{index}]"
        for text in _strings_of(message) if scan_special else ():
            if "<|" in text and (match := SPECIAL_TOKEN.search(text)):
                result.error(
                    code="special_token",
                    line=line,
                    location=where,
                    message=f"{where} contains the special-token string {match.group()}; "
                    "OpenAI fails the whole job on it. Remove or escape it.",
                )
                break
        if isinstance(message, AssistantMessage):
            _check_assistant(message, where, tool_names, line, result)
            open_call_ids.update(call.id for call in message.tool_calls or ())
        elif message.role == "tool" and message.tool_call_id not in open_call_ids:
            result.error(
                code="unknown_tool_call_id",
                line=line,
                location=f"{where}.tool_call_id",
                message=f'{where} answers tool call "{message.tool_call_id}", which no earlier '
                "assistant message made.",
            )
        if message.role == "user" and isinstance(message.content, list):
            for part_index, part in enumerate(message.content if openai_images else ()):
                if isinstance(part, ImagePart):
                    images += 1
                    _check_image_url(
                        part.image_url.url, f"{where}.content[{part_index}]", line, result
                    )
        elif (
            isinstance(message.content, str)
            and not message.content.strip()
            and message.role in ("user", "system")
        ):
            result.warn(
                code="empty_content",
                line=line,
                location=where,
                message=f"{where} has empty content.",
            )
    if images > MAX_IMAGES_PER_EXAMPLE:
        result.error(
            code="too_many_images",
            line=line,
            message=f"The example has {images} images; at most {MAX_IMAGES_PER_EXAMPLE} are allowed.",
        )


def _check_assistant(
    message: AssistantMessage,
    where: str,
    tool_names: set[str] | None,
    line: int,
    result: LineResult,
) -> None:
    if message.content is None and not message.tool_calls and message.function_call is None:
        result.error(
            code="missing_content",
            line=line,
            location=f"{where}.content",
            message=f"{where} has null content and no tool_calls: an assistant message needs one of them.",
        )
    for call_index, call in enumerate(message.tool_calls or ()):
        call_where = f"{where}.tool_calls[{call_index}]"
        try:
            orjson.loads(call.function.arguments)
        except orjson.JSONDecodeError:
            result.error(
                code="invalid_tool_arguments",
                line=line,
                location=f"{call_where}.function.arguments",
                message=f"{call_where}.function.arguments must be a JSON-encoded string of the arguments.",
            )
        if tool_names is not None and call.function.name not in tool_names:
            result.warn(
                code="undefined_tool",
                line=line,
                location=f"{call_where}.function.name",
                message=f'{call_where} calls "{call.function.name}", which is not in the example\'s tools.',
            )


def _check_image_url(url: str, where: str, line: int, result: LineResult) -> None:
    if url.startswith(("http://", "https://")):
        return
    if not url.startswith("data:"):
        result.error(
            code="invalid_image_url",
            line=line,
            location=where,
            message=f"{where}: an image must be an http(s) URL or a base64 data URL.",
        )
        return
    header, _, payload = url.partition(",")
    media_type = header[len("data:") :].split(";")[0]
    if media_type not in IMAGE_MEDIA_TYPES or ";base64" not in header:
        result.error(
            code="unsupported_image_format",
            line=line,
            location=where,
            message=f'{where}: images must be base64 JPEG, PNG or WEBP (got "{media_type or "?"}").',
        )
        return
    try:
        size = len(base64.b64decode(payload, validate=True))
    except (binascii.Error, ValueError):
        result.error(
            code="invalid_image_data",
            line=line,
            location=where,
            message=f"{where}: the base64 image data is corrupt.",
        )
        return
    if size > MAX_IMAGE_BYTES:
        result.error(
            code="image_too_large",
            line=line,
            location=where,
            message=f"{where}: the image is {size / 1_048_576:.1f} MB; the limit is 10 MB.",
        )


# ---------------------------------------------------------------- facts


def _strings_of(message: AnyMessage) -> Iterator[str]:
    """Every string a message contributes to the prompt the model sees."""
    content = message.content
    if isinstance(content, str):
        yield content
    elif content is not None:
        for part in content:
            if isinstance(part, TextPart):
                yield part.text
            elif isinstance(part, RefusalPart):
                yield part.refusal
    name = getattr(message, "name", None)
    if name:
        yield name
    if isinstance(message, AssistantMessage):
        for call in message.tool_calls or ():
            yield call.function.name
            yield call.function.arguments
        if message.function_call is not None:
            yield message.function_call.name
            yield message.function_call.arguments
        if message.refusal:
            yield message.refusal


def _facts(
    *,
    messages: Sequence[AnyMessage],
    reply_index: int,
    tools: list[ToolDefinition] | None,
    raw: bytes,
    line: int,
) -> ExampleFacts:
    texts: list[str] = []
    mask: list[bool] = []
    normalised: list[tuple[str, str]] = []
    overhead = TOKENS_REPLY_PRIMER
    has_images = False
    for message in messages:
        overhead += TOKENS_PER_MESSAGE
        strings = list(_strings_of(message))
        texts.extend(strings)
        mask.extend([isinstance(message, AssistantMessage) and message.weight != 0] * len(strings))
        normalised.append((message.role, normalise(" ".join(strings))))
        if getattr(message, "name", None):
            overhead += TOKENS_PER_NAME
        if message.role == "user" and isinstance(message.content, list):
            has_images = has_images or any(isinstance(p, ImagePart) for p in message.content)
    if tools:
        texts.append(orjson.dumps([tool.model_dump(exclude_none=True) for tool in tools]).decode())
        mask.append(False)
    reply = messages[reply_index]
    reply_text = " ".join(_strings_of(reply))
    return ExampleFacts(
        line=line,
        texts=texts,
        assistant_mask=mask,
        overhead=overhead,
        messages=len(messages),
        has_system=any(m.role == "system" for m in messages),
        has_tools=bool(tools),
        has_images=has_images,
        reply_is_short=not reply.tool_calls and len(reply_text.strip()) < SHORT_REPLY_CHARS,
        # Fingerprints only need to agree within one run, so Python's fast hash will do.
        exact=hash(raw.strip()),
        near=hash(tuple(normalised)),
        prompt=hash(tuple(normalised[:reply_index])),
        answer=hash(normalised[reply_index]),
    )


def _chat_facts(example: ChatExample, raw: bytes, line: int) -> ExampleFacts:
    messages = example.messages
    last_reply = max(i for i, m in enumerate(messages) if isinstance(m, AssistantMessage))
    return _facts(
        messages=messages,
        reply_index=last_reply,
        tools=example.tools,
        raw=raw,
        line=line,
    )


def _dpo_facts(example: DpoExample, raw: bytes, line: int) -> ExampleFacts:
    preferred = example.preferred_output[0]
    messages = [*example.input.messages, preferred, example.non_preferred_output[0]]
    return _facts(
        messages=messages,
        reply_index=len(example.input.messages),
        tools=example.input.tools,
        raw=raw,
        line=line,
    )
