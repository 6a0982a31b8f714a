"""``sft generate SPEC -o train.jsonl``: training (and held-out) data made by a teacher model.

The estimate of the teacher's calls is shown first (and confirmed unless --yes); requests run
``--concurrency`` at a time with a progress bar; accepted examples are appended as they come,
so an interrupted run is resumed by running the same command again; at the end the files are
validated as an upload would be and a diversity report is printed (or one JSON object with
--json). Exit status: 0 every example made and the files valid, 1 fewer made than asked (run
it again to continue) or files the validator refuses, 2 bad usage, an unusable spec or
output, a refused estimate.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path

from sft_pipeline.chat_calls import Chat
from sft_pipeline.cli.eval_command import EvalInputError, openai_chat
from sft_pipeline.cli.generation_files import GenerationFiles, OutputError
from sft_pipeline.generation.acceptance import Acceptor
from sft_pipeline.generation.estimate import GenerationEstimate, cap_problem, estimate_generation
from sft_pipeline.generation.generator import Tally, generate, replay
from sft_pipeline.generation.plan import Slot, Split, open_slots
from sft_pipeline.generation.report import DiversityReport, diversity_report, render_report
from sft_pipeline.generation.spec import GenerationSpec, SpecError, load_spec
from sft_pipeline.jobs import ProviderName
from sft_pipeline.notifications import usd
from sft_pipeline.validation import DataSource, ValidationOptions, ValidationReport, validate
from sft_pipeline.validation.progress import ProgressBar
from sft_pipeline.validation.targets.openai import load_catalog

EXIT_DONE = 0
EXIT_INCOMPLETE = 1
EXIT_UNUSABLE = 2
# How long one Bedrock answer may take; a timeout is retried like a 5xx.
BEDROCK_READ_TIMEOUT_SECONDS = 120


def run(args: argparse.Namespace) -> int:
    try:
        spec = load_spec(Path(args.spec).read_bytes(), args.spec)
    except OSError as error:
        return _fail(f"{args.spec}: {error.strerror or error}")
    except SpecError as error:
        return _fail("\n  ".join([f"{error.source}: the spec cannot be used:", *error.problems]))
    files = GenerationFiles(_outputs(args, spec), spec.fingerprint())
    model, provider = spec.training_target(load_catalog().default_model)
    acceptor = Acceptor(model=model, provider=provider)
    tally = Tally()
    try:
        earlier = files.resume()
    except OutputError as error:
        return _fail(str(error))
    kept, next_attempt = replay(acceptor, tally, earlier)
    filled = {attempt.slot for attempt in kept}
    todo = [(slot, next_attempt.get(slot, 0)) for slot in open_slots(spec, filled)]
    estimate = estimate_generation(spec, [slot for slot, _ in todo])
    if todo:
        _show_estimate(spec, estimate, tally)
        if problem := cap_problem(estimate, spec.cost_cap_usd):
            return _fail(problem)
        if not args.yes and not _confirmed():
            return _fail("not confirmed: nothing was asked (pass --yes to go ahead)")
        try:
            chat = _teacher_chat(spec, args)
        except EvalInputError as error:
            return _fail(str(error))
        stopped = _generate(
            args, spec, files=files, acceptor=acceptor, tally=tally, todo=todo, chat=chat
        )
    else:
        stopped = None
    report = diversity_report(spec, tally, files.lines(), estimate=estimate, stopped=stopped)
    validation = _validate(files, model, provider)
    _print(args, report, validation, files)
    if not report.complete or not validation.valid:
        return EXIT_INCOMPLETE
    return EXIT_DONE


def _generate(
    args: argparse.Namespace,
    spec: GenerationSpec,
    *,
    files: GenerationFiles,
    acceptor: Acceptor,
    tally: Tally,
    todo: list[tuple[Slot, int]],
    chat: Chat,
) -> str | None:
    made_before = tally.made
    with ExitStack() as stack:
        files.open()
        stack.callback(files.close)
        show = None
        if not args.no_progress and sys.stderr.isatty():
            bar = stack.enter_context(ProgressBar(len(todo), sys.stderr, unit="examples", scale=1))

            def show(now: Tally) -> None:
                spent = now.spent_usd(spec)
                bar.update(
                    now.made - made_before,
                    f"refused {sum(now.refused.values())}, retried {now.retries}, "
                    f"spent {'?' if spent is None else usd(spent)}",
                )

        result = generate(
            spec,
            todo,
            chat=chat,
            acceptor=acceptor,
            record=files.record,
            tally=tally,
            concurrency=args.concurrency,
            on_progress=show,
        )
    return result.stopped


def _outputs(args: argparse.Namespace, spec: GenerationSpec) -> dict[Split, Path]:
    train = Path(args.output)
    outputs: dict[Split, Path] = {"train": train}
    if spec.eval_share > 0:
        default = train.with_name(train.name.removesuffix(".jsonl") + ".heldout.jsonl")
        outputs["eval"] = Path(args.eval_out) if args.eval_out else default
    return outputs


def _show_estimate(spec: GenerationSpec, estimate: GenerationEstimate, tally: Tally) -> None:
    cost = (
        "unknown (no price for this model)" if estimate.cost_usd is None else usd(estimate.cost_usd)
    )
    already = f" ({tally.made:,} made by an earlier run)" if tally.made else ""
    print(
        f"Teacher {spec.teacher.model} ({spec.teacher.provider_name}): {estimate.examples:,} "
        f"examples to make{already}, about {estimate.calls:,} calls, "
        f"{estimate.input_tokens:,} tokens in and {estimate.output_tokens:,} out.\n"
        f"Estimated cost: {cost} (prices as of {estimate.price_as_of}).",
        file=sys.stderr,
    )


def _confirmed() -> bool:
    if not sys.stdin.isatty():
        return False
    print("Go ahead? [y/N] ", end="", file=sys.stderr, flush=True)
    return sys.stdin.readline().strip().lower() in {"y", "yes"}


def _teacher_chat(spec: GenerationSpec, args: argparse.Namespace) -> Chat:
    return TEACHERS[spec.teacher.provider_name](args)


def _bedrock_chat(region: str | None) -> Chat:
    """Converse through the pipeline's Bedrock adapter, with the usual AWS credentials; its
    retries are off, as the generator retries (and backs off) itself."""
    import boto3  # noqa: PLC0415 - only a Bedrock teacher pays for importing boto3
    from botocore.config import Config  # noqa: PLC0415

    from sft_pipeline.providers.bedrock_provider import (  # noqa: PLC0415
        BedrockConfig,
        BedrockProvider,
    )

    runtime = boto3.client(
        "bedrock-runtime",
        region_name=region,
        config=Config(
            retries={"total_max_attempts": 1, "mode": "standard"},
            read_timeout=BEDROCK_READ_TIMEOUT_SECONDS,
        ),
    )
    unused = BedrockConfig(
        role_arn=None, bucket="", prepared_prefix="", output_prefix="", deploy_on_demand=False
    )
    return BedrockProvider(control=None, runtime=runtime, s3=None, config=unused).chat


# How each provider's teacher is reached from a laptop: an OpenAI-compatible endpoint by
# --base-url and --api-key (or their environment variables); Bedrock by the AWS credentials.
TEACHERS: dict[ProviderName, Callable[[argparse.Namespace], Chat]] = {
    "openai": lambda args: openai_chat(args.base_url, args.api_key),
    "bedrock": lambda args: _bedrock_chat(args.region),
}


def _validate(
    files: GenerationFiles, model: str, provider: ProviderName | None
) -> ValidationReport:
    """The outputs checked as an upload of them would be (the held-out file as its eval-key)."""
    train, held_out = files.outputs["train"], files.outputs.get("eval")
    for path in files.outputs.values():
        path.touch()
    return validate(
        DataSource.from_path(train),
        ValidationOptions(model=model, provider=provider),
        evaluation=DataSource.from_path(held_out) if held_out else None,
    )


def _print(
    args: argparse.Namespace,
    report: DiversityReport,
    validation: ValidationReport,
    files: GenerationFiles,
) -> None:
    written = {split: str(path) for split, path in files.outputs.items()}
    if args.json:
        document = {
            "report": report.model_dump(mode="json"),
            "files": written,
            "validation": {
                "valid": validation.valid,
                "error_counts": validation.error_counts,
                "warning_counts": validation.warning_counts,
                "summary": validation.summary(),
            },
        }
        sys.stdout.write(json.dumps(document, indent=2) + "\n")
        return
    sys.stdout.write(render_report(report))
    sys.stdout.write(
        "\n".join(f"{'held out' if s == 'eval' else 'training'}: {p}" for s, p in written.items())
        + "\n"
    )
    sys.stdout.write(f"validator: {validation.summary()}\n")
    if not report.complete:
        print(
            "sft: not every example was made; run the same command again to continue",
            file=sys.stderr,
        )


def _fail(message: str) -> int:
    print(f"sft: {message}", file=sys.stderr)
    return EXIT_UNUSABLE
