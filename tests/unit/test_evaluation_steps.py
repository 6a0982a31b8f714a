"""The workflow's evaluation steps with in-memory fakes: shard, answer and grade, aggregate."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from sft_pipeline.aliases import Variant
from sft_pipeline.jobs import (
    Estimate,
    JobProgress,
    JobSettings,
    PollPolicy,
    UploadRef,
    WorkflowRequest,
    WorkflowState,
)
from sft_pipeline.pipeline.evaluation_steps import aggregate, evaluate_shard, prepare
from tests.fakes import FakeBucket, InMemoryRegistry

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
UPLOAD = UploadRef(bucket="data", key="training/support.jsonl", version_id="v1")
CANDIDATE = "ft:gpt-4o-mini-2024-07-18:acme::abc123"


def _line(question: str, answer: str) -> bytes:
    messages = [
        {"role": "system", "content": "You answer with the capital."},
        {"role": "user", "content": question},
        {"role": "assistant", "content": answer},
    ]
    return json.dumps({"messages": messages}).encode()


CAPITALS = [(f"capital of country {i}?", f"City{i}") for i in range(12)]


def _files() -> FakeBucket:
    lines = b"\n".join(_line(q, a) for q, a in CAPITALS)
    return FakeBucket({("data", UPLOAD.key): lines, ("data", "valid.jsonl"): lines})


def _state(*, validation_key: str | None = "valid.jsonl", **gate: object) -> WorkflowState:
    settings = JobSettings(base_model="gpt-4o-mini-2024-07-18", suffix="support")
    request = WorkflowRequest(
        dataset_id=UPLOAD.dataset_id,
        upload=UPLOAD,
        training_key=UPLOAD.key,
        validation_key=validation_key,
        examples=12,
        # The gate's metadata, set as the validation step would.
        settings=settings.model_copy(update=gate),
        poll=PollPolicy(interval_seconds=60, max_interval_seconds=300, max_duration_seconds=3600),
        estimate=Estimate(billed_tokens=3_000, cost_usd=0.01),
        report_uri="s3://data/reports/support.jsonl.v1.report.json",
        submitted_at=int(NOW.timestamp()),
    )
    job = JobProgress(
        provider="openai",
        job_id="ftjob-1",
        status="succeeded",
        state="succeeded",
        started_at=int(NOW.timestamp()),
        next_wait_seconds=0,
        fine_tuned_model=CANDIDATE,
    )
    return WorkflowState(request=request, job=job, outcome="succeeded")


def _chat(answers: dict[str, str]) -> Any:
    """The fine-tune knows the capitals; any other model does not."""

    def chat(body: dict[str, Any]) -> dict[str, Any]:
        question = body["messages"][-1]["content"]
        knows = body["model"] == CANDIDATE
        content = answers[question] if knows else "I am not sure."
        return {
            "choices": [{"message": {"role": "assistant", "content": content}}],
            "usage": {"prompt_tokens": 20, "completion_tokens": 2},
        }

    return chat


def _run(state: WorkflowState, files: FakeBucket, registry: InMemoryRegistry) -> Any:
    prepared = prepare(state, files, registry, shard_size=5)
    chat = _chat(dict(CAPITALS))
    for shard in prepared.shards:
        evaluate_shard(prepared.bucket, shard, files, chat, concurrency=2)
    return prepared, aggregate(prepared, files, registry, NOW)


def test_prepare_writes_shards_of_keys_only_and_a_plan() -> None:
    files, registry = _files(), InMemoryRegistry()
    prepared = prepare(_state(), files, registry, shard_size=5)
    prefix = f"evaluations/{UPLOAD.dataset_id}/shards/"
    assert prepared.shards == [f"{prefix}000.json", f"{prefix}001.json", f"{prefix}002.json"]
    assert prepared.examples == 12
    shard = json.loads(files.objects[("data", prepared.shards[2])])
    assert [e["reference"]["content"] for e in shard["examples"]] == ["City10", "City11"]
    plan = json.loads(files.objects[("data", str(prepared.plan_key))])
    assert [c["name"] for c in plan["contenders"]] == ["candidate", "base", "few_shot"]


def test_no_held_out_set_is_skipped_and_said() -> None:
    files, registry = _files(), InMemoryRegistry()
    prepared = prepare(_state(validation_key=None, alias="support-bot"), files, registry)
    assert prepared.shards == []
    result = aggregate(prepared, files, registry, NOW)
    assert not result.promoted and result.summary_key is None
    assert result.decision is not None and "no held-out set" in result.decision
    assert registry.list_aliases() == []


def test_a_better_fine_tune_is_promoted_to_a_new_alias_version() -> None:
    files, registry = _files(), InMemoryRegistry()
    _, result = _run(_state(alias="support-bot"), files, registry)
    assert result.promoted and result.alias_version == 1
    assert registry.get_alias_version("support-bot").variants == [
        Variant(model=CANDIDATE, weight=100)
    ]
    assert result.decision.startswith("promoted support-bot to v1")
    summary = json.loads(files.objects[("data", str(result.summary_key))])
    assert summary["examples"] == 12
    scores = {c["name"]: c["score"]["mean"] for c in summary["contenders"]}
    assert scores["candidate"] == 1.0 and scores["base"] == 0.0
    results = [key for _, key in files.objects if "/results/" in key]
    assert len(results) == 3


def test_a_champion_as_good_keeps_the_alias() -> None:
    files, registry = _files(), InMemoryRegistry()
    # The champion is the same fine-tune under another name: no better, so no promotion.
    champion = "ft:gpt-4o-mini-2024-07-18:acme::champ"
    registry.create_alias_version("support-bot", [Variant(model=champion, weight=100)], None, NOW)
    state = _state(alias="support-bot")
    prepared = prepare(state, files, registry, shard_size=5)
    answers = dict(CAPITALS)
    base_chat = _chat(answers)

    def chat(body: dict[str, Any]) -> dict[str, Any]:
        model = CANDIDATE if body["model"] == champion else body["model"]
        return base_chat({**body, "model": model})

    for shard in prepared.shards:
        evaluate_shard(prepared.bucket, shard, files, chat)
    result = aggregate(prepared, files, registry, NOW)
    assert not result.promoted
    assert registry.get_alias_version("support-bot").version == 1
    assert result.decision.startswith("support-bot left as it was: not promoted")


def test_no_alias_promotes_nothing() -> None:
    files, registry = _files(), InMemoryRegistry()
    _, result = _run(_state(), files, registry)
    assert not result.promoted
    assert registry.list_aliases() == []
