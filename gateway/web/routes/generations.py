"""Reading and steering jobs: get, list, cancel, and the resumable event stream."""

from __future__ import annotations

import anyio
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from gateway.contract.errors import AlreadyFinished, InvalidRequest, NotFound, Unauthorized
from gateway.contract.parsing import whole_number
from gateway.store import jobs as job_store
from gateway.store import keys
from gateway.store.job_records import TERMINAL, UNFINISHED, Job
from gateway.streams.openstreams import ManagedStream
from gateway.web import auth
from gateway.web.job_object import job_object
from gateway.web.routes.common import authenticate, event_stream, paging, services

STATUSES = (*UNFINISHED, *TERMINAL)


async def _own_job(request: Request) -> Job:
    key = await authenticate(request)
    job = await job_store.get(services(request).db, request.path_params["job_id"], key.id)
    if job is None:
        raise NotFound("No such job.")
    return job


async def get_generation(request: Request) -> Response:
    return JSONResponse(job_object(services(request), await _own_job(request)))


async def list_generations(request: Request) -> Response:
    key = await authenticate(request)
    limit, offset = paging(request)
    status = request.query_params.get("status") or None
    if status is not None and status not in STATUSES:
        raise InvalidRequest(f"`status` must be one of {', '.join(STATUSES)}.")
    svc = services(request)
    items, total = await job_store.page(svc.db, key.id, status=status, limit=limit, offset=offset)
    return JSONResponse(
        {"items": [job_object(svc, j) for j in items], "total": total, "limit": limit, "offset": offset}
    )


async def cancel_generation(request: Request) -> Response:
    job = await _own_job(request)
    svc = services(request)
    if job.finished:
        raise AlreadyFinished(f"The job already finished ({job.status}).", job_status=job.status)
    event = {"status": "Canceled", "job_id": job.id, "refunded": True}
    finished = await job_store.finish(
        svc.db,
        job.id,
        "canceled",
        {"error": "Canceled by the client.", "error_code": "canceled"},
        event,
        refund=True,
    )
    if finished is None:  # the runner finished it a moment ago
        latest = await job_store.get(svc.db, job.id)
        raise AlreadyFinished("The job already finished.", job_status=latest.status if latest else None)
    await svc.bus.publish(finished.event)
    with anyio.CancelScope(shield=True):  # the refund is committed: the upstream cancel must follow
        # The upstream id as the cancel left it: a driver (on any replica) can no longer record one.
        await svc.runner.stop_job(finished.job)
        await svc.runner.notify_finished(finished.job)
    return JSONResponse(job_object(svc, finished.job))


async def job_events(request: Request) -> Response | ManagedStream:
    svc = services(request)
    job_id = request.path_params["job_id"]
    token = request.query_params.get("token")
    if auth.bearer(request) is not None or token is None:
        job = await _own_job(request)
    else:
        if not auth.check_stream_token(svc.stream_secret, job_id, token):
            raise Unauthorized("The stream token is invalid or has expired; ask for the job again.")
        found = await job_store.get(svc.db, job_id)
        if found is None:
            raise NotFound("No such job.")
        owner = await keys.get(svc.db, found.key_id)
        if owner is None or owner.revoked:  # a revoke withdraws the job links it handed out too
            raise Unauthorized("The API key this job belongs to was revoked.")
        job = found
    after_text = request.headers.get("last-event-id") or request.query_params.get("last_event_id") or "0"
    after = whole_number(after_text.strip())
    if after is None:
        raise InvalidRequest("Last-Event-ID must be a non-negative integer event id.")
    if job.finished and after >= job.last_event_id:
        return Response(status_code=204)  # tells an EventSource to stop reconnecting
    if svc.drain.draining:  # come back in a moment: to another replica, or to this one restarted
        return svc.streams.retry_hint()
    return event_stream(svc, svc.streams.open(job.key_id), job.id, after=after)


routes = [
    Route("/api/generations", list_generations, methods=["GET"]),
    Route("/api/generations/{job_id}", get_generation, methods=["GET"]),
    Route("/api/generations/{job_id}/cancel", cancel_generation, methods=["POST"]),
    Route("/api/generations/{job_id}/events", job_events, methods=["GET"]),
]
