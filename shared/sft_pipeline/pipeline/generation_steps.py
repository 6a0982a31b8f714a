"""Generation in the cloud: a spec dropped under generation/ becomes batches, a Map of batch
tasks, merges with top-ups, and a validated training file under training/ (which starts the
usual validation and fine-tuning) or generated/ for review.

At-least-once safe like the validation step: the run is named after the spec's object
version, so a repeated S3 event starts nothing; a batch whose attempts are written already
is not made again; the result is written under a name derived from the run and never
rewritten (writing it twice would train twice); every notice is claimed in the registry
before it is sent. Cost is bounded twice: the estimate against the cap before anything is
asked, and what was spent (plus the top-up's estimate) before each new round.
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

import orjson

from sft_pipeline.chat_calls import Chat
from sft_pipeline.generation.acceptance import Acceptor
from sft_pipeline.generation.estimate import cap_problem, estimate_generation
from sft_pipeline.generation.generator import Attempt, Tally, generate, replay
from sft_pipeline.generation.plan import Slot, batches, open_slots, plan_slots
from sft_pipeline.generation.report import DiversityReport, diversity_report
from sft_pipeline.generation.run import (
    ATTEMPTS_SUFFIX,
    BATCH_CONCURRENCY,
    BATCH_SIZE,
    MAX_ROUNDS,
    BatchInput,
    BatchManifest,
    GenerationRun,
    GenerationState,
    attempts_key,
    execution_name,
    manifest_key,
    output_keys,
    run_prefix,
)
from sft_pipeline.generation.spec import MAX_SPEC_BYTES, GenerationSpec, SpecError, load_spec
from sft_pipeline.jobs import ProviderName, UploadRef
from sft_pipeline.notifications import DatasetRef, Notification, Outcome
from sft_pipeline.pipeline.failures import caught_error
from sft_pipeline.settings import StackDefaultsSettings, StorageLayout
from sft_pipeline.validation import DataSource, ValidationOptions, ValidationReport, validate

# A batch stops asking this long before its Lambda's time is up, to write what it made.
BATCH_SAFETY_SECONDS = 90
# A batch's attempts file: 50 examples and their refusals, far below this.
MAX_WORK_OBJECT_BYTES = 64 << 20
GENERATION_NOTICE = "generation"


class GenerationBucket(Protocol):
    def head(self, upload: UploadRef) -> tuple[UploadRef, dict[str, str]]: ...

    def source(self, bucket: str, key: str, version_id: str | None = None) -> DataSource: ...

    def find_version(self, bucket: str, key: str) -> UploadRef | None: ...

    def put(
        self,
        bucket: str,
        key: str,
        body: bytes,
        content_type: str,
        metadata: dict[str, str] | None = None,
    ) -> str: ...

    def list_keys(self, bucket: str, prefix: str) -> list[str]: ...


class NoticeRegistry(Protocol):
    def claim_notice(self, dataset_id: str, kind: str, now: datetime) -> bool: ...

    def release_notice(self, dataset_id: str, kind: str) -> None: ...


class GenerationStarter(Protocol):
    def start_generation(self, execution_name: str, state: GenerationState) -> tuple[str, bool]: ...


class NotificationSender(Protocol):
    def publish(self, notification: Notification) -> str: ...


@dataclass(frozen=True)
class GenerationPorts:
    bucket: GenerationBucket
    registry: NoticeRegistry
    notifier: NotificationSender


@dataclass(frozen=True)
class StartResult:
    run_id: str
    status: str  # started | already_started | rejected
    execution_arn: str | None = None


class GenerationFailedError(Exception):
    """The run cannot produce its data; ``code`` names why for the notification's hint."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


# ------------------------------------------------------------------ start


