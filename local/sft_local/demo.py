"""``make demo``: the whole pipeline on the embedded local stack.

Drops the shipped customer-support set into the bucket with a held-out set and an alias,
follows validation, the fine-tuning job and the evaluation as they happen, then shows the
registered model, the DynamoDB record and the notification (with the evaluation's score
table and the promotion) as email and Slack would show it. A broken file follows, to show
what a rejection looks like, then a second upload whose fine-tune is worse, which the gate
refuses to promote, then the model through the API, then the model's end of service: the
retirement watcher's warning a week before its base model stops serving, and its retrain
on Amazon Bedrock through the API.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import time
import urllib.request
from decimal import Decimal
from typing import Any, TextIO

import boto3
import openai

from sft_local.api_server import LocalApiServer
from sft_local.serve import DEMO_ALIAS, LOG_FILE, issue_key, point_alias
from sft_local.stack import REPO, LocalStack
from sft_pipeline.adapters.registry import Registry
from sft_pipeline.jobs import EXECUTION_NAME_PREFIX, UploadRef
from sft_pipeline.lifecycle import serving_ends

SAMPLES = REPO / "samples"
POLL_SECONDS = 0.05
DEPLOYMENT_WAIT_TRIES = 100


class _Console:
    """The terminal, held on to: the functions' logs are redirected while they run."""

    stream: TextIO = sys.stdout


def say(text: str = "") -> None:
    print(text, file=_Console.stream, flush=True)


def _plain(value: Any) -> Any:
    """DynamoDB hands numbers back as Decimal; show them as the numbers they are."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    return str(value)


def _json(value: Any) -> str:
    return json.dumps(value, indent=2, default=_plain)


def follow(stack: LocalStack, upload: UploadRef) -> str:
    """Print each job status change as the workflow's poll loop sees it."""
    seen_events = 0
    last_status = None
    while True:
        history = stack.history(upload)
        for event in history[seen_events:]:
            details = event.get("stateExitedEventDetails", {})
            name = details.get("name")
            if name in EVALUATION_STATES:
                say(f"  {EVALUATION_STATES[name](json.loads(details['output']))}")
            if name not in ("JobLaunched", "JobPolled", "JobCancelledOnTimeout"):
                continue
            job = json.loads(details["output"])["job"]
            if job["status"] != last_status:
                last_status = job["status"]
                tokens = (
                    f", {job['trained_tokens']:,} tokens trained"
                    if job.get("trained_tokens")
                    else ""
                )
                latest = f"  ({job['latest_events'][0]})" if job.get("latest_events") else ""
                say(f"  job {job['job_id']}: {job['status']}{tokens}{latest}")
        seen_events = len(history)
        status = stack.execution_status(upload)
        if status != "RUNNING":
            say(f"  workflow execution: {status}")
            return status
        time.sleep(POLL_SECONDS)


def _evaluation_planned(output: dict[str, Any]) -> str:
    plan = output["evaluation_plan"]
    if plan["skipped"]:
        return f"evaluation skipped: {plan['skipped']}"
    return (
        f"evaluation: {plan['examples']} held-out examples in {len(plan['shards'])} shard(s) "
        f"to s3://{plan['bucket']}/{plan['plan_key'].rsplit('/', 1)[0]}/"
    )


def _evaluation_done(output: dict[str, Any]) -> str:
    outcome = output["evaluation"]
    return f"gate: {outcome['decision'] or outcome['skipped']}"


# What the demo says as each evaluation state ends, from the state's output.
EVALUATION_STATES = {
    "RegisterModel": lambda output: f"registered {output['registered']['model_id']}",
    "PrepareEvaluation": _evaluation_planned,
    "AggregateEvaluation": _evaluation_done,
}


def call_through_the_api(stack: LocalStack, server: LocalApiServer, model_id: str) -> None:
    """The last step a user takes: an OpenAI client, pointed at this API, calls the model.

    The evaluation gate made the model the alias's first version; without it (a manual
    promotion), the admin key points the alias at the model through the API."""
    registry = Registry(stack.table())
    key = issue_key(registry, "demo")
    admin_key = issue_key(registry, "demo admin", "admin")
    current = registry.get_alias_version(DEMO_ALIAS)
    version = current.version
    if [variant.model for variant in current.variants] != [model_id]:
        version = point_alias(server, admin_key, DEMO_ALIAS, model_id)
    say()
    say(f"9. The API on {server.base_url}: alias {DEMO_ALIAS} (version {version}) -> {model_id}")
    say(f"   inference key (chat completions, models): {key}")
    say(f"   admin key (also jobs, cancel, aliases):    {admin_key}")
    say(f'   client = openai.OpenAI(base_url="{server.base_url}", api_key="{key[:12]}...")')
    client = openai.OpenAI(base_url=server.base_url, api_key=key, max_retries=0)
    question = "My Summit 2 tent arrived with a broken pole. What can you do?"
    answer = _ask(client, question)
    say(f"   user:      {question}")
    say(f"   assistant: {answer.parse().choices[0].message.content}")
    say(f"   (served by {answer.headers['x-sft-model']}, alias {answer.headers['x-sft-alias']})")


