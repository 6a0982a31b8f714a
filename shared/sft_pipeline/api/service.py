"""What the API does, without HTTP: resolve a model name, call the provider, read the
registry, promote aliases. The handler turns these results and errors into responses.
"""

from __future__ import annotations

import datetime as dt
import math
import time
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol, TypeVar

from pydantic import ValidationError

from sft_pipeline.aliases import (
    ALIAS_NAME,
    AliasNotFound,
    AliasVersion,
    AliasVersionConflictError,
    AliasVersionNotFound,
    Variant,
    parse_reference,
    pick_variant,
    single,
)
from sft_pipeline.api.models import (
    AliasUpdate,
    AliasView,
    ChatCompletionRequest,
    JobList,
    JobView,
    ModelCard,
    ModelList,
    RetrainBody,
    RetrainView,
)
from sft_pipeline.evaluation.pricing import inference_cost
from sft_pipeline.lifecycle import serving_ends
from sft_pipeline.observability import logger
from sft_pipeline.pipeline.retrain import RetrainOrders, plan_retrain
from sft_pipeline.providers.base import (
    ChatPort,
    ProviderError,
    ProviderPermanentError,
    ProviderRateLimitError,
    TrainingPort,
)
from sft_pipeline.records import DatasetRecord, JobRecord, ModelRecord
from sft_pipeline.retraining import RetrainRefused, RetrainRequest
from sft_pipeline.validation.targets import provider_of

DEFAULT_MAX_OUTPUT_TOKENS = 4096
T = TypeVar("T")
EVENTS_SHOWN = 10
# Names of models the pipeline registered: OpenAI fine-tunes and Bedrock custom models.
REGISTERED_MODEL_PREFIXES = ("ft:", "arn:")


@dataclass
class ApiError(Exception):
    """An error the caller gets as an OpenAI-style JSON body with this status."""

    status: int
    message: str
    type: str = "invalid_request_error"
    code: str | None = None
    param: str | None = None
    headers: dict[str, str] = field(default_factory=dict)


def invalid_request(problems: Sequence[Mapping[str, Any]], where: str | None = None) -> ApiError:
    """The 400 for the first problem pydantic found in a request: a plain sentence, and the
    parameter as OpenAI writes it (``messages[0].role``). ``where`` names the parameter
    that problems about a whole value are about (a split whose weights do not add up)."""
    problem = problems[0]
    kind = str(problem.get("type", ""))
    context = problem.get("ctx") or {}
    if kind == "json_invalid":
        return ApiError(
            400,
            "We could not parse the JSON body of your request. "
            "Send valid JSON with Content-Type: application/json.",
        )
    param = _param([part for part in problem.get("loc", ()) if part != "body"]) or where
    if kind == "missing" and param:
        return ApiError(
            400,
            f"Missing required parameter: '{param}'.",
            param=param,
            code="missing_required_parameter",
        )
    if kind == "extra_forbidden" and param:
        return ApiError(
            400,
            f"Unrecognized request argument supplied: {param}",
            param=param,
            code="unknown_parameter",
        )
    if kind == "too_short" and context.get("actual_length") == 0:
        return ApiError(
            400,
            f"Invalid '{param}': empty array. Expected an array with minimum length "
            f"{context.get('min_length', 1)}, but got an empty array instead.",
            param=param,
            code="empty_array",
        )
    # A validator's own sentence, else pydantic's ("Input should be ...") made part of ours.
    reason = str(context["error"]) if "error" in context else str(problem.get("msg", "invalid"))
    reason = (reason[:1].lower() + reason[1:]).rstrip(".")
    if param is None:
        if kind in ("model_attributes_type", "model_type", "dict_type"):
            return ApiError(400, "The request body must be a JSON object.")
        return ApiError(400, f"The request body is not valid: {reason}.")
    return ApiError(400, f"Invalid '{param}': {reason}.", param=param, code="invalid_value")


def _param(location: Sequence[int | str]) -> str | None:
    """A pydantic error location as OpenAI writes a parameter: ``messages[0].role``."""
    param = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in location)
    return param.removeprefix(".") or None


