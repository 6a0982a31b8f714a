"""Emulated fine-tunes behave like fine-tunes: they answer from their own training set, their
base models answer generically (or like the answered questions a few-shot prompt shows them), a
degraded one answers wrongly, and answers take their time.

Both the OpenAI emulator (through the official SDK) and the Bedrock stand-in (through boto3).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from openai import OpenAI

from sft_local.bedrock_standin import BedrockStandIn, BedrockTimeline
from sft_local.emulated_answers import ExampleMemory, generic_reply, in_context_reply
from sft_local.openai_emulator import JobTimeline, OpenAIEmulator
from tests.integration.test_bedrock_standin import client as boto_client

START = 1_750_000_000.0
TIMELINE = JobTimeline(validating=1, queued=1, running=1)
SYSTEM = "You are the help desk of Northwind Outfitters."

# (question, reply): ten topics with few words in common.
EXAMPLES = [
    ("How do I reset my account password?", "Open Settings, choose Security, then Reset."),
    ("Where can I download last month's invoice?", "Invoices are under Billing, as PDF files."),
    ("Can I change the delivery address of an order?", "Yes, until it ships, under Orders."),
    ("Do you ship parcels to Canada?", "We ship to Canada in 5 to 8 business days."),
    ("Is the Aurora headlamp waterproof?", "It is water-resistant, not for diving."),
    ("How long is the warranty on tents?", "Tents carry a two-year warranty."),
    ("Can I pay with PayPal?", "Yes, PayPal and all major cards are accepted."),
    ("What sizes does the Ridge backpack come in?", "The Ridge comes in 35 and 45 litres."),
    ("How do I return a sleeping bag?", "Print the label from Returns and drop it off."),
    ("Do you have a store in Berlin?", "We sell online only, with free shipping over 75 euros."),
]
# Held-out paraphrases, and the training reply each must get.
PARAPHRASES = [
    ("I forgot my password: how can I reset it?", EXAMPLES[0][1]),
    ("where do I find an invoice to download", EXAMPLES[1][1]),
    ("what is the warranty for a tent", EXAMPLES[5][1]),
]
# A few-shot prompt's examples: the password, warranty and Canada questions, answered.
SHOTS = [EXAMPLES[0], EXAMPLES[5], EXAMPLES[3]]
TOOL_CALL = {
    "id": "call_1",
    "type": "function",
    "function": {"name": "order_status", "arguments": '{"order": "NW-1"}'},
}


def chat_jsonl(examples: list[tuple[str, str]], *, tool_question: str | None = None) -> bytes:
    rows: list[dict[str, Any]] = [
        {
            "messages": [
                {"role": "system", "content": SYSTEM},
                {"role": "user", "content": question},
                {"role": "assistant", "content": reply},
            ]
        }
        for question, reply in examples
    ]
    if tool_question is not None:
        rows.append(
            {
                "messages": [
                    {"role": "user", "content": tool_question},
                    {"role": "assistant", "tool_calls": [TOOL_CALL]},
                ]
            }
        )
    return b"".join(json.dumps(row).encode() + b"\n" for row in rows)


def ask(client: OpenAI, model: str, question: str) -> str | None:
    completion = client.chat.completions.create(
        model=model,
        messages=[{"role": "system", "content": SYSTEM}, {"role": "user", "content": question}],
        temperature=0,
    )
    return completion.choices[0].message.content


# The similarity itself


def test_the_most_similar_example_answers_and_ties_go_to_the_earlier_line() -> None:
    memory = ExampleMemory([("red tent", "first"), ("blue tent", "second"), ("tent", "third")])
    assert memory.recall("a blue one") == "second"
    assert memory.recall("tent please") == "third"  # the closest by TF-IDF cosine
    assert memory.recall("nothing in common") == "first"
    assert ExampleMemory[str]([]).recall("anything") is None


def test_degradation_answers_the_chosen_share_of_prompts_from_another_example() -> None:
    memory = ExampleMemory([(question, reply) for question, reply in EXAMPLES])
    questions = [question for question, _ in EXAMPLES]
    right = [memory.recall(question) for question in questions]
    assert right == [reply for _, reply in EXAMPLES]
    fully = [memory.recall(question, degradation=1.0) for question in questions]
    assert all(got != want for got, want in zip(fully, right, strict=True))
    partly = [memory.recall(question, degradation=0.5) for question in questions]
    assert partly == [memory.recall(question, degradation=0.5) for question in questions]
    assert 0 < sum(got != want for got, want in zip(partly, right, strict=True)) < len(questions)


def shown(question: str) -> list[tuple[str, str]]:
    """A few-shot prompt's turns (role, text), then ``question``."""
    answered = [turn for q, r in SHOTS for turn in (("user", q), ("assistant", r))]
    return [("system", SYSTEM), *answered, ("user", question)]


