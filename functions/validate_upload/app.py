"""S3 upload of a training file -> validation report, dataset record, one workflow execution."""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote_plus

from aws_lambda_powertools.utilities.data_classes import S3Event, event_source
from aws_lambda_powertools.utilities.typing import LambdaContext

from sft_pipeline import runtime
from sft_pipeline.jobs import UploadRef
from sft_pipeline.observability import Metric, count, logger
from sft_pipeline.pipeline.validate_upload import ValidateUploadPorts, validate_upload
from sft_pipeline.settings import ValidateUploadSettings, load_settings

# At cold start: a variable the template does not set fails here, by its name.
load_settings(ValidateUploadSettings)


@logger.inject_lambda_context(clear_state=True)
@event_source(data_class=S3Event)
def lambda_handler(event: S3Event, context: LambdaContext) -> dict[str, Any]:
    if event.raw_event.get("Event") == "s3:TestEvent":
        return {"results": []}
    ports = ValidateUploadPorts(
        runtime.training_bucket(), runtime.registry(), runtime.workflow(), runtime.notifier()
    )
    results = []
    for record in event.records:
        upload = UploadRef(
            bucket=record.s3.bucket.name,
            # S3 URL-encodes keys in events (a space arrives as "+").
            key=unquote_plus(record.s3.get_object.key),
            version_id=record.s3.get_object.version_id,
        )
        logger.set_correlation_id(upload.dataset_id)
        logger.append_keys(dataset_id=upload.dataset_id, key=upload.key)
        result = validate_upload(upload, ports, load_settings(ValidateUploadSettings))
        count(Metric.UPLOADS, result.status)
        logger.info("Upload validated", extra={"status": result.status, "summary": result.summary})
        results.append(
            {"dataset_id": result.dataset_id, "status": result.status, "report": result.report_uri}
        )
    return {"results": results}
