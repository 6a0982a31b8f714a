"""The workflow's evaluation steps: shard the held-out set, answer and grade a shard, aggregate,
then gather what the finish step reports.

They run after the model is registered. The state machine carries only S3 keys between
them: ``prepare`` writes a plan (the contenders, the graders, the seed), one JSON file of
examples per shard and a manifest listing the shards under ``evaluations/<dataset_id>/``;
each ``evaluate_shard`` writes its answers and scores as JSONL beside them; ``aggregate``
reads them all back in shard order, so the statistics are those of one sequential run over
the whole set, and applies the gate. A promotion is a new version of the alias, written
through the alias code the API uses, so rollback is as today.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict

from sft_pipeline.aliases import AliasNotFound, AliasVersion, Variant
from sft_pipeline.chat_calls import Chat
from sft_pipeline.evaluation.answers import Answer, EvalExample, read_examples
from sft_pipeline.evaluation.contenders import Contender, few_shot_budget, few_shot_examples
from sft_pipeline.evaluation.gate import GatePolicy
from sft_pipeline.evaluation.graders import pick_graders
from sft_pipeline.evaluation.report_html import FileLineage, LossPoint, SideBySide, side_by_side
from sft_pipeline.evaluation.runner import JUDGE, Evaluation, Reply, evaluate, summarise_replies
from sft_pipeline.evaluation.summary import EvaluationSummary
from sft_pipeline.jobs import (
    EvaluationOutcome,
    ModelRegistration,
    ProviderName,
    WorkflowRequest,
    WorkflowState,
)
from sft_pipeline.pipeline.failures import caught_error
from sft_pipeline.pipeline.model_card import write_model_card
from sft_pipeline.providers.base import ServingStatus
from sft_pipeline.records import ModelRecord
from sft_pipeline.validation import DataSource
from sft_pipeline.validation.targets import resolve_model
from sft_pipeline.validation.tokens import get_encoding

EVALUATIONS_PREFIX = "evaluations/"
SHARD_SIZE = 50
# Up to this many shards the Map runs inline; more (a held-out set of over 2,000 examples)
# go to a Distributed Map that reads the manifest itself, so the state stays small.
INLINE_SHARDS = 40
# Requests in flight inside one shard; the Map's MaxConcurrency multiplies it.
SHARD_CONCURRENCY = 4


class CandidateNotServingError(Exception):
    """The new model's deployment is still being created; the state machine retries later.

    The class name is the contract with the state machine's Retry, like the provider errors.
    """


class EvaluationBucket(Protocol):
    def source(self, bucket: str, key: str, version_id: str | None = None) -> DataSource: ...

    def put(self, bucket: str, key: str, body: bytes, content_type: str) -> str: ...


class ModelLookup(Protocol):
    def get_model(self, model_id: str) -> ModelRecord | None: ...


class EvaluationRegistry(ModelLookup, Protocol):
    """The registry calls of the evaluation: the champion, the models' records, a new alias
    version on promotion, and the summary on the candidate's record."""

    def get_alias_version(self, alias: str, version: int | None = None) -> AliasVersion: ...

    def create_alias_version(
        self, alias: str, variants: list[Variant], note: str | None, now: datetime
    ) -> AliasVersion: ...

    def set_model_evaluation(self, model_id: str, summary: EvaluationSummary) -> None: ...


class ServingCheck(Protocol):
    def serving_status(self, serving_model: str) -> ServingStatus: ...


class EvaluationPlan(BaseModel):
    """What every shard is asked with; written once, read by each shard and the aggregate."""

    model_config = ConfigDict(frozen=True)

    bucket: str
    dataset_id: str
    # The registry's id of the candidate: what a promotion puts in the alias.
    candidate_model_id: str
    contenders: list[Contender]
    graders: list[str]
    judge: str | None = None
    seed: int
    policy: GatePolicy
    champion_version: int | None = None

    def answer(
        self, examples: Sequence[EvalExample], chat: Chat, *, concurrency: int, **options: Any
    ) -> Evaluation:
        """Every contender answers ``examples``, graded with the plan's graders, judge and seed."""
        return evaluate(
            examples,
            self.contenders,
            chat=chat,
            graders=self.graders,
            judge=self.judge,
            seed=self.seed,
            concurrency=concurrency,
            **options,
        )


class Prepared(BaseModel):
    """The Map's input: the shard keys (never the examples), or why nothing is evaluated."""

    bucket: str
    plan_key: str | None = None
    # The shards as a JSON array of {"shard_key": ...}: what a Distributed Map reads.
    manifest_key: str | None = None
    # The shard keys for an inline Map; empty when the Distributed Map reads the manifest.
    shards: list[str] = []
    distributed: bool = False
    examples: int = 0
    # The Map state's MaxConcurrency (the stack's EvaluationConcurrency).
    concurrency: int = 1
    skipped: str | None = None