@dataclass(frozen=True)
class Usage:
    """What one answer used, for the per-model token and cost metrics."""

    input_tokens: int
    output_tokens: int
    # None when the price table has no price for the model.
    cost_usd: float | None


@dataclass(frozen=True)
class ChatResult:
    body: dict[str, Any]
    served_model: str
    # "alias@version" when the request named an alias, else None.
    alias: str | None
    variant: int | None
    # None when the provider's answer counts no tokens.
    usage: Usage | None


@dataclass
class LookupCache:
    """Registry lookups kept for a few seconds: every chat request resolves an alias and a
    model, and a promotion reaches every warm container within ``ttl_seconds``."""

    ttl_seconds: float = 30.0
    max_entries: int = 1024
    clock: Callable[[], float] = time.monotonic
    _entries: dict[Hashable, tuple[float, Any]] = field(default_factory=dict)

    def get(self, key: Hashable, load: Callable[[], T]) -> T:
        now = self.clock()
        cached = self._entries.get(key)
        if cached is not None and now - cached[0] < self.ttl_seconds:
            value: T = cached[1]
            return value
        if len(self._entries) >= self.max_entries:
            self._entries.clear()
        loaded = load()
        self._entries[key] = (now, loaded)
        return loaded

    def forget(self, matches: Callable[[Hashable], bool]) -> None:
        for key in [key for key in self._entries if matches(key)]:
            del self._entries[key]


@dataclass(frozen=True)
class Target:
    """Where a model name leads: the name the caller sees, the provider, and what that
    provider is called with (for Bedrock, the on-demand deployment of the custom model)."""

    model: str
    provider: str
    call_model: str
    # A registered fine-tune's base model: its id alone does not price it (a Bedrock ARN).
    fine_tune_of: str | None = None


class ApiRegistry(Protocol):
    """What the API reads and writes: models, aliases, and jobs with their datasets."""

    def get_model(self, model_id: str) -> ModelRecord | None: ...

    def set_model_serving(self, model_id: str, status: str) -> None: ...

    def list_models(self) -> list[ModelRecord]: ...

    def get_alias_version(self, alias: str, version: int | None) -> AliasVersion:
        """That version, or the current one for None; AliasNotFound, AliasVersionNotFound."""
        ...

    def list_aliases(self) -> list[tuple[str, int, AliasVersion]]: ...

    def create_alias_version(
        self, alias: str, variants: list[Variant], note: str | None, now: dt.datetime
    ) -> AliasVersion:
        """The next version, made current; AliasVersionConflictError if others kept winning."""
        ...

    def set_alias_current(self, alias: str, version: int, now: dt.datetime) -> AliasVersion: ...

    def get_job(self, dataset_id: str) -> JobRecord | None: ...

    def get_job_by_id(self, job_id: str) -> JobRecord | None: ...

    def list_jobs(self) -> list[JobRecord]: ...

    def get_dataset(self, dataset_id: str) -> DatasetRecord | None: ...

    def record_model_use(self, model_id: str, day: dt.date) -> bool:
        """Note the model answered on ``day``; False when that day was already noted."""
        ...


@dataclass
class UsageLog:
    """The last day each registered model answered, as the retirement watcher reads it:
    noted in the registry once a day per warm container (the registry's conditional write
    keeps it to one stored write a day in all), so answers never wait on it again."""

    today: Callable[[], dt.date] = lambda: dt.datetime.now(dt.UTC).date()
    max_entries: int = 1024
    _noted: dict[str, dt.date] = field(default_factory=dict)

    def note(self, model_id: str, registry: ApiRegistry) -> None:
        today = self.today()
        if self._noted.get(model_id) == today:
            return
        if len(self._noted) >= self.max_entries:
            self._noted.clear()
        try:
            registry.record_model_use(model_id, today)
        except Exception:  # usage is bookkeeping: an answer never fails for it
            logger.exception("Could not record the model's use", extra={"model": model_id})
            return
        self._noted[model_id] = today


