"""The local stack's Lambda seam: invocations of one function overlap as Lambda's containers
do, different functions take turns in the one process, and a task moto timed out leaves an
execution history that can still be read."""

from __future__ import annotations

import io
import json
import os
import time
import zipfile
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import boto3
import pytest
from moto import mock_aws
from moto.awslambda.models import LambdaFunction
from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service import (
    StateTaskService,
)

from sft_local import lambda_seam
from sft_local.lambda_seam import FunctionCode, LambdaSeam

REGION = "us-east-1"

# Every invocation waits for the others at a barrier: it passes only if they overlap.
MEETING_HANDLER = """
import os
import threading
import time

meeting = threading.Barrier(int(os.environ["PARTIES"]), timeout=10)


def handler(event, context):
    started = time.monotonic()
    meeting.wait()
    return {"started": started, "ended": time.monotonic(), "colour": os.environ["COLOUR"]}
"""

# Holds the process for a while and says which settings it saw.
SLOW_HANDLER = """
import os
import time


def handler(event, context):
    started = time.monotonic()
    time.sleep(event["seconds"])
    return {
        "started": started,
        "ended": time.monotonic(),
        "colour": os.environ.get("COLOUR"),
        "parties": os.environ.get("PARTIES"),
    }
"""


def function_code(tmp_path: Path, name: str, source: str, **environment: str) -> FunctionCode:
    folder = tmp_path / name
    folder.mkdir()
    (folder / "app.py").write_text(source)
    return FunctionCode(path=folder, handler="app.handler", environment=environment)


def function(name: str) -> LambdaFunction:
    """The attributes of moto's function that the seam reads."""
    return cast(
        LambdaFunction,
        SimpleNamespace(
            function_name=name,
            region=REGION,
            function_arn=f"arn:aws:lambda:{REGION}:123456789012:function:{name}",
            memory_size=128,
            timeout=30,
        ),
    )


def invoke(seam: LambdaSeam, name: str, event: dict[str, Any]) -> dict[str, Any]:
    payload, errored, _ = seam.invoke(function(name), event)
    assert not errored, payload
    result: dict[str, Any] = json.loads(payload)
    return result


def unsent(queue_url: str, body: str) -> None:
    raise AssertionError(f"nothing should reach {queue_url}: {body}")


def test_invocations_of_one_function_run_at_the_same_time(tmp_path: Path) -> None:
    seam = LambdaSeam(
        functions={
            "Meet": function_code(tmp_path, "meet", MEETING_HANDLER, PARTIES="4", COLOUR="red")
        },
        send_to_queue=unsent,
    )
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda _: invoke(seam, "Meet", {}), range(4)))
    assert [result["colour"] for result in results] == ["red"] * 4
    assert max(result["started"] for result in results) < min(result["ended"] for result in results)


# Long enough for a submitted invocation to reach the gate on a busy machine.
HEAD_START = 0.15


def blue_and_green(tmp_path: Path) -> LambdaSeam:
    return LambdaSeam(
        functions={
            "Blue": function_code(tmp_path, "blue", SLOW_HANDLER, COLOUR="blue"),
            "Green": function_code(tmp_path, "green", SLOW_HANDLER, COLOUR="green"),
        },
        send_to_queue=unsent,
    )


def blue_running(pool: ThreadPoolExecutor, seam: LambdaSeam) -> Future[dict[str, Any]]:
    """Blue, inside the gate for a while by the time this returns."""
    blue = pool.submit(invoke, seam, "Blue", {"seconds": 4 * HEAD_START})
    time.sleep(HEAD_START)
    return blue


def test_different_functions_take_turns_and_see_only_their_own_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("COLOUR", raising=False)
    monkeypatch.setenv("PARTIES", "outside")
    seam = LambdaSeam(
        functions={
            "Blue": function_code(tmp_path, "blue", SLOW_HANDLER, COLOUR="blue"),
            "Green": function_code(tmp_path, "green", SLOW_HANDLER, COLOUR="green", PARTIES="1"),
        },
        send_to_queue=unsent,
    )
    with ThreadPoolExecutor(max_workers=2) as pool:
        blue = blue_running(pool, seam)
        green = pool.submit(invoke, seam, "Green", {"seconds": 0.0})
        first, second = blue.result(), green.result()
    assert second["started"] >= first["ended"]
    assert (first["colour"], first["parties"]) == ("blue", "outside")
    assert (second["colour"], second["parties"]) == ("green", "1")
    assert "COLOUR" not in os.environ
    assert os.environ["PARTIES"] == "outside"