class ShardRequest(BaseModel):
    """One Map item: the shard to answer, and whose chat port answers it."""

    provider: ProviderName
    bucket: str
    shard_key: str


class ShardDone(BaseModel):
    result_key: str
    replies: int


class Aggregated(BaseModel):
    outcome: EvaluationOutcome
    summary: EvaluationSummary | None = None
    # The registry's id of the evaluated model.
    model_id: str | None = None


class EvaluationReport(BaseModel):
    """What the notification says of the evaluation, and where the model card is."""

    summary: EvaluationSummary | None = None
    decision: str | None = None
    skipped: str | None = None
    error: str | None = None
    model_card_uri: str | None = None


def _prefix(dataset_id: str) -> str:
    return f"{EVALUATIONS_PREFIX}{dataset_id}/"


def _read(bucket: EvaluationBucket, name: str, key: str, version_id: str | None = None) -> bytes:
    with bucket.source(name, key, version_id).open() as stream:
        return stream.read()


def _lines(
    bucket: EvaluationBucket, name: str, key: str, version_id: str | None = None
) -> list[bytes]:
    return _read(bucket, name, key, version_id).splitlines()


def _run_file_lines(bucket: EvaluationBucket, request: WorkflowRequest, key: str) -> list[bytes]:
    """A file of the run, at the version the run validated."""
    return _lines(bucket, request.upload.bucket, key, request.version_of(key))


def _put_json(bucket: EvaluationBucket, name: str, key: str, body: str) -> None:
    bucket.put(name, key, body.encode(), "application/json")


def held_out_key(state: WorkflowState) -> str | None:
    """The eval file when the upload names one, else the run's validation file."""
    request = state.request
    return request.eval_key or request.validation_key


def _registration(state: WorkflowState) -> ModelRegistration:
    if state.registered is None:
        raise ValueError("the evaluation runs after the model is registered")
    return state.registered


def _serving_model(registry: EvaluationRegistry, model_id: str) -> tuple[str, str | None]:
    """What chat calls name for a registered model, and its base model (for prices)."""
    record = registry.get_model(model_id)
    if record is None:
        return model_id, None
    return record.serving_model or model_id, record.base_model


def _champion(
    registry: EvaluationRegistry, policy: GatePolicy
) -> tuple[Contender | None, int | None]:
    """The alias's current version's main model, when the alias already exists."""
    if policy.alias is None:
        return None, None
    try:
        current = registry.get_alias_version(policy.alias)
    except AliasNotFound:
        return None, None
    main = max(current.variants, key=lambda variant: variant.weight)
    model, base = _serving_model(registry, main.model)
    return Contender(name="champion", model=model, fine_tune_of=base), current.version


def _few_shot(
    training: Sequence[EvalExample], base_model: str, k: int, seed: int
) -> list[EvalExample]:
    resolved = resolve_model(base_model)
    encoding = get_encoding(resolved.encoding)
    return few_shot_examples(
        training,
        k=k,
        seed=seed,
        max_tokens=few_shot_budget(resolved.max_tokens_per_example),
        count_tokens=lambda text: len(encoding.encode(text, disallowed_special=())),
    )


def _not_served(registration: ModelRegistration, serving: ServingCheck) -> str | None:
    """Why the candidate cannot answer (None: it can); still deploying raises, to wait."""
    status = registration.serving_status
    if status == "deploying":
        status = serving.serving_status(registration.serving_model)
        if status == "deploying":
            raise CandidateNotServingError(
                f"{registration.serving_model} is still being deployed; the evaluation waits"
            )
    if status == "ready":
        return None
    note = f" ({registration.serving_note})" if registration.serving_note else ""
    return f"the model is not served on demand, so it could not be asked{note}"


