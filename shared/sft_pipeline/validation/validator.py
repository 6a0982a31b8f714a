"""The streaming validator: one pass over the file, then file-wide checks.

Lines are parsed and checked in batches while the previous batch's tokens are
counted elsewhere (a forked process on big files, so both cores work; else a
thread). Memory stays flat: per-example facts go to an on-disk store, findings
are capped per code, a batch of long lines is cut short, and one huge line is
refused or counted only up to the model's limit, never held in many copies.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, BinaryIO

from pydantic import BaseModel, ConfigDict, Field

from sft_pipeline.jobs import SUFFIX_PATTERN, Hyperparameters, ProviderName
from sft_pipeline.validation.estimate import estimate_cost, token_limit
from sft_pipeline.validation.quality import (
    EVALUATION,
    TRAINING,
    VALIDATION,
    ExampleStore,
    example_store,
    group_findings,
    lines_finding,
)
from sft_pipeline.validation.reader import (
    ITEM_SCAN_BYTES,
    MAX_JSON_ITEMS,
    MAX_LINE_BYTES,
    BinaryReadable,
    FileLevelError,
    Line,
    StreamTally,
    iter_lines,
    json_items,
)
from sft_pipeline.validation.report import (
    FileInfo,
    Finding,
    FindingCollector,
    Stats,
    ValidationReport,
)
from sft_pipeline.validation.rules import DataFormat, ExampleFacts, check_line
from sft_pipeline.validation.targets import largest_token_limit, resolve_model
from sft_pipeline.validation.targets.base import ResolvedModel
from sft_pipeline.validation.targets.bedrock import NovaTarget, file_findings, job_setting_problems
from sft_pipeline.validation.targets.openai import MIN_EXAMPLES as OPENAI_MIN_EXAMPLES
from sft_pipeline.validation.targets.openai import load_catalog
from sft_pipeline.validation.tokens import MAX_TOKEN_BYTES, TokenCounter

BATCH_LINES = 1000
# ... or fewer, when their lines hold this many bytes: long lines make short batches.
BATCH_BYTES = 8 << 20
# Below this, starting a counting process costs more than it saves.
PROCESS_COUNTING_BYTES = 16 * 1024 * 1024

ProgressCallback = Callable[[int], None]
# How findings name the file they are in; the training file's have no label.
FILE_LABELS = {VALIDATION: "validation", EVALUATION: "evaluation"}


class ValidationOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    data_format: DataFormat = "chat"
    model: str = Field(default_factory=lambda: load_catalog().default_model)
    # None: the provider whose table knows the model (catalog.provider_of), else OpenAI.
    provider: ProviderName | None = None
    # The job's settings: the estimate's epochs, and what the provider refuses before any job.
    hyperparameters: Hyperparameters = Hyperparameters()
    suffix: Annotated[str, Field(pattern=SUFFIX_PATTERN.pattern)] | None = None
    max_findings_per_code: int = Field(default=20, ge=1)
    # OpenAI's minimum; Bedrock's record bounds come from its model table.
    min_examples: int = Field(default=OPENAI_MIN_EXAMPLES, ge=1)
    # The bucket the dataset is uploaded to: Bedrock reads training images only from there.
    dataset_bucket: str | None = None
    # The day shutdown dates are compared with; None means today.
    today: dt.date | None = None


@dataclass(frozen=True)
class DataSource:
    """A named, re-openable stream of bytes: a local file, an S3 object, a buffer."""

    name: str
    open: Callable[[], AbstractContextManager[BinaryReadable]]
    size: int | None = None

    @classmethod
    def from_path(cls, path: str | Path) -> DataSource:
        file_path = Path(path)

        def opener() -> AbstractContextManager[BinaryIO]:
            return file_path.open("rb")

        return cls(name=str(path), open=opener, size=file_path.stat().st_size)


def max_text_chars() -> int:
    """Text that no model could take, whatever its tokens, is refused before it is counted."""
    return MAX_TOKEN_BYTES * largest_token_limit()


def nova_target(
    model: ResolvedModel, data_format: DataFormat, dataset_bucket: str | None
) -> NovaTarget | None:
    """Nova's checks run only for a base model Bedrock can train on chat files."""
    if (
        model.provider == "bedrock"
        and model.base_model is not None
        and model.unsupported_reason is None
        and data_format == "chat"
    ):
        return NovaTarget(model.base_model, dataset_bucket)
    return None


