"""The durable event log: events numbered 1, 2, 3 … per job, the same numbers on every replay."""

from __future__ import annotations

import json
from collections.abc import Coroutine
from typing import Any

from gateway.store.db import Database, Tx, stamp
from gateway.store.event_records import Event


async def append(tx: Tx, job_id: str, data: dict[str, Any]) -> Event:
    """Number and store one event inside the caller's transaction."""
    row = await tx.one(
        "UPDATE jobs SET last_event_id = last_event_id + 1 WHERE id = ? RETURNING last_event_id",
        (job_id,),
    )
    assert row is not None, f"no job {job_id}"
    return await store(tx, job_id, int(row[0]), data)


async def store(tx: Tx, job_id: str, seq: int, data: dict[str, Any]) -> Event:
    """Store an event already numbered (`jobs.last_event_id` raised to `seq` in the same transaction)."""
    event = Event(job_id, seq, data)
    await tx.execute(
        "INSERT INTO job_events (job_id, seq, data, created_at) VALUES (?, ?, ?, ?)",
        (job_id, seq, event.json(), stamp()),
    )
    return event


async def after(db: Database, job_id: str, seq: int) -> list[Event]:
    rows = await db.fetchall(
        "SELECT seq, data FROM job_events WHERE job_id = ? AND seq > ? ORDER BY seq", (job_id, seq)
    )
    return [Event(job_id, int(r["seq"]), json.loads(r["data"])) for r in rows]


def moved_past(db: Database, job_id: str, seq: int) -> Coroutine[Any, Any, bool]:
    """Whether the job's log holds an event after `seq`: a quiet stream's check before it reads the log
    (on PostgreSQL, one statement asks for every stream checking at the same time)."""
    return db.moved_past(job_id, seq)
