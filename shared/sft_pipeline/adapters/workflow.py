"""Starting the fine-tuning workflow (Step Functions), exactly once per upload."""

from __future__ import annotations

from typing import Any

from sft_pipeline.jobs import WorkflowRequest


class Workflow:
    def __init__(self, client: Any, state_machine_arn: str) -> None:
        self._client = client
        self._state_machine_arn = state_machine_arn

    def start(self, execution_name: str, request: WorkflowRequest) -> tuple[str, bool]:
        """Start the execution named after the upload. Returns (execution ARN, started now?).

        A repeated S3 event asks for the same name: Step Functions refuses the
        second start, so one upload gives one execution.
        """
        try:
            response = self._client.start_execution(
                stateMachineArn=self._state_machine_arn,
                name=execution_name,
                input=f'{{"request": {request.model_dump_json()}}}',
            )
        except self._client.exceptions.ExecutionAlreadyExists:
            arn = self._state_machine_arn.replace(":stateMachine:", ":execution:")
            return f"{arn}:{execution_name}", False
        return str(response["executionArn"]), True