@dataclass
class _FileResult:
    info: FileInfo | None
    examples: int
    valid_examples: int
    blank_lines: int
    over_limit: int
    with_tools: int
    with_images: int
    without_system: int


class _Run:
    """State of one validation: collectors, the example store and the token worker."""

    def __init__(self, options: ValidationOptions, store: ExampleStore, use_process: bool) -> None:
        self.options = options
        self.store = store
        self.errors = FindingCollector(options.max_findings_per_code)
        self.warnings = FindingCollector(options.max_findings_per_code)
        self.model = resolve_model(options.model, options.provider)
        self.token_limit = token_limit(self.model)
        self.counter = TokenCounter(
            self.model.encoding, cap=self.token_limit, use_process=use_process
        )
        self.max_text_chars = max_text_chars()
        self.nova = nova_target(self.model, options.data_format, options.dataset_bucket)

    def scan(
        self,
        source: DataSource,
        file: int,
        on_progress: ProgressCallback | None,
    ) -> _FileResult:
        tally = StreamTally()
        result = _FileResult(None, 0, 0, 0, 0, 0, 0, 0)
        label = FILE_LABELS.get(file)
        pending: tuple[Future[list[int]], list[ExampleFacts]] | None = None
        try:
            with source.open() as stream:
                for batch in _batches(iter_lines(stream, tally, on_progress)):
                    facts = self._check_batch(batch, result, label)
                    batch.clear()  # the lines' bytes are not kept while the next batch is read
                    texts = [text for example in facts for text in example.texts]
                    submitted = (self.counter.submit(texts), facts)
                    if pending is not None:
                        self._store_batch(*pending, file, result, label)
                    pending = submitted
                if pending is not None:
                    self._store_batch(*pending, file, result, label)
        except FileLevelError as problem:
            if pending is not None:
                pending[0].result()
            self.errors.add(Finding(code=problem.code, message=problem.message, file=label))
            return result
        result.info = FileInfo(
            name=source.name,
            bytes=tally.bytes_read,
            sha256=tally.sha256.hexdigest(),
            lines=tally.lines,
        )
        if result.examples == 0:
            self.errors.add(
                Finding(
                    code="no_examples",
                    file=label,
                    message="The file has no examples, only blank lines.",
                )
            )
        return result

    def _check_batch(
        self, batch: list[Line], result: _FileResult, label: str | None
    ) -> list[ExampleFacts]:
        facts: list[ExampleFacts] = []
        fmt = self.options.data_format
        for line in batch:
            if line.oversized_bytes:
                result.examples += 1
                self._skip(
                    line,
                    label,
                    f"Line is {line.oversized_bytes:,} bytes long, over the "
                    f"{MAX_LINE_BYTES // (1 << 20)} MiB that any valid example can take",
                )
                continue
            if not line.raw.strip():
                result.blank_lines += 1
                continue
            result.examples += 1
            if len(line.raw) > ITEM_SCAN_BYTES and (items := json_items(line.raw)) > MAX_JSON_ITEMS:
                self._skip(
                    line,
                    label,
                    f"Line holds about {items:,} JSON values and keys, far more than a "
                    f"training example holds (at most {MAX_JSON_ITEMS:,} are read)",
                )
                continue
            checked = check_line(
                line.raw, line.number, fmt, self.nova, max_text_chars=self.max_text_chars
            )
            if checked.foreign_format is not None and result.examples == 1:
                raise FileLevelError(checked.errors[0].code, checked.errors[0].message)
            for finding in checked.errors:
                finding.file = label
                self.errors.add(finding)
            for finding in checked.warnings:
                finding.file = label
                if label == "evaluation" and finding.code == "last_message_not_assistant":
                    self.errors.add(_no_reference(finding))
                else:
                    self.warnings.add(finding)
            if checked.facts is not None:
                facts.append(checked.facts)
        return facts

    def _skip(self, line: Line, label: str | None, why: str) -> None:
        self.errors.add(
            Finding(
                code="line_too_long",
                line=line.number,
                file=label,
                message=f"{why}; it was skipped without being parsed.",
            )
        )

    def _apply_counts(self, facts: list[ExampleFacts], counts: list[int]) -> set[int]:
        """Set each example's tokens; returns the lines whose counting stopped at the limit."""
        counted = iter(counts)
        stopped = set()
        for example in facts:
            total = example.overhead
            trained = 0
            for is_assistant in example.assistant_mask:
                tokens = next(counted)
                total += tokens
                if is_assistant:
                    trained += tokens
                if tokens > self.counter.cap:
                    stopped.add(example.line)
            example.tokens = total
            example.assistant_tokens = trained
        return stopped

    def _store_batch(
        self,
        counting: Future[list[int]],
        facts: list[ExampleFacts],
        file: int,
        result: _FileResult,
        label: str | None,
    ) -> None:
        stopped = self._apply_counts(facts, counting.result())
        for example in facts:
            result.valid_examples += 1
            result.with_tools += example.has_tools
            result.with_images += example.has_images
            result.without_system += not example.has_system
            if example.tokens > self.token_limit:
                result.over_limit += 1
                self.warnings.add(
                    Finding(
                        code="example_too_long",
                        line=example.line,
                        file=label,
                        message=self._too_long(example.tokens, example.line in stopped),
                    )
                )
        self.store.add(file, facts)

    def _too_long(self, tokens: int, stopped: bool) -> str:
        """``stopped``: counting stopped past the limit, so ``tokens`` is a lower bound."""
        if self.model.provider == "openai":
            amount = f"at least {tokens:,}" if stopped else f"{tokens:,}"
            return (
                f"The example has {amount} tokens, over the {self.token_limit:,}-token limit "
                f"of {self.options.model}; it will be truncated during training."
            )
        amount = f"at least about {tokens:,}" if stopped else f"about {tokens:,}"
        return (
            f"The example has {amount} tokens, over the {self.token_limit:,}-token "
            f"context window of {self.model.base_model}; Bedrock cannot train on all of it."
        )