def start_generation(
    spec_upload: UploadRef,
    ports: GenerationPorts,
    workflow: GenerationStarter,
    settings: StackDefaultsSettings,
    now: datetime | None = None,
) -> StartResult:
    """Check the spec and its estimate against the cost cap, write the first round's batch
    manifests, start the run's execution (once per spec version)."""
    started = now or datetime.now(UTC)
    spec_upload, _ = ports.bucket.head(spec_upload)
    run_id = spec_upload.dataset_id
    placeholder = GenerationRun(
        run_id=run_id, spec=spec_upload, started_at=int(started.timestamp())
    )
    try:
        spec = read_spec(ports.bucket, spec_upload)
    except SpecError as invalid:
        _notify_failure(
            ports,
            placeholder,
            None,
            code="invalid_generation_spec",
            message=str(invalid),
            now=started,
        )
        return StartResult(run_id, "rejected")
    model, provider = spec.training_target(settings.default_base_model)
    cap = settings.default_cost_cap_usd if spec.cost_cap_usd is None else spec.cost_cap_usd
    run = placeholder.model_copy(
        update={
            "target_model": model,
            "target_provider": provider or settings.default_provider,
            "cost_cap_usd": cap or None,
        }
    )
    estimate = estimate_generation(spec, plan_slots(spec))
    if problem := cap_problem(estimate, run.cost_cap_usd):
        code = "generation_cost_unknown" if estimate.cost_usd is None else "generation_cost_cap"
        _notify_failure(
            ports, run, spec, code=code, message=problem, now=started, estimated=estimate.cost_usd
        )
        return StartResult(run_id, "rejected")
    keys = _write_round(ports.bucket, run, [(slot, 0) for slot in plan_slots(spec)])
    arn, started_now = workflow.start_generation(
        execution_name(run_id), GenerationState(run=run, batches=keys)
    )
    return StartResult(run_id, "started" if started_now else "already_started", arn)


def read_spec(bucket: GenerationBucket, upload: UploadRef) -> GenerationSpec:
    return load_spec(
        _read(bucket, upload.bucket, upload.key, upload.version_id, MAX_SPEC_BYTES), upload.key
    )


def _write_round(
    bucket: GenerationBucket, run: GenerationRun, slots: list[tuple[Slot, int]]
) -> list[str]:
    """The round's batch manifests (deterministic: a retried step writes the same ones)."""
    keys = []
    for number, batch in enumerate(batches(slots, BATCH_SIZE)):
        key = manifest_key(run.run_id, run.round, number)
        body = BatchManifest(slots=batch).model_dump_json().encode()
        bucket.put(run.spec.bucket, key, body, "application/json")
        keys.append(key)
    return keys


# ------------------------------------------------------------------ one batch


def generate_batch(
    item: BatchInput,
    bucket: GenerationBucket,
    chat_for: Callable[[ProviderName], Chat],
    remaining_seconds: Callable[[], float],
) -> dict[str, int | str | None]:
    """Make one batch's examples and write its attempts; a batch written before is left as is
    (a retried task)."""
    run, where = item.run, item.run.spec.bucket
    out_key = attempts_key(item.batch_key)
    if bucket.find_version(where, out_key) is not None:
        return {"batch": item.batch_key, "made": None, "stopped": "written before"}
    spec = read_spec(bucket, run.spec)
    manifest = BatchManifest.model_validate_json(
        _read(bucket, where, item.batch_key, None, MAX_WORK_OBJECT_BYTES)
    )
    attempts: list[Attempt] = []
    result = generate(
        spec,
        manifest.slots,
        chat=chat_for(spec.teacher.provider_name),
        acceptor=_acceptor(run),
        record=attempts.append,
        concurrency=BATCH_CONCURRENCY,
        should_stop=lambda _: (
            "the Lambda's time is nearly up" if remaining_seconds() < BATCH_SAFETY_SECONDS else None
        ),
    )
    body = "".join(attempt.model_dump_json() + "\n" for attempt in attempts).encode()
    bucket.put(where, out_key, body, "application/jsonl")
    return {"batch": item.batch_key, "made": result.tally.made, "stopped": result.stopped}


def _acceptor(run: GenerationRun) -> Acceptor:
    return Acceptor(
        model=run.target_model, provider=run.target_provider, dataset_bucket=run.spec.bucket
    )


# ------------------------------------------------------------------ merge, top up, finish


