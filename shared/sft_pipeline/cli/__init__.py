"""The ``sft`` command line.

``sft validate FILE`` checks a training file the way the fine-tuning provider
will (and more) and prints a readable report, or one JSON object with --json.
Exit status: 0 valid, 1 invalid, 2 unreadable file or bad usage.

``sft keys create|list|revoke`` manages the inference API's keys in a deployed
stack (``--stack``) or a registry table (``--table``). A key is printed once, at
creation; only its hash is stored, and nothing ever prints the hash.
Exit status: 0 done, 1 no such key, 2 bad usage or AWS unreachable.

``sft retrain MODEL_OR_ALIAS --provider bedrock --stack S`` orders a retrain of a registered
model on another provider, on the exact dataset version of its lineage (cli/retrain_command.py).
Exit status: 0 ordered, 1 refused, 2 bad usage or AWS unreachable.

``sft eval HELDOUT --model ft:...`` evaluates a fine-tune against its base model (zero-shot
and few-shot) and optionally a champion through any OpenAI-compatible endpoint, and prints
the score table. Exit status: 0 done (with --min-improvement: the fine-tune passed the gate),
1 it did not pass the gate, 2 bad usage, an unreadable file or an endpoint that answered nothing.

``sft generate SPEC -o train.jsonl`` makes training and held-out data with a teacher model
(see cli/generate_command.py). Exit status: 0 done, 1 incomplete or invalid, 2 unusable input.

Other packages add commands through the ``sft.commands`` entry points (the local stack adds
``sft local``), so this package, shipped in the Lambda layer, never imports them.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Sequence
from contextlib import ExitStack
from datetime import UTC, datetime
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any, NamedTuple, TextIO, get_args

from sft_pipeline.adapters.registry import Registry
from sft_pipeline.adapters.stack_outputs import StackNotFoundError, stack_outputs
from sft_pipeline.adapters.usage_keys import UsageKeys
from sft_pipeline.api_keys import (
    DEFAULT_SCOPE,
    KEY_NAME,
    ApiKeyNotFound,
    ApiKeyRecord,
    ApiKeyStore,
    KeyScope,
    looks_like_key,
    new_key,
)
from sft_pipeline.cli import eval_command, generate_command, retrain_command
from sft_pipeline.cli.sources import SourceError, open_source
from sft_pipeline.evaluation.gate import GatePolicy
from sft_pipeline.evaluation.graders import GRADERS
from sft_pipeline.evaluation.runner import EvaluationError, evaluate
from sft_pipeline.validation import DataSource, ValidationOptions, ValidationReport, validate
from sft_pipeline.validation.progress import ProgressBar
from sft_pipeline.validation.render import render_text
from sft_pipeline.validation.targets.openai import load_catalog

if TYPE_CHECKING:
    from boto3.session import Session
    from botocore.exceptions import ClientError

EXIT_VALID = 0
EXIT_INVALID = 1
EXIT_UNUSABLE = 2
EXIT_OK = 0
EXIT_NOT_FOUND = 1
EXIT_GATE_FAILED = 1
# Each entry point is a function that adds its commands to the subparsers it is given; a
# command's parser sets ``run_command``, which gets the parsed arguments and returns the status.
COMMAND_ENTRY_POINTS = "sft.commands"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sft", description="SFT Pipeline: fine-tuning data tools for OpenAI-format JSONL."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    check = commands.add_parser(
        "validate",
        help="check a training file before fine-tuning",
        description="Check a JSONL training file line by line (format, token limits, "
        "duplicates, conflicting answers) and estimate the training cost. "
        "FILE is a local path or s3://bucket/key. Exit 0 valid, 1 invalid, 2 unreadable.",
    )
    check.add_argument("file", metavar="FILE", help="training file: a path or s3://bucket/key")
    check.add_argument(
        "--model",
        default=load_catalog().default_model,
        help="base model to check against (token limit, tokenizer, price); default %(default)s",
    )
    check.add_argument(
        "--validation-file", metavar="F", help="validation file: checked too, and for leakage"
    )
    check.add_argument(
        "--eval-file",
        metavar="F",
        help="held-out evaluation file (as eval-key names): checked too, and for leakage",
    )
    check.add_argument(
        "--format",
        dest="data_format",
        choices=("chat", "dpo"),
        default="chat",
        help="chat (supervised, the default) or dpo (preference pairs)",
    )
    check.add_argument(
        "--n-epochs", type=int, metavar="N", help="epochs for the estimate (default: as auto would)"
    )
    check.add_argument(
        "--batch-size", type=int, metavar="N", help="batch size the job will use (default: auto)"
    )
    check.add_argument(
        "--learning-rate-multiplier",
        type=float,
        metavar="X",
        help="learning-rate multiplier the job will use (default: auto)",
    )
    check.add_argument(
        "--suffix", help="suffix of the fine-tuned model's name, as in the upload's metadata"
    )
    check.add_argument(
        "--max-findings",
        type=int,
        default=20,
        metavar="N",
        help="findings shown per code; all are counted (default %(default)s)",
    )
    check.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    check.add_argument("--no-progress", action="store_true", help="never show the progress bar")
    _add_keys_commands(commands)
    _add_eval_command(commands)
    _add_generate_command(commands)
    retrain_command.add_command(commands)
    for entry in sorted(entry_points(group=COMMAND_ENTRY_POINTS), key=lambda entry: entry.name):
        entry.load()(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "keys":
        return _run_keys(args)
    if "run_command" in args:
        status: int = args.run_command(args)
        return status
    # The upload's settings: what the provider would refuse is refused here too.
    requested = {
        "n_epochs": args.n_epochs,
        "batch_size": args.batch_size,
        "learning_rate_multiplier": args.learning_rate_multiplier,
    }
    try:
        options = ValidationOptions(
            data_format=args.data_format,
            model=args.model,
            hyperparameters={name: value for name, value in requested.items() if value is not None},
            suffix=args.suffix,
            max_findings_per_code=args.max_findings,
        )
    except ValueError as exc:
        parser.error(_first_error_line(exc))
    try:
        training = open_source(args.file)
        held_out = open_source(args.validation_file) if args.validation_file else None
        evaluation = open_source(args.eval_file) if args.eval_file else None
        report = _run(
            training, options, held_out, show_progress=not args.no_progress, evaluation=evaluation
        )
    except SourceError as exc:
        return fail(str(exc))
    if args.json:
        sys.stdout.write(report.model_dump_json(indent=2) + "\n")
    else:
        sys.stdout.write(render_text(report))
    return EXIT_VALID if report.valid else EXIT_INVALID


def _run(
    training: DataSource,
    options: ValidationOptions,
    held_out: DataSource | None,
    show_progress: bool,
    *,
    stream: TextIO | None = None,
    evaluation: DataSource | None = None,
) -> ValidationReport:
    out = stream or sys.stderr
    total = sum(s.size or 0 for s in (training, held_out, evaluation) if s is not None)
    if not (show_progress and out.isatty() and total):
        return validate(training, options, held_out, evaluation=evaluation)
    with ProgressBar(total, out) as bar:
        return validate(training, options, held_out, on_progress=bar.update, evaluation=evaluation)


def _first_error_line(exc: ValueError) -> str:
    lines = str(exc).splitlines()
    return " ".join(line.strip() for line in lines[1:3]) if len(lines) > 1 else str(exc)


# ------------------------------------------------------------------ sft eval


def _add_eval_command(commands: Any) -> None:
    command = commands.add_parser(
        "eval",
        help="evaluate a fine-tune against its base model and a few-shot prompt",
        description="Ask the fine-tune, its base model (zero-shot, and few-shot with "
        "--few-shot) and a --champion every held-out prompt at temperature 0, grade the "
        "answers against the references and compare them with 95% bootstrap intervals. "
        "Exit 0 done (with --min-improvement: the gate passed), 1 the gate did not pass, "
        "2 unusable input.",
    )
    command.add_argument("file", metavar="HELDOUT", help="held-out chat JSONL: path or s3://")
    command.add_argument("--model", required=True, help="the fine-tune to evaluate (ft:...)")
    command.add_argument(
        "--baseline",
        metavar="MODEL",
        help="its base model (default: the one an ft: model id names)",
    )
    command.add_argument(
        "--few-shot", metavar="TRAIN", help="training JSONL the few-shot prompt draws examples from"
    )
    command.add_argument(
        "--k", type=_positive, default=5, help="few-shot examples (default %(default)s)"
    )
    command.add_argument("--champion", metavar="MODEL", help="the model the fine-tune must beat")
    command.add_argument("--judge", metavar="MODEL", help="also ask MODEL which answer is better")
    command.add_argument(
        "--graders",
        type=eval_command.parse_graders,
        metavar="A,B",
        help=f"graders, the first one scores (default: picked from the data): {', '.join(GRADERS)}",
    )
    command.add_argument("--seed", type=int, default=0, help="sampling and bootstrap seed")
    command.add_argument(
        "--concurrency", type=_positive, default=8, help="requests in flight (default %(default)s)"
    )
    command.add_argument(
        "--min-improvement",
        type=_improvement,
        metavar="X",
        help="exit 1 unless the fine-tune beats the champion (or base) by more than X, "
        "significantly",
    )
    command.add_argument("--json", action="store_true", help="print the summary as JSON")
    command.add_argument("--html", metavar="FILE", help="write a self-contained HTML report")
    command.add_argument(
        "--answers-out", metavar="FILE", help="write every answer and its scores as JSONL"
    )
    command.add_argument("--base-url", help="endpoint (default: OPENAI_BASE_URL, else OpenAI)")
    command.add_argument("--api-key", help="key (default: OPENAI_API_KEY)")
    command.add_argument("--no-progress", action="store_true", help="never show the progress bar")
    command.set_defaults(run_command=_run_eval)


def _run_eval(args: argparse.Namespace) -> int:
    baseline = args.baseline or eval_command.base_of(args.model)
    if baseline is None:
        return fail(f"--baseline is needed: {args.model!r} does not name its base model")
    try:
        examples = eval_command.read_held_out(args.file)
        contenders = eval_command.contenders_for(args, baseline)
        chat = eval_command.openai_chat(args.base_url, args.api_key)
    except (SourceError, eval_command.EvalInputError) as error:
        return fail(str(error))
    # No alias: nothing is promoted from a laptop, the gate only says pass or fail.
    policy = GatePolicy(min_improvement=args.min_improvement or 0.0)
    try:
        with ExitStack() as stack:
            evaluation = evaluate(
                examples,
                contenders,
                chat=chat,
                graders=args.graders,
                judge=args.judge,
                policy=policy,
                seed=args.seed,
                concurrency=args.concurrency,
                on_progress=None if args.no_progress else eval_command.progress_bar(stack),
            )
    except EvaluationError as error:
        return fail(str(error))
    eval_command.write_outputs(args, evaluation, examples, baseline)
    if args.json:
        sys.stdout.write(evaluation.summary.model_dump_json(indent=2) + "\n")
    else:
        sys.stdout.write(eval_command.render_table(evaluation))
    eval_command.warn_failures(evaluation)
    decision = evaluation.summary.decision
    if args.min_improvement is not None and not (decision and decision.passed):
        return EXIT_GATE_FAILED
    return EXIT_OK


# ------------------------------------------------------------------ sft generate


def _add_generate_command(commands: Any) -> None:
    command = commands.add_parser(
        "generate",
        help="make training and held-out data with a teacher model, from a spec",
        description="Ask a teacher model for conversations as the spec (YAML or JSON) "
        "describes, check each with the validator's rules, drop duplicates, and write a "
        "training file and a disjoint held-out file. Rerun the same command to continue an "
        "interrupted run. Exit 0 done, 1 incomplete or invalid, 2 unusable input.",
    )
    command.add_argument("spec", metavar="SPEC", help="the generation spec (YAML or JSON)")
    command.add_argument("-o", "--output", required=True, metavar="TRAIN", help="training JSONL")
    command.add_argument(
        "--eval-out",
        metavar="HELDOUT",
        help="held-out JSONL for the spec's eval-share (default: TRAIN's name + .heldout.jsonl)",
    )
    command.add_argument(
        "--concurrency", type=_positive, default=8, help="requests in flight (default %(default)s)"
    )
    command.add_argument("--yes", action="store_true", help="go ahead without asking")
    command.add_argument("--json", action="store_true", help="print the report as JSON")
    command.add_argument(
        "--base-url", help="OpenAI-compatible endpoint (default: OPENAI_BASE_URL, else OpenAI)"
    )
    command.add_argument("--api-key", help="key (default: OPENAI_API_KEY)")
    command.add_argument("--region", help="AWS region of a Bedrock teacher")
    command.add_argument("--no-progress", action="store_true", help="never show the progress bar")
    command.set_defaults(run_command=generate_command.run)


def _positive(value: str) -> int:
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError(f"{value}: must be at least 1")
    return number


def _improvement(value: str) -> float:
    number = float(value)
    if not math.isfinite(number) or number < 0:
        raise argparse.ArgumentTypeError(f"{value}: must be a finite number >= 0")
    return number


# ------------------------------------------------------------------ sft keys


class _Target(NamedTuple):
    """Where the keys live: the registry table and, if the stack has one, the usage plan."""

    table: str
    usage_plan_id: str | None


class _StackError(Exception):
    """The stack is not one this command can use; the message says why."""


def _add_keys_commands(commands: Any) -> None:
    keys = commands.add_parser(
        "keys",
        help="create, list and revoke keys for the inference API",
        description="Manage the inference API's keys. A key is shown once, when it is "
        "created; only its hash is stored. Exit 0 done, 1 no such key, 2 bad usage or "
        "AWS unreachable.",
    )
    actions = keys.add_subparsers(dest="keys_command", required=True, metavar="ACTION")
    where = argparse.ArgumentParser(add_help=False)
    target = where.add_mutually_exclusive_group(required=True)
    target.add_argument(
        "--stack",
        help="deployed stack name: its RegistryTableName and UsagePlanId outputs are used",
    )
    target.add_argument("--table", help="registry table name")
    where.add_argument("--region", help="AWS region (default: from your AWS configuration)")
    where.add_argument("--json", action="store_true", help="print JSON on stdout")

    create = actions.add_parser(
        "create", parents=[where], help="issue a key (printed once)", description=_create.__doc__
    )
    create.add_argument(
        "--name",
        required=True,
        type=_key_name,
        help="who or what the key is for: 1-64 letters, digits, spaces, '_', '.', '-'",
    )
    create.add_argument(
        "--scope",
        choices=get_args(KeyScope),
        default=DEFAULT_SCOPE,
        help="inference: chat completions and the model list; admin: also jobs, cancelling "
        "and aliases (default: %(default)s)",
    )
    create.add_argument(
        "--usage-plan-id",
        metavar="ID",
        help="API Gateway usage plan that throttles the key (default: the stack's UsagePlanId)",
    )
    create.set_defaults(run=_create)
    listing = actions.add_parser(
        "list", parents=[where], help="list keys", description=_list.__doc__
    )
    listing.set_defaults(run=_list)
    revoke = actions.add_parser(
        "revoke", parents=[where], help="revoke a key", description=_revoke.__doc__
    )
    revoke.add_argument(
        "key_id", metavar="KEY_ID", type=_key_id, help="the key's id, as `sft keys list` shows"
    )
    revoke.set_defaults(run=_revoke)


def _key_name(value: str) -> str:
    if not KEY_NAME.fullmatch(value):
        raise argparse.ArgumentTypeError(
            f"{value!r}: use 1-64 letters, digits, spaces, '_', '.' or '-'"
        )
    return value


def _key_id(value: str) -> str:
    if looks_like_key(value):
        # Never echo it back: it is a secret.
        raise argparse.ArgumentTypeError(
            "that is a key itself, not its id: pass the key_... id that `sft keys list` shows"
        )
    return value


def _run_keys(args: argparse.Namespace) -> int:
    import boto3  # noqa: PLC0415 - only the keys commands pay for importing boto3
    from botocore.exceptions import BotoCoreError, ClientError  # noqa: PLC0415

    try:
        session = boto3.session.Session(region_name=args.region)
        target = _resolve_target(session, args)
        status: int = args.run(args, session, target)
    except ApiKeyNotFound as missing:
        return fail(str(missing), EXIT_NOT_FOUND)
    except (_StackError, StackNotFoundError) as cannot:
        return fail(str(cannot))
    except ClientError as refused:
        return fail(_refusal(refused, args))
    except BotoCoreError as unreachable:
        return fail(f"cannot reach AWS: {unreachable}")
    return status


def _resolve_target(session: Session, args: argparse.Namespace) -> _Target:
    if args.table is not None:
        return _Target(table=args.table, usage_plan_id=None)
    outputs = stack_outputs(session.client("cloudformation"), args.stack)
    if "RegistryTableName" not in outputs:
        raise _StackError(f"stack {args.stack!r} has no RegistryTableName output")
    return _Target(table=outputs["RegistryTableName"], usage_plan_id=outputs.get("UsagePlanId"))


def _registry(session: Session, target: _Target) -> ApiKeyStore:
    return Registry(session.resource("dynamodb").Table(target.table))


def _usage_keys(session: Session, usage_plan_id: str) -> UsageKeys:
    return UsageKeys(session.client("apigateway"), usage_plan_id)


def _create(args: argparse.Namespace, session: Session, target: _Target) -> int:
    """Issue a key. It is printed once and cannot be shown again: only its hash is stored.
    With a usage plan (--usage-plan-id, or the stack's UsagePlanId output) the key is
    throttled on its own."""
    secret, record = new_key(args.name, datetime.now(UTC), args.scope)
    usage_plan_id = args.usage_plan_id or target.usage_plan_id
    # The usage key first: the API requires one, so a stored key without it would be refused.
    if usage_plan_id:
        usage_key_id = _usage_keys(session, usage_plan_id).create(record.name, record.key_hash)
        record = record.model_copy(update={"usage_key_id": usage_key_id})
    _registry(session, target).put_api_key(record)
    warning = "Copy the key now: it cannot be shown again (only its hash is stored)."
    if args.json:
        _print_json({"key": secret, **_public(record)})
        print(warning, file=sys.stderr)
    else:
        print(
            f"Created {record.scope} API key {record.key_id} ({record.name}).\n\n"
            f"    {secret}\n\n{warning}"
        )
    if not usage_plan_id:
        print(
            "sft: warning: no usage plan, so no usage key: an API that requires one, as the "
            "deployed stack's does, refuses this key (use --stack or --usage-plan-id)",
            file=sys.stderr,
        )
    return EXIT_OK


def _list(args: argparse.Namespace, session: Session, target: _Target) -> int:
    """List the keys, newest first: id, name, scope, when created and when revoked."""
    records = _registry(session, target).list_api_keys()
    if args.json:
        _print_json([_public(record) for record in records])
        return EXIT_OK
    if not records:
        print("No API keys.")
        return EXIT_OK
    rows = [("KEY ID", "NAME", "SCOPE", "CREATED", "REVOKED")]
    rows += [(r.key_id, r.name, r.scope, _when(r.created_at), _when(r.revoked_at)) for r in records]
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    for row in rows:
        print(
            "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        )
    return EXIT_OK


def _revoke(args: argparse.Namespace, session: Session, target: _Target) -> int:
    """Revoke a key: requests with it are refused from now on. Repeating it is harmless."""
    record = _registry(session, target).revoke_api_key(args.key_id, datetime.now(UTC))
    if record.usage_key_id:
        # Disabling needs only the key's own id, whichever plan it is in.
        _usage_keys(session, target.usage_plan_id or "").disable(record.usage_key_id)
    if args.json:
        _print_json(_public(record))
    else:
        print(f"Revoked {record.key_id} ({record.name}) at {_when(record.revoked_at)}.")
    return EXIT_OK


def _public(record: ApiKeyRecord) -> dict[str, Any]:
    """What may be shown of a key: everything but its hash."""
    return {**record.model_dump(mode="json", exclude={"key_hash"}), "active": record.active}


def _when(moment: datetime | None) -> str:
    return moment.isoformat(timespec="seconds") if moment else "-"


def _print_json(value: Any) -> None:
    sys.stdout.write(json.dumps(value, indent=2) + "\n")


def _refusal(error: ClientError, args: argparse.Namespace) -> str:
    details = error.response.get("Error", {})
    if details.get("Code") == "ResourceNotFoundException":
        table = repr(args.table) if args.table else f"of stack {args.stack!r}"
        return f"the registry table {table} does not exist in this account and region"
    return f"AWS refused {error.operation_name}: {details.get('Message') or details.get('Code')}"


def fail(message: str, status: int = EXIT_UNUSABLE) -> int:
    print(f"sft: {message}", file=sys.stderr)
    return status


if __name__ == "__main__":
    sys.exit(main())
