"""A job's event stream as SSE: replay from the durable log, then live events, closing after the terminal one."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import nullcontext

import anyio
from prometheus_client import Gauge
from sse_starlette import ServerSentEvent

from gateway.store import events as event_log
from gateway.store.db import Database
from gateway.store.event_records import Event
from gateway.streams.events import EventBus, Mailbox
from gateway.streams.sse import EventStream

LAGGARD_POLL_SECONDS = 1.0
SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


async def follow(
    db: Database, bus: EventBus, job_id: str, after: int = 0, *, live: Mailbox | None = None
) -> AsyncIterator[Event]:
    """Every event with an id above `after`, in order, without gaps or repeats.

    The subscription opens before the log is read, so nothing recorded in between is missed; a live
    event that arrives out of turn (or a listener that fell behind, or a quiet spell on a bus that can
    lose messages) sends us back to the log. `live`, a subscription opened before any event after
    `after` could be recorded (a job just created here, before its driver started), saves that read.
    """
    fresh = live is not None
    with nullcontext(live) if live is not None else bus.subscribe(job_id) as mailbox:
        batch = [] if fresh else await event_log.after(db, job_id, after)
        while True:
            for event in batch:
                if event.seq <= after:
                    continue
                yield event
                after = event.seq
                if event.terminal:
                    return
            live_event = await _next(mailbox, bus.poll_seconds)
            if live_event is not None and live_event.seq <= after + 1:
                batch = [live_event]
            elif live_event is not None or await event_log.moved_past(db, job_id, after):
                batch = await event_log.after(db, job_id, after)
            else:  # a quiet spell, and nothing was missed
                batch = []


async def _next(live: Mailbox, within: float | None) -> Event | None:
    try:
        return await live.receive(within)
    except anyio.EndOfStream:  # the bus dropped this listener (it fell behind): poll the log instead
        await anyio.sleep(within or LAGGARD_POLL_SECONDS)
        return None


def sse_response(
    db: Database,
    bus: EventBus,
    job_id: str,
    *,
    after: int = 0,
    heartbeat: float,
    retry_ms: int | None = None,
    first: Event | None = None,
    live: Mailbox | None = None,
    open_streams: Gauge | None = None,
    send_timeout: float | None = None,
) -> EventStream:
    """`first`, when given, is sent at once (it was just recorded) and the rest follows it; `live`
    is a subscription opened before anything after `first` was recorded (its owner closes it). A
    send that waits longer than `send_timeout` (a client that reads nothing) raises SendTimeoutError."""

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
            fresh = live if first is not None and start == first.seq else None
            async for event in follow(db, bus, job_id, start, live=fresh):
                yield event.sse(retry_ms).encode()
        finally:
            if open_streams is not None:
                open_streams.dec()

    return EventStream(
        body(),
        headers=SSE_HEADERS,
        ping=heartbeat,
        sep="\n",
        ping_message_factory=lambda: ServerSentEvent(comment="ping", sep="\n"),
        send_timeout=send_timeout,
    )