def merge_generation(
    state: GenerationState,
    ports: GenerationPorts,
    settings: StorageLayout,
    now: datetime | None = None,
) -> GenerationState:
    """Dedupe every batch's examples across the run; top up what is missing in a new round,
    or write the validated result and notify. A run that cannot finish fails with a
    GenerationFailedError, which the workflow's Catch reports."""
    finished = now or datetime.now(UTC)
    run, where = state.run, state.run.spec.bucket
    spec = read_spec(ports.bucket, run.spec)
    by_round = _attempts(ports.bucket, run)
    tally = Tally()
    kept, next_attempt = replay(_acceptor(run), tally, [attempt for _, attempt in by_round])
    todo = [
        (slot, next_attempt.get(slot, 0))
        for slot in open_slots(spec, {attempt.slot for attempt in kept})
    ]
    if todo:
        this_round = {id(attempt) for number, attempt in by_round if number == run.round}
        made_now = sum(1 for attempt in kept if id(attempt) in this_round)
        return _next_round(ports.bucket, state, spec, tally, made=(len(kept), made_now), todo=todo)
    keys = output_keys(spec.name, run.run_id, settings.training_prefix, spec.auto_train)
    report = diversity_report(spec, tally, [a.line or "" for a in kept])
    ordered = sorted(kept, key=lambda attempt: (attempt.slot.topic, attempt.slot.index))
    train = [a.line or "" for a in ordered if a.slot.split == "train"]
    held_out = [a.line or "" for a in ordered if a.slot.split == "eval"]
    validation = _validate(train, held_out, run)
    if not validation.valid:
        raise GenerationFailedError(
            "generation_invalid", f"the validator refuses the result: {validation.summary()}"
        )
    report_uri = ports.bucket.put(
        where,
        f"{settings.reports_prefix}generation/{Path(keys['train']).name}.report.json",
        orjson.dumps(
            {
                "run": run.model_dump(mode="json"),
                "report": report.model_dump(mode="json"),
                "validation": validation.summary(),
                "files": keys,
            },
            option=orjson.OPT_INDENT_2,
        ),
        "application/json",
    )
    metadata = dict(spec.train)
    if held_out:
        ports.bucket.put(where, keys["eval"], _jsonl(held_out), "application/jsonl")
        metadata["eval-key"] = keys["eval"]
    # Written once: a second write would be a second version, and a second fine-tuning run.
    if ports.bucket.find_version(where, keys["train"]) is None:
        ports.bucket.put(where, keys["train"], _jsonl(train), "application/jsonl", metadata)
    _notify_once(
        ports,
        run.run_id,
        Notification(
            outcome=Outcome.GENERATED,
            dataset=DatasetRef.of(run.spec, report.examples),
            provider=spec.teacher.provider_name,
            teacher=spec.teacher.model,
            started_at=datetime.fromtimestamp(run.started_at, UTC),
            finished_at=finished,
            estimated_cost_usd=report.estimate.cost_usd if report.estimate else None,
            actual_cost_usd=report.spent_usd,
            output_uri=f"s3://{where}/{keys['train']}",
            report_uri=report_uri,
            validation_summary=_summary(report, len(train), len(held_out), spec.auto_train),
        ),
        finished,
    )
    return state.model_copy(update={"batches": [], "status": "done"})


def _next_round(
    bucket: GenerationBucket,
    state: GenerationState,
    spec: GenerationSpec,
    tally: Tally,
    *,
    made: tuple[int, int],
    todo: list[tuple[Slot, int]],
) -> GenerationState:
    """The next round's manifests for the open slots, unless the rounds or the cap are used up
    or this round made nothing (a bad key or a teacher that cannot follow the schema)."""
    run = state.run
    wanted = len(plan_slots(spec))
    made_in_all, made_now = made
    if run.round + 1 >= MAX_ROUNDS or made_now == 0:
        why = (
            f"no example was accepted in round {run.round + 1}"
            if made_now == 0
            else f"{MAX_ROUNDS} rounds"
        )
        refused = ", ".join(f"{code} {count}" for code, count in sorted(tally.refused.items()))
        raise GenerationFailedError(
            "generation_incomplete",
            f"made {made_in_all:,} of {wanted:,} examples ({why}); refused: {refused or 'none'}; "
            f"last: {tally.last_error or '-'}",
        )
    spent = tally.spent_usd(spec)
    top_up = estimate_generation(spec, [slot for slot, _ in todo])
    if run.cost_cap_usd and (
        spent is None or top_up.cost_usd is None or spent + top_up.cost_usd > run.cost_cap_usd
    ):
        raise GenerationFailedError(
            "generation_cost_cap",
            f"made {made_in_all:,} of {wanted:,} examples; topping up would take the teacher's "
            f"cost past the cap of ${run.cost_cap_usd:,.2f}",
        )
    following = run.model_copy(update={"round": run.round + 1})
    return state.model_copy(
        update={"run": following, "batches": _write_round(bucket, following, todo)}
    )


