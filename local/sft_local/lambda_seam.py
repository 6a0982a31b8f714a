"""The one seam between moto and our code: moto's Lambda invocations run the real
handlers in this process instead of in Docker.

Every caller inside moto (the Step Functions interpreter, S3 notifications, SNS
subscriptions) goes through ``LambdaFunction._invoke_lambda``; replacing it keeps
moto's own error plumbing, so a raised exception reaches Step Functions under its
class name, as on AWS. Invocations from S3, SNS and EventBridge rules are asynchronous on
AWS: here too they are retried, and then sent to the function's failure destination.
S3 events name the object version they are about, as S3's do (moto's leave it out).

Invocations of one function run at the same time, as Lambda runs them in containers of
their own (a Map's ten shard tasks answer together); invocations of different functions
take turns, since they share this process's environment variables, stdout and the
composition root's cached adapters.
"""

from __future__ import annotations

import copy
import importlib.util
import itertools
import json
import os
import sys
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any, TextIO
from unittest import mock

from botocore.session import Session as BotocoreSession
from moto.awslambda.models import LambdaFunction, lambda_backends
from moto.dynamodb.models import DynamoDBBackend
from moto.events.models import Rule
from moto.events.utils import EventMessageType
from moto.s3 import notifications as s3_notifications
from moto.stepfunctions.parser.asl.component.common.retry import retrier_decl
from moto.stepfunctions.parser.asl.component.common.timeouts.timeout import (
    EvalTimeoutError,
    TimeoutSecondsPath,
)
from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service import (
    StateTaskService,
)
from moto.stepfunctions.parser.asl.component.state.wait.wait_function.wait_function import (
    WaitFunction,
)
from moto.utilities.arns import parse_arn

Handler = Callable[[dict[str, Any], Any], Any]
ASYNC_SOURCES = ("aws:s3", "aws:sns")
# moto's DynamoDB writes that check a condition: DynamoDB applies the check and the write as one.
CONDITIONAL_WRITES = ("put_item", "update_item", "delete_item", "transact_write_items")


@dataclass(frozen=True)
class FunctionCode:
    """Where a function's handler lives and how AWS would invoke it asynchronously."""

    path: Path
    handler: str
    environment: dict[str, str]
    max_async_retries: int = 2
    on_failure_queue_url: str | None = None


@dataclass
class Invocation:
    function: str
    event: dict[str, Any]
    error: str | None
    attempt: int


@dataclass
class LambdaSeam:
    """Routes moto's invocations to handlers loaded from the functions' code folders."""

    functions: dict[str, FunctionCode]
    send_to_queue: Callable[[str, str], None]
    # Where the handlers' stdout (Powertools logs and metrics) goes; None leaves it alone.
    log_stream: TextIO | None = None
    invocations: list[Invocation] = field(default_factory=list)
    # Asynchronous events (S3, SNS) run after the call that caused them returns, as on AWS.
    _async_runner: ThreadPoolExecutor = field(
        default_factory=lambda: ThreadPoolExecutor(max_workers=1)
    )
    _pending: list[Future[None]] = field(default_factory=list)
    _gate: _FunctionGate = field(init=False)
    _loading: threading.Lock = field(default_factory=threading.Lock)
    _modules: dict[str, ModuleType] = field(default_factory=dict)
    _warm_function: str | None = None

    def __post_init__(self) -> None:
        self._gate = _FunctionGate(self._set_up_for)

    def _load(self, name: str, code: FunctionCode) -> Handler:
        module_name, _, attribute = code.handler.rpartition(".")
        with self._loading:  # the first invocations of a function may arrive together
            if name not in self._modules:
                self._modules[name] = _import_handler_module(name, code.path / f"{module_name}.py")
        handler: Handler = getattr(self._modules[name], attribute)
        return handler

    def invoke(self, function: LambdaFunction, event: dict[str, Any]) -> tuple[str, bool, str]:
        if not _is_async(event):
            code = self.functions[function.function_name]
            payload, errored = self._run_once(function, code, event, attempt=1)
            return payload, errored, ""
        self.invoke_async(function, event)
        return "", False, ""

    def invoke_async(self, function: LambdaFunction, event: dict[str, Any]) -> None:
        """Run the handler after the caller returns, retried as Lambda retries async events."""
        code = self.functions[function.function_name]
        self._pending.append(self._async_runner.submit(self._deliver, function, code, event))

    def _deliver(self, function: LambdaFunction, code: FunctionCode, event: dict[str, Any]) -> None:
        """Lambda's asynchronous contract: retries, then the on-failure destination."""
        attempts = 1 + code.max_async_retries
        for attempt in range(1, attempts + 1):
            payload, errored = self._run_once(function, code, event, attempt)
            if not errored:
                return
        if code.on_failure_queue_url:
            self.send_to_queue(
                code.on_failure_queue_url, _failure_record(function, event, payload, attempts)
            )

    def settle(self, timeout: float = 60.0) -> None:
        """Wait until every asynchronous event delivered so far has been handled."""
        deadline = time.monotonic() + timeout
        while self._pending:
            self._pending.pop(0).result(timeout=max(0.0, deadline - time.monotonic()))

    def close(self) -> None:
        self._async_runner.shutdown(wait=True)

    def _run_once(
        self, function: LambdaFunction, code: FunctionCode, event: dict[str, Any], attempt: int
    ) -> tuple[str, bool]:
        with self._gate.entered(function.function_name, _runtime_env(function, code)):
            try:
                result = self._load(function.function_name, code)(event, _Context(function))
            except Exception as exc:
                self.invocations.append(
                    Invocation(function.function_name, event, type(exc).__name__, attempt)
                )
                return json.dumps(
                    {
                        "errorMessage": str(exc),
                        "errorType": type(exc).__name__,
                        "stackTrace": traceback.format_tb(exc.__traceback__),
                    }
                ), True
        self.invocations.append(Invocation(function.function_name, event, None, attempt))
        return json.dumps(result), False

    def _set_up_for(self, function_name: str, environment: dict[str, str]) -> Callable[[], None]:
        """Make the process the named function's container; returns what undoes it.

        The environment is set and put back key by key, never cleared, so a thread outside
        every invocation (a test reading the table) never sees an empty one."""
        before = {name: os.environ.get(name) for name in environment}
        os.environ.update(environment)
        stdout = sys.stdout
        if self.log_stream:
            sys.stdout = self.log_stream
        if self._warm_function != function_name:
            # Each function has a container of its own on AWS: one process here, so the
            # adapters built for the previous function (its settings) are dropped.
            from sft_pipeline import runtime  # noqa: PLC0415

            runtime.reset()
            self._warm_function = function_name

        def undo() -> None:
            sys.stdout = stdout
            for name, value in before.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value

        return undo


