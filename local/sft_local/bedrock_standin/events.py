"""The EventBridge event Amazon Bedrock sends when a model customization job changes state,
as the stand-in sends it for each job that ends: a PutEvents entry, ``detail`` holding the
job's description with its status as ``jobStatus``."""

from __future__ import annotations

import json
from typing import Any

SOURCE = "aws.bedrock"
DETAIL_TYPE = "Model Customization Job State Change"
# What Bedrock's event carries of the job (its description's names), besides jobStatus.
DETAIL_FIELDS = (
    "jobName",
    "jobArn",
    "outputModelName",
    "outputModelArn",
    "roleArn",
    "failureMessage",
    "creationTime",
    "lastModifiedTime",
    "endTime",
    "baseModelArn",
    "hyperParameters",
    "trainingDataConfig",
    "validationDataConfig",
    "outputDataConfig",
)


def job_state_change(description: dict[str, Any]) -> dict[str, Any]:
    """The PutEvents entry for a job, from its GetModelCustomizationJob answer (JSON names)."""
    detail = {name: description[name] for name in DETAIL_FIELDS if name in description}
    detail["jobStatus"] = description["status"]
    return {
        "Source": SOURCE,
        "DetailType": DETAIL_TYPE,
        "Resources": [description["jobArn"]],
        "Detail": json.dumps(detail),
    }