def test_shown_answered_questions_answer_only_a_close_question() -> None:
    assert in_context_reply(shown(PARAPHRASES[0][0])) == PARAPHRASES[0][1]
    assert in_context_reply(shown(PARAPHRASES[2][0])) == PARAPHRASES[2][1]
    # No shown question is about invoices.
    assert in_context_reply(shown(PARAPHRASES[1][0])) is None
    assert in_context_reply([("system", SYSTEM), ("user", PARAPHRASES[0][0])]) is None
    # The conversation is the assistant's to end, not to answer.
    assert in_context_reply(shown(PARAPHRASES[0][0])[:-1]) is None
    assert in_context_reply([]) is None


# The OpenAI emulator


@pytest.fixture
def emulator() -> Iterator[OpenAIEmulator]:
    with OpenAIEmulator(timeline=TIMELINE, clock=lambda: START, chat_latency=0) as running:
        yield running


@pytest.fixture
def client(emulator: OpenAIEmulator) -> OpenAI:
    return OpenAI(base_url=emulator.base_url, api_key="test", max_retries=0)


def fine_tune(emulator: OpenAIEmulator, client: OpenAI, content: bytes) -> str:
    training = client.files.create(file=("train.jsonl", content), purpose="fine-tune")
    job = client.fine_tuning.jobs.create(model="gpt-4o-mini", training_file=training.id)
    emulator.advance(3)
    model = client.fine_tuning.jobs.retrieve(job.id).fine_tuned_model
    assert model is not None
    # What it learnt outlives the file, which the pipeline may delete.
    client.files.delete(training.id)
    return model


def test_a_fine_tune_answers_a_paraphrase_with_its_training_reply(
    emulator: OpenAIEmulator, client: OpenAI
) -> None:
    model = fine_tune(emulator, client, chat_jsonl(EXAMPLES))
    other = fine_tune(emulator, client, chat_jsonl([(q, "Other: " + r) for q, r in EXAMPLES]))
    for question, reply in PARAPHRASES:
        assert ask(client, model, question) == reply
        assert ask(client, other, question) == "Other: " + reply


def test_the_base_model_answers_generically(emulator: OpenAIEmulator, client: OpenAI) -> None:
    fine_tune(emulator, client, chat_jsonl(EXAMPLES))
    replies = {reply for _, reply in EXAMPLES}
    for question, _ in PARAPHRASES:
        answer = ask(client, "gpt-4o-mini", question)
        assert answer == generic_reply(question) and answer not in replies


def test_a_base_model_shown_answered_questions_answers_a_close_one_like_them(
    client: OpenAI,
) -> None:
    for question, reply in PARAPHRASES:
        completion = client.chat.completions.create(
            model="gpt-4o-mini",
            messages=[{"role": role, "content": text} for role, text in shown(question)],
            temperature=0,
        )
        answer = completion.choices[0].message.content
        assert answer == (reply if reply in dict(SHOTS).values() else generic_reply(question))


def test_a_degraded_fine_tune_answers_from_the_wrong_example(
    emulator: OpenAIEmulator, client: OpenAI
) -> None:
    model = fine_tune(emulator, client, chat_jsonl(EXAMPLES))
    emulator.faults.degrade_next_job()
    degraded = fine_tune(emulator, client, chat_jsonl(EXAMPLES))
    for question, reply in PARAPHRASES:
        assert ask(client, degraded, question) != reply
        assert ask(client, model, question) == reply
    emulator.faults.degrade(model)
    assert all(ask(client, model, question) != reply for question, reply in PARAPHRASES)
    emulator.faults.clear()
    assert all(ask(client, degraded, question) == reply for question, reply in PARAPHRASES)


