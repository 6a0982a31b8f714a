"""The workflow's evaluation steps: shard the held-out set, answer and grade a shard, aggregate.

The state machine carries only S3 keys between them: ``prepare`` writes a plan (the
contenders, the graders, the seed) and one JSON file of examples per shard under
``evaluations/<dataset_id>/``; each ``evaluate_shard`` writes its answers and scores as
JSONL beside them; ``aggregate`` reads them all back in shard order, so the statistics are
those of one sequential run over the whole set, and applies the gate. A promotion is a new
version of the alias, written through the alias code the API uses, so rollback is as today.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Protocol

from pydantic import BaseModel, ConfigDict

from sft_pipeline.aliases import AliasNotFound, AliasVersion, Variant
from sft_pipeline.evaluation.answers import EvalExample, read_examples
from sft_pipeline.evaluation.contenders import Contender, few_shot_budget, few_shot_examples
from sft_pipeline.evaluation.gate import GatePolicy, PromotePolicy
from sft_pipeline.evaluation.graders import pick_graders
from sft_pipeline.evaluation.runner import Chat, Reply, evaluate, summarise_replies
from sft_pipeline.evaluation.summary import EvaluationSummary
from sft_pipeline.jobs import WorkflowState
from sft_pipeline.validation import DataSource
from sft_pipeline.validation.targets import resolve_model
from sft_pipeline.validation.tokens import get_encoding

EVALUATIONS_PREFIX = "evaluations/"
SHARD_SIZE = 50
# Few-shot examples take at most this many tokens of the prompt (or half the model's limit).
FEW_SHOT_K = 5
# Requests in flight inside one shard; the Map's MaxConcurrency multiplies it.
SHARD_CONCURRENCY = 4


class EvaluationBucket(Protocol):
    def source(self, bucket: str, key: str, version_id: str | None = None) -> DataSource: ...

    def put(self, bucket: str, key: str, body: bytes, content_type: str) -> str: ...


class AliasRegistry(Protocol):
    """The alias calls the gate needs: the champion, and a new version on promotion."""

    def get_alias_version(self, alias: str, version: int | None = None) -> AliasVersion: ...

    def create_alias_version(
        self, alias: str, variants: list[Variant], note: str | None, now: datetime
    ) -> AliasVersion: ...


class EvaluationPlan(BaseModel):
    """What every shard is asked with; written once, read by each shard and the aggregate."""

    model_config = ConfigDict(frozen=True)

    bucket: str
    dataset_id: str
    contenders: list[Contender]
    graders: list[str]
    seed: int
    policy: GatePolicy
    champion_version: int | None = None


class Prepared(BaseModel):
    """The Map's input: the shard keys (never the examples), or why nothing is evaluated."""

    bucket: str
    plan_key: str | None = None
    shards: list[str] = []
    examples: int = 0
    # The Map state's MaxConcurrency (the stack's EvaluationConcurrency).
    concurrency: int = 1
    skipped: str | None = None


class ShardDone(BaseModel):
    result_key: str
    replies: int


class Aggregated(BaseModel):
    """What the finish step needs: where the summary is, and the gate's decision in a sentence."""

    summary_key: str | None = None
    examples: int
    promoted: bool
    alias_version: int | None = None
    decision: str | None = None


def _prefix(dataset_id: str) -> str:
    return f"{EVALUATIONS_PREFIX}{dataset_id}/"


def _read(bucket: EvaluationBucket, name: str, key: str) -> bytes:
    with bucket.source(name, key).open() as stream:
        return stream.read()


def _lines(bucket: EvaluationBucket, name: str, key: str) -> list[bytes]:
    return _read(bucket, name, key).splitlines()


def gate_policy(state: WorkflowState) -> GatePolicy:
    """The upload's alias, promote and min-improvement metadata (unset: the gate's defaults)."""
    settings = state.request.settings
    promote: PromotePolicy | None = getattr(settings, "promote", None)
    minimum: float | None = getattr(settings, "min_improvement", None)
    return GatePolicy(
        alias=getattr(settings, "alias", None),
        promote=promote or "if-better",
        min_improvement=minimum or 0.0,
    )


def held_out_key(state: WorkflowState) -> str | None:
    """The eval file when the upload names one, else the run's validation file."""
    request = state.request
    return getattr(request, "eval_key", None) or request.validation_key


def _champion(registry: AliasRegistry, policy: GatePolicy) -> tuple[Contender | None, int | None]:
    """The alias's current version's main model, when the alias already exists."""
    if policy.alias is None:
        return None, None
    try:
        current = registry.get_alias_version(policy.alias)
    except AliasNotFound:
        return None, None
    main = max(current.variants, key=lambda variant: variant.weight)
    return Contender(name="champion", model=main.model), current.version


def _few_shot(training: Sequence[EvalExample], base_model: str, seed: int) -> list[EvalExample]:
    resolved = resolve_model(base_model)
    encoding = get_encoding(resolved.encoding)
    limit = resolved.max_tokens_per_example
    return few_shot_examples(
        training,
        k=FEW_SHOT_K,
        seed=seed,
        max_tokens=few_shot_budget(limit),
        count_tokens=lambda text: len(encoding.encode(text, disallowed_special=())),
    )


