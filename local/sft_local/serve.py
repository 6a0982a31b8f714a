"""``sft local api``: the inference API on 127.0.0.1, on the local stack.

Trains the shipped sample (unless told not to) so there is a model to call,
points the alias ``support-bot`` at it, issues an API key of each scope (inference
and admin) and serves until interrupted. Point any OpenAI client at the printed
base URL. ``add_commands`` is registered as an ``sft.commands`` entry point (pyproject.toml),
so ``sft`` offers the command without the Lambda layer importing the local stack.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import threading
import urllib.request
from typing import Any, TextIO

from sft_local.api_server import LocalApiServer
from sft_local.stack import REPO, LocalStack
from sft_pipeline.adapters.registry import Registry
from sft_pipeline.api_keys import KeyScope, new_key
from sft_pipeline.cli import EXIT_OK, fail

SAMPLE = REPO / "samples" / "customer_support.jsonl"
DEMO_ALIAS = "support-bot"
LOG_FILE = REPO / ".local" / "function-logs.jsonl"


def issue_key(registry: Registry, name: str, scope: KeyScope = "inference") -> str:
    """A new API key: the secret is returned once, only its hash is stored. The local
    gateway throttles by that hash itself, so no usage-plan key is needed here."""
    secret, record = new_key(name, dt.datetime.now(dt.UTC), scope)
    registry.put_api_key(record)
    return secret


def train_sample(stack: LocalStack) -> str:
    """Run the sample through the whole pipeline; return the registered model id."""
    upload = stack.upload(
        SAMPLE.read_bytes(), "training/customer_support.jsonl", {"suffix": "support"}
    )
    status = stack.wait_for_execution(upload)["status"]
    if status != "SUCCEEDED":
        raise RuntimeError(f"training the sample ended {status}")
    stack.settle()
    model = Registry(stack.table()).get_job(upload.dataset_id)
    if model is None or model.model_id is None:
        raise RuntimeError("the sample's job registered no model")
    return model.model_id


def point_alias(server: LocalApiServer, key: str, alias: str, model: str) -> int:
    """PUT /aliases/{alias} through the API itself; returns the alias's new version."""
    request = urllib.request.Request(
        server.base_url.removesuffix("/v1") + f"/aliases/{alias}",
        data=json.dumps({"model": model}).encode(),
        method="PUT",
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        version: int = json.loads(response.read())["current_version"]
    return version


def serve(port: int, train: bool, out: TextIO, stop: threading.Event | None = None) -> None:
    LOG_FILE.parent.mkdir(parents=True, exist_ok=True)
    with (
        LOG_FILE.open("a") as function_logs,
        LocalStack(function_logs=function_logs) as stack,
        LocalApiServer(stack, port=port) as server,
    ):
        stack.override_environment({"API_BASE_URL": server.base_url})
        registry = Registry(stack.table())
        key = issue_key(registry, "local")
        admin_key = issue_key(registry, "local admin", "admin")
        lines = [
            f"SFT Pipeline API on {server.base_url}",
            f"  inference key (chat completions, models): {key}",
            f"  admin key (also jobs, cancel, aliases):    {admin_key}",
            f"  function logs: {LOG_FILE.relative_to(REPO)}",
        ]
        if train:
            model = train_sample(stack)
            point_alias(server, admin_key, DEMO_ALIAS, model)
            lines += [f"  trained {model}", f"  alias {DEMO_ALIAS} -> {model}"]
        lines += [
            "",
            "  from openai import OpenAI",
            f'  client = OpenAI(base_url="{server.base_url}", api_key="{key}")',
            f'  client.chat.completions.create(model="{DEMO_ALIAS if train else "gpt-4o-mini"}", '
            'messages=[{"role": "user", "content": "Hello"}])',
            "",
            "Ctrl-C stops it.",
        ]
        print("\n".join(lines), file=out, flush=True)
        (stop or threading.Event()).wait()


def add_commands(commands: Any) -> None:
    """``sft local``: what the ``sft.commands`` entry point adds to the command line."""
    local = commands.add_parser(
        "local",
        help="run parts of the stack on this machine (no AWS account, no OpenAI key)",
        description="The embedded local stack: moto for AWS, an emulator for OpenAI.",
    )
    actions = local.add_subparsers(dest="local_command", required=True, metavar="ACTION")
    api = actions.add_parser(
        "api",
        help="serve the inference API on 127.0.0.1, as API Gateway would",
        description="Serve the OpenAI-compatible API on 127.0.0.1: the sample is trained, "
        "the alias support-bot points at it, and an API key is printed. Ctrl-C stops it.",
    )
    api.add_argument(
        "--port", type=int, default=8000, help="port on 127.0.0.1 (default %(default)s)"
    )
    api.add_argument("--no-sample", action="store_true", help="do not train the sample model first")
    api.set_defaults(run_command=run_api)


def run_api(args: argparse.Namespace) -> int:
    try:
        serve(args.port, train=not args.no_sample, out=sys.stdout)
    except KeyboardInterrupt:
        return EXIT_OK
    except OSError as exc:
        return fail(f"cannot serve on 127.0.0.1:{args.port}: {exc.strerror or exc}")
    return EXIT_OK
