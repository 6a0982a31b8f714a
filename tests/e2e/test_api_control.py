"""API control paths that need a stack of their own: per-key throttling, cancelling a job."""

from __future__ import annotations

from sft_local.api_server import LocalApiServer
from sft_local.openai_emulator import JobTimeline
from sft_local.stack import LocalStack
from sft_pipeline.adapters.registry import Registry
from tests.e2e.api_client import Api, new_key
from tests.e2e.conftest import SUPPORT_SET


def test_each_key_is_throttled_on_its_own() -> None:
    with (
        LocalStack(parameters={"ApiRateLimit": "1", "ApiBurstLimit": "3"}) as stack,
        LocalApiServer(stack) as server,
    ):
        registry = Registry(stack.table())
        greedy, patient = (
            new_key(registry, "greedy", "admin"),
            new_key(registry, "patient", "admin"),
        )
        api = Api(stack, server, patient, "")
        statuses = [api.call("GET", "/jobs", key=greedy)[0] for _ in range(6)]
        assert statuses[:3] == [200, 200, 200] and 429 in statuses[3:]
        status, headers, body = api.call("GET", "/jobs", key=greedy)
        assert (status, headers.get("Retry-After"), body["error"]["code"]) == (
            429,
            "1",
            "rate_limit_exceeded",
        )
        assert api.call("GET", "/jobs")[0] == 200  # another key has its own allowance


def test_cancel_a_running_job() -> None:
    slow = JobTimeline(validating=0.2, queued=0.2, running=600.0)
    with LocalStack(timeline=slow) as stack, LocalApiServer(stack) as server:
        key = new_key(Registry(stack.table()), "ops", "admin")
        api = Api(stack, server, key, "")
        upload = stack.upload(SUPPORT_SET, "training/support.jsonl")
        stack.settle()
        job = None
        while job is None:
            job = Registry(stack.table()).get_job(upload.dataset_id)
        status, _, body = api.call("POST", f"/jobs/{job.job_id}/cancel")
        assert (status, body["status"]) == (200, "cancelled")
        assert stack.wait_for_execution(upload)["status"] == "FAILED"
        stack.settle()
        [email] = stack.emails()
        assert "cancelled" in email.lower()
