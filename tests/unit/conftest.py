"""Fixtures shared by the unit tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from moto import mock_aws

from sft_pipeline.adapters.registry import Registry
from tests.fakes import InMemoryRegistry, registry_table


@pytest.fixture(params=["dynamodb", "in_memory"])
def registry(request: pytest.FixtureRequest) -> Iterator[Registry | InMemoryRegistry]:
    """Each test runs on the DynamoDB registry (a moto table) and on the in-memory fake, which
    must behave alike. A module that wants one registry of its own defines this fixture."""
    if request.param == "in_memory":
        yield InMemoryRegistry()
        return
    with mock_aws():
        yield Registry(registry_table())
