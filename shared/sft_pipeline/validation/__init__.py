"""Training-data validation: the same code serves the CLI and the S3-triggered Lambda."""

from sft_pipeline.validation.report import Finding, ValidationReport
from sft_pipeline.validation.validator import DataSource, ValidationOptions, validate

__all__ = ["DataSource", "Finding", "ValidationOptions", "ValidationReport", "validate"]