def test_a_fine_tune_calls_the_tools_its_example_called(
    emulator: OpenAIEmulator, client: OpenAI
) -> None:
    model = fine_tune(emulator, client, chat_jsonl(EXAMPLES, tool_question="Where is NW-1?"))
    completion = client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": "where is my order NW-1"}]
    )
    choice = completion.choices[0]
    assert (choice.finish_reason, choice.message.content) == ("tool_calls", None)
    [call] = choice.message.tool_calls or []
    assert call.type == "function" and call.id.startswith("call_")
    assert (call.function.name, call.function.arguments) == ("order_status", '{"order": "NW-1"}')
    assert completion.usage is not None and completion.usage.completion_tokens > 0


def test_usage_counts_the_prompt_and_the_answer(emulator: OpenAIEmulator, client: OpenAI) -> None:
    model = fine_tune(emulator, client, chat_jsonl(EXAMPLES))
    question, reply = PARAPHRASES[0]
    completion = client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": question}]
    )
    assert completion.usage is not None
    # One token per four characters.
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (
        -(-len(question) // 4),
        -(-len(reply) // 4),
    )


def test_chat_answers_wait_the_configured_latency() -> None:
    waits: list[float] = []
    with OpenAIEmulator(timeline=TIMELINE, clock=lambda: START, sleep=waits.append) as emulator:
        client = OpenAI(base_url=emulator.base_url, api_key="test", max_retries=0)
        ask(client, "gpt-4o-mini", "Hello?")
        assert waits == [0.1]  # the default
        client.models.list()
        assert waits == [0.1]  # only chat answers wait
        emulator.faults.set_chat_latency(0.25, model="gpt-4o-mini-2024-07-18")
        emulator.faults.set_chat_latency(0.5)
        ask(client, "gpt-4o-mini", "Hello?")
        ask(client, "gpt-4.1-mini", "Hello?")
        assert waits == [0.1, 0.25, 0.5]


# The Bedrock stand-in

BEDROCK_TIMELINE = BedrockTimeline(training=2, validating=1, stopping=1, deploying=1)
NOVA = "amazon.nova-micro-v1:0:128k"


def nova_jsonl(examples: list[tuple[str, str]]) -> bytes:
    rows = (
        {
            "schemaVersion": "bedrock-conversation-2024",
            "system": [{"text": SYSTEM}],
            "messages": [
                {"role": "user", "content": [{"text": question}]},
                {"role": "assistant", "content": [{"text": reply}]},
            ],
        }
        for question, reply in examples
    )
    return b"".join(json.dumps(row).encode() + b"\n" for row in rows)


@dataclass
class Bedrock:
    standin: BedrockStandIn
    storage: dict[str, bytes]
    control: Any
    runtime: Any

    def deploy(self, content: bytes) -> tuple[str, str]:
        """A custom model trained on ``content``: its model ARN and its deployment's ARN."""
        name = f"job-{len(self.storage)}"
        self.storage[f"s3://data/{name}.jsonl"] = content
        self.control.create_model_customization_job(
            jobName=name,
            customModelName=name,
            roleArn="arn:aws:iam::123456789012:role/bedrock",
            baseModelIdentifier=NOVA,
            trainingDataConfig={"s3Uri": f"s3://data/{name}.jsonl"},
            outputDataConfig={"s3Uri": "s3://data/out/"},
        )
        self.standin.advance(BEDROCK_TIMELINE.training)
        job = self.control.get_model_customization_job(jobIdentifier=name)
        deployment = self.control.create_custom_model_deployment(
            modelDeploymentName=name, modelArn=job["outputModelArn"]
        )["customModelDeploymentArn"]
        self.standin.advance(BEDROCK_TIMELINE.deploying)
        return job["outputModelArn"], deployment

    def ask(self, model_id: str, question: str) -> str:
        response = self.runtime.converse(
            modelId=model_id,
            system=[{"text": SYSTEM}],
            messages=[{"role": "user", "content": [{"text": question}]}],
            inferenceConfig={"temperature": 0},
        )
        [block] = response["output"]["message"]["content"]
        text: str = block["text"]
        return text


def bedrock_of(standin: BedrockStandIn, storage: dict[str, bytes]) -> Bedrock:
    return Bedrock(
        standin, storage, boto_client("bedrock", standin), boto_client("bedrock-runtime", standin)
    )


@pytest.fixture
def bedrock() -> Iterator[Bedrock]:
    storage: dict[str, bytes] = {}
    with BedrockStandIn(
        read_object=storage.__getitem__,
        write_object=storage.__setitem__,
        timeline=BEDROCK_TIMELINE,
        clock=lambda: START,
        chat_latency=0,
    ) as standin:
        yield bedrock_of(standin, storage)


def test_a_custom_model_answers_a_paraphrase_with_its_training_reply(bedrock: Bedrock) -> None:
    _, deployment = bedrock.deploy(nova_jsonl(EXAMPLES))
    _, other = bedrock.deploy(nova_jsonl([(q, "Other: " + r) for q, r in EXAMPLES]))
    for question, reply in PARAPHRASES:
        assert bedrock.ask(deployment, question) == reply
        assert bedrock.ask(other, question) == "Other: " + reply


@pytest.mark.parametrize(
    "model_id",
    [
        "amazon.nova-micro-v1:0",
        "us.amazon.nova-micro-v1:0",
        "arn:aws:bedrock:us-east-1::foundation-model/amazon.nova-lite-v1:0",
    ],
)
def test_a_base_model_on_demand_answers_generically(bedrock: Bedrock, model_id: str) -> None:
    bedrock.deploy(nova_jsonl(EXAMPLES))
    replies = {reply for _, reply in EXAMPLES}
    for question, _ in PARAPHRASES:
        answer = bedrock.ask(model_id, question)
        assert answer == generic_reply(question) and answer not in replies


def test_a_base_model_on_demand_shown_answered_questions_answers_a_close_one_like_them(
    bedrock: Bedrock,
) -> None:
    for question, reply in PARAPHRASES:
        turns = shown(question)
        response = bedrock.runtime.converse(
            modelId="amazon.nova-micro-v1:0",
            system=[{"text": SYSTEM}],
            messages=[{"role": role, "content": [{"text": text}]} for role, text in turns[1:]],
            inferenceConfig={"temperature": 0},
        )
        [block] = response["output"]["message"]["content"]
        assert block["text"] == (
            reply if reply in dict(SHOTS).values() else generic_reply(question)
        )


def test_a_degraded_custom_model_answers_from_the_wrong_example(bedrock: Bedrock) -> None:
    model, deployment = bedrock.deploy(nova_jsonl(EXAMPLES))
    bedrock.standin.faults.degrade_next_job()
    _, degraded = bedrock.deploy(nova_jsonl(EXAMPLES))
    for question, reply in PARAPHRASES:
        assert bedrock.ask(degraded, question) != reply
        assert bedrock.ask(deployment, question) == reply
    # Named by its custom model ARN, as the registry knows it.
    bedrock.standin.faults.degrade(model)
    assert all(bedrock.ask(deployment, question) != reply for question, reply in PARAPHRASES)
    bedrock.standin.faults.clear()
    assert all(bedrock.ask(degraded, question) == reply for question, reply in PARAPHRASES)


def test_converse_answers_wait_the_configured_latency() -> None:
    waits: list[float] = []
    storage: dict[str, bytes] = {}
    with BedrockStandIn(
        read_object=storage.__getitem__,
        write_object=storage.__setitem__,
        timeline=BEDROCK_TIMELINE,
        clock=lambda: START,
        sleep=waits.append,
    ) as standin:
        bedrock = bedrock_of(standin, storage)
        model, deployment = bedrock.deploy(nova_jsonl(EXAMPLES))
        assert waits == []  # only model answers wait
        response = bedrock.runtime.converse(
            modelId=deployment, messages=[{"role": "user", "content": [{"text": "Hello?"}]}]
        )
        assert waits == [0.1]  # the default
        assert response["metrics"]["latencyMs"] == 100
        standin.faults.set_chat_latency(0.25, model=model)
        standin.faults.set_chat_latency(0.5)
        bedrock.ask(deployment, "Hello?")
        bedrock.ask("amazon.nova-micro-v1:0", "Hello?")
        assert waits == [0.1, 0.25, 0.5]
