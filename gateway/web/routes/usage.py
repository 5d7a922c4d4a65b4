"""The operators' usage API: tokens and jobs per day, model, key or provider, and jobs across every key."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from gateway.contract.errors import InvalidRequest
from gateway.store import usage as usage_store
from gateway.store.db import now
from gateway.store.job_records import TERMINAL, UNFINISHED, Job
from gateway.store.usage import DIMENSIONS, Dimension
from gateway.web import auth
from gateway.web.job_object import job_object
from gateway.web.routes.common import paging, services

DEFAULT_DAYS = 30
JOB_FILTERS = ("running", *UNFINISHED, *TERMINAL)  # running: queued or processing
MAX_FILTER_CHARS = 200


def _day(name: str, text: str, *, end: bool) -> date:
    """A bound from the query, as a day: a date, or an ISO-8601 time (UTC unless it says otherwise)
    taken to its day. An end bound takes in the whole of its day, unless it is a time at midnight."""
    if len(text) > 40:
        raise InvalidRequest(f"`{name}` must be a date (2026-11-23) or an ISO-8601 time.")
    try:
        if len(text) == 10:
            day = date.fromisoformat(text)
            return day + timedelta(days=1) if end else day
        moment = datetime.fromisoformat(text)
    except ValueError as exc:
        raise InvalidRequest(
            f"`{name}` must be a date (2026-11-23) or an ISO-8601 time (2026-11-23T10:00:00Z)."
        ) from exc
    moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    midnight = moment.replace(hour=0, minute=0, second=0, microsecond=0)
    return moment.date() + timedelta(days=1) if end and moment != midnight else moment.date()


def _window(request: Request) -> tuple[date, date]:
    """[first day, end day): whole UTC days, the roll-up's grain. By default the last 30 days, today included."""
    params = request.query_params
    try:
        end = _day("to", params["to"], end=True) if params.get("to") else now().date() + timedelta(days=1)
        first = (
            _day("from", params["from"], end=False) if params.get("from") else end - timedelta(DEFAULT_DAYS)
        )
    except OverflowError as exc:  # a date at the calendar's ends, moved by a day
        raise InvalidRequest("`from` and `to` must lie between the years 1 and 9999.") from exc
    if first >= end:
        raise InvalidRequest("`from` must come before `to`.")
    return first, end


def _midnight(day: date) -> str:
    return f"{day.isoformat()}T00:00:00Z"


def _dimensions(request: Request) -> list[Dimension]:
    """`group_by`: one of day, model, key, provider, or several joined by commas (day,model)."""
    chosen: list[Dimension] = []
    for part in request.query_params.get("group_by", "day").split(","):
        name = part.strip()
        dimension = next((d for d in DIMENSIONS if d == name), None)
        if dimension is None or dimension in chosen:
            raise InvalidRequest(
                f"`group_by` must be one or more of {', '.join(DIMENSIONS)}, joined by commas, each once."
            )
        chosen.append(dimension)
    return chosen


async def get_usage(request: Request) -> Response:
    auth.require_admin(request)
    first, end = _window(request)
    dims = _dimensions(request)
    db = services(request).db
    groups = await usage_store.usage(db, first.isoformat(), end.isoformat(), dims)
    totals = await usage_store.usage(db, first.isoformat(), end.isoformat(), ())
    return JSONResponse(
        {
            "from": _midnight(first),
            "to": _midnight(end),
            "group_by": dims,
            "groups": groups,
            "totals": totals[0],  # an aggregate without GROUP BY always has its one row
        }
    )


def _filter(request: Request, name: str) -> str | None:
    value = request.query_params.get(name) or None
    if value is not None and len(value) > MAX_FILTER_CHARS:
        raise InvalidRequest(f"`{name}` is over {MAX_FILTER_CHARS} characters.")
    return value


def admin_job(request: Request, job: Job) -> dict[str, Any]:
    """The job object, with what only an operator sees: whose it is, where it runs, who drives it."""
    return {
        **job_object(services(request), job),
        "key_id": job.key_id,
        "provider": job.provider,
        "upstream_id": job.upstream_id,
        "driven_by": job.owner,
    }


async def list_jobs(request: Request) -> Response:
    auth.require_admin(request)
    limit, offset = paging(request)
    status = _filter(request, "status")
    if status is not None and status not in JOB_FILTERS:
        raise InvalidRequest(f"`status` must be one of {', '.join(JOB_FILTERS)}.")
    statuses = UNFINISHED if status == "running" else (status,) if status else ()
    items, total = await usage_store.jobs_page(
        services(request).db,
        statuses=statuses,
        provider=_filter(request, "provider"),
        key_id=_filter(request, "key"),
        limit=limit,
        offset=offset,
    )
    return JSONResponse(
        {"items": [admin_job(request, j) for j in items], "total": total, "limit": limit, "offset": offset}
    )


routes = [
    Route("/admin/usage", get_usage, methods=["GET"]),
    Route("/admin/jobs", list_jobs, methods=["GET"]),
]
