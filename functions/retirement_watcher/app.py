"""EventBridge Scheduler, daily -> retirement warnings about models in use (each sent once)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from sft_pipeline import runtime
from sft_pipeline.observability import logger
from sft_pipeline.pipeline.retirement import WatchEvent, watch_retirements
from sft_pipeline.settings import RetirementWatcherSettings, load_settings

# At cold start: a variable the template does not set fails here, by its name.
load_settings(RetirementWatcherSettings)


@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    today = WatchEvent.model_validate(event or {}).today or dt.datetime.now(dt.UTC).date()
    result = watch_retirements(
        runtime.registry(),
        runtime.notifier(),
        today,
        stack_name=load_settings(RetirementWatcherSettings).stack_name,
    )
    logger.info(
        "Retirement warnings checked",
        extra={"today": today.isoformat(), "models": result.models, "sent": result.sent},
    )
    return {"today": today.isoformat(), "models": result.models, "sent": result.sent}
