"""API control paths that need a stack of their own: per-key throttling, cancelling a job,
the keys `sft local api` prints."""

from __future__ import annotations

import io
import re
import threading
import time
import urllib.error
import urllib.request

from sft_local.api_server import LocalApiServer
from sft_local.openai_emulator import JobTimeline
from sft_local.serve import serve
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


def test_sft_local_api_prints_a_key_of_each_scope() -> None:
    printed, stop = io.StringIO(), threading.Event()
    failures: list[Exception] = []

    def run() -> None:
        try:
            serve(0, False, printed, stop)
        except Exception as failure:  # shown by the assertion below
            failures.append(failure)
            raise

    serving = threading.Thread(target=run)
    serving.start()
    try:
        while "Ctrl-C" not in printed.getvalue() and serving.is_alive():
            time.sleep(0.05)
        text = printed.getvalue()
        base_url = re.search(r"SFT Pipeline API on (\S+)", text)
        inference = re.search(r"inference key \(.*\): *(sk-sft-\S+)", text)
        admin = re.search(r"admin key \(.*\): *(sk-sft-\S+)", text)
        assert base_url and inference and admin, (text, failures)
        root = base_url[1].removesuffix("/v1")
        for key, jobs_status in ((inference[1], 403), (admin[1], 200)):
            assert _get(root + "/v1/models", key) == 200
            assert _get(root + "/jobs", key) == jobs_status
    finally:
        stop.set()
        serving.join(timeout=30)


def _get(url: str, key: str) -> int:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {key}"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as refused:
        return refused.code