@dataclass
class ApiService:
    registry: ApiRegistry
    # Inference answers through the chat port; the job routes read and cancel jobs.
    chat_models: Callable[[str], ChatPort]
    trainers: Callable[[str], TrainingPort]
    max_output_tokens: int = DEFAULT_MAX_OUTPUT_TOKENS
    lookups: LookupCache = field(default_factory=LookupCache)
    usage: UsageLog = field(default_factory=UsageLog)

    # ---------------------------------------------------------------- inference

    def chat(self, request: ChatCompletionRequest, draw: float) -> ChatResult:
        """``draw`` in [0, 1) picks the A/B variant; the caller supplies the randomness."""
        if request.stream:
            raise ApiError(
                400,
                "stream=true is not supported: API Gateway REST APIs return buffered Lambda "
                "responses. Send the request without stream.",
                code="stream_unsupported",
                param="stream",
            )
        wanted = request.max_completion_tokens or request.max_tokens
        if wanted is not None and wanted > self.max_output_tokens:
            raise ApiError(
                400,
                f"max_tokens is {wanted}; this API allows at most {self.max_output_tokens}.",
                code="max_tokens_too_large",
                param="max_tokens",
            )
        target, alias, variant = self._route(request.model, draw)
        body = request.model_dump(exclude_none=True)
        body["model"] = target.call_model
        try:
            answer = self.chat_models(target.provider).chat(body)
        except ProviderError as failure:
            raise _provider_failure(failure) from failure
        answer["model"] = target.model
        if target.fine_tune_of is not None:
            self.usage.note(target.model, self.registry)
        return ChatResult(answer, target.model, alias, variant, _usage(target, answer))

    def _route(self, requested: str, draw: float) -> tuple[Target, str | None, int | None]:
        try:
            reference = parse_reference(requested)
        except ValueError as bad:
            raise ApiError(400, str(bad), code="invalid_model", param="model") from None
        if reference.kind == "alias":
            version = self._alias_version(reference.name, reference.version)
            if version is not None:
                chosen = pick_variant(version, draw)
                target = self._target(chosen.model)
                if target is None:
                    raise _unknown_model(chosen.model)
                return target, f"{version.alias}@{version.version}", version.variants.index(chosen)
            if reference.version is not None:
                raise _unknown_model(requested)
        # A plain name that is no alias may still be a model ("gpt-4o-mini" looks like both).
        target = self._target(reference.name)
        if target is None:
            raise _unknown_model(requested)
        return target, None, None

    def _target(self, model: str, *, to_call: bool = True) -> Target | None:
        """Registered fine-tunes, or base models the pipeline can fine-tune; else None.

        With ``to_call`` the model must also be able to answer now.
        """
        if model.startswith(REGISTERED_MODEL_PREFIXES):
            record = self.lookups.get(("model", model), lambda: self.registry.get_model(model))
            if record is None:
                return None
            if to_call:
                self._check_serving(record)
            return Target(
                record.model_id,
                record.provider,
                record.serving_model or record.model_id,
                fine_tune_of=record.base_model,
            )
        provider = provider_of(model)
        return Target(model, provider, model) if provider else None

    def _alias_version(self, name: str, version: int | None) -> AliasVersion | None:
        def load() -> AliasVersion | None:
            try:
                return self.registry.get_alias_version(name, version)
            except (AliasNotFound, AliasVersionNotFound):
                return None

        return self.lookups.get(("alias", name, version), load)

    def _check_serving(self, record: ModelRecord) -> None:
        """A registered model that cannot answer yet says why, and what to do."""
        if record.serving_status == "deploying" and record.serving_model:
            status = self.chat_models(record.provider).serving_status(record.serving_model)
            if status == "ready":
                self.registry.set_model_serving(record.model_id, status)
                self.lookups.forget(lambda key: key == ("model", record.model_id))
                return
            raise ApiError(
                503,
                f"{record.model_id} is being deployed for on-demand inference; retry shortly.",
                type="api_error",
                code="model_deploying",
                headers={"Retry-After": "60"},
            )
        if record.serving_status in ("needs_provisioned_throughput", "disabled"):
            raise ApiError(
                409,
                record.serving_note or f"{record.model_id} has no inference endpoint.",
                code="model_not_deployed",
                param="model",
            )

    # ---------------------------------------------------------------- registry views

    def list_models(self, today: dt.date) -> ModelList:
        models = self.registry.list_models()
        cards = [_model_card(model, today) for model in models]
        shutdowns = {model.model_id: serving_ends(model.base_model) for model in models}
        for name, current, version in self.registry.list_aliases():
            # A variant is a registered fine-tune or a base model; the alias stops answering
            # (for that share of its traffic) when the first of them stops being served.
            served = [
                shutdowns[v.model] if v.model in shutdowns else serving_ends(v.model)
                for v in version.variants
            ]
            shutdown = min(filter(None, served), default=None)
            cards.append(
                ModelCard(
                    id=name,
                    created=int(version.created_at.timestamp()),
                    owned_by="sft-pipeline",
                    kind="alias",
                    alias_version=current,
                    variants=version.variants,
                    shutdown_date=shutdown.isoformat() if shutdown else None,
                    days_until_shutdown=(shutdown - today).days if shutdown else None,
                )
            )
        return ModelList(data=cards)

    def put_alias(self, name: str, update: AliasUpdate, now: dt.datetime) -> AliasView:
        if not ALIAS_NAME.match(name):
            raise ApiError(
                400,
                "An alias name is 1-63 lowercase letters, digits and '-', starting with a letter.",
                code="invalid_alias",
            )
        chosen = [update.model is not None, update.variants is not None, update.version is not None]
        if sum(chosen) != 1:
            raise ApiError(
                400, "Send exactly one of: model, variants, version.", code="invalid_alias_update"
            )
        if update.version is not None:
            try:
                version = self.registry.set_alias_current(name, update.version, now)
            except (AliasNotFound, AliasVersionNotFound) as missing:
                raise ApiError(404, str(missing), code="alias_not_found") from None
        else:
            variants = single(update.model) if update.model is not None else update.variants or []
            for variant in variants:
                # A model still being deployed may be promoted: it answers once it is ready.
                if self._target(variant.model, to_call=False) is None:
                    raise ApiError(
                        400,
                        f"'{variant.model}' is neither a registered fine-tune nor a known base model.",
                        code="model_not_found",
                        param="variants",
                    )
            try:
                version = self.registry.create_alias_version(name, variants, update.note, now)
            except AliasVersionConflictError:
                raise ApiError(
                    409,
                    "The alias changed while this update was made; retry.",
                    code="alias_conflict",
                ) from None
            except ValidationError as invalid:
                # An empty split, weights that do not add up to 100, a model named twice.
                refusal = invalid_request(invalid.errors(), where="variants")
                raise replace(refusal, code="invalid_alias_update") from None
        self.lookups.forget(lambda key: key[:2] == ("alias", name))  # type: ignore[index]
        return AliasView(
            alias=name,
            current_version=version.version,
            variants=version.variants,
            note=version.note,
        )

    def retrain(
        self, name: str, body: RetrainBody, requested_by: str, orders: RetrainOrders
    ) -> RetrainView:
        """Order a retrain of the model (or the alias's model) on another provider."""
        request = RetrainRequest(model=name, **body.model_dump())
        try:
            plan = plan_retrain(request, self.registry, requested_by)
        except RetrainRefused as refused:
            status, code = _RETRAIN_REFUSALS[refused.kind]
            raise ApiError(status, " ".join(refused.problems), code=code) from None
        orders.submit(plan)
        settings = plan.settings
        return RetrainView(
            dataset_id=plan.dataset_id,
            retrained_from=plan.model.model_id,
            provider=settings.provider,
            base_model=settings.base_model,
            alias=settings.alias,
            promote=settings.promote,
            hyperparameters=settings.hyperparameters.model_dump(),
            upload=plan.upload.model_dump(),
            dataset_sha256=plan.sha256,
        )

    def list_jobs(self) -> JobList:
        return JobList(data=[JobView.from_record(job) for job in self.registry.list_jobs()])

    def get_job(self, job_id: str) -> JobView:
        return self._detailed_view(self._find_job(job_id))

    def _detailed_view(self, job: JobRecord) -> JobView:
        """The job with its dataset, model and latest events: what GET /jobs/{id} shows."""
        events: list[str] = []
        try:
            if job.job_id is not None:
                events = self.trainers(job.provider).recent_events(job.job_id, EVENTS_SHOWN)
        except ProviderError:
            events = []  # the registry view still answers while the provider is unreachable
        dataset = self.registry.get_dataset(job.dataset_id)
        model = self.registry.get_model(job.model_id) if job.model_id else None
        return JobView.from_record(job, dataset, model, events)

    def cancel_job(self, job_id: str) -> JobView:
        job = self._find_job(job_id)
        if job.job_id is None:
            raise ApiError(
                409,
                "This run failed before a job was created; there is nothing to cancel.",
                code="no_job",
            )
        try:
            cancelled = self.trainers(job.provider).cancel_job(job.job_id)
        except ProviderError as failure:
            raise _provider_failure(failure) from failure
        # The same view as GET /jobs/{id}, with the status the provider just answered.
        return self._detailed_view(job).model_copy(update={"status": cancelled.status})

    def _find_job(self, job_id: str) -> JobRecord:
        job = self.registry.get_job_by_id(job_id) or self.registry.get_job(job_id)
        if job is None:
            raise ApiError(404, f"No job '{job_id}'.", code="job_not_found")
        return job