# The held-out set the evaluation answers, kept outside training/ so it starts no run.
HELD_OUT_KEY = "evaluation/customer_support_heldout.jsonl"
# Every demo upload is evaluated on it, for the alias the gate may promote.
GATED = {"eval-key": HELD_OUT_KEY, "alias": DEMO_ALIAS, "seed": "7"}
# What each provider is asked to train in the demo.
DEMO_SETTINGS = {
    "openai": {"suffix": "support", **GATED},
    "bedrock": {
        "provider": "bedrock",
        "base-model": "amazon.nova-micro-v1:0:128k",
        "suffix": "support",
        **GATED,
    },
}


def _ask(client: openai.OpenAI, question: str) -> Any:
    """Ask through the alias; a model still being deployed answers 503 for a moment."""
    for _ in range(DEPLOYMENT_WAIT_TRIES):
        try:
            return client.chat.completions.with_raw_response.create(
                model=DEMO_ALIAS, messages=[{"role": "user", "content": question}]
            )
        except openai.InternalServerError as deploying:
            if deploying.code != "model_deploying":
                raise
            time.sleep(POLL_SECONDS)
    raise TimeoutError("the model's deployment did not become active")


def train_and_show(
    stack: LocalStack, training: bytes, key: str, metadata: dict[str, str]
) -> dict[str, Any] | None:
    """Steps 1-6: the upload, its validation, the run, the registry record, the notification."""
    shown = ",".join(f"{k}={v}" for k, v in metadata.items())
    held_out = SAMPLES / "customer_support_validation.jsonl"
    say(f"1. Upload {held_out.name} to s3://{stack.bucket}/{HELD_OUT_KEY} (the held-out set),")
    stack.upload(held_out.read_bytes(), HELD_OUT_KEY)
    say(f"   then customer_support.jsonl to s3://{stack.bucket}/{key} (metadata: {shown})")
    upload = stack.upload(training, key, metadata)
    stack.settle()
    dataset = stack.table().get_item(Key={"PK": f"DATASET#{upload.dataset_id}", "SK": "DATASET"})[
        "Item"
    ]
    say(f"2. Validation: {dataset['summary']}")
    say(f"   report: {dataset['report_uri']}")
    say(
        "3. Fine-tuning (Step Functions: launch, then wait / poll / check until the job ends),"
        " registration, then the evaluation against the base model and a few-shot prompt"
    )
    follow(stack, upload)
    stack.settle()
    models = [i for i in stack.table().scan()["Items"] if i["PK"].startswith("MODEL#")]
    if not models:
        say("No model was registered; see the notification below.")
        for email in stack.emails():
            say(email)
        return None
    model: dict[str, Any] = models[0]
    say()
    say(f"Fine-tuned model: {model['model_id']}")
    say()
    say("4. The model registry record in DynamoDB (with its lineage; its evaluation summary")
    say("   is stored beside it and shown as the table in the notification below):")
    shown_fields = {k: v for k, v in model.items() if k not in ("GSI1PK", "GSI1SK")}
    shown_fields["evaluation"] = "..." if "evaluation" in shown_fields else None
    say(_json(shown_fields))
    say()
    say("5. The notification, as the email subscriber reads it:")
    for email in stack.emails():
        say("   " + email.replace("\n", "\n   "))
    say("6. ...and as Slack shows it (Block Kit, posted to the webhook):")
    for message in stack.slack.messages:
        say(_json(message))
    say()
    return model


