"""The workflow's evaluation steps with in-memory fakes: shard, answer and grade, aggregate."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from sft_pipeline.aliases import Variant
from sft_pipeline.jobs import (
    Estimate,
    EvaluationOutcome,
    JobProgress,
    JobSettings,
    ModelRegistration,
    PollPolicy,
    UploadRef,
    WorkflowRequest,
    WorkflowState,
)
from sft_pipeline.pipeline import evaluation_steps
from sft_pipeline.pipeline.evaluation_steps import (
    CandidateNotServingError,
    aggregate,
    evaluate_shard,
    evaluation_report,
    prepare,
)
from sft_pipeline.providers.base import ServingStatus
from sft_pipeline.records import ModelRecord
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
    registered = ModelRegistration(
        model_id=CANDIDATE, serving_model=CANDIDATE, serving_status="ready", newly_registered=True
    )
    return WorkflowState(request=request, job=job, outcome="succeeded", registered=registered)


class Serving:
    """The chat port's view of a deployment: answers what it was told, counts the looks."""

    def __init__(self, status: ServingStatus = "ready") -> None:
        self.status: ServingStatus = status
        self.looks = 0

    def serving_status(self, serving_model: str) -> ServingStatus:
        self.looks += 1
        return self.status


def _registered_model(registry: InMemoryRegistry, model_id: str, serving: str) -> None:
    registry.register_model(
        ModelRecord(
            model_id=model_id,
            provider="bedrock",
            job_id="job-" + model_id[-6:],
            base_model="amazon.nova-micro-v1:0:128k",
            dataset_id="d" * 32,
            upload=UPLOAD,
            hyperparameters={},
            started_at=NOW,
            finished_at=NOW,
            created_at=NOW,
            serving_model=serving,
            serving_status="ready",
        )
    )


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


def _run(
    state: WorkflowState, files: FakeBucket, registry: InMemoryRegistry, chat: Any = None
) -> Any:
    if registry.get_model(CANDIDATE) is None:
        _registered_model(registry, CANDIDATE, CANDIDATE)
    prepared = prepare(state, files, registry, Serving(), shard_size=5)
    for shard in prepared.shards:
        evaluate_shard(prepared.bucket, shard, files, chat or _chat(dict(CAPITALS)))
    return prepared, aggregate(prepared, files, registry, NOW)


def test_prepare_writes_shards_of_keys_only_a_manifest_and_a_plan() -> None:
    files, registry = _files(), InMemoryRegistry()
    prepared = prepare(_state(), files, registry, Serving(), shard_size=5, concurrency=7)
    prefix = f"evaluations/{UPLOAD.dataset_id}/"
    shards = [f"{prefix}shards/{n:04d}.json" for n in range(3)]
    assert (prepared.shards, prepared.examples, prepared.concurrency) == (shards, 12, 7)
    assert not prepared.distributed
    manifest = json.loads(files.objects[("data", str(prepared.manifest_key))])
    assert manifest == [{"shard_key": key} for key in shards]
    shard = json.loads(files.objects[("data", shards[2])])
    assert [e["reference"]["content"] for e in shard["examples"]] == ["City10", "City11"]
    plan = json.loads(files.objects[("data", str(prepared.plan_key))])
    assert [c["name"] for c in plan["contenders"]] == ["candidate", "base", "few_shot"]
    assert plan["candidate_model_id"] == CANDIDATE
    assert plan["graders"] == ["exact_match", "normalised_match"]  # short answers


