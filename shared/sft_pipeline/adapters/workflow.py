"""The workflows (Step Functions): fine-tuning started exactly once per upload and woken from
its wait for a job's end; generation started exactly once per spec version."""

from __future__ import annotations

from typing import Any

from sft_pipeline.generation.run import GenerationState
from sft_pipeline.job_events import WAKE_UP_OUTPUT
from sft_pipeline.jobs import WorkflowRequest

# What SendTaskSuccess answers for a task that no longer waits (timed out, closed, stopped).
WAIT_OVER_ERRORS = frozenset({"TaskTimedOut", "InvalidToken", "TaskDoesNotExist"})


class Workflow:
    def __init__(self, client: Any, state_machine_arn: str) -> None:
        self._client = client
        self._state_machine_arn = state_machine_arn

    def start(self, execution_name: str, request: WorkflowRequest) -> tuple[str, bool]:
        """Start the execution named after the upload. Returns (execution ARN, started now?).

        A repeated S3 event asks for the same name: Step Functions refuses the
        second start, so one upload gives one execution.
        """
        return self._start(execution_name, f'{{"request": {request.model_dump_json()}}}')

    def start_generation(self, execution_name: str, state: GenerationState) -> tuple[str, bool]:
        """Start the generation run named after the spec's version, once, as ``start`` does."""
        return self._start(execution_name, state.model_dump_json())

    def _start(self, execution_name: str, payload: str) -> tuple[str, bool]:
        try:
            response = self._client.start_execution(
                stateMachineArn=self._state_machine_arn, name=execution_name, input=payload
            )
        except self._client.exceptions.ExecutionAlreadyExists:
            arn = self._state_machine_arn.replace(":stateMachine:", ":execution:")
            return f"{arn}:{execution_name}", False
        return str(response["executionArn"]), True

    def resume(self, task_token: str) -> bool:
        """End the wait that holds ``task_token``; False if that wait is already over."""
        try:
            self._client.send_task_success(taskToken=task_token, output=WAKE_UP_OUTPUT)
        except self._client.exceptions.ClientError as error:
            if error.response.get("Error", {}).get("Code") in WAIT_OVER_ERRORS:
                return False
            raise
        return True
