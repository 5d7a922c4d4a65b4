"""Creating jobs: POST /api/generate (an SSE stream), POST /api/generations (202), POST /api/quote."""

from __future__ import annotations

from contextlib import ExitStack

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from gateway.jobs.create import create_job, submit_price, upstream_task, validate_request
from gateway.store import ledger
from gateway.store.job_records import Job
from gateway.streams.events import Mailbox
from gateway.streams.openstreams import ManagedStream
from gateway.web.job_object import job_object
from gateway.web.routes.common import authenticate, event_stream, read_json, services


async def generate(request: Request) -> Response | ManagedStream:
    key = await authenticate(request, creating=True)
    body = await read_json(request)
    svc = services(request)
    svc.drain.refuse_creates()
    slot = svc.streams.open(key.id)  # a stream over the caps is refused before anything is debited
    # The stream subscribes to the new job before its driver starts, so it needs no read of the log.
    subscription = ExitStack()
    live: list[Mailbox] = []

    def subscribe(job: Job) -> None:
        live.append(subscription.enter_context(svc.bus.subscribe(job.id)))

    try:
        job, first = await create_job(
            svc, key, body, request.headers.get("idempotency-key"), before_start=subscribe
        )
    except BaseException:
        subscription.close()
        svc.streams.release(slot)
        raise
    # An idempotent replay (first is None) streams the earlier job from its first event.
    return event_stream(svc, slot, job.id, first=first, live=live[0] if live else None, closing=subscription)


async def create_generation(request: Request) -> Response:
    key = await authenticate(request, creating=True)
    body = await read_json(request)
    svc = services(request)
    job, _ = await create_job(svc, key, body, request.headers.get("idempotency-key"))
    return JSONResponse(job_object(svc, job), status_code=202)


async def quote(request: Request) -> Response:
    key = await authenticate(request)
    body = await read_json(request)
    svc = services(request)
    generation = await validate_request(svc, key, body)
    if (route := svc.registry.route_or_none(generation.model)) is not None:
        upstream_task(svc, generation, route)  # refused here as a create would refuse it
    provider = svc.settings.models[generation.model].provider
    cost, held = submit_price(svc, generation.model, generation.options, svc.registry.upstream(provider))
    balance = await ledger.balance(svc.db, key.id)
    return JSONResponse(
        {
            "model": generation.model,
            "cost": cost,
            "hold": held,
            "balance": balance,
            "sufficient": balance >= cost,
            "available": svc.registry.available(generation.model),
        }
    )


routes = [
    Route("/api/generate", generate, methods=["POST"]),
    Route("/api/generations", create_generation, methods=["POST"]),
    Route("/api/quote", quote, methods=["POST"]),
]