def generation_failed(
    state: GenerationState, ports: GenerationPorts, now: datetime | None = None
) -> GenerationState:
    """Tell people why the run ended without data (the Catch's error), once."""
    code, message = caught_error(state.failure or {})
    spec = None
    with contextlib.suppress(SpecError):
        spec = read_spec(ports.bucket, state.run.spec)
    _notify_failure(
        ports, state.run, spec, code=code, message=message, now=now or datetime.now(UTC)
    )
    return state.model_copy(update={"status": "failed"})


# ------------------------------------------------------------------ helpers


def _attempts(bucket: GenerationBucket, run: GenerationRun) -> list[tuple[int, Attempt]]:
    """Every batch's attempts with their round, in the order the rounds and batches were made."""
    where = run.spec.bucket
    found = []
    for number in range(run.round + 1):
        prefix = f"{run_prefix(run.run_id)}round-{number}/"
        for key in sorted(bucket.list_keys(where, prefix)):
            if not key.endswith(ATTEMPTS_SUFFIX):
                continue
            data = _read(bucket, where, key, None, MAX_WORK_OBJECT_BYTES)
            found += [
                (number, Attempt.model_validate_json(line))
                for line in data.splitlines()
                if line.strip()
            ]
    return found


def _read(
    bucket: GenerationBucket, where: str, key: str, version_id: str | None, max_bytes: int
) -> bytes:
    with bucket.source(where, key, version_id).open() as stream:
        data: bytes = stream.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise SpecError(key, [f"the object is over {max_bytes:,} bytes"])
    return data


def _validate(train: list[str], held_out: list[str], run: GenerationRun) -> ValidationReport:
    """The result checked as its upload will be, the held-out file as its eval-key."""
    with tempfile.TemporaryDirectory() as work:
        train_path, eval_path = Path(work, "train.jsonl"), Path(work, "heldout.jsonl")
        train_path.write_bytes(_jsonl(train))
        eval_path.write_bytes(_jsonl(held_out))
        return validate(
            DataSource.from_path(train_path),
            ValidationOptions(
                model=run.target_model, provider=run.target_provider, dataset_bucket=run.spec.bucket
            ),
            evaluation=DataSource.from_path(eval_path) if held_out else None,
        )


def _jsonl(lines: list[str]) -> bytes:
    return "".join(f"{line}\n" for line in lines).encode()


def _summary(report: DiversityReport, train: int, held_out: int, auto_train: bool) -> str:
    grams = report.distinct_ngrams.get("distinct_2", 0.0)
    refused = ", ".join(f"{code} {n}" for code, n in report.rejected.items()) or "none"
    then = "fine-tuning starts on it" if auto_train else "left for review (auto-train: false)"
    return (
        f"{report.examples:,} examples: {train:,} training, {held_out:,} held out; distinct "
        f"2-grams {grams:.2f}; refused {refused}; {then}"
    )


def _notify_failure(
    ports: GenerationPorts,
    run: GenerationRun,
    spec: GenerationSpec | None,
    *,
    code: str,
    message: str,
    now: datetime,
    estimated: float | None = None,
) -> None:
    _notify_once(
        ports,
        run.run_id,
        Notification(
            outcome=Outcome.GENERATION_FAILED,
            dataset=DatasetRef.of(run.spec, None),
            provider=spec.teacher.provider_name if spec else "openai",
            teacher=spec.teacher.model if spec else None,
            started_at=datetime.fromtimestamp(run.started_at, UTC),
            finished_at=now,
            estimated_cost_usd=estimated,
            error_code=code,
            error_message=message,
        ),
        now,
    )


def _notify_once(
    ports: GenerationPorts, run_id: str, notification: Notification, now: datetime
) -> None:
    """One notice per run, however often the step is retried or the event repeated."""
    if not ports.registry.claim_notice(run_id, GENERATION_NOTICE, now):
        return
    try:
        ports.notifier.publish(notification)
    except Exception:
        ports.registry.release_notice(run_id, GENERATION_NOTICE)
        raise
