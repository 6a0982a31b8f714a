"""The DynamoDB registry: every kind of record's adapter over the one registry table.

Each kind has its own adapter in ``sft_pipeline.adapters.dynamodb`` (the table's layout is
described there); this class puts them together for the composition root and the tools that
use them all (the local stack, ``sft keys``). The steps, the API and the CLI take only the
Protocol of what they call, so their tests pass in-memory fakes.
"""

from __future__ import annotations

from sft_pipeline.adapters.dynamodb.aliases import AliasTable
from sft_pipeline.adapters.dynamodb.api_keys import ApiKeyTable
from sft_pipeline.adapters.dynamodb.datasets import DatasetTable
from sft_pipeline.adapters.dynamodb.job_events import JobEventTable
from sft_pipeline.adapters.dynamodb.jobs import JobTable
from sft_pipeline.adapters.dynamodb.models import ModelTable


class Registry(DatasetTable, JobTable, ModelTable, AliasTable, ApiKeyTable, JobEventTable):
    """All the registry's records in one table: ``Registry(boto3_table)``."""
