"""An Amazon Bedrock stand-in: model customization jobs, custom model deployments and Converse.

It serves Bedrock's REST/JSON protocols (services ``bedrock`` and
``bedrock-runtime``) on 127.0.0.1 for tests and the local stack; unmodified
boto3 clients talk to it through ``endpoint_url=standin.endpoint_url``, also
inside moto's ``mock_aws``.

A completed job's metrics files go under its ``outputDataConfig.s3Uri`` (details
in ``sft_local.bedrock_standin.training``)::

    model-customization-job-<job id>/training_artifacts/step_wise_training_metrics.csv
    model-customization-job-<job id>/validation_artifacts/post_fine_tuning_validation/validation_metrics.csv
"""

from sft_local.bedrock_standin.app import RecordedRequest
from sft_local.bedrock_standin.faults import BedrockFaults
from sft_local.bedrock_standin.server import BedrockStandIn
from sft_local.bedrock_standin.state import (
    BedrockTimeline,
    DeploymentView,
    JobView,
    ReadObject,
    WriteObject,
)

__all__ = [
    "BedrockFaults",
    "BedrockStandIn",
    "BedrockTimeline",
    "DeploymentView",
    "JobView",
    "ReadObject",
    "RecordedRequest",
    "WriteObject",
]
