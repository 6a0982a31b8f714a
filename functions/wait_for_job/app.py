"""Workflow task (waitForTaskToken): park the run's wait for its job's end, so that the
job's end event can resume it before the poll interval is over; if that event came while
the run was polling (noted in the registry), end the wait at once."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from sft_pipeline import runtime
from sft_pipeline.observability import logger
from sft_pipeline.pipeline.job_events import ParkRequest, park
from sft_pipeline.settings import WaitForJobSettings, load_settings

# At cold start: a variable the template does not set fails here, by its name.
load_settings(WaitForJobSettings)


@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    request = ParkRequest.model_validate(event)
    logger.set_correlation_id(request.dataset_id)
    logger.append_keys(dataset_id=request.dataset_id)
    parked = park(request, runtime.registry(), runtime.workflow(), datetime.now(UTC))
    # The task token resumes the run: it is never logged.
    if parked.ended_at_once is None:
        logger.info(
            "Waiting for the job's end event or the interval",
            extra={"job_id": request.job_id, "wait_seconds": request.wait_seconds},
        )
    else:
        logger.info(
            "The job's end came before the wait: ended at once",
            extra={"job_id": request.job_id, "outcome": parked.ended_at_once},
        )
    # Step Functions ignores what a waitForTaskToken task's function returns.
    return {"job_id": parked.token.job_id, "expires_at": parked.token.expires_at}