# How each kind of refusal is answered: status and error code.
_RETRAIN_REFUSALS = {
    "not_found": (404, "model_not_found"),
    "conflict": (409, "lineage_unavailable"),
    "invalid": (400, "retrain_not_possible"),
}


def _usage(target: Target, answer: Mapping[str, Any]) -> Usage | None:
    """Tokens from the answer's OpenAI-shaped usage (the Converse adapter fills it too)."""
    usage = answer.get("usage")
    if not usage:
        return None
    input_tokens = int(usage.get("prompt_tokens") or 0)
    output_tokens = int(usage.get("completion_tokens") or 0)
    cost = inference_cost(
        target.model, input_tokens, output_tokens, fine_tune_of=target.fine_tune_of
    )
    return Usage(input_tokens, output_tokens, cost)


def _model_card(model: ModelRecord, today: dt.date) -> ModelCard:
    shutdown = serving_ends(model.base_model)
    return ModelCard(
        id=model.model_id,
        created=int(model.created_at.timestamp()),
        owned_by=model.provider,
        kind="fine-tuned",
        base_model=model.base_model,
        shutdown_date=shutdown.isoformat() if shutdown else None,
        days_until_shutdown=(shutdown - today).days if shutdown else None,
        dataset_id=model.dataset_id,
        evaluation=model.evaluation,
    )