def prepare(
    state: WorkflowState,
    bucket: EvaluationBucket,
    registry: EvaluationRegistry,
    serving: ServingCheck,
    *,
    shard_size: int = SHARD_SIZE,
    concurrency: int = 1,
    judge_model: str | None = None,
) -> Prepared:
    """Write the plan, the shards and their manifest; say why when nothing is evaluated.

    ``judge_model`` is the stack's judge, used when the upload names none."""
    request = state.request
    name = request.upload.bucket
    registration = _registration(state)
    key = held_out_key(state)
    if key is None:
        return Prepared(
            bucket=name,
            skipped="no held-out set: name an eval-key, a validation-key or a holdout-percent",
        )
    if reason := _not_served(registration, serving):
        return Prepared(bucket=name, skipped=reason)
    settings = request.settings
    examples = read_examples(_run_file_lines(bucket, request, key))
    base = settings.base_model
    seed = settings.seed or 0
    policy = settings.gate_policy()
    champion, champion_version = _champion(registry, policy)
    if champion is not None and champion.model == registration.serving_model:
        champion, champion_version = None, None  # a rerun after its own promotion
    # The base model as a chat call names it (a Bedrock inference ID, not the training id).
    base_chat = resolve_model(base).chat_model or base
    contenders = [
        Contender(name="candidate", model=registration.serving_model, fine_tune_of=base),
        Contender(name="base", model=base_chat),
    ]
    if settings.few_shot_k:
        training = read_examples(_run_file_lines(bucket, request, request.training_key))
        shots = _few_shot(training, base, settings.few_shot_k, seed)
        contenders.append(Contender(name="few_shot", model=base_chat, few_shot=shots))
    if champion is not None:
        contenders.append(champion)
    plan = EvaluationPlan(
        bucket=name,
        dataset_id=request.dataset_id,
        candidate_model_id=registration.model_id,
        contenders=contenders,
        graders=settings.graders or pick_graders([example.reference for example in examples]),
        judge=settings.judge_model or judge_model or None,
        seed=seed,
        policy=policy,
        champion_version=champion_version,
    )
    prefix = _prefix(request.dataset_id)
    plan_key = f"{prefix}plan.json"
    _put_json(bucket, name, plan_key, plan.model_dump_json())
    shards = []
    for number, start in enumerate(range(0, len(examples), shard_size)):
        shard_key = f"{prefix}shards/{number:04d}.json"
        body = {
            "plan_key": plan_key,
            "examples": [e.model_dump(mode="json") for e in examples[start : start + shard_size]],
        }
        _put_json(bucket, name, shard_key, json.dumps(body))
        shards.append(shard_key)
    manifest_key = f"{prefix}manifest.json"
    _put_json(bucket, name, manifest_key, json.dumps([{"shard_key": key} for key in shards]))
    distributed = len(shards) > INLINE_SHARDS
    return Prepared(
        bucket=name,
        plan_key=plan_key,
        manifest_key=manifest_key,
        shards=[] if distributed else shards,
        distributed=distributed,
        examples=len(examples),
        concurrency=concurrency,
    )


def _result_key(shard_key: str) -> str:
    folder, _, file = shard_key.rpartition("/shards/")
    return f"{folder}/results/{file.removesuffix('.json')}.jsonl"


def _shard_keys(bucket: EvaluationBucket, prepared: Prepared) -> list[str]:
    if prepared.manifest_key is None:
        return []
    manifest = json.loads(_read(bucket, prepared.bucket, prepared.manifest_key))
    return [str(entry["shard_key"]) for entry in manifest]


def evaluate_shard(
    bucket_name: str,
    shard_key: str,
    bucket: EvaluationBucket,
    chat: Chat,
    *,
    concurrency: int = SHARD_CONCURRENCY,
    sleep: Callable[[float], None] | None = None,
) -> ShardDone:
    """Every contender answers every example of the shard; answers and scores go to S3."""
    shard = json.loads(_read(bucket, bucket_name, shard_key))
    plan = EvaluationPlan.model_validate_json(_read(bucket, bucket_name, shard["plan_key"]))
    examples = [EvalExample.model_validate(e) for e in shard["examples"]]
    evaluation = plan.answer(
        examples, chat, concurrency=concurrency, **({"sleep": sleep} if sleep else {})
    )
    body = "".join(reply.model_dump_json() + "\n" for reply in evaluation.replies)
    result_key = _result_key(shard_key)
    bucket.put(bucket_name, result_key, body.encode(), "application/x-ndjson")
    return ShardDone(result_key=result_key, replies=len(evaluation.replies))


def aggregate(
    prepared: Prepared,
    bucket: EvaluationBucket,
    registry: EvaluationRegistry,
    now: datetime,
) -> Aggregated:
    """The statistics over all shards, the gate's decision, and the promotion it allows."""
    if prepared.plan_key is None:
        return Aggregated(outcome=EvaluationOutcome(skipped=prepared.skipped))
    name = prepared.bucket
    plan = EvaluationPlan.model_validate_json(_read(bucket, name, prepared.plan_key))
    replies = [
        Reply.model_validate_json(line)
        for shard_key in _shard_keys(bucket, prepared)
        for line in _lines(bucket, name, _result_key(shard_key))
        if line.strip()
    ]
    graders = plan.graders + ([JUDGE] if plan.judge else [])
    summary = summarise_replies(replies, plan.contenders, graders, plan.seed, plan.policy)
    summary_key = f"{_prefix(plan.dataset_id)}summary.json"
    _put_json(bucket, name, summary_key, summary.model_dump_json())
    registry.set_model_evaluation(plan.candidate_model_id, summary)
    decision = summary.decision
    promoted = None
    if decision is not None and decision.promote and plan.policy.alias:
        promoted = _promote(registry, plan, decision.reason, now)
    outcome = EvaluationOutcome(
        summary_key=summary_key,
        results_prefix=f"{_prefix(plan.dataset_id)}results/",
        examples=summary.examples,
        promoted=promoted is not None,
        alias_version=promoted.version if promoted else None,
        decision=_sentence(plan, summary, promoted),
    )
    return Aggregated(outcome=outcome, summary=summary, model_id=plan.candidate_model_id)


