"""Retraining a registered model elsewhere: resolve the request against the registry, then
hand the order to the validation step.

The API and ``sft retrain`` plan (and refuse at once what the registry shows cannot be
done) and write the order to the training bucket; the order's S3 event starts the
validation step, which plans again from the registry, validates the lineage's exact
version for the new provider's rules and starts the run (pipeline/validate_upload.py).
Writing the same order twice gives the same run: its dataset id is the order's identity.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from sft_pipeline.aliases import AliasNotFound, AliasVersion, AliasVersionNotFound, parse_reference
from sft_pipeline.jobs import JobSettings, UploadRef
from sft_pipeline.records import DatasetRecord, ModelRecord
from sft_pipeline.retraining import (
    ORDER_SUFFIX,
    RetrainOrder,
    RetrainRefused,
    RetrainRequest,
    retrained_settings,
)


class RetrainLookup(Protocol):
    """What planning a retrain reads: the model, the alias that names it, the original run."""

    def get_model(self, model_id: str) -> ModelRecord | None: ...

    def get_alias_version(self, alias: str, version: int | None) -> AliasVersion: ...

    def get_dataset(self, dataset_id: str) -> DatasetRecord | None: ...


class OrderWriter(Protocol):
    def put(self, bucket: str, key: str, body: bytes, content_type: str) -> str: ...


@dataclass(frozen=True)
class RetrainPlan:
    """A retrain that can be done: the order, the model retrained, the exact version and
    sha256 of its lineage, and the new run's settings."""

    order: RetrainOrder
    model: ModelRecord
    upload: UploadRef
    sha256: str
    settings: JobSettings
    # The validation and eval files at the versions the original run read.
    named_files: tuple[UploadRef, ...] = ()

    @property
    def dataset_id(self) -> str:
        return self.order.dataset_id


def plan_retrain(
    request: RetrainRequest, registry: RetrainLookup, requested_by: str = ""
) -> RetrainPlan:
    """The retrain ``request`` asks for, or RetrainRefused: an unknown model or alias
    (not_found), a lineage that cannot be re-read exactly (conflict), settings the new
    provider cannot take (invalid)."""
    model, alias_named = _resolve(request.model, registry)
    dataset = registry.get_dataset(model.dataset_id)
    if dataset is None or dataset.settings is None:
        raise RetrainRefused(
            "conflict",
            [
                f"The run that trained {model.model_id} left no dataset record: its settings are "
                "unknown."
            ],
        )
    upload, sha256 = model.upload, model.dataset_sha256
    if upload.version_id is None or not sha256:
        raise RetrainRefused(
            "conflict",
            [
                f"{model.model_id} was trained on {upload.uri} without a recorded object version "
                "and sha256, so the exact data cannot be read again."
            ],
        )
    alias = request.alias or alias_named or dataset.settings.alias
    settings = retrained_settings(dataset.settings, request, alias)
    order = RetrainOrder(
        model_id=model.model_id,
        provider=settings.provider,
        base_model=settings.base_model,
        alias=alias,
        hyperparameters=settings.hyperparameters,
        requested_by=requested_by,
    )
    named_files = tuple(file for file in (dataset.validation_file, dataset.eval_file) if file)
    return RetrainPlan(
        order=order,
        model=model,
        upload=upload,
        sha256=sha256,
        settings=settings,
        named_files=named_files,
    )


@dataclass(frozen=True)
class RetrainOrders:
    """Where orders go: the training bucket's retrain prefix, which the validation step's
    S3 trigger watches."""

    writer: OrderWriter
    bucket: str
    prefix: str

    def submit(self, plan: RetrainPlan) -> str:
        """Write the plan's order (again, harmlessly, for the same retrain); its S3 URI."""
        key = f"{self.prefix}{plan.dataset_id}{ORDER_SUFFIX}"
        body = plan.order.model_dump_json().encode()
        return self.writer.put(self.bucket, key, body, "application/json")


def _resolve(name: str, registry: RetrainLookup) -> tuple[ModelRecord, str | None]:
    """The registered model ``name`` means, and the alias it was named by (if it was)."""
    try:
        reference = parse_reference(name)
    except ValueError as bad:
        raise RetrainRefused("invalid", [str(bad)]) from None
    if reference.kind == "alias":
        try:
            version = registry.get_alias_version(reference.name, reference.version)
        except (AliasNotFound, AliasVersionNotFound):
            version = None
        if version is not None:
            # The variant most of the traffic goes to (the first of equals) is the one in use.
            for variant in sorted(version.variants, key=lambda v: -v.weight):
                if (model := registry.get_model(variant.model)) is not None:
                    return model, reference.name
            raise RetrainRefused(
                "conflict",
                [f"{name} serves no registered fine-tune (only base models): nothing to retrain."],
            )
    model = registry.get_model(reference.name)
    if model is None:
        raise RetrainRefused("not_found", [f"No registered model or alias named {name!r}."])
    return model, None
