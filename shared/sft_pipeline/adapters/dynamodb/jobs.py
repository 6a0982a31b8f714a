"""Jobs in the registry table: one per dataset, found by the dataset or by the provider's id."""

from __future__ import annotations

from datetime import UTC, datetime

from sft_pipeline.adapters.dynamodb.table import RegistryTable, from_item, listed
from sft_pipeline.records import JobRecord


def _job_key(dataset_id: str) -> dict[str, str]:
    return {"PK": f"DATASET#{dataset_id}", "SK": "JOB"}


def _job_id_key(job_id: str) -> dict[str, str]:
    return {"PK": f"JOBID#{job_id}", "SK": "JOB"}


class JobTable(RegistryTable):
    def put_job(self, record: JobRecord) -> None:
        listed_by = (record.started_at or datetime.now(UTC)).isoformat()
        self._table.put_item(Item=listed(_job_key(record.dataset_id), "job", listed_by, record))
        if record.job_id is None:
            return
        # The API knows a job by the provider's id only; no GSI1 keys keep it out of list_jobs.
        self._table.put_item(
            Item={**_job_id_key(record.job_id), "kind": "job_id", "dataset_id": record.dataset_id}
        )

    def get_job(self, dataset_id: str) -> JobRecord | None:
        item = self._table.get_item(Key=_job_key(dataset_id)).get("Item")
        return JobRecord.model_validate(from_item(item)) if item else None

    def get_job_by_id(self, job_id: str) -> JobRecord | None:
        pointer = self._table.get_item(Key=_job_id_key(job_id)).get("Item")
        return self.get_job(pointer["dataset_id"]) if pointer else None

    def list_jobs(self, limit: int = 50) -> list[JobRecord]:
        return [JobRecord.model_validate(item) for item in self._newest("job", limit)]
