"""``sft retrain MODEL_OR_ALIAS --provider bedrock --stack S``: order a retrain of a registered
model on another provider, on the exact dataset version of its lineage.

The order goes where POST /models/{id}/retrain puts it (the stack's training bucket, under
retrain/), and the stack's validation step runs it; what the registry shows cannot be done
is refused here, at once, with the reasons. Exit 0 ordered, 1 refused, 2 bad usage or AWS
unreachable.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any, get_args

from sft_pipeline.adapters.registry import Registry
from sft_pipeline.adapters.stack_outputs import StackNotFoundError, stack_outputs
from sft_pipeline.adapters.training_bucket import TrainingBucket
from sft_pipeline.jobs import ProviderName
from sft_pipeline.pipeline.retrain import RetrainOrders, RetrainPlan, plan_retrain
from sft_pipeline.retraining import RetrainRefused, RetrainRequest
from sft_pipeline.settings import StorageLayout

EXIT_ORDERED = 0
EXIT_REFUSED = 1
EXIT_UNUSABLE = 2
REQUESTED_BY = "cli"
HYPERPARAMETER_FLAGS = ("n_epochs", "batch_size", "learning_rate_multiplier")


def add_command(commands: Any) -> None:
    command = commands.add_parser(
        "retrain",
        help="retrain a registered model on another provider, on the same data version",
        description="Retrain MODEL_OR_ALIAS (a registered model id, or an alias: its model) on "
        "--provider, on the exact training file version and sha256 of its lineage, with its "
        "settings mapped to the new provider. The alias is carried, so the evaluation gate "
        "moves it to the new model when that is at least as good. Exit 0 ordered, 1 refused "
        "(the reasons are printed), 2 bad usage or AWS unreachable.",
    )
    command.add_argument("model", metavar="MODEL_OR_ALIAS")
    command.add_argument("--provider", required=True, choices=get_args(ProviderName))
    command.add_argument(
        "--base-model",
        metavar="M",
        help="base model on the new provider (default: the counterpart of the original's)",
    )
    command.add_argument(
        "--alias", help="alias to carry (default: the one named, else the original run's)"
    )
    for flag in HYPERPARAMETER_FLAGS:
        command.add_argument(
            f"--{flag.replace('_', '-')}",
            dest=flag,
            type=_number_or_auto,
            metavar="X",
            help="replace the original run's value (a number, or auto)",
        )
    command.add_argument("--stack", required=True, help="deployed stack name")
    command.add_argument("--region", help="AWS region (default: from your AWS configuration)")
    command.add_argument("--json", action="store_true", help="print the order as JSON")
    command.set_defaults(run_command=run)


def run(args: argparse.Namespace) -> int:
    import boto3  # noqa: PLC0415 - only commands that reach AWS pay for importing boto3
    from botocore.exceptions import BotoCoreError, ClientError  # noqa: PLC0415

    overrides = {flag: getattr(args, flag) for flag in HYPERPARAMETER_FLAGS}
    try:
        request = RetrainRequest(
            model=args.model,
            provider=args.provider,
            base_model=args.base_model,
            alias=args.alias,
            hyperparameters={k: v for k, v in overrides.items() if v is not None},
        )
    except ValueError as invalid:
        return _fail(str(invalid).splitlines()[-1].strip(), EXIT_UNUSABLE)
    try:
        session = boto3.session.Session(region_name=args.region)
        outputs = stack_outputs(session.client("cloudformation"), args.stack)
        missing = {"RegistryTableName", "TrainingBucketName"} - outputs.keys()
        if missing:
            return _fail(f"stack {args.stack!r} has no {', '.join(sorted(missing))} output")
        registry = Registry(session.resource("dynamodb").Table(outputs["RegistryTableName"]))
        plan = plan_retrain(request, registry, REQUESTED_BY)
        orders = RetrainOrders(
            TrainingBucket(session.client("s3")),
            outputs["TrainingBucketName"],
            StorageLayout.model_fields["retrain_prefix"].default,
        )
        orders.submit(plan)
    except RetrainRefused as refused:
        return _fail("cannot retrain: " + " ".join(refused.problems), EXIT_REFUSED)
    except StackNotFoundError as missing_stack:
        return _fail(str(missing_stack))
    except ClientError as refused_call:
        details = refused_call.response.get("Error", {})
        return _fail(f"AWS refused {refused_call.operation_name}: {details.get('Message')}")
    except BotoCoreError as unreachable:
        return _fail(f"cannot reach AWS: {unreachable}")
    if args.json:
        sys.stdout.write(json.dumps(describe(plan), indent=2) + "\n")
    else:
        sys.stdout.write(render(plan))
    return EXIT_ORDERED


def describe(plan: RetrainPlan) -> dict[str, Any]:
    settings = plan.settings
    return {
        "dataset_id": plan.dataset_id,
        "retrained_from": plan.model.model_id,
        "provider": settings.provider,
        "base_model": settings.base_model,
        "alias": settings.alias,
        "promote": settings.promote,
        "hyperparameters": settings.hyperparameters.model_dump(),
        "upload": plan.upload.model_dump(),
        "dataset_sha256": plan.sha256,
    }


def render(plan: RetrainPlan) -> str:
    settings, upload = plan.settings, plan.upload
    hyper = ", ".join(f"{k}={v}" for k, v in settings.hyperparameters.model_dump().items())
    alias = (
        f"{settings.alias} (moved to the new model if it is at least as good)"
        if settings.alias
        else "none (point one at the new model with PUT /aliases/{name})"
    )
    return (
        f"Retrain ordered: run {plan.dataset_id}\n"
        f"  retrains:        {plan.model.model_id} ({plan.model.provider})\n"
        f"  on:              {settings.base_model} ({settings.provider})\n"
        f"  data:            {upload.uri} version {upload.version_id}\n"
        f"  sha256:          {plan.sha256}\n"
        f"  hyperparameters: {hyper}\n"
        f"  alias:           {alias}\n"
        "The validation step checks that version for the new provider, then the run starts; "
        "the notification says how it ended.\n"
    )


def _number_or_auto(value: str) -> int | float | str:
    if value == "auto":
        return value
    try:
        return int(value)
    except ValueError:
        try:
            return float(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{value!r}: a number, or auto") from None


def _fail(message: str, status: int = EXIT_UNUSABLE) -> int:
    print(f"sft: {message}", file=sys.stderr)
    return status