def test_a_function_waiting_its_turn_is_not_starved_by_newcomers(tmp_path: Path) -> None:
    seam = blue_and_green(tmp_path)
    with ThreadPoolExecutor(max_workers=3) as pool:
        first_blue = blue_running(pool, seam)
        green = pool.submit(invoke, seam, "Green", {"seconds": 0.0})
        time.sleep(HEAD_START)
        late_blue = pool.submit(invoke, seam, "Blue", {"seconds": 0.0})
        assert green.result()["started"] < late_blue.result()["started"]
        assert green.result()["started"] >= first_blue.result()["ended"]


def test_invocations_waiting_for_the_same_function_enter_together(tmp_path: Path) -> None:
    seam = blue_and_green(tmp_path)
    with ThreadPoolExecutor(max_workers=3) as pool:
        blue = blue_running(pool, seam)
        greens = [pool.submit(invoke, seam, "Green", {"seconds": 0.3}) for _ in range(2)]
        first, second = (green.result() for green in greens)
    assert min(first["started"], second["started"]) >= blue.result()["ended"]
    assert max(first["started"], second["started"]) < min(first["ended"], second["ended"])


def test_a_handler_invoking_another_function_synchronously_is_refused_by_name(
    tmp_path: Path,
) -> None:
    seam = LambdaSeam(
        functions={"Green": function_code(tmp_path, "green", SLOW_HANDLER, COLOUR="green")},
        send_to_queue=unsent,
    )
    calls_green = """
def handler(event, context):
    return SEAM.invoke(GREEN, {"seconds": 0})
"""
    seam.functions["Caller"] = function_code(tmp_path, "caller", calls_green)
    module = seam._load("Caller", seam.functions["Caller"]).__globals__
    module.update(SEAM=seam, GREEN=function("Green"))
    payload, errored, _ = seam.invoke(function("Caller"), {})
    assert errored
    assert json.loads(payload)["errorMessage"] == (
        "Caller invoked Green synchronously, which the local stack's Lambda seam cannot run"
    )


# The task's timeout is read from the input, as the workflow's wait for a job's end event is.
TIMED_OUT_TASK = {
    "StartAt": "Wait",
    "States": {
        "Wait": {
            "Type": "Task",
            "Resource": "arn:aws:states:::lambda:invoke.waitForTaskToken",
            "Parameters": {
                "FunctionName": "Park",
                "Payload": {"task_token.$": "$$.Task.Token"},
            },
            "TimeoutSecondsPath": "$.wait_seconds",
            "Catch": [{"ErrorEquals": ["States.Timeout"], "Next": "TimedOut"}],
            "End": True,
        },
        "TimedOut": {"Type": "Pass", "End": True},
    },
}

PARK_HANDLER = """
def handler(event, context):
    return {"parked": event["task_token"]}
"""


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": REGION,
    }.items():
        monkeypatch.setenv(name, value)
    with mock_aws(config={"stepfunctions": {"execute_state_machine": True}}):
        yield


def test_a_task_timed_out_before_it_was_scheduled_leaves_a_readable_history(
    aws: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seam = LambdaSeam(
        functions={"Park": function_code(tmp_path, "park", PARK_HANDLER)}, send_to_queue=unsent
    )
    role = boto3.client("iam").create_role(RoleName="runner", AssumeRolePolicyDocument="{}")[
        "Role"
    ]["Arn"]
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as bundle:
        bundle.writestr("app.py", PARK_HANDLER)
    boto3.client("lambda").create_function(
        FunctionName="Park",
        Runtime="python3.12",
        Role=role,
        Handler="app.handler",
        Code={"ZipFile": archive.getvalue()},
    )
    states = boto3.client("stepfunctions")
    machine = states.create_state_machine(
        name="timed-out", definition=json.dumps(TIMED_OUT_TASK), roleArn=role
    )["stateMachineArn"]
    # A busy machine: moto's task thread is slow to start, and the timeout (one second, scaled
    # to 10 ms) fires before it schedules the task.
    evaluate_parameters = StateTaskService._eval_parameters

    def slowly(self: StateTaskService, env: Any) -> Any:
        time.sleep(0.1)
        return evaluate_parameters(self, env)

    monkeypatch.setattr(StateTaskService, "_eval_parameters", slowly)
    with lambda_seam.installed(seam, time_scale=0.01):
        histories = []
        for attempt in range(3):
            execution = states.start_execution(
                stateMachineArn=machine,
                name=f"attempt-{attempt}",
                input=json.dumps({"wait_seconds": 1}),
            )["executionArn"]
            deadline = time.monotonic() + 10
            while states.describe_execution(executionArn=execution)["status"] == "RUNNING":
                assert time.monotonic() < deadline, "the execution never ended"
                time.sleep(0.02)
            time.sleep(0.2)  # the task thread moto leaves behind has had time to go on
            histories.append(states.get_execution_history(executionArn=execution)["events"])
    for events in histories:
        kinds = [event["type"] for event in events]
        assert "TaskTimedOut" in kinds
        assert "TaskScheduled" not in kinds
