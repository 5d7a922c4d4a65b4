"""Jobs: create with an atomic debit, record progress, finish (with at most one refund), read and page."""

from __future__ import annotations

import json
from collections.abc import Callable, Coroutine
from datetime import timedelta
from typing import Any

from gateway.contract.errors import IdempotencyConflict, TooManyJobs
from gateway.store import events
from gateway.store.db import Database, Tx, Work, iso, now, parse_iso, stamp
from gateway.store.event_records import Event
from gateway.store.job_records import Finished, Idempotency, Job, Lease, NewJob, Settlement, row_to_job
from gateway.store.ledger import append_entry


async def get_in(tx: Tx, job_id: str) -> Job:
    row = await tx.one("SELECT * FROM jobs WHERE id = ?", (job_id,))
    assert row is not None, f"no job {job_id}"
    return row_to_job(row)


def create(
    db: Database,
    new: NewJob,
    *,
    idempotency: Idempotency | None = None,
    max_concurrent_jobs: int | None = None,
    max_queued_jobs: int | None = None,
    provider_capacity: int | None = None,
    idempotency_ttl_seconds: int = 24 * 3600,
    lease: Lease | None = None,
    lease_seconds: float = 0,
) -> Coroutine[Any, Any, tuple[Job, Event | None]]:
    """Debit the price and create the job with its first event, all in one transaction.

    Returns the job and its `Processing started` event; an idempotent replay returns the earlier job
    and None (nothing is debited again). With `lease`, the new job is born claimed by its creator, for
    `lease_seconds` from the moment it is stored (not from the call: a create may wait its turn).
    Each engine runs it its own way (`Database.create_job`).
    """
    cutoff = iso(now() - timedelta(seconds=idempotency_ttl_seconds)) if idempotency is not None else None
    return db.create_job(
        new,
        idempotency=idempotency,
        cutoff=cutoff,
        max_concurrent_jobs=max_concurrent_jobs,
        max_queued_jobs=max_queued_jobs,
        provider_capacity=provider_capacity,
        lease=lease,
        lease_seconds=lease_seconds,
    )


def first_event(job_id: str, new: NewJob, balance: Any) -> dict[str, Any]:
    """The data of a new job's event 1."""
    return {
        "status": "Processing started",
        "job_id": job_id,
        "model": new.model,
        "cost": new.cost,
        "balance": balance,
        **new.extra_first_event,
    }


def asked(job_id: str, new: NewJob) -> tuple[Any, ...]:
    """A new job's columns from its request: id to cost, in the order both engines' inserts take them."""
    return (
        job_id,
        new.key_id,
        new.model,
        new.served_model,
        new.provider,
        new.prompt,
        new.effective_prompt,
        new.style,
        json.dumps(new.options),
        new.callback_url,
        new.cost,
    )


def held_by(new: NewJob, lease: Lease | None, lease_time: float) -> tuple[Any, ...]:
    """Its owner, epoch and lease (born claimed, or not: when it lapses, or on PostgreSQL how long it
    lasts from the insert), and its hold."""
    return (
        lease.owner if lease else None,
        lease.epoch if lease else 0,
        lease_time,
        new.cost if new.held else None,
    )


def reused_idempotency_key() -> IdempotencyConflict:
    return IdempotencyConflict("This Idempotency-Key was already used with a different request body.")


def too_many_running(cap: int | None) -> TooManyJobs:
    return TooManyJobs(f"This key already has {cap} jobs running; wait for one to finish.", retry_after=5)


def too_many_waiting(cap: int | None) -> TooManyJobs:
    return TooManyJobs(
        f"This key already has {cap} jobs waiting for an upstream slot; wait for some to start.",
        retry_after=5,
    )


def as_stored(changes: dict[str, Any]) -> dict[str, Any]:
    """Each changed column's value as stored (a result's URLs are a JSON list in their column)."""
    return {c: json.dumps(v) if c == "urls" and v is not None else v for c, v in changes.items()}


def assignments(changes: dict[str, Any]) -> tuple[str, list[Any]]:
    stored = as_stored(changes)
    return ", ".join(f"{column} = ?" for column in stored), list(stored.values())


def unfinished_where(job_id: str, lease: Lease | None) -> tuple[str, tuple[Any, ...]]:
    """The WHERE of every change to an unfinished job: fenced by the lease's epoch when one is held."""
    if lease is None:
        return "id = ? AND status IN ('queued', 'processing')", (job_id,)
    return "id = ? AND status IN ('queued', 'processing') AND epoch = ?", (job_id, lease.epoch)


class NotChanged(Exception):
    """The job finished, or (with a lease) another replica holds it now: nothing was written."""


def record(
    db: Database,
    job_id: str,
    changes: dict[str, Any],
    event: dict[str, Any] | None = None,
    *,
    lease: Lease | None = None,
) -> Coroutine[Any, Any, Event | None]:
    """Update an unfinished job and append its event atomically (once or more per job and progress
    event: each engine runs it its own way, `Database.record_job`).

    Raises NotChanged when the job already finished or the lease is no longer this driver's.
    """
    return db.record_job(job_id, {**changes, "updated_at": stamp()}, event, lease)


async def record_submit_intent(db: Database, job_id: str, *, lease: Lease | None = None) -> None:
    """Note, before the submit request leaves, that the job is being sent upstream: committed first,
    so that recovery can tell a job that may be upstream from one that never was. Fenced like every
    driver write (NotChanged when the job finished or another replica holds it)."""
    await record(db, job_id, {"submit_intent_at": stamp()}, lease=lease)


