"""S3 upload of a generation spec -> the spec checked and priced, one generation run started."""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote_plus

from aws_lambda_powertools.utilities.data_classes import S3Event, event_source
from aws_lambda_powertools.utilities.typing import LambdaContext

from sft_pipeline import runtime
from sft_pipeline.jobs import UploadRef
from sft_pipeline.observability import logger
from sft_pipeline.pipeline.generation_steps import GenerationPorts, start_generation
from sft_pipeline.settings import StartGenerationSettings, load_settings

# At cold start: a variable the template does not set fails here, by its name.
load_settings(StartGenerationSettings)


@logger.inject_lambda_context(clear_state=True)
@event_source(data_class=S3Event)
def lambda_handler(event: S3Event, context: LambdaContext) -> dict[str, Any]:
    if event.raw_event.get("Event") == "s3:TestEvent":
        return {"results": []}
    ports = GenerationPorts(runtime.training_bucket(), runtime.registry(), runtime.notifier())
    results = []
    for record in event.records:
        spec = UploadRef(
            bucket=record.s3.bucket.name,
            # S3 URL-encodes keys in events (a space arrives as "+").
            key=unquote_plus(record.s3.get_object.key),
            version_id=record.s3.get_object.version_id,
        )
        logger.set_correlation_id(spec.dataset_id)
        logger.append_keys(run_id=spec.dataset_id, key=spec.key)
        result = start_generation(
            spec, ports, runtime.generation_workflow(), load_settings(StartGenerationSettings)
        )
        logger.info("Generation spec received", extra={"status": result.status})
        results.append({"run_id": result.run_id, "status": result.status})
    return {"results": results}