class _FunctionGate:
    """Lets invocations of the function the process is set up for overlap, and makes any other
    function wait until they are all done (no new one joins while another function waits)."""

    def __init__(self, set_up: Callable[[str, dict[str, str]], Callable[[], None]]) -> None:
        self._set_up = set_up
        self._turn = threading.Condition()
        self._function: str | None = None
        self._running = 0
        # Waiting invocations by arrival (ticket -> function): one may enter only behind waiters of
        # its own function, so a freed gate goes to the longest waiting, not the first to wake.
        self._waiting: dict[int, str] = {}
        self._tickets = itertools.count()
        self._undo: Callable[[], None] = lambda: None
        self._inside = threading.local()

    @contextmanager
    def entered(self, function_name: str, environment: dict[str, str]) -> Iterator[None]:
        caller = getattr(self._inside, "function", None)
        if caller is not None:
            # On AWS the called function runs in a container of its own; here it would wait
            # for its caller to end.
            raise RuntimeError(
                f"{caller} invoked {function_name} synchronously, which the local stack's "
                "Lambda seam cannot run"
            )
        with self._turn:
            ticket = next(self._tickets)
            self._waiting[ticket] = function_name
            while not self._may_enter(ticket, function_name):
                self._turn.wait()
            del self._waiting[ticket]
            self._turn.notify_all()  # a waiter of this function behind this one may follow
            if self._running == 0:
                self._function = function_name
                self._undo = self._set_up(function_name, environment)
            self._running += 1
        self._inside.function = function_name
        try:
            yield
        finally:
            self._inside.function = None
            with self._turn:
                self._running -= 1
                if self._running == 0:
                    self._undo()
                    self._function = None
                    self._turn.notify_all()

    def _may_enter(self, ticket: int, function_name: str) -> bool:
        if self._running and self._function != function_name:
            return False
        return all(name == function_name for older, name in self._waiting.items() if older < ticket)


def _import_handler_module(name: str, path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"sft_functions.{name}", path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _is_async(event: dict[str, Any]) -> bool:
    records = event.get("Records") if isinstance(event, dict) else None
    if not records or not isinstance(records[0], dict):
        return False
    source = records[0].get("eventSource") or records[0].get("EventSource")
    return source in ASYNC_SOURCES


def _runtime_env(function: LambdaFunction, code: FunctionCode) -> dict[str, str]:
    return {
        "AWS_LAMBDA_FUNCTION_NAME": function.function_name,
        "AWS_REGION": function.region,
        "AWS_DEFAULT_REGION": function.region,
        **code.environment,
    }


def _failure_record(
    function: LambdaFunction, event: dict[str, Any], payload: str, attempts: int
) -> str:
    """The record Lambda sends to an on-failure destination after the last retry."""
    return json.dumps(
        {
            "version": "1.0",
            "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime()),
            "requestContext": {
                "requestId": str(uuid.uuid4()),
                "functionArn": f"{function.function_arn}:$LATEST",
                "condition": "RetriesExhausted",
                "approximateInvokeCount": attempts,
            },
            "requestPayload": event,
            "responseContext": {
                "statusCode": 200,
                "executedVersion": "$LATEST",
                "functionError": "Unhandled",
            },
            "responsePayload": json.loads(payload),
        }
    )


class _Context:
    """The parts of the Lambda context object that Powertools reads."""

    def __init__(self, function: LambdaFunction) -> None:
        self.function_name = function.function_name
        self.function_version = "$LATEST"
        self.invoked_function_arn = function.function_arn
        self.memory_limit_in_mb = int(function.memory_size)
        self.aws_request_id = str(uuid.uuid4())
        self.log_group_name = f"/aws/lambda/{function.function_name}"
        self.log_stream_name = "local"
        self._deadline = time.monotonic() + float(function.timeout)

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


def _s3_event_with_version(
    event_name: str, bucket: Any, key: Any, notification_id: str
) -> dict[str, Any]:
    """moto's S3 event plus the ``versionId`` S3 sends: the version this very write made
    (the key object is the one just stored, so later writes cannot be mistaken for it)."""
    event: dict[str, Any] = _moto_s3_event(event_name, bucket, key, notification_id)
    if key.version_id != "null":  # a bucket without versioning: S3 names no version
        for record in event["Records"]:
            record["s3"]["object"]["versionId"] = key.version_id
    return event


_moto_s3_event = s3_notifications._get_s3_event


class _ScaledTime:
    """Stands in for the ``time`` module inside moto's retrier: sleeps are shortened."""

    def __init__(self, scale: float) -> None:
        self._scale = scale

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds * self._scale)

    def __getattr__(self, name: str) -> Any:
        return getattr(time, name)


