"""What every handler shares: the services, authentication with rate-limit headers, JSON bodies, paging."""

from __future__ import annotations

import json
from contextlib import ExitStack
from typing import Any

from starlette.requests import Request

from gateway.contract.errors import InvalidRequest, PayloadTooLarge, UnsupportedMediaType
from gateway.contract.parsing import whole_number
from gateway.contract.requests import MAX_INTEGER
from gateway.jobs.services import Services
from gateway.limits.ratelimit import RateLimiter
from gateway.store.event_records import Event
from gateway.store.keys import ApiKey
from gateway.streams.events import Mailbox
from gateway.streams.openstreams import ManagedStream, StreamSlot
from gateway.streams.replay import sse_response
from gateway.web.auth import require_key


def services(request: Request) -> Services:
    svc: Services = request.app.state.services
    return svc


async def authenticate(request: Request, *, creating: bool = False) -> ApiKey:
    """The caller's key; `creating` counts the request against the key's per-minute rate."""
    key = await require_key(request)
    limiter: RateLimiter = request.app.state.limiter
    if creating:
        request.state.rate_headers = await limiter.hit(key.id, key.rate_limit_per_minute)
    else:
        request.state.rate_headers = await limiter.headers(key.id, key.rate_limit_per_minute)
    return key


async def read_json(request: Request) -> Any:
    """The body as JSON: 415 unless application/json, 413 over the limit, 400 when malformed."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/json" and not content_type.endswith("+json"):
        raise UnsupportedMediaType("The body must be JSON, sent with Content-Type: application/json.")
    limit: int = services(request).settings.max_body_bytes
    declared = request.headers.get("content-length", "")
    if (size_declared := whole_number(declared, max_digits=30)) is not None and size_declared > limit:
        raise PayloadTooLarge(f"The body is over the {limit}-byte limit.", limit=limit)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"The body is over the {limit}-byte limit.", limit=limit)
        chunks.append(chunk)
    raw = b"".join(chunks)
    try:
        body = json.loads(raw, parse_constant=_not_json)
    except ValueError as exc:
        if "integer string conversion" in str(exc):  # Python's own limit, past 4 300 digits
            raise InvalidRequest("The body holds a number with more digits than any field takes.") from exc
        raise InvalidRequest(f"The body is not valid JSON: {exc}.") from exc
    except RecursionError as exc:
        raise InvalidRequest("The body's JSON is nested too deeply.") from exc
    # JSON may escape lone UTF-16 surrogates (\ud800) that no UTF-8 text can hold; only a body with
    # a \u escape can, so only such a body pays for the check.
    if b"\\u" in raw:
        try:
            json.dumps(body, ensure_ascii=False).encode()
        except UnicodeEncodeError as exc:
            raise InvalidRequest("The body holds a lone UTF-16 surrogate, which is not text.") from exc
    return body


def _not_json(constant: str) -> Any:
    """Python's json reads NaN and ±Infinity, which JSON has not: a number option with no bound would
    take one, and the job it made could not be written out again."""
    raise ValueError(f"{constant} is not a JSON value")


def paging(request: Request, *, default_limit: int = 20, max_limit: int = 100) -> tuple[int, int]:
    params = request.query_params
    limit_text, offset_text = params.get("limit", str(default_limit)), params.get("offset", "0")
    limit, offset = whole_number(limit_text), whole_number(offset_text)
    if limit is None or not 1 <= limit <= max_limit:
        raise InvalidRequest(f"`limit` must be an integer from 1 to {max_limit}.")
    if offset is None or offset > MAX_INTEGER:
        raise InvalidRequest(f"`offset` must be an integer from 0 to {MAX_INTEGER}.")
    return limit, offset


def event_stream(
    svc: Services,
    slot: StreamSlot,
    job_id: str,
    *,
    after: int = 0,
    first: Event | None = None,
    live: Mailbox | None = None,
    closing: ExitStack | None = None,
) -> ManagedStream:
    """A job's events as SSE after `after`, holding `slot` under the stream caps while it is open (see
    streams.sse_response for `first`, `live` and `closing`)."""
    response = sse_response(
        svc.db,
        svc.bus,
        job_id,
        after=after,
        heartbeat=svc.settings.heartbeat_seconds,
        retry_ms=svc.settings.sse_retry_ms,
        open_streams=svc.metrics.open_streams,
        first=first,
        live=live,
        send_timeout=svc.settings.stream_send_timeout_seconds,
    )
    return svc.streams.serve(slot, response, closing)
