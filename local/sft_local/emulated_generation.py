"""How the local stand-ins answer a data-generation request: a conversation in the requested
schema, about the requested topic, different for every variation key and the same every time
for the same one.

A generation request is one whose structured output (OpenAI's ``response_format``, Bedrock's
forced tool) is named ``training_conversation``; its prompt carries the ``Topic:``,
``Turns:`` and ``Variation key:`` lines sft_pipeline.generation.teacher writes. The text is
templated: a situation, a customer's details and a reply, drawn from the variation key, with
tool calls (named from the schema's enum) when the schema offers tools.

Faults, set on the stand-in's ``faults``: ``malform_generations(n)`` makes the next n answers
invalid (cut-off JSON from the emulator, a wrong shape from Bedrock's tool), and
``repeat_generations(n)`` makes the next n answers the same conversation, as a teacher stuck
on one idea writes.
"""

from __future__ import annotations

import json
import random
import re
from typing import Any, Literal

from sft_pipeline.generation.teacher import SCHEMA_NAME, TOPIC_LINE, TURNS_LINE, VARIATION_LINE

GenerationFault = Literal["malformed", "repeat"]
# The variation key a repeated answer is written for.
REPEATED_VARIATION = 0

_NAMES = [
    "Ana",
    "Bruno",
    "Chen",
    "Dara",
    "Eli",
    "Fatima",
    "Goran",
    "Hana",
    "Ivo",
    "Jules",
    "Kofi",
    "Lena",
    "Mateo",
    "Noor",
    "Otto",
    "Priya",
    "Quinn",
    "Rosa",
    "Sami",
    "Tomas",
]
_SITUATIONS = [
    "I ordered {item} last {day} and {problem}",
    "My {item} arrived on {day} but {problem}",
    "Quick question about {item}: {problem}",
    "Since {day} I have been trying to sort out {item}, and {problem}",
    "Hello, I need help with {item} because {problem}",
    "Can you check {item} for me? On {day} {problem}",
]
_PROBLEMS = [
    "the order number {ref} still shows as pending",
    "the total of {amount} looks wrong to me",
    "it does not match what the page said for reference {ref}",
    "I was charged {amount} twice under {ref}",
    "nobody answered my email about {ref}",
    "I would like to change it before it ships ({ref})",
    "the size I picked for {ref} is not right",
]
_FOLLOW_UPS = [
    "Thanks. And what happens with {ref} if {item} is already on its way?",
    "Understood. Could you also tell me how long a refund of {amount} takes?",
    "Great, one more thing: can I pick {item} up in a shop instead ({ref})?",
    "OK. What do I need to send you to finish this for {ref}?",
]
_REPLIES = [
    "Thanks for the details, {name}. I checked {ref}: {fix}. {close}",
    "Sorry about the trouble with {item}, {name}. {Fix} for {ref}. {close}",
    "I can help with that, {name}. For {ref}, {fix}. {close}",
]
_FIXES = [
    "the {amount} charge is a pre-authorisation that drops off within 3 business days",
    "I have moved the request to our returns team with priority",
    "the parcel left our warehouse and should arrive within 2 days",
    "I changed the order as you asked and sent a new confirmation",
    "a prepaid return label is on its way to your email",
]
_CLOSES = [
    "Is there anything else I can do?",
    "Let me know if that works for you.",
    "You will get an email as soon as it is done.",
    "Reply here if anything still looks off.",
]
_DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "weekend", "week", "month"]


def generation_schema(response_format: Any) -> dict[str, Any] | None:
    """The answer's JSON schema if ``response_format`` asks for a generated conversation."""
    if not isinstance(response_format, dict) or response_format.get("type") != "json_schema":
        return None
    spec = response_format.get("json_schema") or {}
    return spec.get("schema") if spec.get("name") == SCHEMA_NAME else None


def conversation(
    prompt: str, schema: dict[str, Any], fault: GenerationFault | None = None
) -> dict[str, Any]:
    """The structured answer to a generation request whose messages' text is ``prompt``."""
    topic = _line_value(prompt, TOPIC_LINE) or "the product"
    turns = int(_line_value(prompt, TURNS_LINE) or 1)
    key = REPEATED_VARIATION if fault == "repeat" else int(_line_value(prompt, VARIATION_LINE) or 0)
    tools = _tool_names(schema)
    rng = random.Random(f"{topic}:{key}")
    details = {
        "item": f"the {topic.lower()} order",
        "name": rng.choice(_NAMES),
        "ref": f"#{rng.randrange(10_000, 99_999)}-{rng.choice('ABCDEFGHJK')}",
        "amount": f"${rng.randrange(12, 480)}.{rng.randrange(0, 99):02d}",
        "day": rng.choice(_DAYS),
    }
    made = []
    for number in range(turns):
        if number == 0:
            problem = rng.choice(_PROBLEMS).format(**details)
            user = rng.choice(_SITUATIONS).format(problem=problem, **details) + "."
        else:
            user = rng.choice(_FOLLOW_UPS).format(**details)
        fix = rng.choice(_FIXES).format(**details)
        reply = rng.choice(_REPLIES).format(
            fix=fix, Fix=fix[0].upper() + fix[1:], close=rng.choice(_CLOSES), **details
        )
        turn: dict[str, Any] = {"user": f"{user} (I'm {details['name']}.)", "assistant": reply}
        if tools is not None:
            turn["tool_calls"] = (
                [
                    {
                        "name": rng.choice(tools),
                        "arguments": json.dumps({"reference": details["ref"], "topic": topic}),
                        "result": json.dumps({"status": "found", "reference": details["ref"]}),
                    }
                ]
                if tools and rng.random() < 0.7
                else []
            )
        made.append(turn)
    return {"turns": made}


def malformed_text(answer: dict[str, Any]) -> str:
    """A cut-off JSON answer, as a teacher that ran out of tokens writes."""
    text = json.dumps(answer)
    return text[: max(1, len(text) // 2)]


def malformed_input() -> dict[str, Any]:
    """A tool input of the wrong shape (Converse always sends an object)."""
    return {"turns": "I could not write the conversation."}


def _line_value(prompt: str, prefix: str) -> str | None:
    match = re.search(rf"^{re.escape(prefix)}(.+)$", prompt, re.MULTILINE)
    return match.group(1).strip() if match else None


def _tool_names(schema: dict[str, Any]) -> list[str] | None:
    """The tool names the schema allows; None when it offers no tool calls."""
    turn = schema.get("properties", {}).get("turns", {}).get("items", {})
    calls = turn.get("properties", {}).get("tool_calls")
    if calls is None:
        return None
    return list(calls.get("items", {}).get("properties", {}).get("name", {}).get("enum", []))