def _is_lambda(target: dict[str, Any]) -> bool:
    return str(target["Arn"]).startswith("arn:aws:lambda:")


def _one_at_a_time(method: Callable[..., Any], lock: threading.RLock) -> Callable[..., Any]:
    def serialised(*args: Any, **kwargs: Any) -> Any:
        with lock:
            return method(*args, **kwargs)

    return serialised


@contextmanager
def installed(seam: LambdaSeam, time_scale: float) -> Iterator[LambdaSeam]:
    """Route moto's Lambda calls to ``seam``, EventBridge rules' Lambda targets included; run
    Wait states, timeouts read from the state (the wait for a job's end event) and retry
    delays ``time_scale`` x faster. Functions running at once share boto3's default session
    and moto's backends, so client creation and DynamoDB's conditional writes take turns."""

    def invoke_in_process(function: LambdaFunction, event: Any = None) -> tuple[str, bool, str]:
        return seam.invoke(function, event if isinstance(event, dict) else {})

    def scaled_wait(self: WaitFunction, env: Any, wait_seconds: int) -> None:
        if wait_seconds > 0:
            env.program_state_event.wait(wait_seconds * time_scale)

    def scaled_timeout(self: TimeoutSecondsPath, env: Any) -> float:
        seconds: int = unscaled_timeout(self, env)
        return seconds * time_scale

    def scheduled_unless_timed_out(self: StateTaskService, env: Any, **kwargs: Any) -> None:
        # moto runs a task with a timeout in a thread of its own and, when the timeout fires,
        # ends that thread's frame but not the thread: a task it had not yet scheduled would
        # still record a TaskScheduled event, reading its timeout from a stack the ended frame
        # no longer fills (GetExecutionHistory then fails). On AWS a timed-out task is over.
        with env._state_mutex:
            if not env.is_running():
                raise EvalTimeoutError()
            unscaled_scheduled(self, env=env, **kwargs)

    def send_to_targets(rule: Rule, event: EventMessageType, transform_input: bool = True) -> None:
        # moto's EventBridge delivers to queues, logs and buses, not to Lambda: EventBridge
        # invokes a Lambda target asynchronously, and so does this.
        if rule.event_pattern.matches_event(event):
            for target in filter(_is_lambda, rule.targets):
                arn = parse_arn(target["Arn"])
                function = lambda_backends[arn.account][arn.region].get_function(target["Arn"])
                seam.invoke_async(function, dict(copy.deepcopy(event)))
        others = [target for target in rule.targets if not _is_lambda(target)]
        if others:
            rest = copy.copy(rule)
            rest.targets = others
            unscaled_send(rest, event, transform_input)

    unscaled_timeout = TimeoutSecondsPath._eval_seconds
    unscaled_scheduled = StateTaskService._before_eval_execution
    unscaled_send = Rule.send_to_targets
    client_creation = threading.RLock()
    table_writes = threading.RLock()
    with ExitStack() as patches:
        for target, name, replacement in (
            (LambdaFunction, "_invoke_lambda", invoke_in_process),
            (s3_notifications, "_get_s3_event", _s3_event_with_version),
            (WaitFunction, "_wait_interval", scaled_wait),
            (TimeoutSecondsPath, "_eval_seconds", scaled_timeout),
            (StateTaskService, "_before_eval_execution", scheduled_unless_timed_out),
            (retrier_decl, "time", _ScaledTime(time_scale)),
            (Rule, "send_to_targets", send_to_targets),
            (
                BotocoreSession,
                "create_client",
                _one_at_a_time(BotocoreSession.create_client, client_creation),
            ),
            *(
                (
                    DynamoDBBackend,
                    write,
                    _one_at_a_time(getattr(DynamoDBBackend, write), table_writes),
                )
                for write in CONDITIONAL_WRITES
            ),
        ):
            patches.enter_context(mock.patch.object(target, name, replacement))
        yield seam
