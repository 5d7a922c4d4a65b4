"""A job's event stream as SSE: replay from the durable log, then live events, closing after the terminal one."""

from __future__ import annotations

from collections.abc import AsyncIterator

from prometheus_client import Gauge
from sse_starlette import EventSourceResponse, ServerSentEvent

from gateway.events import Event, EventHub
from gateway.store import events as event_log
from gateway.store.db import Database

SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


async def follow(db: Database, hub: EventHub, job_id: str, after: int = 0) -> AsyncIterator[Event]:
    """Every event with an id above `after`, in order, without gaps or repeats.

    The subscription opens before the log is read, so nothing recorded in between is missed; a live
    event that arrives out of turn (or a listener that fell behind) sends us back to the log.
    """
    with hub.subscribe(job_id) as live:
        for event in await event_log.after(db, job_id, after):
            yield event
            after = event.seq
            if event.terminal:
                return
        async for event in live:
            if event.seq <= after:
                continue
            batch = [event] if event.seq == after + 1 else await event_log.after(db, job_id, after)
            for item in batch:
                yield item
                after = item.seq
                if item.terminal:
                    return


def sse_response(
    db: Database,
    hub: EventHub,
    job_id: str,
    *,
    after: int = 0,
    heartbeat: float,
    retry_ms: int | None = None,
    first: Event | None = None,
    open_streams: Gauge | None = None,
) -> EventSourceResponse:
    """`first`, when given, is sent at once (it was just recorded) and the rest follows it."""

    async def body() -> AsyncIterator[bytes]:
        if open_streams is not None:
            open_streams.inc()
        try:
            start = after
            if first is not None and first.seq > after:
                yield first.sse(retry_ms).encode()
                start = first.seq
                if first.terminal:
                    return
            async for event in follow(db, hub, job_id, start):
                yield event.sse(retry_ms).encode()
        finally:
            if open_streams is not None:
                open_streams.dec()

    return EventSourceResponse(
        body(),
        headers=SSE_HEADERS,
        ping=heartbeat,
        sep="\n",
        ping_message_factory=lambda: ServerSentEvent(comment="ping", sep="\n"),
    )