def prepare(
    state: WorkflowState,
    bucket: EvaluationBucket,
    registry: AliasRegistry,
    *,
    shard_size: int = SHARD_SIZE,
    concurrency: int = 1,
) -> Prepared:
    """Write the plan and the shards; no held-out set means nothing to shard, said so."""
    request = state.request
    name = request.upload.bucket
    key = held_out_key(state)
    candidate = state.job.fine_tuned_model if state.job else None
    if key is None or candidate is None:
        return Prepared(
            bucket=name, skipped="no held-out set: name an eval-key or keep a validation file"
        )
    examples = read_examples(_lines(bucket, name, key))
    training = read_examples(_lines(bucket, name, request.training_key))
    base = request.settings.base_model
    seed = request.settings.seed or 0
    policy = gate_policy(state)
    champion, champion_version = _champion(registry, policy)
    contenders = [
        Contender(name="candidate", model=candidate, fine_tune_of=base),
        Contender(name="base", model=base),
        Contender(name="few_shot", model=base, few_shot=_few_shot(training, base, seed)),
        *([champion] if champion and champion.model != candidate else []),
    ]
    plan = EvaluationPlan(
        bucket=name,
        dataset_id=request.dataset_id,
        contenders=contenders,
        graders=pick_graders([example.reference for example in examples]),
        seed=seed,
        policy=policy,
        champion_version=champion_version if len(contenders) == 4 else None,
    )
    prefix = _prefix(request.dataset_id)
    plan_key = f"{prefix}plan.json"
    bucket.put(name, plan_key, plan.model_dump_json().encode(), "application/json")
    shards = []
    for number, start in enumerate(range(0, len(examples), shard_size)):
        shard_key = f"{prefix}shards/{number:03d}.json"
        body = json.dumps(
            {
                "plan_key": plan_key,
                "examples": [
                    e.model_dump(mode="json") for e in examples[start : start + shard_size]
                ],
            }
        )
        bucket.put(name, shard_key, body.encode(), "application/json")
        shards.append(shard_key)
    return Prepared(
        bucket=name,
        plan_key=plan_key,
        shards=shards,
        examples=len(examples),
        concurrency=concurrency,
    )


def _result_key(shard_key: str) -> str:
    folder, _, file = shard_key.rpartition("/shards/")
    return f"{folder}/results/{file.removesuffix('.json')}.jsonl"


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
    options = {"sleep": sleep} if sleep else {}
    evaluation = evaluate(
        examples,
        plan.contenders,
        chat=chat,
        graders=plan.graders,
        seed=plan.seed,
        concurrency=concurrency,
        **options,  # type: ignore[arg-type]
    )
    body = "".join(reply.model_dump_json() + "\n" for reply in evaluation.replies)
    result_key = _result_key(shard_key)
    bucket.put(bucket_name, result_key, body.encode(), "application/x-ndjson")
    return ShardDone(result_key=result_key, replies=len(evaluation.replies))


def aggregate(
    prepared: Prepared,
    bucket: EvaluationBucket,
    registry: AliasRegistry,
    now: datetime,
) -> Aggregated:
    """The statistics over all shards, the gate's decision, and the promotion it allows."""
    if prepared.plan_key is None:
        return Aggregated(examples=0, promoted=False, decision=prepared.skipped)
    name = prepared.bucket
    plan = EvaluationPlan.model_validate_json(_read(bucket, name, prepared.plan_key))
    replies = [
        Reply.model_validate_json(line)
        for shard_key in prepared.shards
        for line in _lines(bucket, name, _result_key(shard_key))
        if line.strip()
    ]
    summary = summarise_replies(replies, plan.contenders, plan.graders, plan.seed, plan.policy)
    summary_key = f"{_prefix(plan.dataset_id)}summary.json"
    bucket.put(name, summary_key, summary.model_dump_json().encode(), "application/json")
    decision = summary.decision
    promoted = None
    if decision is not None and decision.promote and plan.policy.alias:
        candidate = plan.contenders[0].model
        promoted = registry.create_alias_version(
            plan.policy.alias, [Variant(model=candidate, weight=100)], decision.reason[:500], now
        )
    return Aggregated(
        summary_key=summary_key,
        examples=summary.examples,
        promoted=promoted is not None,
        alias_version=promoted.version if promoted else None,
        decision=_sentence(plan, summary, promoted),
    )


def _sentence(
    plan: EvaluationPlan, summary: EvaluationSummary, promoted: AliasVersion | None
) -> str | None:
    decision = summary.decision
    if decision is None:
        return None
    if promoted is not None:
        return f"promoted {promoted.alias} to v{promoted.version}: {decision.reason}"
    if plan.policy.alias:
        return f"{plan.policy.alias} left as it was: {decision.reason}"
    return decision.reason