def _no_reference(finding: Finding) -> Finding:
    """In a held-out file the last assistant message is the reference every answer is graded
    against, so an example ending otherwise cannot be scored."""
    return finding.model_copy(
        update={
            "code": "no_reference_answer",
            "message": "The example does not end with an assistant message, so it has no "
            "reference answer to grade the models' answers against.",
        }
    )


def _batches(lines: Iterator[Line]) -> Iterator[list[Line]]:
    batch: list[Line] = []
    size = 0
    for line in lines:
        batch.append(line)
        size += len(line.raw)
        if len(batch) == BATCH_LINES or size >= BATCH_BYTES:
            yield batch
            batch, size = [], 0
    if batch:
        yield batch


def validate(
    training: DataSource,
    options: ValidationOptions | None = None,
    validation: DataSource | None = None,
    on_progress: ProgressCallback | None = None,
    evaluation: DataSource | None = None,
) -> ValidationReport:
    """Validate a training file (and optionally its validation and held-out evaluation
    files) in one streaming pass."""
    opts = options or ValidationOptions()
    total_bytes = sum(s.size or 0 for s in (training, validation, evaluation) if s is not None)
    with example_store() as store:
        run = _Run(opts, store, use_process=total_bytes >= PROCESS_COUNTING_BYTES)
        try:
            return _validate(run, training, validation, evaluation, on_progress)
        finally:
            run.counter.close()


def _validate(
    run: _Run,
    training: DataSource,
    validation: DataSource | None,
    evaluation: DataSource | None,
    on_progress: ProgressCallback | None,
) -> ValidationReport:
    store, opts = run.store, run.options
    _target_checks(run)
    train = run.scan(training, TRAINING, on_progress)
    done = train.info.bytes if train.info else 0
    held_out = None
    if validation is not None:
        held_out = run.scan(validation, VALIDATION, _shifted(on_progress, done))
        done += held_out.info.bytes if held_out.info else 0
    eval_set = None
    if evaluation is not None:
        eval_set = run.scan(evaluation, EVALUATION, _shifted(on_progress, done))
    store.finish_loading()
    if train.info is not None:
        _file_wide_checks(run, train, held_out, eval_set)
    stats = _stats(store, train, held_out, eval_set)
    estimate = None
    if train.valid_examples:
        estimate = estimate_cost(
            opts.model,
            store.billable_tokens(run.token_limit),
            train.valid_examples,
            None if opts.hyperparameters.n_epochs == "auto" else opts.hyperparameters.n_epochs,
            opts.today,
            provider=run.model.provider,
        )
    return ValidationReport(
        valid=not run.errors,
        format=opts.data_format,
        file=train.info,
        validation_file=held_out.info if held_out else None,
        evaluation_file=eval_set.info if eval_set else None,
        errors=run.errors.sorted(),
        warnings=run.warnings.sorted(),
        error_counts=dict(run.errors.counts),
        warning_counts=dict(run.warnings.counts),
        stats=stats,
        estimate=estimate,
    )