def run(provider: str = "openai") -> int:
    _Console.stream = sys.stdout
    started = time.monotonic()
    say(
        "Starting the local stack from template.yaml (moto, the OpenAI emulator, the Bedrock stand-in, a Slack receiver)..."
    )
    LOG_FILE.parent.mkdir(parents=True, exist_ok=True)
    with (
        LOG_FILE.open("w") as function_logs,
        LocalStack(function_logs=function_logs) as stack,
        LocalApiServer(stack) as server,
    ):
        # Notifications name the API the model can be called through.
        stack.override_environment({"API_BASE_URL": server.base_url})
        say(f"  bucket s3://{stack.bucket}, OpenAI emulator at {stack.openai.base_url}")
        say(f"  the functions' own logs (Powertools JSON) go to {LOG_FILE.relative_to(REPO)}")
        say()
        training = (SAMPLES / "customer_support.jsonl").read_bytes()
        key = "training/customer_support.jsonl"
        metadata = DEMO_SETTINGS[provider]
        model = train_and_show(stack, training, key, metadata)
        if model is None:
            return 1
        broken = SAMPLES / "broken_support.jsonl"
        say(
            f"7. A broken file, {broken.name}: reported with line numbers, never launched, never lost"
        )
        rejected = stack.upload(broken.read_bytes(), "training/broken_support.jsonl")
        stack.settle()
        record = stack.table().get_item(
            Key={"PK": f"DATASET#{rejected.dataset_id}", "SK": "DATASET"}
        )["Item"]
        say(f"   {record['summary']} -> {record['status']} ({record['rejection_code']})")
        for email in stack.emails():
            say("   " + email.replace("\n", "\n   "))
        refused_promotion(stack, training, key, metadata)
        call_through_the_api(stack, server, model["model_id"])
        retire_and_retrain(stack, server, model["model_id"])
    say(f"Done in {time.monotonic() - started:.1f}s.")
    return 0


def refused_promotion(stack: LocalStack, data: bytes, key: str, metadata: dict[str, str]) -> None:
    """A second upload whose fine-tune is worse than the alias's: the gate keeps the alias."""
    say()
    say("8. The same data again, but this job's fine-tune is worse (the emulator answers from the")
    say(f"   wrong training examples): the gate compares it with {DEMO_ALIAS}'s v1 and keeps it")
    stack.openai.faults.degrade_next_job(1.0)
    stack.bedrock.faults.degrade_next_job(1.0)
    upload = stack.upload(data + b"\n", key, metadata)
    stack.settle()
    follow(stack, upload)
    stack.settle()
    for email in stack.emails():
        start = email.index("Evaluation (")
        say("   " + email[start : email.index("\n\n", start)].replace("\n", "\n   "))


def retire_and_retrain(stack: LocalStack, server: LocalApiServer, model_id: str) -> None:
    """The model's end of service: the daily watcher, run as if a week before the base model
    stops serving, warns; one API call retrains the model on Bedrock from the same data."""
    registry = Registry(stack.table())
    model = registry.get_model(model_id)
    shutdown = serving_ends(model.base_model) if model else None
    if model is None or shutdown is None:
        return  # a model with no published end date: nothing to warn about
    today = shutdown - dt.timedelta(days=7)
    say()
    say(
        f"10. Retirement: the daily watcher, run as on {today} ({model_id} stops serving {shutdown})"
    )
    stack.emails()
    answer = boto3.client("lambda").invoke(
        FunctionName=stack.ref("RetirementWatcherFunction"),
        Payload=json.dumps({"today": today.isoformat()}).encode(),
    )
    say(f"   watcher: {json.loads(answer['Payload'].read())}")
    stack.settle()
    for email in stack.emails():
        say("   " + email.replace("\n", "\n   "))
    say(f"   Slack: {stack.slack.messages[-1]['text']}")
    admin_key = issue_key(registry, "demo retrain", "admin")
    request = urllib.request.Request(
        server.base_url.removesuffix("/v1") + f"/models/{DEMO_ALIAS}/retrain",
        data=json.dumps({"provider": "bedrock"}).encode(),
        headers={"Authorization": f"Bearer {admin_key}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        ordered = json.loads(response.read())
    say()
    say(f'11. POST /models/{DEMO_ALIAS}/retrain {{"provider": "bedrock"}} -> {response.status}')
    say("   " + _json(ordered).replace("\n", "\n   "))
    arn = stack.state_machine_arn.replace(":stateMachine:", ":execution:")
    execution = f"{arn}:{EXECUTION_NAME_PREFIX}{ordered['dataset_id']}"
    stack.settle()
    states = boto3.client("stepfunctions")
    while (status := states.describe_execution(executionArn=execution)["status"]) == "RUNNING":
        time.sleep(POLL_SECONDS)
    stack.settle()
    retrained = next(m for m in registry.every_model() if m.retrained_from == model_id)
    say(f"   run {ordered['dataset_id']}: {status} -> {retrained.model_id}")
    same = (retrained.upload, retrained.dataset_sha256) == (model.upload, model.dataset_sha256)
    say(f"   same data version and sha256 as {model_id}: {same}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="Run the whole pipeline on the local stack.")
    parser.add_argument("--provider", choices=sorted(DEMO_SETTINGS), default="openai")
    sys.exit(run(parser.parse_args().provider))