def test_a_large_held_out_set_goes_to_the_distributed_map_through_its_manifest(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(evaluation_steps, "INLINE_SHARDS", 2)
    files, registry = _files(), InMemoryRegistry()
    _registered_model(registry, CANDIDATE, CANDIDATE)
    prepared = prepare(_state(), files, registry, Serving(), shard_size=5)
    # The state carries no shard list: the Distributed Map reads the manifest itself.
    assert prepared.distributed and prepared.shards == []
    manifest = json.loads(files.objects[("data", str(prepared.manifest_key))])
    chat = _chat(dict(CAPITALS))
    for entry in manifest:
        evaluate_shard(prepared.bucket, entry["shard_key"], files, chat)
    result = aggregate(prepared, files, registry, NOW)
    assert result.outcome.examples == 12


def test_the_uploads_settings_choose_graders_few_shot_and_judge() -> None:
    files, registry = _files(), InMemoryRegistry()
    state = _state(graders=["token_f1"], few_shot_k=0, judge_model="gpt-4.1-2025-04-14")
    prepared = prepare(state, files, registry, Serving(), shard_size=5)
    plan = json.loads(files.objects[("data", str(prepared.plan_key))])
    assert plan["graders"] == ["token_f1"]
    assert [c["name"] for c in plan["contenders"]] == ["candidate", "base"]
    assert plan["judge"] == "gpt-4.1-2025-04-14"
    # The stack's judge applies only when the upload names none.
    prepared = prepare(_state(), files, registry, Serving(), judge_model="gpt-4.1-mini")
    assert json.loads(files.objects[("data", str(prepared.plan_key))])["judge"] == "gpt-4.1-mini"


def test_the_judges_scores_are_summarised_beside_the_graders() -> None:
    files, registry = _files(), InMemoryRegistry()
    answers = dict(CAPITALS)
    plain = _chat(answers)

    def chat(body: dict[str, Any]) -> dict[str, Any]:
        if body["model"] != "judge-model":
            return plain(body)
        verdict = '{"winner": "A"}' if CANDIDATE in json.dumps(body) else '{"winner": "B"}'
        return {"choices": [{"message": {"role": "assistant", "content": verdict}}]}

    _, result = _run(_state(few_shot_k=0, judge_model="judge-model"), files, registry, chat)
    summary = json.loads(files.objects[("data", str(result.outcome.summary_key))])
    assert "judge" in summary["graders"]


def test_no_held_out_set_is_skipped_and_said() -> None:
    files, registry = _files(), InMemoryRegistry()
    prepared = prepare(_state(validation_key=None, alias="support-bot"), files, registry, Serving())
    assert prepared.plan_key is None and prepared.shards == []
    result = aggregate(prepared, files, registry, NOW).outcome
    assert not result.promoted and result.summary_key is None
    assert result.skipped is not None and "no held-out set" in result.skipped
    assert registry.list_aliases() == []


def test_a_deployment_still_being_created_is_waited_for() -> None:
    files, registry = _files(), InMemoryRegistry()
    state = _state()
    assert state.registered is not None
    state.registered = state.registered.model_copy(update={"serving_status": "deploying"})
    serving = Serving("deploying")
    with pytest.raises(CandidateNotServingError):
        prepare(state, files, registry, serving)
    assert files.objects.keys() == _files().objects.keys()  # nothing written yet
    serving.status = "ready"
    assert prepare(state, files, registry, serving).plan_key is not None
    assert serving.looks == 2


def test_a_model_not_served_on_demand_is_skipped_with_the_reason() -> None:
    files, registry = _files(), InMemoryRegistry()
    state = _state()
    assert state.registered is not None
    state.registered = state.registered.model_copy(
        update={"serving_status": "needs_provisioned_throughput", "serving_note": "buy PT"}
    )
    prepared = prepare(state, files, registry, Serving())
    assert prepared.skipped is not None and "not served on demand" in prepared.skipped
    assert "buy PT" in prepared.skipped


def test_a_better_fine_tune_is_promoted_to_a_new_alias_version() -> None:
    files, registry = _files(), InMemoryRegistry()
    _, aggregated = _run(_state(alias="support-bot"), files, registry)
    result = aggregated.outcome
    assert result.promoted and result.alias_version == 1
    assert registry.get_alias_version("support-bot").variants == [
        Variant(model=CANDIDATE, weight=100)
    ]
    assert result.decision.startswith("promoted support-bot to v1: +1.00 over the base model")
    summary = json.loads(files.objects[("data", str(result.summary_key))])
    assert summary["examples"] == 12
    scores = {c["name"]: c["score"]["mean"] for c in summary["contenders"]}
    assert scores["candidate"] == 1.0 and scores["base"] == 0.0
    results = [key for _, key in files.objects if "/results/" in key]
    assert len(results) == 3


def test_a_retried_aggregate_does_not_promote_twice() -> None:
    files, registry = _files(), InMemoryRegistry()
    prepared, _ = _run(_state(alias="support-bot"), files, registry)
    again = aggregate(prepared, files, registry, NOW).outcome
    assert again.promoted and again.alias_version == 1
    assert registry.get_alias_version("support-bot").version == 1


def test_the_champion_is_asked_through_its_serving_model_and_named_by_version() -> None:
    files, registry = _files(), InMemoryRegistry()
    champion = "arn:aws:bedrock:us-east-1:123456789012:custom-model/champ"
    deployment = "arn:aws:bedrock:us-east-1:123456789012:custom-model-deployment/champ"
    _registered_model(registry, champion, deployment)
    registry.create_alias_version("support-bot", [Variant(model=champion, weight=100)], None, NOW)
    answers = dict(CAPITALS)
    base_chat = _chat(answers)
    asked = set()

    def chat(body: dict[str, Any]) -> dict[str, Any]:
        asked.add(body["model"])
        # The champion knows the capitals as well as the candidate: no clear improvement.
        model = CANDIDATE if body["model"] == deployment else body["model"]
        return base_chat({**body, "model": model})

    _, aggregated = _run(_state(alias="support-bot"), files, registry, chat)
    result = aggregated.outcome
    assert deployment in asked and champion not in asked
    assert not result.promoted
    assert registry.get_alias_version("support-bot").version == 1
    assert result.decision.startswith("kept support-bot at v1: +0.00 over v1")


def test_no_alias_promotes_nothing_but_records_the_evaluation() -> None:
    files, registry = _files(), InMemoryRegistry()
    _, aggregated = _run(_state(), files, registry)
    assert not aggregated.outcome.promoted
    assert registry.list_aliases() == []
    assert aggregated.outcome.decision is not None
    assert aggregated.outcome.decision.startswith(
        "no alias named, so nothing was promoted; the fine-tune passes: +"
    )
    model = registry.get_model(CANDIDATE)
    assert model is not None and model.evaluation == aggregated.summary
    assert aggregated.model_id == CANDIDATE


def test_the_report_carries_the_summary_the_decision_and_a_model_card() -> None:
    files, registry = _files(), InMemoryRegistry()
    state = _state(alias="support-bot")
    _, aggregated = _run(state, files, registry)
    state.evaluation = aggregated.outcome
    report = evaluation_report(state, files, registry, [])
    assert report.summary == aggregated.summary
    assert report.decision is not None and report.decision.startswith("promoted support-bot")
    assert report.error is None and report.skipped is None
    assert report.model_card_uri is not None and report.model_card_uri.endswith("card.html")
    html = next(body for (_, key), body in files.objects.items() if key.endswith("card.html"))
    # The first shard's answers side by side: the candidate's and the base model's.
    assert b"City0" in html and b"I am not sure." in html


def test_the_report_of_a_failed_evaluation_says_why_and_still_writes_the_card() -> None:
    files, registry = _files(), InMemoryRegistry()
    _registered_model(registry, CANDIDATE, CANDIDATE)
    state = _state()
    state.evaluation_error = {
        "Error": "ProviderPermanentError",
        "Cause": json.dumps({"errorMessage": "model_not_found: no such model"}),
    }
    report = evaluation_report(state, files, registry, [])
    assert report.error == "model_not_found: no such model"
    assert report.summary is None and report.model_card_uri is not None


def test_the_report_of_a_skipped_evaluation_says_why() -> None:
    files, registry = _files(), InMemoryRegistry()
    state = _state()
    state.evaluation = EvaluationOutcome(skipped="no held-out set")
    report = evaluation_report(state, files, registry, [])
    # The model is not in this registry: no card, but the reason is reported.
    assert (report.skipped, report.model_card_uri) == ("no held-out set", None)