def finish(
    db: Database,
    job_id: str,
    status: str,
    changes: dict[str, Any],
    event: dict[str, Any],
    *,
    refund: bool,
    lease: Lease | None = None,
    settle: Settlement | None = None,
) -> Coroutine[Any, Any, Finished | None]:
    """Move an unfinished job to a terminal status with its terminal event, refunding when asked;
    the event and the job as it now stands.

    Exactly one caller wins: the runner finishing and a user cancelling race on the status guard,
    and the ledger's unique index allows one refund per job whatever the code does. None for the
    losers (and for a driver whose lease another replica took).

    With `settle` (a completed job debited a hold), the job's cost becomes the settled price (never
    more than the hold) and the rest of the hold goes back as the job's one `settle` ledger row.
    Each engine runs it (`Database.finish_job`): the most common finish its own way, the rest as
    `finish_in_write`.
    """
    moment = stamp()
    changes = {**changes, "status": status, "updated_at": moment, "completed_at": moment}
    if refund:
        changes["refunded"] = 1
    if settle is not None:
        changes["cost"] = settle.cost
    return db.finish_job(job_id, changes, event, refund=refund, lease=lease, settle=settle)


def finish_in_write(
    write: Callable[[Work[Finished | None]], Coroutine[Any, Any, Finished | None]],
    job_id: str,
    changes: dict[str, Any],
    event: dict[str, Any],
    *,
    refund: bool,
    lease: Lease | None,
    settle: Settlement | None,
    head: str = "",
    after: str = "",
    counted: tuple[Any, ...] = (),
) -> Coroutine[Any, Any, Finished | None]:
    """`finish` as a write of its own, by the engine's `write`. The engine may have the statement lock
    what the finish changes before the job: its `head` (a WITH), `after` (a condition on the job) and
    their parameters (`counted`)."""
    sets, values = assignments(changes)
    where, guard = unfinished_where(job_id, lease)

    async def work(tx: Tx) -> Finished | None:
        row = await tx.one(
            f"{head}UPDATE jobs SET {sets}, last_event_id = last_event_id + 1 WHERE {where}{after} RETURNING *",
            (*counted, *values, *guard),
        )
        if row is None:
            return None
        if refund and row["cost"]:
            await append_entry(tx, row["key_id"], int(row["cost"]), "refund", job_id=job_id)
        if settle is not None:
            returned = int(row["hold"]) - settle.cost
            if returned < 0:
                raise ValueError(f"job {job_id}: a settled price above the hold")
            await append_entry(tx, row["key_id"], returned, "settle", job_id=job_id, note=settle.note)
        # read back in the same statement: the finish hooks need no further read
        finished = row_to_job(row)
        return Finished(await events.store(tx, job_id, finished.last_event_id, event), finished)

    return write(work)


async def get(db: Database, job_id: str, key_id: str | None = None) -> Job | None:
    if key_id is None:
        row = await db.fetchone("SELECT * FROM jobs WHERE id = ?", (job_id,))
    else:
        row = await db.fetchone("SELECT * FROM jobs WHERE id = ? AND key_id = ?", (job_id, key_id))
    return row_to_job(row) if row else None


async def page(
    db: Database, key_id: str, *, status: str | None, limit: int, offset: int
) -> tuple[list[Job], int]:
    where, params = "key_id = ?", [key_id]
    if status:
        where += " AND status = ?"
        params.append(status)
    # rowid breaks ties within a second: SQLite's own, a column of that name on PostgreSQL
    rows = await db.fetchall(
        f"SELECT * FROM jobs WHERE {where} ORDER BY created_at DESC, rowid DESC LIMIT ? OFFSET ?",
        (*params, limit, offset),
    )
    total = await db.fetchone(f"SELECT COUNT(*) FROM jobs WHERE {where}", params)
    return [row_to_job(r) for r in rows], int(total[0]) if total else 0


async def unfinished(db: Database) -> list[Job]:
    rows = await db.fetchall(
        "SELECT * FROM jobs WHERE status IN ('queued', 'processing') ORDER BY created_at"
    )
    return [row_to_job(r) for r in rows]


async def count_unfinished(db: Database, key_id: str) -> int:
    row = await db.fetchone(
        "SELECT COUNT(*) FROM jobs WHERE key_id = ? AND status IN ('queued', 'processing')", (key_id,)
    )
    return int(row[0]) if row else 0


async def results_past(db: Database, moment: str) -> list[str]:
    """Completed jobs whose stored results are past their retention and not yet deleted."""
    rows = await db.fetchall(
        "SELECT id FROM jobs WHERE status = 'completed' AND files_deleted = 0 AND expires_at < ?", (moment,)
    )
    return [r["id"] for r in rows]


async def mark_results_deleted(db: Database, job_id: str) -> None:
    async def work(tx: Tx) -> None:
        await tx.execute("UPDATE jobs SET files_deleted = 1 WHERE id = ?", (job_id,))

    await db.write(work)


async def recent_durations(db: Database, model: str, limit: int = 20) -> list[float]:
    """Seconds from upstream slot to completion of the model's latest completed jobs, newest first."""
    rows = await db.fetchall(
        "SELECT started_at, completed_at FROM jobs WHERE served_model = ? AND status = 'completed'"
        " AND started_at IS NOT NULL ORDER BY completed_at DESC LIMIT ?",
        (model, limit),
    )
    durations = []
    for row in rows:
        started, completed = parse_iso(row["started_at"]), parse_iso(row["completed_at"])
        if started is not None and completed is not None:
            durations.append(max(0.0, (completed - started).total_seconds()))
    return durations
