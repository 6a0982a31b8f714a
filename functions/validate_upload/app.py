"""S3 upload of a training file -> validation report, dataset record, one workflow execution;
and the same for a retrain order (retrain/<dataset id>.json): the lineage's exact version."""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote_plus

from aws_lambda_powertools.utilities.data_classes import S3Event, event_source
from aws_lambda_powertools.utilities.typing import LambdaContext

from sft_pipeline import runtime
from sft_pipeline.jobs import UploadRef
from sft_pipeline.observability import Metric, count, logger
from sft_pipeline.pipeline.validate_upload import (
    ValidateUploadPorts,
    validate_retrain,
    validate_upload,
)
from sft_pipeline.retraining import RetrainOrder, RetrainRefused
from sft_pipeline.settings import ValidateUploadSettings, load_settings

# At cold start: a variable the template does not set fails here, by its name.
load_settings(ValidateUploadSettings)
# A retrain order is a few hundred bytes; anything far larger is not one.
MAX_ORDER_BYTES = 64 * 1024


@logger.inject_lambda_context(clear_state=True)
@event_source(data_class=S3Event)
def lambda_handler(event: S3Event, context: LambdaContext) -> dict[str, Any]:
    if event.raw_event.get("Event") == "s3:TestEvent":
        return {"results": []}
    ports = ValidateUploadPorts(
        runtime.training_bucket(), runtime.registry(), runtime.workflow(), runtime.notifier()
    )
    settings = load_settings(ValidateUploadSettings)
    results = []
    for record in event.records:
        upload = UploadRef(
            bucket=record.s3.bucket.name,
            # S3 URL-encodes keys in events (a space arrives as "+").
            key=unquote_plus(record.s3.get_object.key),
            version_id=record.s3.get_object.version_id,
        )
        if upload.key.startswith(settings.retrain_prefix):
            results.append(_retrain(upload, ports))
            continue
        logger.set_correlation_id(upload.dataset_id)
        logger.append_keys(dataset_id=upload.dataset_id, key=upload.key)
        result = validate_upload(upload, ports, settings)
        count(Metric.UPLOADS, result.status)
        logger.info("Upload validated", extra={"status": result.status, "summary": result.summary})
        results.append(
            {"dataset_id": result.dataset_id, "status": result.status, "report": result.report_uri}
        )
    return {"results": results}


def _retrain(order_object: UploadRef, ports: ValidateUploadPorts) -> dict[str, Any]:
    """A retrain order: run it, or log why the registry no longer allows it (the API and
    the CLI refused what they could see; a model deleted since is all that is left)."""
    body = ports.bucket.read(order_object.bucket, order_object.key, MAX_ORDER_BYTES)
    order = RetrainOrder.model_validate_json(body)
    logger.set_correlation_id(order.dataset_id)
    logger.append_keys(dataset_id=order.dataset_id, retrained_from=order.model_id)
    try:
        result = validate_retrain(
            order, ports, runtime.registry(), load_settings(ValidateUploadSettings)
        )
    except RetrainRefused as refused:
        logger.warning("Retrain refused", extra={"problems": refused.problems})
        return {"dataset_id": order.dataset_id, "status": "refused", "report": None}
    count(Metric.UPLOADS, result.status)
    logger.info("Retrain validated", extra={"status": result.status, "summary": result.summary})
    return {"dataset_id": result.dataset_id, "status": result.status, "report": result.report_uri}
