"""A job's creation: validate, route, price, debit, start."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import Any

from gateway.contract.errors import InvalidOption, InvalidRequest, ModelNotAllowed
from gateway.jobs.catalog import Catalog, GenerationRequest
from gateway.jobs.services import Services
from gateway.jobs.settlement import hold, reported
from gateway.results.webhooks import check_callback_url
from gateway.store import jobs as job_store
from gateway.store.event_records import Event
from gateway.store.job_records import Idempotency, Job, NewJob
from gateway.store.keys import ApiKey
from gateway.upstreams.registry import Route, Upstream
from providers.base import OptionError, Task


def body_hash(body: Any) -> str:
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


async def create_job(
    svc: Services,
    key: ApiKey,
    body: Any,
    idempotency_key: str | None = None,
    *,
    before_start: Callable[[Job], None] | None = None,
) -> tuple[Job, Event | None]:
    """Validate and price the request, debit it with the job in one transaction, and start it.

    Every refusal is raised before the debit. An idempotent replay returns the earlier job and None.
    `before_start` sees a new job after its first event and before its driver can record another.
    """
    svc.drain.refuse_creates()
    if idempotency_key is not None and not 0 < len(idempotency_key) <= 255:
        raise InvalidRequest("The Idempotency-Key header must be 1 to 255 characters.")
    request = await validate_request(svc, key, body)
    route = svc.registry.route(request.model)
    prepared = upstream_task(svc, request, route)
    price, held = submit_price(svc, request.model, request.options, route.upstream)
    new = NewJob(
        key_id=key.id,
        model=request.model,
        served_model=route.model,
        provider=route.upstream.name,
        prompt=request.prompt,
        effective_prompt=prepared.prompt,
        style=request.style,
        options=dict(prepared.options),
        cost=price,
        callback_url=request.callback_url,
        extra_first_event={"served_by": route.model} if route.model != request.model else {},
        held=held,
    )
    idempotency = Idempotency(idempotency_key, body_hash(body)) if idempotency_key else None
    limit = key.max_concurrent_jobs or svc.settings.default_max_concurrent_jobs
    lease, lease_seconds = svc.runner.new_lease()
    job, first = await job_store.create(
        svc.db,
        new,
        idempotency=idempotency,
        max_concurrent_jobs=limit,
        max_queued_jobs=svc.settings.max_queued_jobs_per_key,
        provider_capacity=route.upstream.capacity,
        idempotency_ttl_seconds=svc.settings.idempotency_ttl_seconds,
        lease=lease,
        lease_seconds=lease_seconds,
    )
    if first is not None:
        svc.metrics.tokens_debited.inc(job.cost)
        await svc.bus.publish(first)
        if before_start is not None:
            before_start(job)
        svc.runner.start(job)
    return job, first


def submit_price(
    svc: Services, model_id: str, options: dict[str, Any], upstream: Upstream | None
) -> tuple[int, bool]:
    """What a request is debited at submit, and whether that is a hold settled at completion. Always
    the requested model's price, whoever serves it; a hold where its upstream reports what it made."""
    config = svc.catalog.model(model_id)
    if upstream is not None and (held := hold(config, options, reported(upstream.adapter))) is not None:
        return held, True
    return svc.catalog.price(model_id, options), False


def upstream_task(svc: Services, request: GenerationRequest, route: Route) -> Task:
    """The job as the upstream that serves it will take it: the options carried over to a fallback,
    then checked by its adapter (400 invalid_option: a size that is not a multiple of 8 …). A quote
    checks the same."""
    options = request.options
    if route.model != request.model:
        options = _options_for_fallback(svc.catalog, route.model, options)
    task = Task(
        job_id="",
        model=route.model,
        prompt=request.prompt,
        style=request.style,
        style_label=request.style_label,
        options=options,
        params=svc.settings.models[route.model].upstream,
    )
    try:
        return route.upstream.adapter.prepare(task)
    except OptionError as exc:
        raise InvalidOption(exc.message, option=exc.option) from exc


async def validate_request(svc: Services, key: ApiKey, body: Any) -> GenerationRequest:
    """Everything a create checks before pricing, and a quote checks the same: the body, the key's
    model allow-list, and where a `callback_url` points (its host resolved now)."""
    request = svc.catalog.validate(body)
    if key.models is not None and request.model not in key.models:
        raise ModelNotAllowed(f"This key may not use model {request.model!r}.", model=request.model)
    if request.callback_url:
        await check_callback_url(
            request.callback_url, allow_private=svc.settings.allow_private_callbacks, resolve=svc.resolve
        )
    return request


def _options_for_fallback(catalog: Catalog, model_id: str, options: dict[str, Any]) -> dict[str, Any]:
    """Carry over the options the fallback model also takes; its defaults fill the rest."""
    specs = catalog.model(model_id).options
    kept = {name: value for name, value in options.items() if name in specs}
    try:
        return catalog.validate_options(model_id, kept)
    except InvalidOption:
        return catalog.validate_options(model_id, {})