def _target_checks(run: _Run) -> None:
    """Whether the provider can train this kind of file on this model, with these settings."""
    if run.model.provider != "bedrock":
        return
    if run.model.unsupported_reason is not None:
        run.errors.add(Finding(code="unsupported_base_model", message=run.model.unsupported_reason))
    elif run.model.base_model is not None:
        opts = run.options
        for problem in job_setting_problems(
            run.model.base_model, opts.hyperparameters, opts.suffix
        ):
            run.errors.add(Finding(code="invalid_job_setting", message=problem))
    if run.options.data_format != "chat":
        run.errors.add(
            Finding(
                code="unsupported_data_format",
                message="Amazon Bedrock fine-tunes Nova on supervised chat examples only; "
                "it has no preference (DPO) training.",
            )
        )


def _shifted(on_progress: ProgressCallback | None, done: int) -> ProgressCallback | None:
    """Progress through a later file, counted after the bytes of the files before it."""
    return (lambda n: on_progress(done + n)) if on_progress else None


def _file_wide_checks(
    run: _Run, train: _FileResult, held_out: _FileResult | None, eval_set: _FileResult | None
) -> None:
    store, opts = run.store, run.options
    if run.model.provider == "openai" and 0 < train.examples < opts.min_examples:
        run.errors.add(
            Finding(
                code="too_few_examples",
                message=f"The file has {train.examples} examples; OpenAI requires at least "
                f"{opts.min_examples} (50 to 100 usually give clear improvements).",
            )
        )
    if run.nova is not None:
        errors, warnings = file_findings(
            run.nova.base_model, train.examples, train.with_tools, held_out is not None
        )
        for finding in errors:
            run.errors.add(finding)
        for finding in warnings:
            run.warnings.add(finding)
    for code, total, findings in group_findings(store, opts.max_findings_per_code):
        run.warnings.add_group(code, total, findings)
    if opts.data_format == "chat":
        _lines_warning(
            run,
            "missing_system_message",
            "has_system = 0",
            "{n} of {total} examples have no system message",
            train.valid_examples,
        )
    _lines_warning(
        run,
        "short_assistant_reply",
        "short_reply = 1",
        "{n} of {total} examples end with an empty or very short assistant reply",
        train.valid_examples,
    )
    if held_out is not None:
        _leakage(run, VALIDATION, "the validation loss")
    if eval_set is not None:
        _leakage(run, EVALUATION, "the evaluation's scores")


def _leakage(run: _Run, file: int, measure: str) -> None:
    """Held-out prompts that the training file also holds: the model has seen their answers."""
    label = FILE_LABELS[file]
    total, pairs = run.store.leaks(run.options.max_findings_per_code, file)
    run.warnings.add_group(
        f"{label}_leakage",
        total,
        [
            Finding(
                code=f"{label}_leakage",
                file=label,
                line=held_line,
                message=f"The prompt of {label} line {held_line} is also in the training "
                f"file (line {train_line}); {measure} will look better than it is.",
            )
            for held_line, train_line in pairs
        ],
    )


def _lines_warning(run: _Run, code: str, condition: str, text: str, total: int) -> None:
    count, lines = run.store.lines_where(condition)
    if count:
        message = text.format(n=count, total=total)
        run.warnings.add_group(code, 1, [lines_finding(code, message, lines, count, "lines ")])


def _stats(
    store: ExampleStore,
    train: _FileResult,
    held_out: _FileResult | None,
    eval_set: _FileResult | None,
) -> Stats:
    messages = store.distribution("messages")
    return Stats(
        examples=train.examples,
        valid_examples=train.valid_examples,
        invalid_examples=train.examples - train.valid_examples,
        blank_lines=train.blank_lines,
        messages=messages.total if messages else 0,
        messages_per_example=messages,
        tokens_per_example=store.distribution("tokens"),
        assistant_tokens_per_example=store.distribution("assistant_tokens"),
        examples_over_token_limit=train.over_limit,
        examples_with_tools=train.with_tools,
        examples_with_images=train.with_images,
        examples_without_system_message=train.without_system,
        validation_examples=held_out.examples if held_out else None,
        evaluation_examples=eval_set.examples if eval_set else None,
    )