def _unknown_model(name: str) -> ApiError:
    return ApiError(
        404,
        f"The model '{name}' does not exist or you do not have access to it.",
        code="model_not_found",
        param="model",
    )


def _provider_failure(failure: ProviderError) -> ApiError:
    """Map the provider's failure onto what the caller should do about it."""
    if isinstance(failure, ProviderRateLimitError):
        wait = math.ceil(failure.retry_after) if failure.retry_after else 1
        return ApiError(
            429,
            "The model provider is rate limiting requests; retry after the given delay.",
            type="rate_limit_error",
            code="rate_limit_exceeded",
            headers={"Retry-After": str(wait)},
        )
    if isinstance(failure, ProviderPermanentError):
        if failure.code in ("model_not_found", "http_404"):
            return ApiError(404, failure.message, code="model_not_found", param="model")
        if failure.code in ("authentication_failed", "fine_tuning_unavailable"):
            # The pipeline's own provider credentials: nothing the caller can fix.
            return ApiError(
                502,
                "The model provider refused this service's credentials.",
                type="api_error",
                code="upstream_auth",
            )
        if failure.code.startswith(("daily_", "insufficient_quota")):
            return ApiError(429, failure.message, type="rate_limit_error", code=failure.code)
        return ApiError(400, failure.message, code=failure.code)
    if failure.code == "timeout":
        return ApiError(
            504,
            "The model provider did not answer in time.",
            type="api_error",
            code="upstream_timeout",
        )
    return ApiError(
        502, "The model provider failed; try again.", type="api_error", code="upstream_error"
    )
