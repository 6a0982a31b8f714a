"""An OpenAI API emulator: files, uploads, fine-tuning jobs, models and chat on 127.0.0.1.

It stands in for api.openai.com in tests and the local demo; the official SDK
talks to it through ``OpenAI(base_url=emulator.base_url, api_key="test")``.
"""

from sft_local.openai_emulator.app import RecordedRequest
from sft_local.openai_emulator.catalog import WIND_DOWN_SHUTDOWN_DATE
from sft_local.openai_emulator.faults import FaultInjector
from sft_local.openai_emulator.server import OpenAIEmulator, main
from sft_local.openai_emulator.state import JobFailure, JobTimeline

__all__ = [
    "WIND_DOWN_SHUTDOWN_DATE",
    "FaultInjector",
    "JobFailure",
    "JobTimeline",
    "OpenAIEmulator",
    "RecordedRequest",
    "main",
]
