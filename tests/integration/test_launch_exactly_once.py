"""The launch step against the Bedrock stand-in: a create whose answer is lost makes one job."""

from __future__ import annotations

import datetime as dt
from typing import Any

from botocore.exceptions import ReadTimeoutError

from sft_local.bedrock_standin import BedrockStandIn
from sft_pipeline.jobs import (
    Estimate,
    JobSettings,
    PollPolicy,
    UploadRef,
    WorkflowRequest,
    WorkflowState,
)
from sft_pipeline.pipeline.steps import launch
from tests.conftest import as_lines, good_examples
from tests.fakes import FakeBucket, make_registry
from tests.integration.test_bedrock_provider import (  # noqa: F401 - the fixture is used by name
    BUCKET,
    NOVA_MICRO,
    provider_for,
    standin,
)

UPLOAD = UploadRef(bucket=BUCKET, key="training/support.jsonl", version_id="v1")
NOW = dt.datetime(2026, 11, 30, tzinfo=dt.UTC)


class AnswerLost:
    """The Bedrock control client, except that the create's answer never arrives."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self.creates = 0

    def create_model_customization_job(self, **arguments: Any) -> Any:
        self.creates += 1
        self._client.create_model_customization_job(**arguments)
        raise ReadTimeoutError(endpoint_url="https://bedrock.us-east-1.amazonaws.com")

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)


def test_a_create_whose_answer_is_lost_adopts_the_job_bedrock_made(
    standin: BedrockStandIn,  # noqa: F811
) -> None:
    provider = provider_for(standin)
    control = AnswerLost(provider._control)
    provider._control = control
    request = WorkflowRequest(
        dataset_id=UPLOAD.dataset_id,
        upload=UPLOAD,
        training_key=UPLOAD.key,
        examples=12,
        settings=JobSettings(provider="bedrock", base_model=NOVA_MICRO, suffix="support"),
        poll=PollPolicy(),
        estimate=Estimate(billed_tokens=1000, cost_usd=0.01),
        submitted_at=0,
    )
    files = FakeBucket({(BUCKET, UPLOAD.key): as_lines(good_examples(12))})
    registry = make_registry()
    slept: list[float] = []
    state = WorkflowState(request=request)
    progress = launch(state, provider, files, registry, NOW, sleep=slept.append)
    assert control.creates == 1 and len(standin.jobs) == 1 and slept == [1.0]
    [job] = standin.jobs.values()
    assert progress.job_id == job.arn
    record = registry.get_job(UPLOAD.dataset_id)
    assert record is not None and record.job_id == job.arn