def _promote(
    registry: EvaluationRegistry, plan: EvaluationPlan, reason: str, now: datetime
) -> AliasVersion:
    """The candidate as the alias's next version, unless a retried step already made it so."""
    alias = plan.policy.alias or ""
    try:
        current = registry.get_alias_version(alias)
    except AliasNotFound:
        current = None
    if current is not None and [(v.model, v.weight) for v in current.variants] == [
        (plan.candidate_model_id, 100)
    ]:
        return current
    variants = [Variant(model=plan.candidate_model_id, weight=100)]
    return registry.create_alias_version(alias, variants, reason[:500], now)


def _sentence(
    plan: EvaluationPlan, summary: EvaluationSummary, promoted: AliasVersion | None
) -> str | None:
    """The gate's decision in one sentence, e.g. "promoted support-bot to v3: +0.12 over v2"."""
    decision = summary.decision
    if decision is None:
        return None
    detail = decision.reason.partition(": ")[2]
    champion = plan.champion_version
    if champion is not None:
        detail = detail.replace("the champion", f"v{champion}")
    alias = plan.policy.alias
    if promoted is not None:
        return f"promoted {promoted.alias} to v{promoted.version}: {detail}"
    if alias and champion is not None:
        return f"kept {alias} at v{champion}: {detail}"
    if alias:
        return f"did not create {alias}: {detail}"
    return f"no alias named, so nothing was promoted; the fine-tune {decision.reason}"


def evaluation_report(
    state: WorkflowState,
    bucket: EvaluationBucket,
    registry: ModelLookup,
    curve: Sequence[LossPoint],
) -> EvaluationReport:
    """What the finish step tells of a registered model's evaluation, with its model card.

    The card is written whatever became of the evaluation: every model gets one."""
    outcome = state.evaluation
    error = _error_text(state.evaluation_error)
    summary = None
    if outcome is not None and outcome.summary_key:
        summary = EvaluationSummary.model_validate_json(
            _read(bucket, state.request.upload.bucket, outcome.summary_key)
        )
    skipped = outcome.skipped if outcome else None
    if outcome is None and error is None:
        skipped = "the evaluation did not run"
    report = EvaluationReport(
        summary=summary,
        decision=outcome.decision if outcome else None,
        skipped=skipped,
        error=error,
    )
    model = registry.get_model(_registration(state).model_id)
    if model is None:
        return report
    return report.model_copy(
        update={"model_card_uri": _write_card(state, bucket, model, report, curve)}
    )


def _error_text(failure: dict[str, str] | None) -> str | None:
    if failure is None:
        return None
    code, message = caught_error(failure)
    return f"{code}: {message}"


def _write_card(
    state: WorkflowState,
    bucket: EvaluationBucket,
    model: ModelRecord,
    report: EvaluationReport,
    curve: Sequence[LossPoint],
) -> str:
    request = state.request
    name = request.upload.bucket
    other_files = [
        FileLineage(role=role, bucket=name, key=key, version=request.version_of(key))
        for role, key in (("validation", request.validation_key), ("evaluation", request.eval_key))
        if key and key != request.training_key
    ]
    note = report.decision or report.skipped or report.error
    return write_model_card(
        bucket,
        model,
        report.summary,
        curve=curve,
        examples=_examples_shown(state, bucket) if report.summary else [],
        other_files=other_files,
        evaluation_note=note,
    )


def _examples_shown(state: WorkflowState, bucket: EvaluationBucket) -> list[SideBySide]:
    """The first shard's examples with each contender's answer, for the card."""
    name = state.request.upload.bucket
    prefix = _prefix(state.request.dataset_id)
    shard_key = f"{prefix}shards/0000.json"
    examples = [
        EvalExample.model_validate(e)
        for e in json.loads(_read(bucket, name, shard_key))["examples"]
    ]
    answers: dict[str, list[Answer]] = {}
    for line in _lines(bucket, name, _result_key(shard_key)):
        if line.strip():
            reply = Reply.model_validate_json(line)
            answers.setdefault(reply.contender, []).append(reply.answer)
    return side_by_side(examples, answers)
